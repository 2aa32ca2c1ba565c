//! The store contract: what every [`Store`] implementation must do, run
//! against PostgreSQL and against SQLite.

use std::sync::Arc;

use futures_util::TryStreamExt;

use thuiswacht::alert_book::{AlertStatus, NewAlert, Outcome};
use thuiswacht::domain::{DeviceId, Metric, Reading, RejectReason, Timestamp};
use thuiswacht::protocols::Priority;
use thuiswacht::settings::Settings;
use thuiswacht::store::{
    NewDevice, NewPatient, QuarantineRecord, SeriesTail, SqliteStore, Store, StoreError, TokenScope,
};
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::TestDatabase;

async fn postgres_store() -> Arc<dyn Store> {
    TestDatabase::create().await.store().await
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    thuiswacht::app::install_crypto_provider();
    let mut settings = Settings::defaults();
    settings.data_dir = dir.path().to_owned();
    let store = SqliteStore::connect(&settings).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    Arc::new(store)
}

fn reading(device: &str, patient: Uuid, metric: Metric, value: f64, ts_micros: i64) -> Reading {
    Reading {
        device_id: DeviceId::parse(device).unwrap(),
        patient_id: patient,
        metric,
        value,
        ts: Timestamp(ts_micros),
        received_at: Timestamp(ts_micros + 1_000_000),
    }
}

/// Registers a team, a patient and a device; returns the patient id.
async fn seed(store: &Arc<dyn Store>, device: &str) -> Uuid {
    store.add_team("Assen").await.unwrap();
    let patient = store
        .add_patient(&NewPatient {
            id: uuid::Uuid::new_v4(),
            team: "Assen".to_owned(),
            display_name: "Meneer Bakker".to_owned(),
            birth_year: Some(1941),
            protocols: vec!["default".to_owned(), "heart-failure".to_owned()],
        })
        .await
        .unwrap();
    store
        .add_device(&NewDevice {
            device_id: DeviceId::parse(device).unwrap(),
            profile_id: "weight-scale".to_owned(),
            patient_id: patient,
        })
        .await
        .unwrap();
    patient
}

async fn registry_links_devices_to_patients_and_teams(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    // Act
    let duplicate_team = store.add_team("Assen").await;
    let orphan = store
        .add_patient(&NewPatient {
            id: uuid::Uuid::new_v4(),
            team: "Nergenshuizen".to_owned(),
            display_name: "x".to_owned(),
            birth_year: None,
            protocols: vec![],
        })
        .await;
    let duplicate_device = store
        .add_device(&NewDevice {
            device_id: DeviceId::parse("scale-1").unwrap(),
            profile_id: "weight-scale".to_owned(),
            patient_id: patient,
        })
        .await;
    let unknown_patient = store
        .add_device(&NewDevice {
            device_id: DeviceId::parse("scale-2").unwrap(),
            profile_id: "weight-scale".to_owned(),
            patient_id: Uuid::new_v4(),
        })
        .await;
    let found = store
        .find_devices(&[
            DeviceId::parse("scale-1").unwrap(),
            DeviceId::parse("nope").unwrap(),
        ])
        .await
        .unwrap();
    // Assert
    assert!(
        matches!(duplicate_team, Err(StoreError::Conflict(_))),
        "{duplicate_team:?}"
    );
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
    assert!(
        matches!(duplicate_device, Err(StoreError::Conflict(_))),
        "{duplicate_device:?}"
    );
    assert!(
        matches!(unknown_patient, Err(StoreError::NotFound(_))),
        "{unknown_patient:?}"
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].patient_id, patient);
    assert_eq!(found[0].profile_id, "weight-scale");
    assert!(found[0].active);
    let teams = store.list_teams().await.unwrap();
    assert_eq!(found[0].team_id, teams[0].id);
    let patients = store.list_patients().await.unwrap();
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0].protocols, vec!["default", "heart-failure"]);
    assert_eq!(patients[0].team, "Assen");
    assert_eq!(store.list_devices().await.unwrap().len(), 1);
}

