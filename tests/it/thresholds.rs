//! Personal thresholds set by coordinators, end to end on the real
//! PostgreSQL and Mosquitto: a looser threshold waits for a second
//! coordinator and the triage engine with it, a stricter one applies at
//! once, review reminders reach the worklist once their date has come,
//! every change and decision is audited, and only coordinators get the
//! forms. The store's part runs against PostgreSQL and SQLite.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use thuiswacht::alert_book::stage::PERSONAL_SETTINGS_POLL;
use thuiswacht::alert_book::Outcome;
use thuiswacht::domain::{DeviceId, Timestamp};
use thuiswacht::protocols::RuleSettings;
use thuiswacht::settings::Settings;
use thuiswacht::store::{
    NewDevice, NewRuleOverride, NewThresholdProposal, ProposalStatus, Role, SqliteStore, Store,
    StoreError, ThresholdDecision,
};
use uuid::Uuid;

use crate::helpers::*;

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Today in the team's time zone (the default, Europe/Amsterdam).
fn today() -> NaiveDate {
    thuiswacht::thresholds::today(&Settings::defaults(), Timestamp::now())
}

fn in_days(days: i64) -> String {
    (today() + chrono::Days::new(u64::try_from(days).unwrap())).to_string()
}

/// A running app, a patient of Assen with a thermometer, two coordinators
/// (carla, dirk) and a nurse (anouk) of Assen.
struct World {
    app: TestApp,
    database: TestDatabase,
    patient: Uuid,
    root: String,
}

async fn world(triage: bool) -> World {
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let mut settings = test_settings(&database.url, &root);
    settings.triage_enabled = triage;
    // A resolved alert may come back at once: what fires is what counts.
    settings.reraise_after_minutes = 0;
    let app = TestApp::spawn(settings).await;
    let patient = add_test_patient(&app.store, "Assen", "Mevrouw Bakker").await;
    app.store
        .add_device(&NewDevice {
            device_id: DeviceId::parse("thermo-1").unwrap(),
            profile_id: "thermometer".to_owned(),
            patient_id: patient,
        })
        .await
        .unwrap();
    for (username, role) in [
        ("carla", Role::Coordinator),
        ("dirk", Role::Coordinator),
        ("anouk", Role::Nurse),
    ] {
        add_test_user(&app.store, username, role, &["Assen"]).await;
    }
    World {
        app,
        database,
        patient,
        root,
    }
}

/// A signed-in person: a client with the session cookie, and the CSRF token.
struct Person {
    client: Client,
    csrf: String,
}

