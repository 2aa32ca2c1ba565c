//! The store contract: what every [`Store`] implementation must do, run
//! against PostgreSQL and against SQLite.

use std::sync::Arc;

use futures_util::TryStreamExt;

use thuiswacht::alert_book::{AlertStatus, AutoResolution, NewAlert, Outcome};
use thuiswacht::domain::{DeviceId, Metric, Reading, RejectReason, StatusReport, Timestamp};
use thuiswacht::protocols::Priority;
use thuiswacht::protocols::RuleSettings;
use thuiswacht::settings::Settings;
use thuiswacht::store::{
    observation_device, ActorKind, AlertOrder, AlertPage, AlertQuery, AuditAction, NewAuditRecord,
    NewBreakGlass, NewDevice, NewObservation, NewPatient, NewRuleOverride, NewSession, NewUser,
    QuarantineRecord, Role, SeriesTail, SqliteStore, Store, StoreError, TeamScope, TokenScope,
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

fn personal(patient: Uuid, rule_key: &str, settings: &str, until: Option<i64>) -> NewRuleOverride {
    NewRuleOverride {
        patient_id: patient,
        rule_key: rule_key.to_owned(),
        settings: serde_json::from_str::<RuleSettings>(settings).unwrap(),
        valid_from: Timestamp(1_000),
        valid_until: until.map(Timestamp),
        author: "coördinator Jansen".to_owned(),
        reason: "COPD, habitual SpO2 around 89".to_owned(),
        review_by: None,
        approved_by: None,
    }
}

async fn personal_settings_are_versioned_with_author_and_reason(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;

    // Act: two versions of one rule, one of another, one temporary.
    let first = store
        .add_rule_override(&personal(
            patient,
            "default/fever",
            r#"{"above": 38.5}"#,
            None,
        ))
        .await
        .unwrap();
    let second = store
        .add_rule_override(&personal(
            patient,
            "default/fever",
            r#"{"above": null, "below": 35.5}"#,
            Some(9_000),
        ))
        .await
        .unwrap();
    let other = store
        .add_rule_override(&personal(
            patient,
            "default/spo2_low",
            r#"{"enabled": false}"#,
            None,
        ))
        .await
        .unwrap();
    let orphan = store
        .add_rule_override(&personal(Uuid::new_v4(), "default/fever", "{}", None))
        .await;
    let impossible = store
        .add_rule_override(&personal(patient, "default/fever", "{}", Some(500)))
        .await;

    // Assert
    assert_eq!((first.version, second.version, other.version), (1, 2, 1));
    assert!(first.id < second.id && second.id < other.id);
    assert_eq!(second.settings.above, Some(None));
    assert_eq!(second.settings.below, Some(Some(35.5)));
    assert_eq!(second.valid_until, Some(Timestamp(9_000)));
    assert_eq!(second.author, "coördinator Jansen");
    assert!(!other.settings.enabled);
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
    assert!(impossible.is_err(), "an end before the start is refused");
    let all = store.patient_rule_overrides(patient).await.unwrap();
    assert_eq!(all, vec![first.clone(), second.clone(), other.clone()]);
    let after = store.rule_overrides_after(first.id).await.unwrap();
    assert_eq!(after, vec![second, other]);
}

async fn observations_store_their_readings_once(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    let device = observation_device(patient);
    let observation = NewObservation {
        id: Uuid::new_v4(),
        patient_id: patient,
        ts: Timestamp(5_000_000),
        author: "ECD Drenthe".to_owned(),
        note: Some("kortademig bij binnenkomst".to_owned()),
        entered: serde_json::json!({"respiratory_rate": 24, "acvpu": "A"}),
        readings: vec![
            reading(
                device.as_str(),
                patient,
                Metric::RespiratoryRate,
                24.0,
                5_000_000,
            ),
            reading(
                device.as_str(),
                patient,
                Metric::Consciousness,
                0.0,
                5_000_000,
            ),
        ],
    };

    // Act
    let first = store.commit_observation(&observation).await.unwrap();
    let again = store
        .commit_observation(&NewObservation {
            id: Uuid::new_v4(),
            ..observation.clone()
        })
        .await
        .unwrap();
    let unknown_patient = store
        .commit_observation(&NewObservation {
            id: Uuid::new_v4(),
            patient_id: Uuid::new_v4(),
            ts: Timestamp(6_000_000),
            readings: vec![reading(
                device.as_str(),
                patient,
                Metric::RespiratoryRate,
                20.0,
                6_000_000,
            )],
            ..observation.clone()
        })
        .await;

    // Assert
    assert_eq!(first, vec![true, true]);
    assert_eq!(again, vec![false, false]);
    assert!(
        unknown_patient.is_err(),
        "an observation of no patient is refused"
    );
    let stored = store.device_readings(&device).await.unwrap();
    assert_eq!(
        stored.len(),
        2,
        "the refused observation stored nothing: {stored:?}"
    );
    assert!(stored.iter().all(|r| r.patient_id == patient));
    assert_eq!(
        store.patient(patient).await.unwrap().unwrap().protocols,
        vec!["default".to_owned(), "heart-failure".to_owned()]
    );
    assert!(store.patient(Uuid::new_v4()).await.unwrap().is_none());
}

const SECOND: i64 = 1_000_000;

fn status(device: &str, patient: Uuid, ts: i64, received: i64, battery: f64) -> StatusReport {
    StatusReport {
        device_id: DeviceId::parse(device).unwrap(),
        patient_id: patient,
        received_at: Timestamp(received * SECOND),
        ts: Timestamp(ts * SECOND),
        online: true,
        battery_pct: Some(battery),
        fault: None,
    }
}

async fn device_status_keeps_the_newest_status_and_every_heartbeat(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    let scale = DeviceId::parse("scale-1").unwrap();
    assert_eq!(store.device_status(&scale).await.unwrap(), None);
    // Act: a first status; then, in one batch, its redelivery, an older status
    // uploaded late (with a fault), and a newer one with a low battery.
    let first = store
        .record_statuses(&[status("scale-1", patient, 10, 11, 80.0)])
        .await
        .unwrap();
    let mut older = status("scale-1", patient, 5, 40, 99.0);
    older.fault = Some("E1".to_owned());
    let mut newer = status("scale-1", patient, 20, 41, 15.0);
    newer.fault = Some("E3".to_owned());
    let second = store
        .record_statuses(&[status("scale-1", patient, 10, 30, 80.0), older, newer])
        .await
        .unwrap();
    let unknown = store
        .record_statuses(&[status("nope-1", patient, 10, 11, 50.0)])
        .await;
    // Assert
    assert_eq!(first, vec![true]);
    assert_eq!(second, vec![false, false, true]);
    let stored = store.device_status(&scale).await.unwrap().unwrap();
    assert_eq!(stored.patient_id, patient);
    assert_eq!(stored.status_ts, Timestamp(20 * SECOND));
    assert_eq!(stored.battery_pct, Some(15.0));
    assert_eq!(stored.fault.as_deref(), Some("E3"));
    assert_eq!(stored.last_seen_at, Some(Timestamp(41 * SECOND)));
    assert!(stored.online);
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "a status needs a registered device: {unknown:?}"
    );
    // A last will is stored but is no heartbeat.
    let mut will = status("scale-1", patient, 50, 50, 15.0);
    will.online = false;
    will.battery_pct = None;
    assert_eq!(store.record_statuses(&[will]).await.unwrap(), vec![true]);
    let after_will = store.device_status(&scale).await.unwrap().unwrap();
    assert!(!after_will.online);
    assert_eq!(after_will.last_seen_at, Some(Timestamp(41 * SECOND)));
    assert_eq!(after_will.battery_pct, Some(15.0));
}