async fn commit_is_idempotent_on_device_metric_and_time(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    let first = vec![
        reading("scale-1", patient, Metric::BodyWeight, 80.1, 1_000_000),
        reading("scale-1", patient, Metric::BodyWeight, 80.3, 2_000_000),
    ];
    // A redelivery of the first reading, a new one, and the new one twice in the same batch.
    let second = vec![
        reading("scale-1", patient, Metric::BodyWeight, 80.1, 1_000_000),
        reading("scale-1", patient, Metric::BodyWeight, 80.5, 3_000_001),
        reading("scale-1", patient, Metric::BodyWeight, 80.5, 3_000_001),
    ];
    // Act
    let first_new = store.commit_batch(&first, &[]).await.unwrap();
    let again = store.commit_batch(&first, &[]).await.unwrap();
    let second_new = store.commit_batch(&second, &[]).await.unwrap();
    // Assert
    assert_eq!(first_new, vec![true, true]);
    assert_eq!(again, vec![false, false]);
    assert_eq!(second_new, vec![false, true, false]);
    assert_eq!(store.count_readings().await.unwrap(), 3);
    let stored = store
        .device_readings(&DeviceId::parse("scale-1").unwrap())
        .await
        .unwrap();
    let times: Vec<i64> = stored.iter().map(|r| r.ts.micros()).collect();
    assert_eq!(
        times,
        vec![1_000_000, 2_000_000, 3_000_001],
        "microseconds survive the round trip"
    );
    assert_eq!(stored[1].value, 80.3);
    assert_eq!(stored[0].patient_id, patient);
}

async fn late_readings_are_stored_under_their_event_time(store: Arc<dyn Store>) {
    let patient = seed(&store, "scale-1").await;
    let now = Timestamp::now().micros();
    let hour = 3_600_000_000_i64;
    store
        .commit_batch(
            &[reading("scale-1", patient, Metric::BodyWeight, 81.0, now)],
            &[],
        )
        .await
        .unwrap();
    // A gateway that was offline uploads readings from six and three hours ago.
    store
        .commit_batch(
            &[
                reading("scale-1", patient, Metric::BodyWeight, 80.0, now - 3 * hour),
                reading("scale-1", patient, Metric::BodyWeight, 79.0, now - 6 * hour),
            ],
            &[],
        )
        .await
        .unwrap();
    let stored = store
        .device_readings(&DeviceId::parse("scale-1").unwrap())
        .await
        .unwrap();
    let values: Vec<f64> = stored.iter().map(|r| r.value).collect();
    assert_eq!(values, vec![79.0, 80.0, 81.0]);
}

async fn quarantine_keeps_reason_detail_and_bytes(store: Arc<dyn Store>) {
    let patient = seed(&store, "scale-1").await;
    let records = vec![
        QuarantineRecord {
            received_at: Timestamp(5_000_000),
            source: "mqtt:t/devices/x/readings".to_owned(),
            device_id: Some("x".to_owned()),
            reason: RejectReason::UnknownDevice,
            detail: "unknown device x".to_owned(),
            raw: b"{\"device_id\":\"x\"}".to_vec(),
            raw_size: 17,
        },
        QuarantineRecord {
            received_at: Timestamp(6_000_000),
            source: "http".to_owned(),
            device_id: None,
            reason: RejectReason::MalformedPayload,
            detail: "invalid json".to_owned(),
            raw: vec![0xff, 0x00, b'a'],
            raw_size: 300_000,
        },
    ];
    let readings = vec![reading("scale-1", patient, Metric::BodyWeight, 80.0, 1)];
    store.commit_batch(&readings, &records).await.unwrap();
    let listed = store.list_quarantine(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].reason, "malformed_payload", "newest first");
    assert_eq!(listed[0].raw_size, 300_000);
    assert_eq!(listed[1].device_id.as_deref(), Some("x"));
    assert_eq!(listed[1].raw_preview, "{\"device_id\":\"x\"}");
    assert_eq!(listed[1].source, "mqtt:t/devices/x/readings");
    assert_eq!(
        store
            .count_quarantine(RejectReason::UnknownDevice)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_quarantine(RejectReason::FutureTimestamp)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.count_readings().await.unwrap(), 1);
    assert_eq!(store.list_quarantine(1).await.unwrap().len(), 1);
}

