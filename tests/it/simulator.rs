//! The simulator publishing over the real Mosquitto into the real pipeline:
//! everything it reports publishing arrives (faulty-device readings in the
//! quarantine), the same seed publishes the same readings again, and the
//! injected deteriorations it records are visible in what was stored.

use std::process::Command;
use std::time::Duration;

use thuiswacht::domain::{DeviceId, Metric, RejectReason, Timestamp};
use thuiswacht::simulate::{DeteriorationKind, Population};

use crate::helpers::*;

const SEED: u64 = 31;
const PATIENTS: usize = 14;
const DAYS: u32 = 6;

fn simulate(
    database_url: &str,
    root: &str,
    truth: &std::path::Path,
    register: bool,
    until: Timestamp,
) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thuiswacht"));
    command
        .args([
            "simulate",
            "--seed",
            &SEED.to_string(),
            "--patients",
            &PATIENTS.to_string(),
            "--days",
            &DAYS.to_string(),
        ])
        .arg("--truth")
        .arg(truth)
        .arg("--until")
        .arg(until.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("THUISWACHT_DATABASE_URL", database_url)
        .env("THUISWACHT_MQTT_URL", mqtt_url())
        .env("THUISWACHT_MQTT_TOPIC_ROOT", root);
    if register {
        command.arg("--register");
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("simulate prints a JSON report")
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_population_arrives_whole_repeats_exactly_and_shows_its_deteriorations() {
    // Arrange
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.jsonl");
    // Act
    // One end for both runs: a measurement falling due between them must
    // not make the repeat differ.
    let end = Timestamp::now();
    let report = simulate(&database.url, &root, &truth_path, true, end);
    // Assert: every published reading is stored or, from a faulty device, quarantined.
    let readings = report["readings"].as_i64().unwrap();
    let faulty = report["faulty_readings"].as_i64().unwrap();
    assert!(readings > 1_000, "{report}");
    wait_for(
        "every simulated reading to be processed",
        Duration::from_secs(180),
        || async {
            (app.metrics.stored_total() + app.metrics.duplicate_total()) as i64 + faulty == readings
        },
    )
    .await;
    let stored = app.store.count_readings().await.unwrap();
    let implausible = app
        .store
        .count_quarantine(RejectReason::ImplausibleValue)
        .await
        .unwrap();
    assert_eq!(
        implausible, faulty,
        "faulty-device readings are quarantined"
    );
    // The same seed again: the very same readings, so nothing new is stored.
    let again = simulate(&database.url, &root, &truth_path, true, end);
    assert_eq!(again["readings"], report["readings"]);
    wait_for(
        "the repeat to be processed",
        Duration::from_secs(180),
        || async {
            (app.metrics.stored_total() + app.metrics.duplicate_total()) as i64 + 2 * faulty
                == 2 * readings
        },
    )
    .await;
    assert_eq!(
        app.store.count_readings().await.unwrap(),
        stored,
        "a repeat stores nothing new"
    );
    // The truth file lists what the population generator injected…
    let truth: Vec<serde_json::Value> = std::fs::read_to_string(&truth_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let population = Population::generate(SEED, PATIENTS, DAYS, end);
    assert_eq!(truth.len(), population.deteriorations.len());
    assert!(!truth.is_empty(), "seed {SEED} injects deteriorations");
    // …and each one shows in the stored data.
    for deterioration in &population.deteriorations {
        let patient = population.patient(deterioration.patient_index);
        if deterioration.kind == DeteriorationKind::DeviceFault {
            let device = deterioration.device_id.as_deref().unwrap();
            let entries = app.store.list_quarantine(10_000).await.unwrap();
            if deterioration.onset < end {
                assert!(
                    entries
                        .iter()
                        .any(|e| e.device_id.as_deref() == Some(device)
                            && e.reason == "implausible_value"),
                    "faulty device {device} shows in the quarantine"
                );
            }
            continue;
        }
        let peak_end = deterioration.peak.plus_micros(24 * 3_600_000_000);
        if peak_end > end {
            continue; // its full effect lies after the simulated history
        }
        let metric = deterioration.metrics[0];
        let mut before = Vec::new();
        let mut during = Vec::new();
        for device in &patient.devices {
            for reading in app
                .store
                .device_readings(&DeviceId::parse(&device.device_id).unwrap())
                .await
                .unwrap()
            {
                if reading.metric != metric {
                    continue;
                }
                if reading.ts < deterioration.onset {
                    before.push(reading.value);
                } else if reading.ts >= deterioration.peak && reading.ts < peak_end {
                    during.push(reading.value);
                }
            }
        }
        if before.is_empty() || during.is_empty() {
            continue; // forgotten measurements can leave a window empty
        }
        let change = mean(&during) - mean(&before);
        let expected_direction = match (deterioration.kind, metric) {
            (_, Metric::Spo2 | Metric::BpSystolic) => -1.0,
            _ => 1.0,
        };
        assert!(
            change * expected_direction > 0.5,
            "{:?} of patient {} moves {metric} the expected way (change {change:.2})",
            deterioration.kind,
            patient.index
        );
    }
    app.stop().await;
}