async fn missed_measurement_lookups_see_heartbeats_arrivals_and_event_times(store: Arc<dyn Store>) {
    // Arrange: a scale and a thermometer of one patient.
    let patient = seed(&store, "scale-1").await;
    store
        .add_device(&NewDevice {
            device_id: DeviceId::parse("thermo-1").unwrap(),
            profile_id: "thermometer".to_owned(),
            patient_id: patient,
        })
        .await
        .unwrap();
    let scale = DeviceId::parse("scale-1").unwrap();
    let thermometer = DeviceId::parse("thermo-1").unwrap();
    let day = 86_400 * SECOND;
    // Weighed on day 1 (arrived at once) and day 3 at 08:00, the latter
    // uploaded on day 4; the thermometer only sends heartbeats.
    let mut late = reading(
        "scale-1",
        patient,
        Metric::BodyWeight,
        80.4,
        3 * day + 8 * 3_600 * SECOND,
    );
    late.received_at = Timestamp(4 * day);
    store
        .commit_batch(
            &[
                reading("scale-1", patient, Metric::BodyWeight, 80.0, day),
                late.clone(),
            ],
            &[],
        )
        .await
        .unwrap();
    store
        .record_statuses(&[status(
            "thermo-1",
            patient,
            2 * 86_400,
            2 * 86_400 + 5,
            60.0,
        )])
        .await
        .unwrap();
    let devices = [scale.clone(), thermometer.clone()];
    let metrics = [Metric::BodyWeight, Metric::BodyTemperature];
    // Act
    let heard_since_day_2 = store
        .last_heard(&devices, &metrics, Timestamp(2 * day), Timestamp(-5 * day))
        .await
        .unwrap();
    let heard_since_day_3 = store
        .last_heard(&devices, &metrics, Timestamp(3 * day), Timestamp(-5 * day))
        .await
        .unwrap();
    let bounded = store
        .last_heard(
            &devices,
            &metrics,
            Timestamp(3 * day),
            Timestamp(3 * day + 9 * 3_600 * SECOND),
        )
        .await
        .unwrap();
    let first = |from: i64, to: i64, patient: Uuid| {
        let store = store.clone();
        let devices = devices.clone();
        async move {
            store
                .first_reading_between(
                    patient,
                    &devices,
                    Metric::BodyWeight,
                    Timestamp(from),
                    Timestamp(to),
                )
                .await
                .unwrap()
        }
    };
    // Assert: the scale was heard on day 4 (the late upload's arrival), the
    // thermometer on day 2 (its heartbeat).
    let mut heard = heard_since_day_2.clone();
    heard.sort();
    assert_eq!(
        heard,
        vec![
            (scale.clone(), Timestamp(4 * day)),
            (thermometer.clone(), Timestamp(2 * day + 5 * SECOND)),
        ]
    );
    assert_eq!(heard_since_day_3, vec![(scale.clone(), Timestamp(4 * day))]);
    assert!(
        bounded.is_empty(),
        "readings measured before measured_since are not looked at"
    );
    // Readings are found by event time, in a half-open window, for the patient only.
    assert_eq!(first(3 * day, 4 * day, patient).await, Some(late.ts));
    assert_eq!(first(day, 4 * day, patient).await, Some(Timestamp(day)));
    assert_eq!(first(day + 1, 3 * day, patient).await, None);
    assert_eq!(
        first(0, day, patient).await,
        None,
        "the window's end is open"
    );
    assert_eq!(first(0, 5 * day, Uuid::new_v4()).await, None);
}

