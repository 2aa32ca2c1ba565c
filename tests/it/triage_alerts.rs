//! Triage end to end on the real Mosquitto and PostgreSQL: a published
//! deterioration becomes one open alert with the right priority and
//! explanation; overdue alerts escalate; a restart in the middle gives the
//! same alerts as an uninterrupted run.

use std::time::Duration;

use thuiswacht::alert_book::stage::escalate_overdue;
use thuiswacht::alert_book::{Alert, AlertStatus};
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::Priority;

use crate::helpers::*;

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn wait_for_alerts(app: &TestApp, count: usize) -> Vec<Alert> {
    wait_for("alerts to be raised", Duration::from_secs(20), || async {
        app.store
            .unresolved_alerts()
            .await
            .map(|a| a.len() >= count)
            .unwrap_or(false)
    })
    .await;
    app.store.unresolved_alerts().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_fever_becomes_one_open_alert_with_its_explanation() {
    // Arrange
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = register_devices(&app.store, &[("thermo-1", "thermometer")]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 3_600;
    // Act: a normal temperature, then fever, then more fever.
    for (offset, value) in [(0, 36.8), (600, 38.6), (1_200, 38.9)] {
        publisher
            .publish(
                &readings_topic(&root, "thermo-1"),
                v1_payload("thermo-1", "body_temperature", "Cel", t + offset, 1, value),
            )
            .await;
    }
    // Assert
    wait_for_alerts(&app, 1).await;
    wait_for(
        "the second fever reading to update the alert",
        Duration::from_secs(20),
        || async {
            app.store
                .unresolved_alerts()
                .await
                .map(|a| {
                    a.iter()
                        .any(|alert| alert.updated_at == Timestamp((t + 1_200) * 1_000_000))
                })
                .unwrap_or(false)
        },
    )
    .await;
    // The jump from 36.8 also raises the temperature-rising rule; the fever
    // rule keeps one alert, updated.
    let alerts_after: Vec<Alert> = app
        .store
        .unresolved_alerts()
        .await
        .unwrap()
        .into_iter()
        .filter(|alert| alert.rule_key == "default/fever")
        .collect();
    assert_eq!(
        alerts_after.len(),
        1,
        "new evidence updates the open alert: {alerts_after:#?}"
    );
    let alert = &alerts_after[0];
    assert_eq!(alert.patient_id, patient);
    assert_eq!(alert.rule_key, "default/fever");
    assert_eq!(alert.priority, Priority::Medium);
    assert_eq!(alert.status, AlertStatus::Open);
    assert!(
        alert.opened_at > Timestamp((t + 600) * 1_000_000),
        "the response target runs from when it was raised"
    );
    let explanation = alert.explanation.to_string();
    assert!(
        explanation.contains("\"threshold\"") && explanation.contains("body_temperature"),
        "{explanation}"
    );
    assert!(
        explanation.contains("38.9"),
        "the latest evidence explains it: {explanation}"
    );
    // The response target (240 minutes for medium) lapses unclaimed: escalation.
    let late = alert.respond_by.plus_micros(60_000_000);
    escalate_overdue(&app.store, alert.respond_by)
        .await
        .unwrap();
    let on_time = app.store.alert(alert.id).await.unwrap().unwrap();
    assert_eq!(
        on_time.status,
        AlertStatus::Open,
        "not overdue at its target"
    );
    assert!(escalate_overdue(&app.store, late).await.unwrap() >= 1);
    let escalated = app.store.alert(alert.id).await.unwrap().unwrap();
    assert_eq!(escalated.priority, Priority::High);
    assert_eq!(escalated.status, AlertStatus::Escalated);
    let kinds: Vec<String> = app
        .store
        .alert_events(alert.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("raised"));
    assert_eq!(kinds.last().map(String::as_str), Some("auto_escalated"));
    publisher.disconnect().await;
    app.stop().await;
}

/// The alerts of a run, in a form that can be compared across databases.
fn summary(alerts: &[Alert]) -> Vec<(String, String, String, String, i64)> {
    let mut summary: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a.rule_key.clone(),
                format!("{:?}", a.priority),
                format!("{:?}", a.nts),
                format!("{:?}", a.status),
                // The latest evidence's event time: the same in both runs.
                a.updated_at.micros(),
            )
        })
        .collect();
    summary.sort();
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_gives_the_same_alerts_as_an_uninterrupted_run() {
    // Arrange: blood pressure falling over a day and fever, in two halves.
    let t = now_seconds() - 2 * 86_400;
    let readings: Vec<(&str, &str, &str, i64, f64)> = vec![
        ("bpm-1", "bp_systolic", "mm[Hg]", 0, 128.0),
        ("thermo-1", "body_temperature", "Cel", 100, 36.9),
        ("bpm-1", "bp_systolic", "mm[Hg]", 3_600, 88.0),
        ("thermo-1", "body_temperature", "Cel", 3_700, 38.4),
        // --- restart here in the interrupted run ---
        ("bpm-1", "bp_systolic", "mm[Hg]", 7_200, 86.0),
        ("thermo-1", "body_temperature", "Cel", 7_300, 38.7),
        ("bpm-1", "bp_systolic", "mm[Hg]", 10_800, 84.0),
    ];
    let mut results = Vec::new();
    for restart in [false, true] {
        let database = TestDatabase::create().await;
        let root = unique_topic_root();
        let settings = test_settings(&database.url, &root);
        let mut app = TestApp::spawn(settings.clone()).await;
        register_devices(
            &app.store,
            &[("bpm-1", "bp-monitor"), ("thermo-1", "thermometer")],
        )
        .await;
        let publisher = Publisher::connect(&mqtt_url()).await;
        for (index, (device, metric, unit, offset, value)) in readings.iter().enumerate() {
            if restart && index == 4 {
                wait_for_readings(&app.store, 4, Duration::from_secs(20)).await;
                app.stop().await;
                app = TestApp::spawn(settings.clone()).await;
            }
            publisher
                .publish(
                    &readings_topic(&root, device),
                    v1_payload(device, metric, unit, t + offset, 1, *value),
                )
                .await;
            // One reading at a time, in order, as a patient measures.
            wait_for_readings(&app.store, index as i64 + 1, Duration::from_secs(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        results.push(summary(&app.store.unresolved_alerts().await.unwrap()));
        publisher.disconnect().await;
        app.stop().await;
    }
    // Assert
    assert!(!results[0].is_empty(), "the run raised alerts");
    assert!(
        results[0]
            .iter()
            .any(|(rule, ..)| rule == "default/hypotension"),
        "{:?}",
        results[0]
    );
    assert!(
        results[0].iter().any(|(rule, ..)| rule == "default/fever"),
        "{:?}",
        results[0]
    );
    assert_eq!(results[0], results[1], "a restart changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_resolved_while_abnormal_is_raised_again_only_after_the_interval() {
    for (reraise_after_minutes, expect_new_alert) in [(240_u64, false), (0, true)] {
        // Arrange: fever raises an alert, and a nurse resolves it while the fever lasts.
        let database = TestDatabase::create().await;
        let root = unique_topic_root();
        let mut settings = test_settings(&database.url, &root);
        settings.reraise_after_minutes = reraise_after_minutes;
        let app = TestApp::spawn(settings).await;
        register_devices(&app.store, &[("thermo-1", "thermometer")]).await;
        let publisher = Publisher::connect(&mqtt_url()).await;
        let t = now_seconds() - 3_600;
        publisher
            .publish(
                &readings_topic(&root, "thermo-1"),
                v1_payload("thermo-1", "body_temperature", "Cel", t, 1, 38.7),
            )
            .await;
        let mut alert = wait_for_alerts(&app, 1).await.remove(0);
        let event = alert
            .resolve(
                "anouk",
                thuiswacht::alert_book::Outcome::ContactedPatient,
                Timestamp::now(),
            )
            .unwrap();
        app.store
            .save_transition(&alert, AlertStatus::Open, &event)
            .await
            .unwrap();
        // Act: the fever is still there at the next measurement.
        publisher
            .publish(
                &readings_topic(&root, "thermo-1"),
                v1_payload("thermo-1", "body_temperature", "Cel", t + 600, 1, 38.8),
            )
            .await;
        wait_for_readings(&app.store, 2, Duration::from_secs(20)).await;
        // Assert
        if expect_new_alert {
            let again = wait_for_alerts(&app, 1).await;
            assert_ne!(
                again[0].id, alert.id,
                "a new alert, not the resolved one reopened"
            );
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                app.store.unresolved_alerts().await.unwrap().is_empty(),
                "within the re-raise interval the resolved condition stays quiet"
            );
        }
        publisher.disconnect().await;
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_values_become_a_technical_alert_ranked_below_clinical_ones() {
    // Arrange
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = register_devices(
        &app.store,
        &[("ox-1", "pulse-oximeter"), ("thermo-1", "thermometer")],
    )
    .await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 1_800;
    // Act: a finger off the sensor twice, and a fever.
    for (offset, value) in [(0, 12.0), (300, 9.0)] {
        publisher
            .publish(
                &readings_topic(&root, "ox-1"),
                v1_payload("ox-1", "spo2", "%", t + offset, 1, value),
            )
            .await;
    }
    publisher
        .publish(
            &readings_topic(&root, "thermo-1"),
            v1_payload("thermo-1", "body_temperature", "Cel", t + 600, 1, 38.9),
        )
        .await;
    // Assert
    let alerts = wait_for_alerts(&app, 2).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0].rule_key, "default/fever", "clinical first");
    let technical = &alerts[1];
    assert_eq!(technical.rule_key, "technical/implausible_value/ox-1");
    assert_eq!(technical.patient_id, patient);
    assert_eq!(technical.priority, Priority::Low);
    assert!(technical.score < alerts[0].score);
    let explanation = technical.explanation.to_string();
    assert!(
        explanation.contains("implausible_value") && explanation.contains("spo2"),
        "{explanation}"
    );
    assert_eq!(
        app.store
            .count_quarantine(thuiswacht::domain::RejectReason::ImplausibleValue)
            .await
            .unwrap(),
        2
    );
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_response_target_wins_over_the_protocol() {
    // Arrange: this team answers medium alerts within 45 minutes, not 240.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = register_devices(&app.store, &[("thermo-1", "thermometer")]).await;
    let team_id = app.store.patient(patient).await.unwrap().unwrap().team_id;
    app.store
        .set_team_response_target(&thuiswacht::store::TeamResponseTarget {
            team_id,
            priority: Priority::Medium,
            minutes: 45,
            updated_by: "coördinator Jansen".to_owned(),
        })
        .await
        .unwrap();
    let publisher = Publisher::connect(&mqtt_url()).await;

    // Act
    publisher
        .publish(
            &readings_topic(&root, "thermo-1"),
            v1_payload(
                "thermo-1",
                "body_temperature",
                "Cel",
                now_seconds() - 60,
                1,
                38.6,
            ),
        )
        .await;

    // Assert
    let alert = wait_for_alerts(&app, 1).await.remove(0);
    assert_eq!(alert.priority, Priority::Medium);
    assert_eq!(
        alert.respond_by.micros() - alert.opened_at.micros(),
        45 * 60_000_000
    );
    let targets = app.store.team_response_targets().await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].updated_by, "coördinator Jansen");
    publisher.disconnect().await;
    app.stop().await;
}