async fn tokens_are_found_by_secret_hash_only(store: Arc<dyn Store>) {
    let hash = thuiswacht::api::token_hash("tw_secret");
    let id = store
        .add_token("gateway Emmen", TokenScope::Ingest, &hash)
        .await
        .unwrap();
    let found = store.find_token(&hash).await.unwrap().expect("token found");
    assert_eq!(found.id, id);
    assert_eq!(found.scope, TokenScope::Ingest);
    assert!(!found.revoked);
    assert!(store
        .find_token(&thuiswacht::api::token_hash("tw_other"))
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_readers_do_not_block_the_writer(store: Arc<dyn Store>) {
    let patient = seed(&store, "scale-1").await;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..200 {
                store.count_readings().await.expect("read while writing");
                reads += 1;
            }
            reads
        })
    };
    for batch in 0..50_i64 {
        let readings: Vec<Reading> = (0..100)
            .map(|i| {
                reading(
                    "scale-1",
                    patient,
                    Metric::BodyWeight,
                    80.0,
                    batch * 1_000_000 + i,
                )
            })
            .collect();
        store
            .commit_batch(&readings, &[])
            .await
            .expect("write while reading");
    }
    assert_eq!(reader.await.unwrap(), 200);
    assert_eq!(store.count_readings().await.unwrap(), 5_000);
}

fn finding(patient: Uuid, rule: &str, priority: Priority, at: i64) -> NewAlert {
    NewAlert {
        patient_id: patient,
        rule_key: rule.to_owned(),
        priority,
        nts: NtsLevel::for_priority(priority),
        score: 1000.0,
        explanation: serde_json::json!({"factors": [{"rule": rule}]}),
        at: Timestamp(at),
        raised_at: Timestamp(at + 500),
        response_minutes: 60,
    }
}

