//! Nurse-entered observations (`POST /api/v1/patients/{id}/observations`)
//! and personal thresholds, end to end on the real PostgreSQL and Mosquitto.

use std::sync::Arc;
use std::time::Duration;

use thuiswacht::alert_book::stage::PERSONAL_SETTINGS_POLL;
use thuiswacht::alert_book::{Alert, AlertStatus, Outcome};
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::{Priority, RuleSettings};
use thuiswacht::store::{NewRuleOverride, Store, TeamScope, TokenScope};
use uuid::Uuid;

use crate::helpers::*;

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Creates a token that reaches every team's patients.
async fn token(store: &Arc<dyn Store>, name: &str, scope: TokenScope) -> String {
    let secret = thuiswacht::commands::new_token_secret();
    let id = store
        .add_token(name, scope, &thuiswacht::api::token_hash(&secret))
        .await
        .expect("add token");
    store
        .set_token_teams(id, &TeamScope::All)
        .await
        .expect("scope token");
    secret
}

/// The NEWS2 score an explanation gives, on the alert itself or on a
/// finding it names as covered.
fn news2_score(explanation: &serde_json::Value) -> Option<serde_json::Value> {
    explanation["factors"]
        .as_array()?
        .iter()
        .find_map(|factor| factor.get("score").cloned().or_else(|| news2_score(factor)))
}