async fn sign_in(world: &World, username: &str) -> Person {
    let client = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/api/v1/session", world.app.http))
        .json(&json!({"username": username, "password": test_password(username)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "sign-in of {username}");
    let body: Value = response.json().await.unwrap();
    Person {
        client,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

impl Person {
    async fn post(&self, url: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(url)
            .header("X-CSRF-Token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get_json(&self, url: &str) -> Value {
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        response.json().await.unwrap()
    }

    async fn get_text(&self, url: &str) -> String {
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        response.text().await.unwrap()
    }
}

fn thresholds_url(world: &World) -> String {
    format!(
        "{}/api/v1/patients/{}/thresholds",
        world.app.http, world.patient
    )
}

fn decide_url(world: &World, proposal: &Value, decision: &str) -> String {
    format!(
        "{}/api/v1/threshold-proposals/{}/{decision}",
        world.app.http, proposal["id"]
    )
}

/// A change of the fever rule with a reason and a review date in 90 days.
fn fever_change(settings: Value) -> Value {
    json!({
        "rule": "default/fever",
        "settings": settings,
        "reason": "Loopt 's avonds vaak warm; besproken met de huisarts.",
        "review_by": in_days(90),
    })
}

/// Publishes one body temperature of the thermometer at `seconds`.
async fn publish_temperature(publisher: &Publisher, world: &World, seconds: i64, value: f64) {
    publisher
        .publish(
            &readings_topic(&world.root, "thermo-1"),
            v1_payload("thermo-1", "body_temperature", "Cel", seconds, 1, value),
        )
        .await;
}

/// Waits until `count` readings are stored and triaged.
async fn settled(world: &World, count: i64) {
    wait_for_readings(&world.app.store, count, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Waits for the patient's unresolved fever alert, and returns its id.
async fn fever_alert(world: &World) -> Uuid {
    wait_for("a fever alert", Duration::from_secs(20), || async {
        world
            .app
            .store
            .unresolved_alert(world.patient, "default/fever")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    world
        .app
        .store
        .unresolved_alert(world.patient, "default/fever")
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Resolves an alert as a nurse does, so that the next one is a new alert.
async fn resolve(world: &World, alert_id: Uuid) {
    let mut alert = world.app.store.alert(alert_id).await.unwrap().unwrap();
    let from = alert.status;
    let event = alert
        .resolve("anouk", Outcome::ContactedPatient, Timestamp::now())
        .unwrap();
    world
        .app
        .store
        .save_transition(&alert, from, &event)
        .await
        .unwrap();
}

/// The `detail.action`s of the patient's `change_threshold` audit rows,
/// oldest first, with their actors.
async fn threshold_audit(world: &World) -> Vec<(String, String, Value)> {
    let mut rows: Vec<(String, String, Value)> = world
        .app
        .store
        .patient_audit(world.patient, None, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.action == "change_threshold")
        .map(|row| {
            (
                row.actor,
                row.detail["action"].as_str().unwrap_or_default().to_owned(),
                row.detail,
            )
        })
        .collect();
    rows.reverse();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looser_threshold_applies_only_once_a_second_coordinator_approves_it() {
    // Arrange: the fever rule fires above 38.0 and recovers below 37.8.
    let world = world(true).await;
    let carla = sign_in(&world, "carla").await;
    let dirk = sign_in(&world, "dirk").await;
    let anouk = sign_in(&world, "anouk").await;
    let publisher = Publisher::connect(&mqtt_url()).await;

    // Act 1: carla proposes fever from 39.0 for this patient.
    let (status, proposed) = carla
        .post(
            &thresholds_url(&world),
            &fever_change(json!({"above": 39.0, "recover_at": 38.8})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    assert_eq!(proposed["direction"], "loosening");
    assert_eq!(proposed["loosening"], json!(["above", "recover_at"]));
    let proposal = proposed["proposal"].clone();
    assert_eq!(proposal["status"], "pending");
    assert_eq!(proposal["author"], "carla");

    // Assert 1: nothing applies yet; a reading of 38.6 still fires, after
    // the triage stage has had time to look for new versions.
    assert!(world
        .app
        .store
        .patient_rule_overrides(world.patient)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(PERSONAL_SETTINGS_POLL + Duration::from_millis(300)).await;
    publish_temperature(&publisher, &world, now_seconds() - 60, 38.6).await;
    let before = fever_alert(&world).await;
    resolve(&world, before).await;

    // Act 2: a nurse may not decide, carla may not approve her own, dirk does.
    let (nurse_status, _) = anouk
        .post(&decide_url(&world, &proposal, "approve"), &json!({}))
        .await;
    let (own_status, own) = carla
        .post(&decide_url(&world, &proposal, "approve"), &json!({}))
        .await;
    let (approved_status, approved) = dirk
        .post(
            &decide_url(&world, &proposal, "approve"),
            &json!({"note": "Akkoord."}),
        )
        .await;
    let (again_status, again) = dirk
        .post(&decide_url(&world, &proposal, "approve"), &json!({}))
        .await;

    // Assert 2
    assert_eq!(nurse_status, StatusCode::FORBIDDEN);
    assert_eq!(own_status, StatusCode::FORBIDDEN, "{own}");
    assert_eq!(own["type"], "urn:thuiswacht:problem:four-eyes");
    assert_eq!(approved_status, StatusCode::OK, "{approved}");
    assert_eq!(approved["proposal"]["status"], "approved");
    assert_eq!(approved["proposal"]["decided_by"], "dirk");
    assert_eq!(approved["proposal"]["decision_note"], "Akkoord.");
    let version = &approved["version"];
    assert_eq!(version["version"], 1);
    assert_eq!(version["author"], "carla");
    assert_eq!(version["approved_by"], "dirk");
    assert_eq!(version["review_by"], json!(in_days(90)));
    assert_eq!(
        version["settings"],
        json!({"above": 39.0, "recover_at": 38.8})
    );
    assert_eq!(approved["proposal"]["override_id"], version["id"]);
    assert_eq!(again_status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["proposal"]["status"], "approved");

    // Act 3: readings after the approval, once the stage has picked it up.
    tokio::time::sleep(PERSONAL_SETTINGS_POLL + Duration::from_millis(300)).await;
    publish_temperature(&publisher, &world, now_seconds() + 1, 38.7).await;
    settled(&world, 2).await;
    let quiet = world.app.store.unresolved_alerts().await.unwrap();
    publish_temperature(&publisher, &world, now_seconds() + 2, 39.4).await;
    let louder = fever_alert(&world).await;

    // Assert 3: 38.7 no longer fires for this patient; 39.4 does.
    assert!(
        quiet.is_empty(),
        "38.7 stays quiet after approval: {quiet:#?}"
    );
    assert_ne!(louder, before);
    let alert = world.app.store.alert(louder).await.unwrap().unwrap();
    assert!(alert.explanation.to_string().contains("39.4"), "{alert:#?}");
    publisher.disconnect().await;
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_threshold_applies_at_once_and_replaces_a_pending_proposal() {
    // Arrange: dirk's looser proposal for the fever rule is pending.
    let world = world(true).await;
    let carla = sign_in(&world, "carla").await;
    let dirk = sign_in(&world, "dirk").await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let (status, pending) = dirk
        .post(
            &thresholds_url(&world),
            &fever_change(json!({"above": 38.8})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");

    // Act: carla sets fever from 37.5 (recovering below 37.3).
    let (status, applied) = carla
        .post(
            &thresholds_url(&world),
            &fever_change(json!({"above": 37.5, "recover_at": 37.3})),
        )
        .await;
    tokio::time::sleep(PERSONAL_SETTINGS_POLL + Duration::from_millis(300)).await;
    publish_temperature(&publisher, &world, now_seconds() + 1, 37.7).await;

    // Assert: stored at once, without an approver, and 37.7 fires (the
    // protocol's 38.0 would not); dirk's proposal is withdrawn.
    assert_eq!(status, StatusCode::CREATED, "{applied}");
    assert_eq!(applied["direction"], "tightening");
    assert_eq!(applied["version"]["version"], 1);
    assert_eq!(applied["version"]["author"], "carla");
    assert_eq!(applied["version"]["approved_by"], Value::Null);
    assert_eq!(applied["version"]["in_force"], true);
    assert_eq!(
        applied["withdrawn_proposals"],
        json!([pending["proposal"]["id"]])
    );
    let alert = fever_alert(&world).await;
    let alert = world.app.store.alert(alert).await.unwrap().unwrap();
    assert!(alert.explanation.to_string().contains("37.5"), "{alert:#?}");
    let listed = carla.get_json(&thresholds_url(&world)).await;
    assert_eq!(listed["pending"], json!([]));
    assert_eq!(listed["decided"][0]["status"], "withdrawn");
    assert_eq!(listed["decided"][0]["decided_by"], "carla");
    assert_eq!(listed["versions"][0]["in_force"], true);
    assert_eq!(listed["versions"][0]["review_due"], false);
    publisher.disconnect().await;
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worklist_reminds_of_a_threshold_once_its_review_date_has_come() {
    // Arrange: the fever threshold of Mevrouw Bakker was to be reviewed
    // yesterday; Meneer Jansen's still has time, and Meneer de Vries's
    // overdue version was replaced by one reviewed later. Emmen's overdue
    // one is for Emmen. (The API refuses past dates, so straight into the store.)
    let world = world(false).await;
    let store = &world.app.store;
    let later = add_test_patient(store, "Assen", "Meneer Jansen").await;
    let replaced = add_test_patient(store, "Assen", "Meneer de Vries").await;
    let emmen = add_test_patient(store, "Emmen", "Mevrouw Smit").await;
    let yesterday = today().pred_opt().unwrap();
    let version = |patient: Uuid, review_by: NaiveDate| NewRuleOverride {
        patient_id: patient,
        rule_key: "default/fever".to_owned(),
        settings: serde_json::from_str::<RuleSettings>(r#"{"above": 38.4}"#).unwrap(),
        valid_from: Timestamp::now().plus_micros(-86_400_000_000),
        valid_until: None,
        author: "carla".to_owned(),
        reason: "loopt warm".to_owned(),
        review_by: Some(review_by),
        approved_by: Some("dirk".to_owned()),
    };
    store
        .add_rule_override(&version(world.patient, yesterday))
        .await
        .unwrap();
    store
        .add_rule_override(&version(later, today() + chrono::Days::new(30)))
        .await
        .unwrap();
    store
        .add_rule_override(&version(replaced, yesterday))
        .await
        .unwrap();
    store
        .add_rule_override(&version(replaced, today() + chrono::Days::new(60)))
        .await
        .unwrap();
    store
        .add_rule_override(&version(emmen, yesterday))
        .await
        .unwrap();
    let anouk = sign_in(&world, "anouk").await;
    let carla = sign_in(&world, "carla").await;
    let (status, _) = carla
        .post(
            &format!("{}/api/v1/patients/{later}/thresholds", world.app.http),
            &fever_change(json!({"above": 38.9})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let http = &world.app.http;

    // Act
    let dutch = anouk.get_json(&format!("{http}/api/v1/worklist")).await;
    let english = anouk
        .get_json(&format!("{http}/api/v1/worklist?lang=en"))
        .await;
    let coordinator = carla.get_json(&format!("{http}/api/v1/worklist")).await;
    let page = anouk.get_text(&format!("{http}/")).await;
    let english_page = anouk.get_text(&format!("{http}/?lang=en")).await;
    let coordinator_page = carla.get_text(&format!("{http}/")).await;
    let thresholds = anouk.get_json(&thresholds_url(&world)).await;

    // Assert: one reminder, in the nurse's own team; the proposal only for
    // coordinators.
    let reviews = dutch["threshold_reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1, "{dutch:#}");
    assert_eq!(reviews[0]["title"], "Drempel herbeoordelen");
    assert_eq!(reviews[0]["patient_id"], json!(world.patient));
    assert_eq!(reviews[0]["patient_display_name"], "Mevrouw Bakker");
    assert_eq!(reviews[0]["rule_key"], "default/fever");
    assert_eq!(reviews[0]["review_by"], json!(yesterday.to_string()));
    assert_eq!(reviews[0]["team"], "Assen");
    assert_eq!(dutch["threshold_proposals"], json!([]));
    assert_eq!(english["threshold_reviews"][0]["title"], "Review threshold");
    assert_eq!(
        coordinator["threshold_reviews"].as_array().unwrap().len(),
        1
    );
    let proposals = coordinator["threshold_proposals"].as_array().unwrap();
    assert_eq!(proposals.len(), 1, "{coordinator:#}");
    assert_eq!(proposals[0]["patient_display_name"], "Meneer Jansen");
    assert_eq!(proposals[0]["author"], "carla");
    assert!(page.contains("Drempel herbeoordelen"), "{page}");
    assert!(page.contains("Mevrouw Bakker") && page.contains("default/fever"));
    assert!(!page.contains("Meneer de Vries") && !page.contains("Mevrouw Smit"));
    assert!(!page.contains("Drempelvoorstel wacht"), "not for nurses");
    assert!(english_page.contains("Review threshold"));
    assert!(coordinator_page.contains("Drempelvoorstel wacht op een tweede coördinator"));
    assert!(coordinator_page.contains("Meneer Jansen"));
    assert_eq!(thresholds["versions"][0]["review_due"], true);
    // The patients reminded of are audited as shown on the worklist.
    let pool = sqlx::PgPool::connect(&world.database.url).await.unwrap();
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_log_patients where actor = 'anouk' and action = 'read_worklist' \
         and patient_id = $1",
    )
    .bind(world.patient)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(audited >= 2, "{audited}");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proposal_decision_and_refusal_of_bad_values_is_accounted_for() {
    // Arrange
    let world = world(false).await;
    let carla = sign_in(&world, "carla").await;
    let dirk = sign_in(&world, "dirk").await;
    let url = thresholds_url(&world);

    // Act: bad values; then a proposal dirk approves, one he rejects, and
    // one carla withdraws.
    let (bad_status, bad) = carla
        .post(
            &url,
            &json!({"rule": "default/fever", "settings": {"recover_at": 39.0}, "review_by": today().to_string()}),
        )
        .await;
    let mut proposals = Vec::new();
    for settings in [
        json!({"above": 38.6}),
        json!({"priority": "low"}),
        json!({"enabled": false}),
    ] {
        let (status, body) = carla.post(&url, &fever_change(settings)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let proposal = body["proposal"].clone();
        let outcome = match proposals.len() {
            0 => {
                dirk.post(&decide_url(&world, &proposal, "approve"), &json!({}))
                    .await
            }
            1 => {
                dirk.post(
                    &decide_url(&world, &proposal, "reject"),
                    &json!({"note": "Eerst overleggen met de huisarts."}),
                )
                .await
            }
            _ => {
                carla
                    .post(&decide_url(&world, &proposal, "reject"), &json!({}))
                    .await
            }
        };
        assert_eq!(outcome.0, StatusCode::OK, "{}", outcome.1);
        proposals.push(outcome.1);
    }
    let listed = carla.get_json(&url).await;

    // Assert: the bad values are all listed and nothing was stored.
    assert_eq!(bad_status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["type"], "urn:thuiswacht:problem:bad-request");
    let problems: Vec<&str> = bad["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("reason:"));
    assert!(problems[1].starts_with("review_by:"));
    assert!(problems[2].contains("recover_at 39 must not exceed above 38"));
    // The decisions as stored.
    assert_eq!(proposals[1]["status"], "rejected");
    assert_eq!(
        proposals[1]["decision_note"],
        "Eerst overleggen met de huisarts."
    );
    assert_eq!(proposals[2]["status"], "withdrawn");
    assert_eq!(proposals[2]["decided_by"], "carla");
    assert_eq!(listed["versions"].as_array().unwrap().len(), 1);
    assert_eq!(listed["versions"][0]["approved_by"], "dirk");
    assert_eq!(listed["pending"], json!([]));
    assert_eq!(listed["decided"].as_array().unwrap().len(), 3);
    // And in the audit trail, with who did it.
    let audit = threshold_audit(&world).await;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|(actor, action, _)| (actor.as_str(), action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("carla", "proposed"),
            ("dirk", "approved"),
            ("carla", "proposed"),
            ("dirk", "rejected"),
            ("carla", "proposed"),
            ("carla", "withdrawn"),
        ]
    );
    let approval = &audit[1].2;
    assert_eq!(approval["proposal_id"], proposals[0]["proposal"]["id"]);
    assert_eq!(approval["override_id"], proposals[0]["version"]["id"]);
    assert_eq!(approval["proposed_by"], "carla");
    assert_eq!(audit[0].2["direction"], "loosening");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_page_gives_coordinators_the_forms_and_nurses_a_read_only_view() {
    // Arrange: carla's proposal is pending.
    let world = world(false).await;
    let carla = sign_in(&world, "carla").await;
    let dirk = sign_in(&world, "dirk").await;
    let anouk = sign_in(&world, "anouk").await;
    let (status, proposed) = carla
        .post(
            &thresholds_url(&world),
            &fever_change(json!({"above": 38.6})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = proposed["proposal"]["id"].as_i64().unwrap();
    let page_url = format!("{}/patients/{}", world.app.http, world.patient);
    let approve = format!("formaction=\"/api/v1/threshold-proposals/{id}/approve\"");

    // Act
    let as_carla = carla.get_text(&page_url).await;
    let as_dirk = dirk.get_text(&page_url).await;
    let as_anouk = anouk.get_text(&page_url).await;
    let english = dirk.get_text(&format!("{page_url}?lang=en")).await;

    // Assert: forms per rule for coordinators; approving for the second
    // coordinator only; the nurse sees the proposal without buttons.
    for page in [&as_carla, &as_dirk] {
        assert!(page.contains("class=\"threshold-set\""), "{page}");
        assert!(page.contains("data-rule=\"default/fever\""));
        assert!(page.contains("Persoonlijke grens instellen"));
        assert!(page.contains("name=\"review_by\" required"));
        assert!(page.contains(&format!("data-proposal=\"{id}\"")));
    }
    assert!(!as_carla.contains(&approve), "no approving one's own");
    assert!(as_carla.contains("Intrekken"));
    assert!(as_dirk.contains(&approve));
    assert!(as_dirk.contains("Afwijzen"));
    assert!(english.contains("Set a personal threshold") && english.contains(">Approve<"));
    assert!(as_anouk.contains(&format!("data-proposal=\"{id}\"")));
    assert!(as_anouk.contains("Drempelvoorstellen die wachten op een tweede coördinator"));
    assert!(!as_anouk.contains("threshold-set"), "no forms for nurses");
    assert!(
        !as_anouk.contains("threshold-decision"),
        "no decisions for nurses"
    );
    assert!(!as_anouk.contains(&approve));
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_propose_approve_and_tighten_through_the_page_in_chromium() {
    // Arrange
    assert!(
        repo_path("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs `npm ci --prefix tests/browser` (scripts/test runs it)"
    );
    let world = world(false).await;

    // Act: the browser script (tests/browser/thresholds.mjs).
    let output = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/thresholds.mjs"))
        .current_dir(repo_path("tests/browser"))
        .env("THUISWACHT_URL", &world.app.http)
        .env("THUISWACHT_PATIENT", world.patient.to_string())
        .env("THUISWACHT_PASSWORD_CARLA", test_password("carla"))
        .env("THUISWACHT_PASSWORD_DIRK", test_password("dirk"))
        .env("THUISWACHT_REVIEW_BY", in_days(90))
        .env("SCREENSHOT_DIR", repo_path("target/browser-screenshots"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("the browser test finishes within three minutes")
        .expect("node runs (scripts/test installs it when missing)");

    // Assert: the page sent only what differs from the protocol, the
    // looser change as carla's with dirk's approval, the stricter as dirk's.
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("PASSED"),
        "the browser checks passed: {}",
        output.status
    );
    let versions = world
        .app
        .store
        .patient_rule_overrides(world.patient)
        .await
        .unwrap();
    let summary: Vec<(&str, Value, &str, Option<&str>)> = versions
        .iter()
        .map(|version| {
            (
                version.rule_key.as_str(),
                serde_json::to_value(&version.settings).unwrap(),
                version.author.as_str(),
                version.approved_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "default/fever",
                json!({"above": 38.6}),
                "carla",
                Some("dirk")
            ),
            ("default/hypotension", json!({"below": 95.0}), "dirk", None),
        ]
    );
    assert!(versions
        .iter()
        .all(|version| version.review_by == Some(today() + chrono::Days::new(90))));
    let actions: Vec<String> = threshold_audit(&world)
        .await
        .into_iter()
        .map(|(actor, action, _)| format!("{actor} {action}"))
        .collect();
    assert_eq!(actions, ["carla proposed", "dirk approved", "dirk set"]);
    world.app.stop().await;
}

// The store's part, on both stores.

async fn proposals_are_decided_once_and_reviews_follow_the_version_in_force(store: Arc<dyn Store>) {
    // Arrange: a patient of Assen and one of Emmen.
    let mut teams = Vec::new();
    let mut patients = Vec::new();
    for team in ["Assen", "Emmen"] {
        teams.push(store.add_team(team).await.unwrap());
        patients.push(
            store
                .add_patient(&thuiswacht::store::NewPatient {
                    id: Uuid::new_v4(),
                    team: team.to_owned(),
                    display_name: format!("Cliënt {team}"),
                    birth_year: None,
                    protocols: vec!["default".to_owned()],
                })
                .await
                .unwrap(),
        );
    }
    let (assen, emmen) = (patients[0], patients[1]);
    let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    let proposal = |patient: Uuid, rule: &str| NewThresholdProposal {
        patient_id: patient,
        rule_key: rule.to_owned(),
        settings: serde_json::from_str::<RuleSettings>(r#"{"above": 38.6}"#).unwrap(),
        valid_until: None,
        review_by: date("2027-03-01"),
        author: "carla".to_owned(),
        reason: "loopt warm".to_owned(),
        created_at: Timestamp(1_000_000),
    };
    let decision = |id: i64, by: &str, at: i64| ThresholdDecision {
        proposal_id: id,
        decided_by: by.to_owned(),
        at: Timestamp(at),
        note: Some("akkoord".to_owned()),
    };

    // Act and assert: approval by the proposer is refused by the database.
    let first = store
        .add_threshold_proposal(&proposal(assen, "default/fever"))
        .await
        .unwrap();
    assert_eq!(first.status, ProposalStatus::Pending);
    assert_eq!(
        store.threshold_proposal(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert!(store
        .approve_threshold_proposal(&decision(first.id, "carla", 2_000_000))
        .await
        .is_err());
    assert_eq!(
        store
            .threshold_proposal(first.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ProposalStatus::Pending,
        "nothing of a refused approval stays"
    );
    // By someone else: the version, valid from the approval.
    let (approved, version) = store
        .approve_threshold_proposal(&decision(first.id, "dirk", 2_000_000))
        .await
        .unwrap();
    assert_eq!(approved.status, ProposalStatus::Approved);
    assert_eq!(approved.override_id, Some(version.id));
    assert_eq!(approved.decided_at, Some(Timestamp(2_000_000)));
    assert_eq!(version.valid_from, Timestamp(2_000_000));
    assert_eq!((version.version, version.author.as_str()), (1, "carla"));
    assert_eq!(version.approved_by.as_deref(), Some("dirk"));
    assert_eq!(version.review_by, Some(date("2027-03-01")));
    assert_eq!(
        store.patient_rule_overrides(assen).await.unwrap(),
        vec![version.clone()]
    );
    // Once only.
    for again in [
        store
            .approve_threshold_proposal(&decision(first.id, "erik", 3_000_000))
            .await
            .map(|_| ()),
        store
            .close_threshold_proposal(
                &decision(first.id, "erik", 3_000_000),
                ProposalStatus::Rejected,
            )
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    }
    assert!(matches!(
        store
            .approve_threshold_proposal(&decision(999_999, "dirk", 3_000_000))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Rejected, withdrawn, and withdrawn by a newer change.
    let second = store
        .add_threshold_proposal(&proposal(assen, "default/tachycardia"))
        .await
        .unwrap();
    let rejected = store
        .close_threshold_proposal(
            &decision(second.id, "dirk", 4_000_000),
            ProposalStatus::Rejected,
        )
        .await
        .unwrap();
    assert_eq!(rejected.status, ProposalStatus::Rejected);
    assert_eq!(rejected.decision_note.as_deref(), Some("akkoord"));
    assert_eq!(rejected.override_id, None);
    let third = store
        .add_threshold_proposal(&proposal(assen, "default/fever"))
        .await
        .unwrap();
    let fourth = store
        .add_threshold_proposal(&proposal(assen, "default/fever"))
        .await
        .unwrap();
    let other_rule = store
        .add_threshold_proposal(&proposal(assen, "default/tachycardia"))
        .await
        .unwrap();
    let in_emmen = store
        .add_threshold_proposal(&proposal(emmen, "default/fever"))
        .await
        .unwrap();
    let withdrawn = store
        .withdraw_threshold_proposals(
            assen,
            "default/fever",
            "carla",
            Timestamp(5_000_000),
            "vervangen",
        )
        .await
        .unwrap();
    assert_eq!(withdrawn, vec![third.id, fourth.id]);
    assert_eq!(
        store
            .threshold_proposal(fourth.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ProposalStatus::Withdrawn
    );
    // Pending ones per team and patient.
    let pending_ids = |items: Vec<thuiswacht::store::PendingProposalItem>| {
        items
            .into_iter()
            .map(|item| item.proposal.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pending_ids(store.pending_threshold_proposals(None, None).await.unwrap()),
        vec![other_rule.id, in_emmen.id]
    );
    let assen_only = store
        .pending_threshold_proposals(Some(&teams[..1]), None)
        .await
        .unwrap();
    assert_eq!(assen_only.len(), 1);
    assert_eq!(assen_only[0].proposal.id, other_rule.id);
    assert_eq!(assen_only[0].team, "Assen");
    assert_eq!(assen_only[0].patient_display_name, "Cliënt Assen");
    assert!(store
        .pending_threshold_proposals(Some(&[]), None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        pending_ids(
            store
                .pending_threshold_proposals(None, Some(emmen))
                .await
                .unwrap()
        ),
        vec![in_emmen.id]
    );
    assert_eq!(
        store
            .patient_threshold_proposals(emmen)
            .await
            .unwrap()
            .len(),
        1
    );

    // Reviews: only the newest version in force counts.
    let version_of =
        |patient: Uuid, rule: &str, from: i64, until: Option<i64>, review: &str| NewRuleOverride {
            patient_id: patient,
            rule_key: rule.to_owned(),
            settings: RuleSettings::default(),
            valid_from: Timestamp(from),
            valid_until: until.map(Timestamp),
            author: "carla".to_owned(),
            reason: "r".to_owned(),
            review_by: Some(date(review)),
            approved_by: None,
        };
    for new in [
        // Ended before the moment: not in force.
        version_of(assen, "default/spo2_low", 0, Some(6_000_000), "2026-11-01"),
        version_of(assen, "default/hypotension", 0, None, "2026-11-15"),
        version_of(emmen, "default/fever", 0, None, "2026-12-07"),
        // Reviewed later than the fever version approved above.
        version_of(assen, "default/fever", 2_500_000, None, "2027-01-01"),
    ] {
        store.add_rule_override(&new).await.unwrap();
    }
    let due = |teams: Option<Vec<uuid::Uuid>>| {
        let store = store.clone();
        async move {
            store
                .threshold_reviews_due(
                    Timestamp(7_000_000),
                    date("2026-12-07"),
                    teams.as_deref(),
                    None,
                )
                .await
                .unwrap()
                .into_iter()
                .map(|item| (item.patient_display_name, item.version.rule_key))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        due(None).await,
        [
            ("Cliënt Assen".to_owned(), "default/hypotension".to_owned()),
            ("Cliënt Emmen".to_owned(), "default/fever".to_owned()),
        ]
    );
    assert_eq!(
        due(Some(vec![teams[1]])).await,
        [("Cliënt Emmen".to_owned(), "default/fever".to_owned())]
    );
    assert!(store
        .threshold_reviews_due(Timestamp(7_000_000), date("2026-12-06"), None, Some(emmen))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .threshold_reviews_due(Timestamp(7_000_000), date("2027-01-01"), None, Some(assen))
        .await
        .unwrap()
        .iter()
        .any(|item| item.version.rule_key == "default/fever"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_proposals_and_reviews() {
    let store = TestDatabase::create().await.store().await;
    proposals_are_decided_once_and_reviews_follow_the_version_in_force(store).await;
}

#[tokio::test]
async fn sqlite_store_keeps_proposals_and_reviews() {
    thuiswacht::app::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.data_dir = dir.path().to_owned();
    let store = SqliteStore::connect(&settings).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    proposals_are_decided_once_and_reviews_follow_the_version_in_force(Arc::new(store)).await;
}
