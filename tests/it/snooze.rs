//! Snoozes end on their own, end to end on the real Mosquitto and
//! PostgreSQL: recovered values resolve a snoozed alert (by the system,
//! reason `recovered`), worse values end the snooze at once, and a snooze
//! whose time passes returns the alert as it was.

use std::sync::Arc;
use std::time::Duration;

use thuiswacht::alert_book::snooze::end_expired_snoozes;
use thuiswacht::alert_book::{Alert, AlertStatus, NewAlert};
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::Priority;
use thuiswacht::store::Store;
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::*;

const MINUTE: i64 = 60_000_000;

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Publishes body temperatures `(seconds after t, °C)` of one thermometer.
async fn publish_temperatures(
    publisher: &Publisher,
    root: &str,
    device: &str,
    t: i64,
    values: &[(i64, f64)],
) {
    for (offset, value) in values {
        publisher
            .publish(
                &readings_topic(root, device),
                v1_payload(device, "body_temperature", "Cel", t + offset, 1, *value),
            )
            .await;
    }
}

/// Waits for the patient's unresolved fever alert and returns it.
async fn fever_alert(store: &Arc<dyn Store>, patient: Uuid) -> Alert {
    wait_for("the fever alert", Duration::from_secs(20), || async {
        store
            .unresolved_alert(patient, "default/fever")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    store
        .unresolved_alert(patient, "default/fever")
        .await
        .unwrap()
        .unwrap()
}

/// Snoozes the alert for an hour as a nurse does through the API.
async fn snooze(store: &Arc<dyn Store>, mut alert: Alert) -> Alert {
    let now = Timestamp::now();
    let from = alert.status;
    let event = alert
        .snooze("anouk", now.plus_micros(60 * MINUTE), now)
        .unwrap();
    store.save_transition(&alert, from, &event).await.unwrap();
    alert
}

async fn wait_for_status(store: &Arc<dyn Store>, id: Uuid, what: &str, wanted: AlertStatus) {
    wait_for(what, Duration::from_secs(20), || async {
        store
            .alert(id)
            .await
            .ok()
            .flatten()
            .is_some_and(|alert| alert.status == wanted)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_values_resolve_a_snoozed_alert_by_the_system() {
    // Arrange: two patients with fever; one nurse snoozes the first alert.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let snoozed_patient = register_devices(&app.store, &[("thermo-s", "thermometer")]).await;
    let open_patient = register_devices(&app.store, &[("thermo-o", "thermometer")]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 3_600;
    for device in ["thermo-s", "thermo-o"] {
        publish_temperatures(&publisher, &root, device, t, &[(0, 37.4), (600, 38.4)]).await;
    }
    let snoozed = snooze(&app.store, fever_alert(&app.store, snoozed_patient).await).await;
    let open = fever_alert(&app.store, open_patient).await;

    // Act: both temperatures fall below the fever rule's recover_at (37.8),
    // the one of the alert nobody snoozed first (stored before the other is
    // sent, so it is triaged first).
    publish_temperatures(&publisher, &root, "thermo-o", t, &[(1_200, 37.2)]).await;
    wait_for_readings(&app.store, 5, Duration::from_secs(20)).await;
    publish_temperatures(&publisher, &root, "thermo-s", t, &[(1_200, 37.2)]).await;

    // Assert: the snoozed alert is resolved by the system, without an outcome.
    wait_for_status(
        &app.store,
        snoozed.id,
        "the snoozed alert to be resolved",
        AlertStatus::Resolved,
    )
    .await;
    let resolved = app.store.alert(snoozed.id).await.unwrap().unwrap();
    assert_eq!(resolved.resolved_by.as_deref(), Some("system"));
    assert_eq!(resolved.outcome, None);
    let last = app
        .store
        .alert_events(snoozed.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.kind, "auto_resolved");
    assert_eq!(last.actor, "system");
    assert_eq!(last.detail["reason"], "recovered");
    // The other patient's recovery was triaged before, yet the alert that
    // nobody snoozed stays for the nurse.
    let still = app.store.alert(open.id).await.unwrap().unwrap();
    assert_eq!(still.status, AlertStatus::Open, "{still:#?}");
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worse_values_end_a_snooze_at_once_with_the_alert_more_urgent() {
    // Arrange: a fever that rose gently (no rapid deterioration): U3. The
    // readings lie hours apart, so that each is its own trend level.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = register_devices(&app.store, &[("thermo-w", "thermometer")]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 7 * 3_600;
    publish_temperatures(
        &publisher,
        &root,
        "thermo-w",
        t,
        &[(0, 37.4), (10_800, 38.3)],
    )
    .await;
    let alert = fever_alert(&app.store, patient).await;
    assert_eq!(alert.priority, Priority::Medium);
    assert_eq!(alert.nts, NtsLevel::U3, "{alert:#?}");
    let alert = snooze(&app.store, alert).await;

    // Act: the temperature climbs 1.5 °C within six hours: the fever now
    // comes with rapid deterioration (the temperature-rising rule too).
    publish_temperatures(&publisher, &root, "thermo-w", t, &[(21_600, 38.9)]).await;

    // Assert: the snooze ended at once, the alert is back and more urgent.
    wait_for_status(&app.store, alert.id, "the snooze to end", AlertStatus::Open).await;
    let woken = app.store.alert(alert.id).await.unwrap().unwrap();
    assert_eq!(woken.snoozed_until, None);
    assert_eq!(woken.nts, NtsLevel::U2, "{woken:#?}");
    let events = app.store.alert_events(alert.id).await.unwrap();
    let ended = events
        .iter()
        .find(|event| event.kind == "snooze_ended")
        .expect("a snooze_ended event");
    assert_eq!(ended.actor, "system");
    assert_eq!(ended.detail["reason"], "more_urgent");
    assert_eq!(ended.detail["to"], "open");
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snooze_that_runs_out_returns_the_alert_to_the_nurse_who_held_it() {
    // Arrange: a claimed alert, snoozed by its nurse for 30 minutes.
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let patient = register_devices(&store, &[]).await;
    let now = Timestamp::now();
    let (mut alert, _) = store
        .raise_alert(&NewAlert {
            patient_id: patient,
            rule_key: "default/fever".to_owned(),
            priority: Priority::Medium,
            nts: NtsLevel::U3,
            score: 2000.0,
            explanation: serde_json::json!({}),
            at: now,
            raised_at: now,
            response_minutes: 240,
        })
        .await
        .unwrap();
    let event = alert.claim("anouk", now).unwrap();
    store
        .save_transition(&alert, AlertStatus::Open, &event)
        .await
        .unwrap();
    let until = now.plus_micros(30 * MINUTE);
    let event = alert.snooze("anouk", until, now).unwrap();
    store
        .save_transition(&alert, AlertStatus::Claimed, &event)
        .await
        .unwrap();

    // Act and assert: nothing ends before its time; at its time it ends.
    assert_eq!(
        end_expired_snoozes(&store, until.plus_micros(-1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.alert(alert.id).await.unwrap().unwrap().status,
        AlertStatus::Snoozed
    );
    assert_eq!(end_expired_snoozes(&store, until).await.unwrap(), 1);
    let back = store.alert(alert.id).await.unwrap().unwrap();
    assert_eq!(back.status, AlertStatus::Claimed);
    assert_eq!(back.claimed_by.as_deref(), Some("anouk"));
    assert_eq!(back.snoozed_until, None);
    let last = store.alert_events(alert.id).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "snooze_ended");
    assert_eq!(last.detail["reason"], "expired");
    assert_eq!(
        end_expired_snoozes(&store, until.plus_micros(MINUTE))
            .await
            .unwrap(),
        0,
        "ends once"
    );
}
