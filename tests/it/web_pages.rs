//! The server-rendered pages over real HTTP on PostgreSQL: sign-in
//! redirects, team scoping (404 for another team's patient), what the
//! worklist and patient pages show, the trend chart, the language switch,
//! audit rows and the strict Content-Security-Policy. The same pages in a
//! real browser are in `browser.rs`.

use reqwest::{Client, StatusCode};
use thuiswacht::alert_book::NewAlert;
use thuiswacht::domain::{DeviceId, Timestamp};
use thuiswacht::protocols::Priority;
use thuiswacht::store::{NewDevice, NewPatient, NewRuleOverride, Role};
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::*;

struct World {
    app: TestApp,
    database: TestDatabase,
    assen_patient: Uuid,
    emmen_patient: Uuid,
}

async fn world() -> World {
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;
    let mut patients = Vec::new();
    for (team, name) in [("Assen", "Mevrouw Bakker"), ("Emmen", "Meneer Smit")] {
        app.store.add_team(team).await.unwrap();
        patients.push(
            app.store
                .add_patient(&NewPatient {
                    id: Uuid::new_v4(),
                    team: team.to_owned(),
                    display_name: name.to_owned(),
                    birth_year: Some(1937),
                    protocols: vec!["default".to_owned(), "heart-failure".to_owned()],
                })
                .await
                .unwrap(),
        );
    }
    add_test_user(&app.store, "anouk", Role::Nurse, &["Assen"]).await;
    World {
        app,
        database,
        assen_patient: patients[0],
        emmen_patient: patients[1],
    }
}

