//! MQTT ingest end to end: real Mosquitto, real PostgreSQL, the real pipeline.

use std::time::Duration;

use thuiswacht::domain::{DeviceId, Metric, RejectReason, Timestamp};

use crate::helpers::*;

/// A running app with one patient and a device of each generic profile.
async fn app_with_devices() -> (TestApp, String) {
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    register_devices(
        &app.store,
        &[
            ("bpm-1", "bp-monitor"),
            ("ox-1", "pulse-oximeter"),
            ("scale-1", "weight-scale"),
            ("thermo-1", "thermometer"),
        ],
    )
    .await;
    (app, root)
}

fn now_seconds() -> i64 {
    Timestamp::now().micros() / 1_000_000
}

#[tokio::test]
async fn each_payload_format_is_stored_in_canonical_units() {
    // Arrange
    let (app, root) = app_with_devices().await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let t = now_seconds() - 60;
    let v1 = format!(
        r#"{{"device_id":"bpm-1","seq":1,"readings":[
            {{"metric":"bp_systolic","value":16.0,"unit":"kPa","ts":"{ts}"}},
            {{"metric":"bp_diastolic","value":81,"unit":"mm[Hg]","ts":"{ts}"}},
            {{"metric":"heart_rate","value":77,"unit":"/min","ts":"{ts}"}}]}}"#,
        ts = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
    );
    let senml = format!(
        r#"[{{"bn":"ox-1/","bt":{t},"n":"spo2","u":"/","v":0.95}},{{"n":"heart_rate","u":"beat/min","v":70,"t":1}}]"#
    );
    let fhir = format!(
        r#"{{"resourceType":"Observation","status":"final",
            "code":{{"coding":[{{"system":"http://loinc.org","code":"8310-5"}}]}},
            "device":{{"reference":"Device/thermo-1"}},
            "effectiveDateTime":"{}",
            "valueQuantity":{{"value":100.4,"unit":"F","system":"http://unitsofmeasure.org","code":"[degF]"}}}}"#,
        chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
    );
    // Act
    publisher.publish(&readings_topic(&root, "bpm-1"), v1).await;
    publisher
        .publish(&readings_topic(&root, "ox-1"), senml)
        .await;
    publisher
        .publish(&readings_topic(&root, "thermo-1"), fhir)
        .await;
    // Assert
    wait_for_readings(&app.store, 6, Duration::from_secs(20)).await;
    let bp = app
        .store
        .device_readings(&DeviceId::parse("bpm-1").unwrap())
        .await
        .unwrap();
    let systolic = bp.iter().find(|r| r.metric == Metric::BpSystolic).unwrap();
    assert!(
        (systolic.value - 120.0).abs() < 0.1,
        "16 kPa is 120 mmHg, got {}",
        systolic.value
    );
    let ox = app
        .store
        .device_readings(&DeviceId::parse("ox-1").unwrap())
        .await
        .unwrap();
    let spo2 = ox.iter().find(|r| r.metric == Metric::Spo2).unwrap();
    assert!((spo2.value - 95.0).abs() < 1e-9);
    let pulse = ox.iter().find(|r| r.metric == Metric::HeartRate).unwrap();
    assert_eq!(
        pulse.ts.micros() - spo2.ts.micros(),
        1_000_000,
        "SenML relative time t=1"
    );
    let temperature = app
        .store
        .device_readings(&DeviceId::parse("thermo-1").unwrap())
        .await
        .unwrap();
    assert!(
        (temperature[0].value - 38.0).abs() < 1e-9,
        "100.4 °F is 38 °C"
    );
    assert_eq!(app.metrics.stored_total(), 6);
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn every_kind_of_bad_input_is_quarantined_with_its_reason_and_good_neighbours_survive() {
    // Arrange
    let (app, root) = app_with_devices().await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let ts = chrono::DateTime::from_timestamp(now_seconds() - 30, 0)
        .unwrap()
        .to_rfc3339();
    let ts2 = chrono::DateTime::from_timestamp(now_seconds() - 29, 0)
        .unwrap()
        .to_rfc3339();
    let good =
        |value: f64| format!(r#"{{"metric":"spo2","value":{value},"unit":"%","ts":"{ts}"}}"#);
    let cases: Vec<(String, String, RejectReason)> = vec![
        (
            readings_topic(&root, "ox-1"),
            "{not json".to_owned(),
            RejectReason::MalformedPayload,
        ),
        (
            readings_topic(&root, "ghost-9"),
            v1_payload("ghost-9", "spo2", "%", now_seconds() - 10, 1, 97.0),
            RejectReason::UnknownDevice,
        ),
        (
            readings_topic(&root, "ox-1"),
            v1_payload("bpm-1", "spo2", "%", now_seconds() - 10, 1, 97.0),
            RejectReason::DeviceMismatch,
        ),
        (
            readings_topic(&root, "ox-1"),
            v1_payload("ox-1", "mood", "%", now_seconds() - 10, 1, 3.0),
            RejectReason::UnknownMetric,
        ),
        (
            readings_topic(&root, "ox-1"),
            v1_payload("ox-1", "spo2", "furlong", now_seconds() - 10, 1, 97.0),
            RejectReason::UnknownUnit,
        ),
        (
            readings_topic(&root, "ox-1"),
            format!(
                r#"{{"device_id":"ox-1","readings":[{},{{"metric":"spo2","value":140,"unit":"%","ts":"{ts2}"}}]}}"#,
                good(97.0)
            ),
            RejectReason::ImplausibleValue,
        ),
        (
            readings_topic(&root, "ox-1"),
            v1_payload("ox-1", "spo2", "%", now_seconds() + 3_600, 1, 97.0),
            RejectReason::FutureTimestamp,
        ),
        (
            readings_topic(&root, "ox-1"),
            format!(
                r#"{{"device_id":"ox-1","readings":[{}],"pad":"{}"}}"#,
                good(96.0),
                "x".repeat(300 * 1024)
            ),
            RejectReason::PayloadTooLarge,
        ),
    ];
    // Act
    for (topic, payload, _) in &cases {
        publisher.publish(topic, payload.clone()).await;
    }
    // Assert: one quarantine row per case, and the one good reading of the mixed batch stored.
    wait_for(
        "every case to reach the quarantine",
        Duration::from_secs(20),
        || async { app.store.list_quarantine(100).await.unwrap().len() == cases.len() },
    )
    .await;
    for (_, _, reason) in &cases {
        assert_eq!(
            app.store.count_quarantine(*reason).await.unwrap(),
            1,
            "{reason}"
        );
    }
    wait_for_readings(&app.store, 1, Duration::from_secs(5)).await;
    let entries = app.store.list_quarantine(100).await.unwrap();
    let too_large = entries
        .iter()
        .find(|e| e.reason == "payload_too_large")
        .unwrap();
    assert!(too_large.raw_size > 300 * 1024);
    let unknown = entries
        .iter()
        .find(|e| e.reason == "unknown_device")
        .unwrap();
    assert_eq!(unknown.device_id.as_deref(), Some("ghost-9"));
    assert!(unknown.detail.contains("ghost-9"));
    assert!(unknown.source.ends_with("/devices/ghost-9/readings"));
    // The pipeline is still alive after all that.
    publisher
        .publish(
            &readings_topic(&root, "scale-1"),
            v1_payload("scale-1", "body_weight", "kg", now_seconds() - 5, 1, 81.5),
        )
        .await;
    wait_for_readings(&app.store, 2, Duration::from_secs(10)).await;
    let metrics = reqwest::get(format!("{}/metrics", app.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (_, _, reason) in &cases {
        assert!(
            metrics.contains(&format!(
                "thuiswacht_readings_quarantined_total{{reason=\"{}\"}} 1",
                reason.code()
            )),
            "metrics lack {reason}:\n{metrics}"
        );
    }
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn messages_published_twice_are_stored_once() {
    // Arrange
    let (app, root) = app_with_devices().await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let start = now_seconds() - 3_600;
    let messages: Vec<String> = (0..50)
        .map(|i| {
            v1_payload(
                "scale-1",
                "body_weight",
                "kg",
                start + i * 10,
                5,
                80.0 + i as f64 / 10.0,
            )
        })
        .collect();
    // Act: every message twice, as a gateway that lost its acknowledgements would.
    for round in 0..2 {
        for message in &messages {
            publisher
                .publish(&readings_topic(&root, "scale-1"), message.clone())
                .await;
        }
        publisher.wait_acked(50 * (round + 1)).await;
    }
    // Assert
    wait_for(
        "both rounds to be processed",
        Duration::from_secs(20),
        || async { app.metrics.stored_total() + app.metrics.duplicate_total() == 500 },
    )
    .await;
    assert_eq!(app.store.count_readings().await.unwrap(), 250);
    assert_eq!(app.metrics.stored_total(), 250);
    assert_eq!(app.metrics.duplicate_total(), 250);
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn readings_hours_late_and_out_of_order_are_stored_under_event_time() {
    let (app, root) = app_with_devices().await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let now = now_seconds();
    // Today's reading first, then a gateway's backlog from 8 and 5 hours ago.
    publisher
        .publish(
            &readings_topic(&root, "scale-1"),
            v1_payload("scale-1", "body_weight", "kg", now - 60, 1, 82.0),
        )
        .await;
    publisher
        .publish(
            &readings_topic(&root, "scale-1"),
            v1_payload("scale-1", "body_weight", "kg", now - 5 * 3_600, 1, 81.0),
        )
        .await;
    publisher
        .publish(
            &readings_topic(&root, "scale-1"),
            v1_payload("scale-1", "body_weight", "kg", now - 8 * 3_600, 1, 80.0),
        )
        .await;
    wait_for_readings(&app.store, 3, Duration::from_secs(20)).await;
    let stored = app
        .store
        .device_readings(&DeviceId::parse("scale-1").unwrap())
        .await
        .unwrap();
    let values: Vec<f64> = stored.iter().map(|r| r.value).collect();
    assert_eq!(values, vec![80.0, 81.0, 82.0]);
    assert_eq!(stored[0].ts.micros(), (now - 8 * 3_600) * 1_000_000);
    publisher.disconnect().await;
    app.stop().await;
}

#[tokio::test]
async fn unacknowledged_messages_are_redelivered_to_the_next_run() {
    // Arrange: a run that stops gracefully after storing a first batch.
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let settings = test_settings(&database.url, &root);
    let app = TestApp::spawn(settings.clone()).await;
    register_devices(&app.store, &[("scale-1", "weight-scale")]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    publisher
        .publish(
            &readings_topic(&root, "scale-1"),
            v1_payload("scale-1", "body_weight", "kg", now_seconds() - 100, 3, 80.0),
        )
        .await;
    wait_for_readings(&app.store, 3, Duration::from_secs(20)).await;
    app.stop().await;
    // Act: publish while it is down; the persistent session keeps the messages.
    publisher
        .publish(
            &readings_topic(&root, "scale-1"),
            v1_payload("scale-1", "body_weight", "kg", now_seconds() - 50, 4, 81.0),
        )
        .await;
    publisher.wait_acked(2).await;
    let app = TestApp::spawn(settings).await;
    // Assert
    wait_for_readings(&app.store, 7, Duration::from_secs(20)).await;
    publisher.disconnect().await;
    app.stop().await;
}
