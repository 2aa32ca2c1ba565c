//! Protocol versions, hot reload and the backtest, end to end on the real
//! PostgreSQL and Mosquitto: a saved version applies to readings after it
//! and the old one to earlier readings; versions compare and restore; an
//! invalid file is refused and the rules in force stay; the preview's
//! counts equal the alerts raised live with the proposed rules.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use thuiswacht::alert_book::Outcome;
use thuiswacht::domain::{DeviceId, Timestamp};
use thuiswacht::store::{NewDevice, Role, Store};
use uuid::Uuid;

use crate::helpers::*;

async fn thermometer(store: &Arc<dyn Store>, team: &str, name: &str, device: &str) -> Uuid {
    let patient = add_test_patient(store, team, name).await;
    store
        .add_device(&NewDevice {
            device_id: DeviceId::parse(device).unwrap(),
            profile_id: "thermometer".to_owned(),
            patient_id: patient,
        })
        .await
        .unwrap();
    patient
}

async fn publish_temperature(publisher: &Publisher, root: &str, device: &str, at: i64, value: f64) {
    publisher
        .publish(
            &readings_topic(root, device),
            v1_payload(device, "body_temperature", "Cel", at, 1, value),
        )
        .await;
}

fn rule_mut<'a>(document: &'a mut Value, id: &str) -> &'a mut Value {
    document["rules"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|rule| rule["id"] == id)
        .unwrap()
}