async fn alert_book_keeps_one_unresolved_alert_per_patient_and_rule(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    // Act: a finding, new evidence of higher priority, and evidence of lower priority.
    let (first, created) = store
        .raise_alert(&finding(
            patient,
            "heart-failure/weight_gain_3d",
            Priority::Medium,
            1_000,
        ))
        .await
        .unwrap();
    let (second, created_again) = store
        .raise_alert(&finding(
            patient,
            "heart-failure/weight_gain_3d",
            Priority::High,
            2_000,
        ))
        .await
        .unwrap();
    let (third, _) = store
        .raise_alert(&finding(
            patient,
            "heart-failure/weight_gain_3d",
            Priority::Low,
            3_000,
        ))
        .await
        .unwrap();
    let (other_rule, other_created) = store
        .raise_alert(&finding(patient, "default/fever", Priority::Medium, 3_000))
        .await
        .unwrap();
    // Assert
    assert!(created && !created_again && other_created);
    assert_eq!(first.id, second.id);
    assert_eq!(second.id, third.id);
    assert_ne!(other_rule.id, first.id);
    assert_eq!(
        third.priority,
        Priority::High,
        "new evidence never lowers the priority"
    );
    assert_eq!(third.nts, NtsLevel::U2);
    assert_eq!(third.updated_at, Timestamp(3_000));
    assert_eq!(
        third.opened_at,
        Timestamp(1_500),
        "opened when raised, not at the evidence's event time"
    );
    assert_eq!(third.respond_by, Timestamp(1_500 + 60 * 60_000_000));
    let events: Vec<String> = store
        .alert_events(first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(events, vec!["raised", "updated", "updated"]);
    assert_eq!(store.unresolved_alerts().await.unwrap().len(), 2);
}

async fn alert_transitions_are_saved_once_and_stale_copies_are_refused(store: Arc<dyn Store>) {
    let patient = seed(&store, "scale-1").await;
    let (alert, _) = store
        .raise_alert(&finding(patient, "default/fever", Priority::Medium, 1_000))
        .await
        .unwrap();
    // Two nurses open the same alert.
    let mut anouk = store.alert(alert.id).await.unwrap().unwrap();
    let mut bram = store.alert(alert.id).await.unwrap().unwrap();
    let event = anouk.claim("anouk", Timestamp(2_000)).unwrap();
    store
        .save_transition(&anouk, AlertStatus::Open, &event)
        .await
        .unwrap();
    // Bram's copy still says open: his claim must not overwrite Anouk's.
    let stale = bram.claim("bram", Timestamp(2_500)).unwrap();
    let refused = store
        .save_transition(&bram, AlertStatus::Open, &stale)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let mut fresh = store.alert(alert.id).await.unwrap().unwrap();
    assert_eq!(fresh.claimed_by.as_deref(), Some("anouk"));
    assert_eq!(
        fresh.claim("bram", Timestamp(2_600)),
        Err(thuiswacht::alert_book::TransitionError::ClaimedByOther(
            "anouk".to_owned()
        )),
        "the second nurse sees who has it"
    );
    // Resolved, then the condition comes back: a new alert opens.
    let resolved = fresh
        .resolve("anouk", Outcome::ContactedPatient, Timestamp(3_000))
        .unwrap();
    store
        .save_transition(&fresh, AlertStatus::Claimed, &resolved)
        .await
        .unwrap();
    let stored = store.alert(alert.id).await.unwrap().unwrap();
    assert_eq!(stored.status, AlertStatus::Resolved);
    assert_eq!(stored.outcome, Some(Outcome::ContactedPatient));
    assert_eq!(stored.resolved_at, Some(Timestamp(3_000)));
    let (again, created) = store
        .raise_alert(&finding(patient, "default/fever", Priority::Medium, 4_000))
        .await
        .unwrap();
    assert!(created);
    assert_ne!(again.id, alert.id);
    let history: Vec<(String, String)> = store
        .alert_events(alert.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.actor))
        .collect();
    assert_eq!(
        history,
        vec![
            ("raised".to_owned(), "system".to_owned()),
            ("claimed".to_owned(), "anouk".to_owned()),
            ("resolved".to_owned(), "anouk".to_owned())
        ]
    );
}