async fn the_unresolved_alert_of_a_rule_is_found_until_it_is_resolved(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    let key = "heart-failure/weight_missed";
    assert_eq!(store.unresolved_alert(patient, key).await.unwrap(), None);
    let (raised, _) = store
        .raise_alert(&finding(patient, key, Priority::Low, 1_000))
        .await
        .unwrap();
    // Act + Assert
    let found = store.unresolved_alert(patient, key).await.unwrap().unwrap();
    assert_eq!(found.id, raised.id);
    assert_eq!(
        store.unresolved_alert(Uuid::new_v4(), key).await.unwrap(),
        None
    );
    let mut resolving = found.clone();
    let event = resolving
        .resolve_by_system(
            AutoResolution::LateUpload,
            serde_json::json!({"day": "2026-11-23"}),
            Timestamp(5_000),
        )
        .unwrap();
    store
        .save_transition(&resolving, AlertStatus::Open, &event)
        .await
        .unwrap();
    assert_eq!(store.unresolved_alert(patient, key).await.unwrap(), None);
    let stored = store.alert(raised.id).await.unwrap().unwrap();
    assert_eq!(stored.outcome, None);
    assert_eq!(stored.resolved_by.as_deref(), Some("system"));
    let events = store.alert_events(raised.id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "auto_resolved");
    assert_eq!(last.detail["reason"], "late_upload");
    assert_eq!(
        store.last_resolution(patient, key).await.unwrap(),
        Some(Timestamp(5_000))
    );
}