async fn audit_count(database_url: &str, action: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    sqlx::query_scalar("select count(*) from audit_log where action = $1")
        .bind(action)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_version_applies_from_its_time_and_versions_compare_and_restore() {
    // Arrange
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let early = thermometer(&app.store, "Assen", "Mevrouw Vroeg", "thermo-early").await;
    let late = thermometer(&app.store, "Assen", "Meneer Laat", "thermo-late").await;
    add_test_user(&app.store, "coordinator", Role::Coordinator, &["Assen"]).await;
    add_test_user(&app.store, "verpleegkundige", Role::Nurse, &["Assen"]).await;
    let (coordinator, csrf) = sign_in(&app.http, "coordinator").await;
    let (nurse, nurse_csrf) = sign_in(&app.http, "verpleegkundige").await;
    let url = format!("{}/api/v1/protocols/default", app.http);
    let mut document: Value = coordinator
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["version"], 0);
    assert_eq!(document["saved"]["source"], "file");
    rule_mut(&mut document, "fever")["above"] = json!(38.5);
    rule_mut(&mut document, "fever")["recover_at"] = json!(38.2);

    // Act: a nurse may not save; a coordinator saves version 1.
    let refused = nurse
        .put(&url)
        .header("X-CSRF-Token", &nurse_csrf)
        .json(&json!({"protocol": document, "reason": "te veel koortsmeldingen"}))
        .send()
        .await
        .unwrap();
    let invalid = {
        let mut wrong = document.clone();
        rule_mut(&mut wrong, "fever")["recover_at"] = json!(39.0);
        coordinator
            .put(&url)
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"protocol": wrong, "reason": "x"}))
            .send()
            .await
            .unwrap()
    };
    let saved = coordinator
        .put(&url)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"protocol": document, "reason": "te veel koortsmeldingen"}))
        .send()
        .await
        .unwrap();
    let stale = coordinator
        .put(&url)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"protocol": document, "reason": "nog eens"}))
        .send()
        .await
        .unwrap();

    // Assert: refusals are clear and change nothing.
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problems: Value = invalid.json().await.unwrap();
    assert!(
        problems["problems"][0]
            .as_str()
            .unwrap()
            .contains("rule fever: recover_at 39 must not exceed above 38.5"),
        "{problems}"
    );
    assert_eq!(saved.status(), StatusCode::OK);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["saved"]["author"], "coordinator");
    assert_eq!(saved["saved"]["reason"], "te veel koortsmeldingen");
    assert_eq!(
        stale.status(),
        StatusCode::CONFLICT,
        "a save based on version 0 after version 1"
    );
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale["protocol"]["version"], 1);

    // The engine: 38.3 measured before the change fires under version 0
    // (arriving late); 38.3 measured after it does not, 38.6 does.
    let publisher = Publisher::connect(&mqtt_url()).await;
    let now = chrono::Utc::now().timestamp();
    publish_temperature(&publisher, &root, "thermo-late", now + 1, 38.3).await;
    publish_temperature(&publisher, &root, "thermo-early", now - 3_600, 38.3).await;
    wait_for(
        "the alert of the early reading",
        Duration::from_secs(20),
        || async {
            app.store
                .unresolved_alert(early, "default/fever")
                .await
                .ok()
                .flatten()
                .is_some()
        },
    )
    .await;
    assert!(
        app.store
            .unresolved_alert(late, "default/fever")
            .await
            .unwrap()
            .is_none(),
        "38.3 after the change is no fever under version 1"
    );
    publish_temperature(&publisher, &root, "thermo-late", now + 2, 38.6).await;
    wait_for(
        "the alert under version 1",
        Duration::from_secs(20),
        || async {
            app.store
                .unresolved_alert(late, "default/fever")
                .await
                .ok()
                .flatten()
                .is_some()
        },
    )
    .await;

    // Compare and restore.
    let comparison: Value = coordinator
        .get(format!("{url}/compare?from=0&to=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let changes = comparison["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{comparison}");
    assert!(changes.iter().any(|c| c["rule"] == "fever"
        && c["field"] == "above"
        && c["before"] == 38.0
        && c["after"] == 38.5));
    let restored = coordinator
        .post(format!("{url}/versions/0/restore"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"reason": "terug naar de standaard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    let restored: Value = restored.json().await.unwrap();
    assert_eq!(restored["version"], 2);
    assert_eq!(restored["saved"]["restored_from"], 0);
    assert_eq!(rule_mut(&mut restored.clone(), "fever")["above"], 38.0);
    let versions: Value = nurse
        .get(format!("{url}/versions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let numbers: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);
    let old: Value = nurse
        .get(format!("{url}/versions/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rule_mut(&mut old.clone(), "fever")["above"], 38.5);
    assert_eq!(audit_count(&database.url, "change_protocol").await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_on_reload_and_the_old_rules_stay() {
    // Arrange: the protocols from a folder of the test's own.
    let folder = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_path("alerts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, folder.path().join(path.file_name().unwrap())).unwrap();
    }
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.alerts_dir = folder.path().to_owned();
    let app = TestApp::spawn(settings).await;
    add_test_patient(&app.store, "Emmen", "Mevrouw Bakker").await;
    add_test_user(&app.store, "coordinator", Role::Coordinator, &["Emmen"]).await;
    let (coordinator, csrf) = sign_in(&app.http, "coordinator").await;
    let file = folder.path().join("default.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let fever_above = || async {
        let document: Value = coordinator
            .get(format!("{}/api/v1/protocols/default", app.http))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        document["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "fever")
            .unwrap()["above"]
            .as_f64()
    };

    // Act: an invalid edit, then a valid one.
    std::fs::write(
        &file,
        original.replace("recover_at = 37.8", "recover_at = 40"),
    )
    .unwrap();
    let refused = coordinator
        .post(format!("{}/api/v1/protocols/reload", app.http))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    let status = refused.status();
    let problems: Value = refused.json().await.unwrap();
    let after_refusal = fever_above().await;
    std::fs::write(&file, original.replace("above = 38.0", "above = 38.3")).unwrap();
    let applied = coordinator
        .post(format!("{}/api/v1/protocols/reload", app.http))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problems["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("default.toml")
            && problem.contains("recover_at 40 must not exceed above 38"),
        "{problems}"
    );
    assert_eq!(after_refusal, Some(38.0), "the rules in force stay");
    assert_eq!(applied.status(), StatusCode::OK);
    let report: Value = applied.json().await.unwrap();
    assert_eq!(report["applied"], json!(["default"]));
    assert_eq!(fever_above().await, Some(38.3));

    // SIGHUP reloads too.
    std::fs::write(&file, original.replace("above = 38.0", "above = 38.4")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the reload on SIGHUP", Duration::from_secs(10), || async {
        fever_above().await == Some(38.4)
    })
    .await;
    assert_eq!(
        audit_count(&database.url, "change_protocol").await,
        2,
        "both API reloads are audited"
    );
    app.stop().await;
}

/// Temperatures per patient, one per hour: episodes of fever and
/// hypothermia that the proposal (fever from 38.6, hypothermia below 35.5)
/// removes, keeps and adds.
const FIXTURE: [[f64; 6]; 3] = [
    [38.2, 37.0, 38.8, 37.0, 38.3, 37.2],
    [36.8, 35.3, 36.6, 38.1, 37.0, 36.9],
    [35.0, 36.5, 36.7, 36.6, 38.7, 37.1],
];

/// Runs the fixture through a live Thuiswacht with the protocols of
/// `alerts`; after each hour's readings the nurses resolve every open
/// alert (with a clinical outcome), so each raise opens an alert of its
/// own. Returns the app and the number of engine-raised alerts.
async fn live_run(database_url: &str, alerts: &Path, base: i64) -> (TestApp, usize) {
    let root = unique_topic_root();
    let mut settings = test_settings(database_url, &root);
    settings.alerts_dir = alerts.to_owned();
    settings.reraise_after_minutes = 1_000_000;
    let app = TestApp::spawn(settings).await;
    for (index, _) in FIXTURE.iter().enumerate() {
        thermometer(
            &app.store,
            "Hoogeveen",
            &format!("Patiënt {index}"),
            &format!("thermo-{index}"),
        )
        .await;
    }
    let publisher = Publisher::connect(&mqtt_url()).await;
    let mut stored = 0;
    for hour in 0..6 {
        for (index, temperatures) in FIXTURE.iter().enumerate() {
            publish_temperature(
                &publisher,
                &root,
                &format!("thermo-{index}"),
                base + hour * 3_600,
                temperatures[hour as usize],
            )
            .await;
        }
        stored += 3;
        wait_for_readings(&app.store, stored, Duration::from_secs(20)).await;
        // Triage follows the store in the same process within milliseconds.
        tokio::time::sleep(Duration::from_millis(700)).await;
        for mut alert in app.store.unresolved_alerts().await.unwrap() {
            let from = alert.status;
            let event = alert
                .resolve(
                    "wijkverpleegkundige",
                    Outcome::ContactedPatient,
                    Timestamp::now(),
                )
                .unwrap();
            app.store
                .save_transition(&alert, from, &event)
                .await
                .unwrap();
        }
    }
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    // Missed-measurement alerts come from a clock, not from readings.
    let raised: i64 = sqlx::query_scalar(
        "select count(*) from alerts where rule_key like 'default/%' and rule_key not like '%missed%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    (app, usize::try_from(raised).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_counts_equal_the_alerts_raised_live_with_the_proposed_rules() {
    // Arrange: the proposed rules as files for the live run.
    let proposed_folder = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_path("alerts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            proposed_folder.path().join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let file = proposed_folder.path().join("default.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edits = [
        ("above = 38.0", "above = 38.6"),
        ("below = 35.1", "below = 35.5"),
        ("recover_at = 35.5", "recover_at = 35.8"),
    ];
    let mut text = text;
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from} once in default.toml");
        text = text.replace(from, to);
    }
    std::fs::write(&file, text).unwrap();
    let base = chrono::Utc::now().timestamp() - 40 * 3_600;
    let proposed_database = TestDatabase::create().await;
    let (proposed_app, live_proposed) =
        live_run(&proposed_database.url, proposed_folder.path(), base).await;
    proposed_app.stop().await;
    let database = TestDatabase::create().await;
    let (app, live_current) = live_run(&database.url, &repo_path("alerts"), base).await;
    add_test_user(&app.store, "coordinator", Role::Coordinator, &["Hoogeveen"]).await;
    let (coordinator, csrf) = sign_in(&app.http, "coordinator").await;
    let mut document: Value = coordinator
        .get(format!("{}/api/v1/protocols/default", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rule_mut(&mut document, "fever")["above"] = json!(38.6);
    rule_mut(&mut document, "hypothermia")["below"] = json!(35.5);
    rule_mut(&mut document, "hypothermia")["recover_at"] = json!(35.8);

    // Act: start the preview and follow it to the end.
    let started = coordinator
        .post(format!("{}/api/v1/protocols/default/preview", app.http))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"protocol": document, "days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let mut job: Value = started.json().await.unwrap();
    for _ in 0..200 {
        if job["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = coordinator
            .get(format!("{}{location}", app.http))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }

    // Assert: the same counts as the live runs.
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["done"], job["total"]);
    let result = &job["result"];
    assert_eq!(result["patients"], 3);
    // Only the changed rules are replayed; the others count as they raised.
    assert_eq!(
        result["replayed_rules"],
        json!(["default/fever", "default/hypothermia"])
    );
    assert_eq!(
        result["current"].as_u64().unwrap() as usize,
        live_current,
        "{result}"
    );
    assert_eq!(
        result["proposed"].as_u64().unwrap() as usize,
        live_proposed,
        "{result}"
    );
    assert!(
        live_current > live_proposed,
        "the fixture removes more than it adds: {result}"
    );
    assert!(result["removed"].as_u64().unwrap() >= 2, "{result}");
    assert!(result["added"].as_u64().unwrap() >= 1, "{result}");
    // Every removed alert was resolved with a clinical outcome, so each is
    // one the proposal would have missed.
    assert_eq!(
        result["missed_clinical"].as_array().unwrap().len() as u64,
        result["removed"].as_u64().unwrap(),
        "{result}"
    );
    let per_day = result["proposed_per_patient_day"].as_f64().unwrap();
    assert!(
        (per_day - live_proposed as f64 / 90.0).abs() < 0.01,
        "{per_day}"
    );

    // Someone else cannot read the job; waiting for the result works too.
    add_test_user(&app.store, "andere", Role::Coordinator, &["Hoogeveen"]).await;
    let (other, _) = sign_in(&app.http, "andere").await;
    let foreign = other
        .get(format!("{}{location}", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let waited = coordinator
        .post(format!("{}/api/v1/protocols/default/preview", app.http))
        .header("X-CSRF-Token", &csrf)
        .header("Prefer", "wait=20")
        .json(&json!({"protocol": document}))
        .send()
        .await
        .unwrap();
    assert_eq!(waited.status(), StatusCode::OK);
    let waited: Value = waited.json().await.unwrap();
    assert_eq!(waited["result"]["proposed"], result["proposed"]);
    assert_eq!(audit_count(&database.url, "run_backtest").await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_preview_is_cancelled_by_its_owner() {
    // Arrange: 1,000 patients, so that reading their readings takes a while.
    let database = TestDatabase::create().await;
    let app = TestApp::spawn(test_settings(&database.url, &unique_topic_root())).await;
    for index in 0..1_000 {
        add_test_patient(&app.store, "Meppel", &format!("Cliënt {index}")).await;
    }
    add_test_user(&app.store, "coordinator", Role::Coordinator, &["Meppel"]).await;
    let (coordinator, csrf) = sign_in(&app.http, "coordinator").await;
    let mut document: Value = coordinator
        .get(format!("{}/api/v1/protocols/default", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A changed rule, so that every patient's temperatures are read.
    rule_mut(&mut document, "fever")["above"] = json!(38.5);

    // Act: start a preview and stop it at once.
    let started = coordinator
        .post(format!("{}/api/v1/protocols/default/preview", app.http))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"protocol": document}))
        .send()
        .await
        .unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    // Once it has found its patients, so that its steps are counted.
    for _ in 0..5_000 {
        let view: Value = coordinator
            .get(format!("{}{location}", app.http))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["total"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cancelled = coordinator
        .delete(format!("{}{location}", app.http))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();

    // Assert: it ended as cancelled, before all steps were done, and stays so.
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert!(
        cancelled["done"].as_u64() < cancelled["total"].as_u64(),
        "{cancelled}"
    );
    assert!(cancelled["result"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later: Value = coordinator
        .get(format!("{}{location}", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(later["state"], "cancelled");
    app.stop().await;
}