/// A client that does not follow redirects, signed in as anouk.
async fn signed_in(world: &World) -> Client {
    let client = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/api/v1/session", world.app.http))
        .json(&serde_json::json!({"username": "anouk", "password": test_password("anouk")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    client
}

fn alert(patient: Uuid, rule: &str, priority: Priority, metric: &str, value: f64) -> NewAlert {
    let threshold = if metric == "spo2" { 92.0 } else { 38.0 };
    let direction = if metric == "spo2" { "below" } else { "above" };
    NewAlert {
        patient_id: patient,
        rule_key: rule.to_owned(),
        priority,
        nts: NtsLevel::for_priority(priority),
        score: if priority == Priority::High {
            4_000.0
        } else {
            3_000.0
        },
        explanation: serde_json::json!({"factors": [
            {"factor": "threshold", "metric": metric, "value": value, "threshold": threshold,
             "direction": direction, "recover_at": null, "repeat": null, "held_minutes": null},
            {"factor": "baseline", "metric": metric,
             "baseline": {"median": 36.8, "mad": 0.2, "count": 12, "source": "personal"}}]}),
        at: Timestamp::now(),
        raised_at: Timestamp::now(),
        response_minutes: if priority == Priority::High { 60 } else { 240 },
    }
}

async fn audit_actions(world: &World, patient: Uuid) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&world.database.url).await.unwrap();
    sqlx::query_scalar(
        "select action from audit_log_patients where actor = 'anouk' and patient_id = $1",
    )
    .bind(patient)
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_visitor_is_sent_to_the_login_form_and_back() {
    // Arrange
    let world = world().await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let http = &world.app.http;

    // Act
    let worklist = client.get(format!("{http}/")).send().await.unwrap();
    let patient = client
        .get(format!("{http}/patients/{}?days=7", world.assen_patient))
        .send()
        .await
        .unwrap();
    let chart = client
        .get(format!("{http}/alerts/{}/trend.svg", Uuid::new_v4()))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(worklist.status(), StatusCode::SEE_OTHER);
    assert_eq!(worklist.headers()["location"], "/login?next=%2F&lang=nl");
    assert_eq!(
        patient.headers()["location"].to_str().unwrap(),
        format!(
            "/login?next=%2Fpatients%2F{}%3Fdays%3D7&lang=nl",
            world.assen_patient
        )
    );
    assert_eq!(chart.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worklist_page_ranks_the_own_teams_alerts_and_audits_every_patient_shown() {
    // Arrange: a medium and a high alert in Assen, one in Emmen.
    let world = world().await;
    let store = &world.app.store;
    store
        .raise_alert(&alert(
            world.assen_patient,
            "default/fever",
            Priority::Medium,
            "body_temperature",
            38.9,
        ))
        .await
        .unwrap();
    store
        .raise_alert(&alert(
            world.assen_patient,
            "default/spo2_low",
            Priority::High,
            "spo2",
            89.0,
        ))
        .await
        .unwrap();
    store
        .raise_alert(&alert(
            world.emmen_patient,
            "default/fever",
            Priority::High,
            "body_temperature",
            40.1,
        ))
        .await
        .unwrap();
    let client = signed_in(&world).await;

    // Act
    let response = client
        .get(format!("{}/", world.app.http))
        .send()
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let cache = response.headers()["cache-control"].to_owned();
    let html = response.text().await.unwrap();

    // Assert: own team only, grouped under one heading, high before medium.
    assert!(html.contains("<html lang=\"nl\">"), "{html}");
    assert!(html.contains("Mevrouw Bakker"));
    assert!(
        !html.contains("Meneer Smit"),
        "another team's patient leaked"
    );
    assert!(!html.contains("40,1"), "another team's alert leaked");
    assert_eq!(html.matches("class=\"patient\"").count(), 1);
    let high = html.find("Zuurstofsaturatie 89 %").expect("the SpO2 alert");
    let medium = html.find("Temperatuur 38,9 °C").expect("the fever alert");
    assert!(high < medium, "the high-priority alert ranks first");
    // Priority by word and shape, the NTS level, the countdown, the card.
    assert!(html.contains("hoog") && html.contains("▲▲▲"));
    assert!(html.contains(">U2<") && html.contains(">U3<"));
    assert!(
        html.contains("nog 59 min") || html.contains("nog 1 u"),
        "{html}"
    );
    assert!(html.contains("Nog niet opgepakt"));
    assert!(html.contains("Eigen basiswaarde"));
    assert!(html.contains("name=\"outcome\""));
    // The page keeps the strict policy: no inline script or style.
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert_eq!(cache, "no-store");
    assert!(audit_actions(&world, world.assen_patient)
        .await
        .contains(&"read_worklist".to_owned()));
    assert!(audit_actions(&world, world.emmen_patient).await.is_empty());

    // The rows alone, for the live update, say the same.
    let rows = client
        .get(format!("{}/worklist/rows", world.app.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!rows.contains("<html"));
    assert!(rows.contains("Zuurstofsaturatie 89 %") && rows.contains("2 meldingen bij 1 cliënten"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_teams_patient_and_chart_answer_404_like_missing_ones() {
    // Arrange
    let world = world().await;
    let (emmen_alert, _) = world
        .app
        .store
        .raise_alert(&alert(
            world.emmen_patient,
            "default/fever",
            Priority::High,
            "body_temperature",
            40.1,
        ))
        .await
        .unwrap();
    let client = signed_in(&world).await;
    let http = &world.app.http;

    // Act
    let other = client
        .get(format!("{http}/patients/{}", world.emmen_patient))
        .send()
        .await
        .unwrap();
    let missing = client
        .get(format!("{http}/patients/{}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    let other_chart = client
        .get(format!("{http}/alerts/{}/trend.svg", emmen_alert.id))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let other = other.text().await.unwrap();
    assert_eq!(
        other,
        missing.text().await.unwrap(),
        "the same page for both"
    );
    assert!(other.contains("Niet gevonden") && !other.contains("Meneer Smit"));
    assert_eq!(other_chart.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        audit_actions(&world, world.emmen_patient).await,
        vec!["access_refused".to_owned(), "access_refused".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_page_draws_each_metric_with_limits_baseline_devices_and_personal_thresholds() {
    // Arrange: a scale and a thermometer with a week of readings, a personal
    // fever threshold, an alert with a note.
    let world = world().await;
    let store = &world.app.store;
    for (device, profile) in [("scale-77", "weight-scale"), ("thermo-77", "thermometer")] {
        store
            .add_device(&NewDevice {
                device_id: DeviceId::parse(device).unwrap(),
                profile_id: profile.to_owned(),
                patient_id: world.assen_patient,
            })
            .await
            .unwrap();
    }
    let token = ingest_token(store).await;
    let ingest = Client::new();
    let now = chrono::Utc::now().timestamp();
    for day in 0..7_i64 {
        for (device, metric, unit, value) in [
            ("scale-77", "body_weight", "kg", 80.0 + day as f64 * 0.4),
            (
                "thermo-77",
                "body_temperature",
                "Cel",
                36.8 + (day % 2) as f64 * 0.2,
            ),
        ] {
            let response = ingest
                .post(format!("{}/api/v1/readings", world.app.http))
                .bearer_auth(&token)
                .body(v1_payload(
                    device,
                    metric,
                    unit,
                    now - (7 - day) * 86_400,
                    1,
                    value,
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    store
        .add_rule_override(&NewRuleOverride {
            patient_id: world.assen_patient,
            rule_key: "default/fever".to_owned(),
            settings: serde_json::from_value(serde_json::json!({"above": 38.5})).unwrap(),
            valid_from: Timestamp::now().plus_micros(-86_400_000_000),
            valid_until: None,
            author: "carla".to_owned(),
            reason: "loopt 's avonds vaak 38,1".to_owned(),
            review_by: None,
            approved_by: None,
        })
        .await
        .unwrap();
    let (fever, _) = store
        .raise_alert(&alert(
            world.assen_patient,
            "default/fever",
            Priority::Medium,
            "body_temperature",
            38.9,
        ))
        .await
        .unwrap();
    let client = signed_in(&world).await;
    let http = &world.app.http;
    let session: serde_json::Value = client
        .get(format!("{http}/api/v1/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let noted = client
        .post(format!("{http}/api/v1/alerts/{}/notes", fever.id))
        .header("X-CSRF-Token", session["csrf_token"].as_str().unwrap())
        .json(&serde_json::json!({"text": "dochter belt morgen terug"}))
        .send()
        .await
        .unwrap();
    assert_eq!(noted.status(), 200);

    // Act
    let html = client
        .get(format!("{http}/patients/{}?days=14", world.assen_patient))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chart = client
        .get(format!("{http}/alerts/{}/trend.svg?lang=en", fever.id))
        .send()
        .await
        .unwrap();

    // Assert: a chart per metric, with the personal limit (marked) and a band.
    assert_eq!(
        html.matches("<figure class=\"metric-chart\"").count(),
        2,
        "{html}"
    );
    assert_eq!(html.matches("<polyline").count(), 2);
    assert!(html.contains("data-metric=\"body_weight\""));
    assert!(
        html.contains("boven 38,5 °C *"),
        "the personal fever limit: {html}"
    );
    assert!(html.contains("class=\"band\""), "the own baseline band");
    assert!(html.contains("7 metingen, laatste 82,4 kg"), "{html}");
    // Alerts, notes, devices, protocols and personal thresholds.
    assert!(html.contains("Temperatuur 38,9 °C"));
    assert!(html.contains("dochter belt morgen terug"));
    assert!(html.contains("scale-77") && html.contains("thermo-77"));
    assert!(html.contains("weight-scale"));
    assert!(
        html.contains("heart-failure/"),
        "the second protocol's rules"
    );
    assert!(html.contains("carla") && html.contains("avonds vaak 38,1"));
    assert!(
        html.contains("class=\"in-force\""),
        "the version in force is marked"
    );
    assert!(!html.contains("<script>") && !html.contains("style="));
    let actions = audit_actions(&world, world.assen_patient).await;
    assert!(actions.contains(&"read_patient".to_owned()), "{actions:?}");

    assert_eq!(chart.status(), 200);
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    let svg = chart.text().await.unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("class=\"limit\""),
        "{svg}"
    );
    assert!(svg.contains("above 38 °C"), "{svg}");
    assert!(svg.contains("<circle"), "the thermometer readings: {svg}");
    assert!(audit_actions(&world, world.assen_patient)
        .await
        .contains(&"read_readings".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_switch_is_remembered_across_pages() {
    // Arrange
    let world = world().await;
    let client = signed_in(&world).await;
    let http = &world.app.http;

    // Act
    let english = client.get(format!("{http}/?lang=en")).send().await.unwrap();
    let cookie = english.headers()["set-cookie"].to_str().unwrap().to_owned();
    let english = english.text().await.unwrap();
    let still_english = client
        .get(format!("{http}/patients/{}", world.assen_patient))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dutch = client
        .get(format!("{http}/?lang=nl"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert
    assert!(cookie.starts_with("thuiswacht_lang=en;") && cookie.contains("SameSite=Strict"));
    assert!(english.contains("<html lang=\"en\">") && english.contains(">Worklist</h1>"));
    assert!(english.contains("No open alerts for your teams."));
    assert!(
        still_english.contains(">Measurements</h2>"),
        "{still_english}"
    );
    assert!(dutch.contains("<html lang=\"nl\">") && dutch.contains(">Werklijst</h1>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stylesheet_and_script_are_served_and_nothing_else() {
    let world = world().await;
    let client = Client::new();
    let http = &world.app.http;
    let script = client
        .get(format!("{http}/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script
        .text()
        .await
        .unwrap()
        .contains("/api/v1/worklist/stream"));
    let style = client
        .get(format!("{http}/assets/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.status(), 200);
    let missing = client
        .get(format!("{http}/assets/..%2FCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