async fn alert_lists_filter_by_team_status_priority_and_patient_and_page(store: Arc<dyn Store>) {
    // Arrange: two teams; Assen's patient has three alerts, Emmen's one.
    let assen_patient = seed(&store, "scale-1").await;
    store.add_team("Emmen").await.unwrap();
    let emmen_patient = store
        .add_patient(&NewPatient {
            id: Uuid::new_v4(),
            team: "Emmen".to_owned(),
            display_name: "Mevrouw Hoekstra".to_owned(),
            birth_year: None,
            protocols: vec!["default".to_owned()],
        })
        .await
        .unwrap();
    let teams = store.list_teams().await.unwrap();
    let assen = teams.iter().find(|t| t.name == "Assen").unwrap().id;
    let mut medium = finding(assen_patient, "default/fever", Priority::Medium, 1_000);
    medium.score = 2_500.0;
    store.raise_alert(&medium).await.unwrap();
    let (mut low, _) = store
        .raise_alert(&finding(
            assen_patient,
            "default/spo2_low",
            Priority::Low,
            2_000,
        ))
        .await
        .unwrap();
    store
        .raise_alert(&finding(
            assen_patient,
            "default/hypotension",
            Priority::High,
            3_000,
        ))
        .await
        .unwrap();
    store
        .raise_alert(&finding(
            emmen_patient,
            "default/fever",
            Priority::High,
            4_000,
        ))
        .await
        .unwrap();
    let event = low
        .resolve("anouk", Outcome::NoActionNeeded, Timestamp(9_000))
        .unwrap();
    store
        .save_transition(&low, AlertStatus::Open, &event)
        .await
        .unwrap();
    let query = |change: &dyn Fn(&mut AlertQuery)| {
        let mut query = AlertQuery::default();
        change(&mut query);
        query
    };

    // Act
    let everyone = store.query_alerts(&AlertQuery::default()).await.unwrap();
    let assen_only = store
        .query_alerts(&query(&|q| q.teams = Some(vec![assen])))
        .await
        .unwrap();
    let no_team = store
        .query_alerts(&query(&|q| q.teams = Some(vec![])))
        .await
        .unwrap();
    let resolved = store
        .query_alerts(&query(&|q| q.statuses = vec![AlertStatus::Resolved]))
        .await
        .unwrap();
    let high = store
        .query_alerts(&query(&|q| q.priorities = vec![Priority::High]))
        .await
        .unwrap();
    let second_page = store
        .query_alerts(&query(&|q| {
            q.limit = 1;
            q.offset = 1;
        }))
        .await
        .unwrap();
    let history = store
        .query_alerts(&query(&|q| {
            q.patient_id = Some(assen_patient);
            q.statuses = vec![AlertStatus::Open, AlertStatus::Resolved];
            q.order = AlertOrder::Newest;
        }))
        .await
        .unwrap();

    // Assert: most urgent first — high (ties broken by score), then medium.
    let rules = |page: &AlertPage| -> Vec<(String, String)> {
        page.items
            .iter()
            .map(|item| {
                (
                    item.patient_display_name.clone(),
                    item.alert.rule_key.clone(),
                )
            })
            .collect()
    };
    assert_eq!(everyone.total, 3);
    assert_eq!(
        rules(&everyone),
        vec![
            ("Meneer Bakker".to_owned(), "default/hypotension".to_owned()),
            ("Mevrouw Hoekstra".to_owned(), "default/fever".to_owned()),
            ("Meneer Bakker".to_owned(), "default/fever".to_owned()),
        ]
    );
    assert_eq!(assen_only.total, 2);
    assert!(assen_only
        .items
        .iter()
        .all(|item| item.team == "Assen" && item.team_id == assen));
    assert_eq!(no_team.total, 0);
    assert_eq!(resolved.items.len(), 1);
    assert_eq!(
        resolved.items[0].alert.outcome,
        Some(Outcome::NoActionNeeded)
    );
    assert_eq!(high.total, 2);
    assert_eq!(second_page.items.len(), 1);
    assert_eq!(second_page.total, 3);
    assert_eq!(second_page.items[0].alert.rule_key, "default/fever");
    assert_eq!(
        second_page.items[0].patient_display_name,
        "Mevrouw Hoekstra"
    );
    assert_eq!(
        history
            .items
            .iter()
            .map(|i| i.alert.rule_key.as_str())
            .collect::<Vec<_>>(),
        vec!["default/hypotension", "default/spo2_low", "default/fever"],
        "newest first, open and resolved"
    );
}