async fn concurrent_writers_raise_one_alert(store: Arc<dyn Store>) {
    let patient = seed(&store, "scale-1").await;
    let mut tasks = Vec::new();
    for writer in 0..2_i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25_i64 {
                let (alert, _) = store
                    .raise_alert(&finding(
                        patient,
                        "copd/spo2_below_target",
                        Priority::High,
                        writer * 100 + i,
                    ))
                    .await
                    .expect("raise under concurrency");
                ids.push(alert.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every writer updated the one open alert");
    assert_eq!(store.unresolved_alerts().await.unwrap().len(), 1);
    assert_eq!(store.alert_events(ids[0]).await.unwrap().len(), 50);
}

async fn newest_readings_per_series_are_each_series_newest_within_the_window(
    store: Arc<dyn Store>,
) {
    // Arrange: a daily weight for 100 days; blood pressure three times, one
    // of them before the window and the last one after the monitor went to
    // another patient; diastolic only before the window.
    const HOUR: i64 = 3_600_000_000;
    let patient = seed(&store, "scale-1").await;
    let next_patient = Uuid::new_v4();
    let weight = |day: i64| 70.0 + day as f64 / 10.0;
    let mut readings: Vec<Reading> = (1..=100)
        .map(|day| {
            reading(
                "scale-1",
                patient,
                Metric::BodyWeight,
                weight(day),
                day * 24 * HOUR,
            )
        })
        .collect();
    for (hours, value, owner) in [
        (10, 120.0, patient),
        (500, 131.0, patient),
        (900, 142.0, next_patient),
    ] {
        readings.push(reading(
            "bpm-1",
            owner,
            Metric::BpSystolic,
            value,
            hours * HOUR,
        ));
    }
    for hours in [5, 6] {
        readings.push(reading(
            "bpm-1",
            patient,
            Metric::BpDiastolic,
            80.0,
            hours * HOUR,
        ));
    }
    store.commit_batch(&readings, &[]).await.unwrap();
    let since = Timestamp(20 * HOUR);
    let read = |per_series: u32| {
        let store = store.clone();
        async move {
            let mut tails: Vec<SeriesTail> = store
                .newest_readings_per_series(since, per_series)
                .try_collect()
                .await
                .unwrap();
            for tail in &mut tails {
                tail.readings.sort_by_key(|(ts, _)| *ts);
            }
            tails.sort_by_key(|tail| {
                (
                    tail.device_id.clone(),
                    tail.metric.code(),
                    tail.oldest,
                    tail.readings[0].0,
                )
            });
            tails
        }
    };
    let tail =
        |device: &str, metric, owner, hours: &[i64], values: &[f64], complete, oldest_hours| {
            SeriesTail {
                device_id: device.to_owned(),
                metric,
                patient_id: owner,
                readings: hours
                    .iter()
                    .map(|h| Timestamp(h * HOUR))
                    .zip(values.iter().copied())
                    .collect(),
                complete,
                oldest: Timestamp(oldest_hours * HOUR),
            }
        };

    // Act
    let ten = read(10).await;
    let one = read(1).await;
    let none = read(0).await;

    // Assert: the monitor's series comes in one piece per patient, both
    // complete and sharing the series' oldest reading read.
    let days: Vec<i64> = (91..=100).collect();
    let hours: Vec<i64> = days.iter().map(|day| day * 24).collect();
    let weights: Vec<f64> = days.iter().map(|day| weight(*day)).collect();
    assert_eq!(
        ten,
        vec![
            tail(
                "bpm-1",
                Metric::BpSystolic,
                patient,
                &[500],
                &[131.0],
                true,
                500
            ),
            tail(
                "bpm-1",
                Metric::BpSystolic,
                next_patient,
                &[900],
                &[142.0],
                true,
                500
            ),
            tail(
                "scale-1",
                Metric::BodyWeight,
                patient,
                &hours,
                &weights,
                false,
                91 * 24
            ),
        ]
    );
    assert_eq!(
        one,
        vec![
            tail(
                "bpm-1",
                Metric::BpSystolic,
                next_patient,
                &[900],
                &[142.0],
                false,
                900
            ),
            tail(
                "scale-1",
                Metric::BodyWeight,
                patient,
                &[2_400],
                &[80.0],
                false,
                2_400
            ),
        ]
    );
    assert!(none.is_empty());
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres_store().await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(super::sqlite_store(&dir).await).await;
                }
            )*
        }
    };
}

contract!(
    registry_links_devices_to_patients_and_teams,
    commit_is_idempotent_on_device_metric_and_time,
    late_readings_are_stored_under_their_event_time,
    quarantine_keeps_reason_detail_and_bytes,
    tokens_are_found_by_secret_hash_only,
    concurrent_readers_do_not_block_the_writer,
    alert_book_keeps_one_unresolved_alert_per_patient_and_rule,
    alert_transitions_are_saved_once_and_stale_copies_are_refused,
    concurrent_writers_raise_one_alert,
    newest_readings_per_series_are_each_series_newest_within_the_window,
);

#[tokio::test]
async fn sqlite_store_keeps_its_data_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let patient = {
        let store = sqlite_store(&dir).await;
        let patient = seed(&store, "scale-1").await;
        store
            .commit_batch(
                &[reading("scale-1", patient, Metric::BodyWeight, 80.0, 7)],
                &[],
            )
            .await
            .unwrap();
        patient
    };
    let reopened = sqlite_store(&dir).await;
    let stored = reopened
        .device_readings(&DeviceId::parse("scale-1").unwrap())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].patient_id, patient);
}