async fn open_alerts(app: &TestApp, count: usize) -> Vec<Alert> {
    wait_for("alerts to be raised", Duration::from_secs(20), || async {
        app.store
            .unresolved_alerts()
            .await
            .map(|alerts| alerts.len() >= count)
            .unwrap_or(false)
    })
    .await;
    app.store.unresolved_alerts().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_confusion_and_breathing_complete_news2_and_raise_alerts() {
    // Arrange: a patient whose oximeter and thermometer sent normal values.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = register_devices(
        &app.store,
        &[("ox-1", "pulse-oximeter"), ("thermo-1", "thermometer")],
    )
    .await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 600;
    publisher
        .publish(
            &readings_topic(&root, "thermo-1"),
            v1_payload("thermo-1", "body_temperature", "Cel", t, 1, 37.1),
        )
        .await;
    wait_for_readings(&app.store, 1, Duration::from_secs(20)).await;
    let secret = token(&app.store, "ECD wijkteam Assen", TokenScope::Observe).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/patients/{patient}/observations", app.http);

    // Act: the nurse finds the patient newly confused and breathing fast.
    let response = client
        .post(&url)
        .bearer_auth(&secret)
        .json(
            &serde_json::json!({"acvpu": "C", "respiratory_rate": 26, "on_oxygen": false,
                                  "note": "sinds vanochtend verward"}),
        )
        .send()
        .await
        .unwrap();

    // Assert: stored after the commit, with the token as author.
    assert_eq!(response.status(), 201);
    let stored: serde_json::Value = response.json().await.unwrap();
    assert_eq!(stored["stored"], 3);
    assert_eq!(stored["author"], "ECD wijkteam Assen");
    open_alerts(&app, 1).await;
    // The three readings are triaged one after the other: NEWS2 reaches 6
    // with the first two and learns of the oxygen with the third. New
    // confusion and NEWS2 are one problem (NEWS2 scores consciousness): one
    // alert, naming the other with its evidence.
    wait_for(
        "the NEWS2 evidence to know the oxygen",
        Duration::from_secs(20),
        || async {
            app.store
                .unresolved_alerts()
                .await
                .ok()
                .into_iter()
                .flatten()
                .filter_map(|alert| news2_score(&alert.explanation))
                .any(|score| {
                    score["missing"]
                        .as_array()
                        .is_some_and(|missing| !missing.iter().any(|p| p == "air_or_oxygen"))
                })
        },
    )
    .await;
    let alerts = app.store.unresolved_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.priority, Priority::High);
    let named: Vec<&str> = alert.explanation["factors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|factor| factor.get("rule_id").and_then(|id| id.as_str()))
        .collect();
    let mut both = vec![alert.rule_key.as_str()];
    both.extend(&named);
    both.sort_unstable();
    assert_eq!(
        both,
        vec!["default/new_confusion", "default/news2"],
        "{alert:#?}"
    );
    let score = news2_score(&alert.explanation)
        .unwrap_or_else(|| panic!("a NEWS2 factor: {}", alert.explanation));
    // RR 26 scores 3, new confusion 3, temperature 37.1 scores 0: 6.
    assert_eq!(score["total"], 6, "{score}");
    assert_eq!(score["subscores"]["consciousness"], 3, "{score}");
    let missing: Vec<&str> = score["missing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    // Entered by the nurse, so no longer missing; blood pressure still is.
    assert!(!missing.contains(&"consciousness"), "{missing:?}");
    assert!(!missing.contains(&"air_or_oxygen"), "{missing:?}");
    assert!(missing.contains(&"systolic_bp"), "{missing:?}");
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn observations_are_refused_clearly_and_store_nothing() {
    // Arrange
    let database = TestDatabase::create().await;
    let app = TestApp::spawn(test_settings(&database.url, &unique_topic_root())).await;
    let patient = register_devices(&app.store, &[("thermo-1", "thermometer")]).await;
    let observe = token(&app.store, "ECD", TokenScope::Observe).await;
    let ingest = token(&app.store, "gateway", TokenScope::Ingest).await;
    let client = reqwest::Client::new();
    let post = |patient: Uuid, secret: Option<&str>, body: serde_json::Value| {
        let mut request = client
            .post(format!(
                "{}/api/v1/patients/{patient}/observations",
                app.http
            ))
            .json(&body);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        request.send()
    };
    let fine = serde_json::json!({"acvpu": "A"});

    // Act
    let anonymous = post(patient, None, fine.clone()).await.unwrap();
    let gateway = post(patient, Some(&ingest), fine.clone()).await.unwrap();
    let nobody = post(Uuid::new_v4(), Some(&observe), fine.clone())
        .await
        .unwrap();
    let typo = post(
        patient,
        Some(&observe),
        serde_json::json!({"respiratory_rate": 260, "spo2": 130}),
    )
    .await
    .unwrap();
    let unknown_field = post(patient, Some(&observe), serde_json::json!({"rr": 20}))
        .await
        .unwrap();

    // Assert
    assert_eq!(anonymous.status(), 401);
    assert_eq!(gateway.status(), 403);
    assert_eq!(nobody.status(), 404);
    assert_eq!(typo.status(), 422);
    assert_eq!(typo.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = typo.json().await.unwrap();
    assert_eq!(
        problem["problems"].as_array().unwrap().len(),
        2,
        "{problem}"
    );
    assert_eq!(unknown_field.status(), 400);
    assert_eq!(app.store.count_readings().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_threshold_applies_to_readings_after_it_is_set() {
    // Arrange: this patient runs warm; fever for them starts at 38.5.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = register_devices(&app.store, &[("thermo-1", "thermometer")]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 3_600;
    app.store
        .add_rule_override(&NewRuleOverride {
            patient_id: patient,
            rule_key: "default/fever".to_owned(),
            settings: serde_json::from_str::<RuleSettings>(
                r#"{"above": 38.5, "recover_at": 38.3}"#,
            )
            .unwrap(),
            valid_from: Timestamp(t * 1_000_000),
            valid_until: None,
            author: "coördinator Jansen".to_owned(),
            reason: "habitually 38.1 in the evening".to_owned(),
            review_by: None,
            approved_by: None,
        })
        .await
        .unwrap();

    // Act: 38.3 is no fever for this patient; 38.7 is.
    for (offset, value) in [(0, 38.3), (600, 38.7)] {
        publisher
            .publish(
                &readings_topic(&root, "thermo-1"),
                v1_payload("thermo-1", "body_temperature", "Cel", t + offset, 1, value),
            )
            .await;
    }

    // Assert: raised by the second reading only.
    let alerts = open_alerts(&app, 1).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule_key, "default/fever");
    let events = app.store.alert_events(alerts[0].id).await.unwrap();
    assert_eq!(events[0].at, Timestamp((t + 600) * 1_000_000), "{events:?}");
    assert!(alerts[0].explanation.to_string().contains("38.5"));
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_temporary_threshold_keeps_a_resolved_alert_quiet_but_not_deaf() {
    // Arrange: re-raise at once unless a threshold was accepted.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let mut settings = test_settings(&database.url, &root);
    settings.reraise_after_minutes = 0;
    let app = TestApp::spawn(settings).await;
    let patient = register_devices(&app.store, &[("thermo-1", "thermometer")]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let topic = readings_topic(&root, "thermo-1");
    let publish = |seconds: i64, value: f64| {
        publisher.publish(
            &topic,
            v1_payload("thermo-1", "body_temperature", "Cel", seconds, 1, value),
        )
    };
    publish(now_seconds() - 60, 38.6).await;
    let mut alert = open_alerts(&app, 1).await.remove(0);

    // Act: the nurse calls, finds a known mild fever being treated, resolves
    // the alert and accepts 39.0 for the next two days.
    let now = Timestamp::now();
    let event = alert
        .resolve("anouk", Outcome::ContactedPatient, now)
        .unwrap();
    app.store
        .save_transition(&alert, AlertStatus::Open, &event)
        .await
        .unwrap();
    app.store
        .add_rule_override(&NewRuleOverride {
            patient_id: patient,
            rule_key: "default/fever".to_owned(),
            settings: serde_json::from_str::<RuleSettings>(
                r#"{"above": 39.0, "recover_at": 38.8}"#,
            )
            .unwrap(),
            valid_from: now,
            valid_until: Some(now.plus_micros(2 * 86_400_000_000)),
            author: "anouk".to_owned(),
            reason: "accepted when resolving: known fever, antibiotics since yesterday".to_owned(),
            review_by: None,
            approved_by: None,
        })
        .await
        .unwrap();
    tokio::time::sleep(PERSONAL_SETTINGS_POLL + Duration::from_millis(200)).await;
    publish(now_seconds() + 1, 38.7).await;
    wait_for_readings(&app.store, 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = app.store.unresolved_alerts().await.unwrap();
    publish(now_seconds() + 2, 39.4).await;
    let louder = open_alerts(&app, 1).await;

    // Assert
    assert!(
        quiet.is_empty(),
        "the accepted fever stays quiet: {quiet:#?}"
    );
    assert_eq!(louder.len(), 1);
    assert_ne!(louder[0].id, alert.id);
    assert!(louder[0].explanation.to_string().contains("39.4"));
    publisher.disconnect().await;
    app.stop().await;
}