async fn patient_readings_come_from_every_device_and_observations(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    let observation = observation_device(patient);
    store
        .commit_batch(
            &[
                reading("scale-1", patient, Metric::BodyWeight, 80.0, 1_000),
                reading("scale-1", patient, Metric::BodyWeight, 80.4, 2_000),
                reading(
                    observation.as_str(),
                    patient,
                    Metric::RespiratoryRate,
                    22.0,
                    1_500,
                ),
                // The same device id stored for someone else stays out.
                reading("scale-1", Uuid::new_v4(), Metric::BodyWeight, 99.0, 1_800),
            ],
            &[],
        )
        .await
        .unwrap();

    // Act
    let all = store
        .patient_readings(patient, None, Timestamp(0), Timestamp(10_000), 100)
        .await
        .unwrap();
    let weights = store
        .patient_readings(
            patient,
            Some(Metric::BodyWeight),
            Timestamp(1_000),
            Timestamp(2_000),
            100,
        )
        .await
        .unwrap();

    // Assert
    let values: Vec<f64> = all.iter().map(|r| r.value).collect();
    assert_eq!(values, vec![80.0, 22.0, 80.4]);
    assert_eq!(weights.len(), 1, "from inclusive, to exclusive");
    assert_eq!(weights[0].value, 80.0);
}

async fn committed_alert_changes_are_announced(store: Arc<dyn Store>) {
    // Arrange: a subscriber; on PostgreSQL its LISTEN starts in the background.
    let patient = seed(&store, "scale-1").await;
    let mut changes = store.alert_changes();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Act: raise, update with new evidence, claim.
    let (mut alert, _) = store
        .raise_alert(&finding(patient, "default/fever", Priority::Medium, 1_000))
        .await
        .unwrap();
    store
        .raise_alert(&finding(patient, "default/fever", Priority::Medium, 2_000))
        .await
        .unwrap();
    let event = alert.claim("anouk", Timestamp(3_000)).unwrap();
    store
        .save_transition(&alert, AlertStatus::Open, &event)
        .await
        .unwrap();
    let refused = alert.claim("bram", Timestamp(4_000));

    // Assert: three announcements in commit order, nothing for the refusal.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), changes.recv())
            .await
            .expect("a change within 5 s")
            .unwrap();
        assert_eq!((change.alert_id, change.patient_id), (alert.id, patient));
        seen.push(change.kind);
    }
    assert_eq!(seen, vec!["raised", "updated", "claimed"]);
    assert!(refused.is_err());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), changes.recv())
            .await
            .is_err()
    );
}

fn hash(password: &str) -> String {
    thuiswacht::auth::password::hash_password(password).unwrap()
}

fn new_user(username: &str, role: Role, teams: &[&str]) -> NewUser {
    NewUser {
        id: Uuid::new_v4(),
        username: username.to_owned(),
        display_name: format!("{username} (display)"),
        role,
        password_hash: hash("welkom"),
        teams: teams.iter().map(|team| (*team).to_owned()).collect(),
    }
}

fn audit(action: AuditAction, patient: Option<Uuid>, at: i64) -> NewAuditRecord {
    NewAuditRecord {
        at: Timestamp(at),
        actor: "anouk".to_owned(),
        actor_kind: ActorKind::User,
        actor_id: Some(Uuid::from_u128(1)),
        on_behalf_of: None,
        action,
        patient_id: patient,
        team_id: None,
        detail: serde_json::json!({"n": at}),
        source_address: Some("192.0.2.1".to_owned()),
        user_agent: Some("Firefox".to_owned()),
        shown: Vec::new(),
    }
}

