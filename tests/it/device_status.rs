//! Device status and missed measurements end to end, on the real Mosquitto
//! and PostgreSQL: a status with a low battery becomes one technical alert
//! ranked below a clinical one (and resolves when the battery is replaced);
//! bad statuses reach the quarantine; the missed-measurement sweep of the
//! running service raises a missing weight with its cause, resolves it when
//! the weight is uploaded late, and raises nothing twice across a restart.

use std::time::Duration;

use thuiswacht::alert_book::{Alert, AlertStatus};
use thuiswacht::domain::{DeviceId, RejectReason, Timestamp};
use thuiswacht::protocols::Priority;
use thuiswacht::store::{NewDevice, NewPatient, Store};
use thuiswacht::triage::schedule::{local_date, local_instant, DEFAULT_TIME_ZONE};
use uuid::Uuid;

use crate::helpers::*;

fn status_topic(root: &str, device_id: &str) -> String {
    format!("{root}/devices/{device_id}/status")
}

fn rfc3339(ts: Timestamp) -> String {
    ts.to_string()
}

async fn unresolved(store: &std::sync::Arc<dyn Store>) -> Vec<Alert> {
    store.unresolved_alerts().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_battery_becomes_one_technical_alert_below_a_clinical_one_until_replaced() {
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
    let now = Timestamp::now();
    let minutes_ago = |minutes: i64| now.plus_micros(-minutes * 60_000_000);

    // Act: a fever, two low-battery heartbeats of the oximeter, and bad statuses.
    publisher
        .publish(
            &readings_topic(&root, "thermo-1"),
            v1_payload(
                "thermo-1",
                "body_temperature",
                "Cel",
                now.micros() / 1_000_000 - 1_800,
                1,
                38.9,
            ),
        )
        .await;
    for (minutes, battery) in [(20, 14), (10, 11)] {
        publisher
            .publish(
                &status_topic(&root, "ox-1"),
                format!(
                    r#"{{"ts":"{}","battery_pct":{battery},"fault":null}}"#,
                    rfc3339(minutes_ago(minutes))
                ),
            )
            .await;
    }
    publisher
        .publish(&status_topic(&root, "ox-1"), "battery: low")
        .await;
    publisher
        .publish(&status_topic(&root, "ox-404"), r#"{"battery_pct":50}"#)
        .await;

    // Assert: one clinical and one technical alert, the clinical one first.
    wait_for(
        "the battery alert to show the latest level",
        Duration::from_secs(20),
        || async {
            let alerts = unresolved(&app.store).await;
            alerts.len() == 2
                && alerts
                    .iter()
                    .any(|a| a.explanation.to_string().contains("\"battery_pct\":11"))
        },
    )
    .await;
    let alerts = unresolved(&app.store).await;
    assert_eq!(
        alerts[0].rule_key, "default/fever",
        "clinical first: {alerts:#?}"
    );
    let battery = &alerts[1];
    assert_eq!(battery.rule_key, "technical/battery_low/ox-1");
    assert_eq!(battery.patient_id, patient);
    assert_eq!(battery.priority, Priority::Low);
    assert!(battery.score < alerts[0].score);
    assert!(
        battery.explanation.to_string().contains("battery_low"),
        "{}",
        battery.explanation
    );
    let stored = app
        .store
        .device_status(&DeviceId::parse("ox-1").unwrap())
        .await
        .unwrap()
        .expect("the status is stored");
    assert_eq!(stored.battery_pct, Some(11.0));
    assert_eq!(stored.status_ts, minutes_ago(10));
    wait_for(
        "bad statuses to be quarantined",
        Duration::from_secs(20),
        || async {
            app.store
                .count_quarantine(RejectReason::MalformedPayload)
                .await
                .unwrap()
                == 1
                && app
                    .store
                    .count_quarantine(RejectReason::UnknownDevice)
                    .await
                    .unwrap()
                    == 1
        },
    )
    .await;
    let entries = app.store.list_quarantine(10).await.unwrap();
    assert!(entries
        .iter()
        .any(|e| e.source.ends_with("/devices/ox-404/status")
            && e.detail.contains("unknown device ox-404")));

    // Act: new batteries.
    publisher
        .publish(
            &status_topic(&root, "ox-1"),
            format!(
                r#"{{"ts":"{}","battery_pct":100}}"#,
                rfc3339(minutes_ago(1))
            ),
        )
        .await;

    // Assert: the system resolved the battery alert; the fever stays.
    wait_for(
        "the battery alert to be resolved",
        Duration::from_secs(20),
        || async { unresolved(&app.store).await.len() == 1 },
    )
    .await;
    let resolved = app.store.alert(battery.id).await.unwrap().unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.outcome, None, "a nurse's outcome is not invented");
    let events = app.store.alert_events(battery.id).await.unwrap();
    assert_eq!(events.last().unwrap().kind, "auto_resolved");
    assert_eq!(events.last().unwrap().detail["reason"], "battery_recovered");
    publisher.disconnect().await;
    app.stop().await;
}

/// A protocol whose weight is due at local midnight, so that it is due
/// whenever the test runs.
const MORNING_WEIGHT: &str = r#"
name = "Test: weight due"
[response_targets]
high = 60
medium = 240
low = 1440
[[rule]]
id = "weight_due"
kind = "missed_measurement"
metric = "body_weight"
due_by = "00:00"
priority = "low"
"#;

async fn register_patient_with_scale(
    store: &std::sync::Arc<dyn Store>,
    team: &str,
    scale: &str,
) -> Uuid {
    let patient = store
        .add_patient(&NewPatient {
            id: Uuid::new_v4(),
            team: team.to_owned(),
            display_name: format!("Patient met {scale}"),
            birth_year: Some(1936),
            protocols: vec!["weight".to_owned()],
        })
        .await
        .unwrap();
    store
        .add_device(&NewDevice {
            device_id: DeviceId::parse(scale).unwrap(),
            profile_id: "weight-scale".to_owned(),
            patient_id: patient,
        })
        .await
        .unwrap();
    patient
}

fn missed_alert(alerts: &[Alert], patient: Uuid) -> Option<Alert> {
    alerts
        .iter()
        .find(|a| a.patient_id == patient && a.rule_key == "weight/weight_due")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_tells_a_silent_scale_from_a_patient_who_did_not_weigh_and_resolves_a_late_upload(
) {
    // Arrange: a protocol folder with the test protocol beside the real ones.
    let alerts_dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_path("alerts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, alerts_dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(alerts_dir.path().join("weight.toml"), MORNING_WEIGHT).unwrap();
    // Within two minutes of local midnight "today" could change under the test.
    let local_minute = |ts: Timestamp| {
        let midnight = local_instant(local_date(ts, DEFAULT_TIME_ZONE), 0, DEFAULT_TIME_ZONE);
        ts.seconds_since(midnight) / 60.0
    };
    let minute = local_minute(Timestamp::now());
    if !(2.0..1_438.0).contains(&minute) {
        tokio::time::sleep(Duration::from_secs_f64(
            (1_442.0 - minute).rem_euclid(1_440.0) * 60.0,
        ))
        .await;
    }
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let mut settings = test_settings(&database.url, &root);
    settings.alerts_dir = alerts_dir.path().to_owned();
    // First run: registration and a heartbeat of the live scale; no sweep yet.
    settings.missed_sweep_interval_ms = 3_600_000;
    let app = TestApp::spawn(settings.clone()).await;
    app.store.add_team("Emmen").await.unwrap();
    let silent = register_patient_with_scale(&app.store, "Emmen", "scale-silent").await;
    let idle = register_patient_with_scale(&app.store, "Emmen", "scale-idle").await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    publisher
        .publish(&status_topic(&root, "scale-idle"), r#"{"battery_pct":76}"#)
        .await;
    wait_for(
        "the heartbeat to be stored",
        Duration::from_secs(20),
        || async {
            app.store
                .device_status(&DeviceId::parse("scale-idle").unwrap())
                .await
                .unwrap()
                .is_some()
        },
    )
    .await;
    app.stop().await;

    // Act: the service again, now sweeping every 100 ms.
    settings.missed_sweep_interval_ms = 100;
    let app = TestApp::spawn(settings.clone()).await;

    // Assert: both missing weights raised, each with its cause.
    wait_for("both missed weights", Duration::from_secs(20), || async {
        let alerts = unresolved(&app.store).await;
        missed_alert(&alerts, silent).is_some() && missed_alert(&alerts, idle).is_some()
    })
    .await;
    let alerts = unresolved(&app.store).await;
    let silent_alert = missed_alert(&alerts, silent).unwrap();
    let idle_alert = missed_alert(&alerts, idle).unwrap();
    let factor = |alert: &Alert| alert.explanation["factors"][0].clone();
    assert_eq!(factor(&silent_alert)["cause"], "device_silent");
    assert_eq!(factor(&idle_alert)["cause"], "not_measured");
    assert_eq!(factor(&silent_alert)["metric"], "body_weight");
    let today = local_date(Timestamp::now(), DEFAULT_TIME_ZONE).to_string();
    assert_eq!(factor(&silent_alert)["day"], today.as_str());
    assert_eq!(silent_alert.priority, Priority::Low);

    // Act: the silent scale's gateway uploads this morning's weight, taken
    // before the alert; the other patient weighs only now.
    let midnight = local_instant(
        local_date(Timestamp::now(), DEFAULT_TIME_ZONE),
        0,
        DEFAULT_TIME_ZONE,
    );
    let taken = silent_alert
        .opened_at
        .plus_micros(-10 * 60_000_000)
        .max(midnight.plus_micros(1_000_000));
    let seconds = |ts: Timestamp| ts.micros().div_euclid(1_000_000);
    publisher
        .publish(
            &readings_topic(&root, "scale-silent"),
            v1_payload("scale-silent", "body_weight", "kg", seconds(taken), 1, 81.2),
        )
        .await;
    publisher
        .publish(
            &readings_topic(&root, "scale-idle"),
            v1_payload(
                "scale-idle",
                "body_weight",
                "kg",
                // The next whole second: after the alert was raised.
                seconds(Timestamp::now()) + 1,
                1,
                68.4,
            ),
        )
        .await;

    // Assert: both resolved by the system, the first as a late upload.
    wait_for(
        "both missed weights to resolve",
        Duration::from_secs(20),
        || async {
            let alerts = unresolved(&app.store).await;
            missed_alert(&alerts, silent).is_none() && missed_alert(&alerts, idle).is_none()
        },
    )
    .await;
    let reason = |events: Vec<thuiswacht::alert_book::AlertEvent>| {
        let last = events.last().unwrap().clone();
        assert_eq!(last.kind, "auto_resolved");
        last.detail["reason"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        reason(app.store.alert_events(silent_alert.id).await.unwrap()),
        "late_upload"
    );
    assert_eq!(
        reason(app.store.alert_events(idle_alert.id).await.unwrap()),
        "measured_late"
    );

    // Act: a restart; the sweep runs again for today.
    app.stop().await;
    let app = TestApp::spawn(settings).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Assert: today is dealt with for both: no alert raised twice.
    assert!(
        missed_alert(&unresolved(&app.store).await, silent).is_none()
            && missed_alert(&unresolved(&app.store).await, idle).is_none(),
        "a restart raises nothing again"
    );
    for (patient, alert) in [(silent, &silent_alert), (idle, &idle_alert)] {
        assert_eq!(
            app.store
                .last_resolution(patient, "weight/weight_due")
                .await
                .unwrap(),
            app.store
                .alert(alert.id)
                .await
                .unwrap()
                .unwrap()
                .resolved_at
        );
    }
    publisher.disconnect().await;
    app.stop().await;
}