async fn users_have_teams_unique_names_and_can_be_disabled(store: Arc<dyn Store>) {
    // Arrange
    store.add_team("Assen").await.unwrap();
    store.add_team("Emmen").await.unwrap();
    // Act
    let id = store
        .add_user(&new_user("anouk", Role::Nurse, &["Emmen", "Assen"]))
        .await
        .unwrap();
    let taken = store
        .add_user(&new_user("anouk", Role::Coordinator, &["Assen"]))
        .await;
    let unknown_team = store
        .add_user(&new_user("bram", Role::Nurse, &["Assen", "Nergenshuizen"]))
        .await;
    let admin = store
        .add_user(&new_user("beheer", Role::Admin, &[]))
        .await
        .unwrap();
    // Assert
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(
        matches!(&unknown_team, Err(StoreError::NotFound(what)) if what.contains("Nergenshuizen")),
        "{unknown_team:?}"
    );
    let users = store.list_users().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["anouk", "beheer"], "bram was not half-created");
    assert_eq!(users[0].id, id);
    assert_eq!(users[0].role, Role::Nurse);
    let teams: Vec<&str> = users[0].teams.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(teams, ["Assen", "Emmen"]);
    assert!(users[1].teams.is_empty());
    assert_eq!(users[1].id, admin);
    let credentials = store.user_credentials("anouk").await.unwrap().unwrap();
    assert!(thuiswacht::auth::password::verify_password(
        "welkom",
        &credentials.password_hash
    ));
    assert!(store.user_credentials("nobody").await.unwrap().is_none());
    let disabled = store.disable_user("anouk", Timestamp(77)).await.unwrap();
    assert_eq!(disabled.disabled_at, Some(Timestamp(77)));
    assert!(matches!(
        store.disable_user("nobody", Timestamp(78)).await,
        Err(StoreError::NotFound(_))
    ));
}

fn session(user_id: Uuid, secret: &str, created: i64, expires: i64) -> NewSession {
    NewSession {
        id: Uuid::new_v4(),
        secret_sha256: thuiswacht::api::token_hash(secret),
        user_id,
        csrf_token: format!("csrf-{secret}"),
        created_at: Timestamp(created),
        expires_at: Timestamp(expires),
    }
}

async fn sessions_end_when_idle_expired_revoked_or_disabled(store: Arc<dyn Store>) {
    // Arrange: sessions that last 100 s at most, 30 s idle.
    const S: i64 = 1_000_000;
    let t0 = 1_800_000_000 * S;
    store.add_team("Assen").await.unwrap();
    let user = store
        .add_user(&new_user("anouk", Role::Nurse, &["Assen"]))
        .await
        .unwrap();
    let sign_in = audit(AuditAction::SignIn, None, t0);
    for (secret, expires) in [("a", t0 + 100 * S), ("b", t0 + 50 * S), ("c", t0 + 100 * S)] {
        store
            .add_session(&session(user, secret, t0, expires), &sign_in)
            .await
            .unwrap();
    }
    let active = |secret: &'static str, at: i64, idle: i64| {
        let store = store.clone();
        async move {
            store
                .active_session(&thuiswacht::api::token_hash(secret), Timestamp(at), idle)
                .await
                .unwrap()
        }
    };
    // Act + Assert: use keeps a session alive, idleness ends it.
    let found = active("a", t0 + 20 * S, 30 * S).await.expect("active");
    assert_eq!(found.user.username, "anouk");
    assert_eq!(found.csrf_token, "csrf-a");
    assert_eq!(found.user.teams[0].name, "Assen");
    assert!(
        active("a", t0 + 45 * S, 30 * S).await.is_some(),
        "used at 20 s"
    );
    assert!(
        active("a", t0 + 80 * S, 30 * S).await.is_none(),
        "idle 35 s"
    );
    // The absolute end holds however busy the session is.
    assert!(active("b", t0 + 49 * S, 60 * S).await.is_some());
    assert!(active("b", t0 + 51 * S, 60 * S).await.is_none());
    // Sign-out, once.
    assert!(store
        .revoke_session(&thuiswacht::api::token_hash("c"), Timestamp(t0 + S))
        .await
        .unwrap());
    assert!(!store
        .revoke_session(&thuiswacht::api::token_hash("c"), Timestamp(t0 + 2 * S))
        .await
        .unwrap());
    assert!(active("c", t0 + 3 * S, 30 * S).await.is_none());
    assert!(active("nope", t0 + S, 30 * S).await.is_none());
    // Disabling a user ends her sessions at once.
    store
        .add_session(&session(user, "d", t0, t0 + 100 * S), &sign_in)
        .await
        .unwrap();
    assert!(active("d", t0 + 10 * S, 30 * S).await.is_some());
    store
        .disable_user("anouk", Timestamp(t0 + 11 * S))
        .await
        .unwrap();
    assert!(active("d", t0 + 12 * S, 30 * S).await.is_none());
}

async fn the_audit_trail_pages_a_patients_rows_newest_first(store: Arc<dyn Store>) {
    // Arrange: five rows about one patient, one about another, one about nobody.
    let patient = seed(&store, "scale-1").await;
    let other = Uuid::new_v4();
    let mut rows: Vec<NewAuditRecord> = (1..=5)
        .map(|n| audit(AuditAction::ReadReadings, Some(patient), n))
        .collect();
    rows[2].on_behalf_of = Some("dr. Jansen".to_owned());
    rows[2].actor_kind = ActorKind::Token;
    rows.push(audit(AuditAction::ReadPatient, Some(other), 6));
    rows.push(audit(AuditAction::SignIn, None, 7));
    // A worklist that showed both patients (and a third) is one row.
    let (team_a, team_b) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let mut worklist = audit(AuditAction::ReadWorklist, None, 8);
    worklist.shown = vec![(other, team_b), (patient, team_a), (Uuid::new_v4(), team_b)];
    rows.push(worklist);
    // Act
    store.append_audit(&rows).await.unwrap();
    store.append_audit(&[]).await.unwrap();
    let first = store.patient_audit(patient, None, 3).await.unwrap();
    let second = store
        .patient_audit(patient, Some(first[2].id), 3)
        .await
        .unwrap();
    // Assert
    let times: Vec<i64> = first.iter().chain(&second).map(|r| r.at.micros()).collect();
    assert_eq!(times, [8, 5, 4, 3, 2, 1]);
    assert!(first.windows(2).all(|pair| pair[0].id > pair[1].id));
    // The list row reads as a row about this patient, with their team.
    assert_eq!(first[0].action, "read_worklist");
    assert_eq!(first[0].patient_id, Some(patient));
    assert_eq!(first[0].team_id, Some(team_a));
    let third = &second[0];
    assert_eq!(third.action, "read_readings");
    assert_eq!(third.actor_kind, "token");
    assert_eq!(third.on_behalf_of.as_deref(), Some("dr. Jansen"));
    assert_eq!(third.patient_id, Some(patient));
    assert_eq!(third.detail, serde_json::json!({"n": 3}));
    assert_eq!(third.source_address.as_deref(), Some("192.0.2.1"));
    assert_eq!(third.user_agent.as_deref(), Some("Firefox"));
    let others = store.patient_audit(other, None, 10).await.unwrap();
    let others: Vec<(&str, Option<Uuid>)> = others
        .iter()
        .map(|row| (row.action.as_str(), row.team_id))
        .collect();
    assert_eq!(
        others,
        [("read_worklist", Some(team_b)), ("read_patient", None)]
    );
}

async fn break_glass_opens_one_patient_to_one_admin_until_it_expires(store: Arc<dyn Store>) {
    // Arrange
    let patient = seed(&store, "scale-1").await;
    let admin = store
        .add_user(&new_user("beheer", Role::Admin, &[]))
        .await
        .unwrap();
    let other_admin = store
        .add_user(&new_user("beheer2", Role::Admin, &[]))
        .await
        .unwrap();
    let grant = NewBreakGlass {
        id: Uuid::new_v4(),
        user_id: admin,
        patient_id: patient,
        reason: "112-melding, behandelend team onbereikbaar".to_owned(),
        at: Timestamp(1_000),
        expires_at: Timestamp(2_000),
    };
    let mut record = audit(AuditAction::BreakGlass, Some(patient), 1_000);
    record.detail = serde_json::json!({"reason": grant.reason});
    // Act
    store.add_break_glass(&grant, &record).await.unwrap();
    let unknown_patient = store
        .add_break_glass(
            &NewBreakGlass {
                id: Uuid::new_v4(),
                patient_id: Uuid::new_v4(),
                ..grant.clone()
            },
            &record,
        )
        .await;
    // Assert
    let active = store
        .active_break_glass(admin, patient, Timestamp(1_500))
        .await
        .unwrap()
        .expect("active grant");
    assert_eq!(active.id, grant.id);
    assert_eq!(active.reason, grant.reason);
    for (user, at) in [(admin, 999), (admin, 2_000), (other_admin, 1_500)] {
        assert!(
            store
                .active_break_glass(user, patient, Timestamp(at))
                .await
                .unwrap()
                .is_none(),
            "{user} at {at}"
        );
    }
    assert!(
        matches!(unknown_patient, Err(StoreError::NotFound(_))),
        "{unknown_patient:?}"
    );
    let trail = store.patient_audit(patient, None, 10).await.unwrap();
    assert_eq!(trail.len(), 1, "one grant, one row: {trail:?}");
    assert_eq!(trail[0].action, "break_glass");
    assert_eq!(trail[0].detail["reason"], grant.reason.as_str());
}

async fn tokens_reach_no_team_until_scoped(store: Arc<dyn Store>) {
    // Arrange
    store.add_team("Assen").await.unwrap();
    let assen = store.list_teams().await.unwrap()[0].id;
    let hash = thuiswacht::api::token_hash("tw_ecd");
    let id = store
        .add_token("ECD", TokenScope::Read, &hash)
        .await
        .unwrap();
    let unscoped = store.find_token(&hash).await.unwrap().unwrap();
    // Act + Assert
    assert_eq!(unscoped.teams, TeamScope::Teams(Vec::new()));
    store
        .set_token_teams(id, &TeamScope::Teams(vec![assen]))
        .await
        .unwrap();
    assert_eq!(
        store.find_token(&hash).await.unwrap().unwrap().teams,
        TeamScope::Teams(vec![assen])
    );
    store.set_token_teams(id, &TeamScope::All).await.unwrap();
    assert_eq!(
        store.find_token(&hash).await.unwrap().unwrap().teams,
        TeamScope::All
    );
    assert!(matches!(
        store.set_token_teams(Uuid::new_v4(), &TeamScope::All).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store
        .set_token_teams(id, &TeamScope::Teams(vec![Uuid::new_v4()]))
        .await
        .is_err());
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
    personal_settings_are_versioned_with_author_and_reason,
    alert_lists_filter_by_team_status_priority_and_patient_and_page,
    patient_readings_come_from_every_device_and_observations,
    committed_alert_changes_are_announced,
    observations_store_their_readings_once,
    device_status_keeps_the_newest_status_and_every_heartbeat,
    missed_measurement_lookups_see_heartbeats_arrivals_and_event_times,
    the_unresolved_alert_of_a_rule_is_found_until_it_is_resolved,
    users_have_teams_unique_names_and_can_be_disabled,
    sessions_end_when_idle_expired_revoked_or_disabled,
    the_audit_trail_pages_a_patients_rows_newest_first,
    break_glass_opens_one_patient_to_one_admin_until_it_expires,
    tokens_reach_no_team_until_scoped,
    newest_readings_per_series_are_each_series_newest_within_the_window,
);

/// The database itself refuses to change or remove audit rows, whatever
/// the application does.
async fn assert_audit_rows_cannot_change(
    store: &Arc<dyn Store>,
    mut execute: impl FnMut(
        &'static str,
    ) -> futures_util::future::BoxFuture<'static, Result<u64, sqlx::Error>>,
    statements: &[&'static str],
) {
    let patient = Uuid::new_v4();
    store
        .append_audit(&[audit(AuditAction::ReadPatient, Some(patient), 1)])
        .await
        .unwrap();
    for statement in statements {
        let refused = execute(statement).await;
        let error = refused.expect_err(statement).to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    let rows = store.patient_audit(patient, None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, "anouk", "unchanged");
}

#[tokio::test]
async fn postgres_refuses_update_delete_and_truncate_on_the_audit_log() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    assert_audit_rows_cannot_change(
        &store,
        |statement| {
            let pool = pool.clone();
            Box::pin(async move {
                sqlx::query(statement)
                    .execute(&pool)
                    .await
                    .map(|done| done.rows_affected())
            })
        },
        &[
            "update audit_log set actor = 'someone else'",
            "delete from audit_log",
            "truncate audit_log",
        ],
    )
    .await;
}

#[tokio::test]
async fn sqlite_refuses_update_and_delete_on_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    thuiswacht::app::install_crypto_provider();
    let mut settings = Settings::defaults();
    settings.data_dir = dir.path().to_owned();
    let sqlite = SqliteStore::connect(&settings).await.unwrap();
    sqlite.migrate().await.unwrap();
    let pool = sqlite.pool().clone();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    assert_audit_rows_cannot_change(
        &store,
        |statement| {
            let pool = pool.clone();
            Box::pin(async move {
                sqlx::query(statement)
                    .execute(&pool)
                    .await
                    .map(|done| done.rows_affected())
            })
        },
        &[
            "update audit_log set actor = 'someone else'",
            "delete from audit_log where id = 1",
            "delete from audit_log",
        ],
    )
    .await;
}

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
