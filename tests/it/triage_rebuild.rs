//! The start-up rebuild of triage state against the real PostgreSQL and
//! SQLite: a simulated population (spot checks several times a day, and
//! wearables sending heart rate every minute) is stored up to a restart
//! moment; the state the bounded rebuild restores from the database is
//! compared with the state of an engine that saw every reading, and both are
//! then fed the same readings after the restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use thuiswacht::alert_book::stage::{rebuild_lookback_hours, TriageStage};
use thuiswacht::domain::{DeviceId, Metric, Reading, Timestamp};
use thuiswacht::protocols::{load_dir, Protocol, Rule, RuleKind};
use thuiswacht::simulate::{register, Population};
use thuiswacht::store::{SqliteStore, Store};
use thuiswacht::triage::patient_state::MaybeTime;
use thuiswacht::triage::urgency::{Finding, SECOND_CONTACT_DAYS};
use thuiswacht::triage::TriageEngine;
use uuid::Uuid;

use crate::helpers::{repo_path, TestDatabase};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

/// Six people over 30 days; with this seed two wear a wearable (heart rate
/// every minute, SpO2 every ten) and both have an infection under way at the
/// restart: the hardest case for a bounded rebuild (checked below).
const SEED: u64 = 36;
const PATIENTS: usize = 6;
const DAYS: u32 = 30;
/// The restart: day 21 at 10:00, two days of readings follow it.
const RESTART_HOURS: i64 = 21 * 24 + 10;
const AFTER_HOURS: i64 = 48;

/// One reading of the simulation: (event time, device id, metric, value, patient).
type SimReading = (Timestamp, String, Metric, f64, Uuid);

/// The protocols of `alerts/` without their anomaly rules. The anomaly
/// statistics are running (exponentially weighted) means and covariances
/// that the rebuild re-learns from the lookback's readings only: close to,
/// not equal to, those of a run that saw every reading. An anomaly raise
/// can also cover, or be covered by, another rule's (see the engine's
/// "Covered findings"), so it would change what other rules' alerts say
/// as well; every other rule is compared exactly.
fn protocols() -> BTreeMap<String, Protocol> {
    let mut protocols = load_dir(&repo_path("alerts")).expect("alerts/ loads");
    for protocol in protocols.values_mut() {
        protocol.rules.retain(|rule| rule.kind != RuleKind::Anomaly);
    }
    protocols
}

/// Every stored reading of the population in replay order: event time,
/// then device id, then metric (what the rebuild does for ties).
fn readings(population: &Population) -> Vec<SimReading> {
    let mut readings = Vec::new();
    for day in 0..population.days {
        for message in population.day(day).into_iter().filter(|m| !m.faulty) {
            let patient = population
                .patients
                .iter()
                .find(|p| p.devices.iter().any(|d| d.device_id == message.device_id))
                .expect("every device belongs to a patient");
            for (metric, value, ts) in message.readings {
                readings.push((ts, message.device_id.clone(), metric, value, patient.id));
            }
        }
    }
    readings.sort_by(|a, b| (a.0, &a.1, a.2.code()).cmp(&(b.0, &b.1, b.2.code())));
    readings
}

fn engine_for(population: &Population) -> TriageEngine {
    let mut engine = TriageEngine::new(protocols());
    for patient in &population.patients {
        engine
            .register_patient(patient.id, &patient.protocols)
            .expect("simulated protocols exist");
    }
    engine
}

fn feed(engine: &mut TriageEngine, readings: &[SimReading]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (ts, _, metric, value, patient) in readings {
        engine.evaluate_measurement(*patient, *metric, *value, *ts, &mut findings);
    }
    findings
}

async fn store_readings(store: &Arc<dyn Store>, readings: &[SimReading]) {
    for chunk in readings.chunks(4_000) {
        let batch: Vec<Reading> = chunk
            .iter()
            .map(|(ts, device, metric, value, patient)| Reading {
                device_id: DeviceId::parse(device).unwrap(),
                patient_id: *patient,
                metric: *metric,
                value: *value,
                ts: *ts,
                received_at: *ts,
            })
            .collect();
        store.commit_batch(&batch, &[]).await.unwrap();
    }
}

/// The metrics a wearable sends: its series hold more readings than the
/// rebuild reads, so rule memory on them reaches back only as far as the
/// readings read (see `alert_book::stage`).
const WEARABLE_METRICS: [Metric; 4] = [
    Metric::HeartRate,
    Metric::Steps,
    Metric::Spo2,
    Metric::SkinTemperature,
];

/// Whether the rule's memory (hysteresis, pending time, raise history) is
/// fully rebuilt for this patient: not when it reads a metric a wearable of
/// the patient sends (NEWS2 reads heart rate and SpO2).
fn memory_rebuilt(rule: &Rule, wearer: bool) -> bool {
    if !wearer {
        return true;
    }
    match rule.metric {
        Some(metric) => !WEARABLE_METRICS.contains(&metric),
        None => rule.kind != RuleKind::News2,
    }
}

/// The findings as the alert book sees them, comparable across engines.
/// Anomaly findings are left out (see the state comparison), also where an
/// alert names one it covers. For rules whose memory is not fully rebuilt, the second-contact alarm
/// signal (a raise of the same rule within the last week, which may lie
/// before the readings read) and the NTS level it raises are left out.
fn comparable(findings: &[Finding], wearers: &[Uuid]) -> Vec<String> {
    let protocols = protocols();
    findings
        .iter()
        // Anomaly findings: see the state comparison.
        .filter(|f| f.kind != RuleKind::Anomaly)
        .map(|f| {
            let (protocol_id, rule_id) = f.rule_id.split_once('/').unwrap();
            let rule = protocols[protocol_id]
                .rules
                .iter()
                .find(|rule| rule.id == rule_id)
                .unwrap();
            let mut explanation = serde_json::to_value(&f.explanation).unwrap();
            // An anomaly raise held by this alert: as anomaly findings.
            explanation["factors"]
                .as_array_mut()
                .unwrap()
                .retain(|factor| {
                    let Some(held) = factor.get("rule_id").and_then(|id| id.as_str()) else {
                        return true;
                    };
                    let (protocol_id, rule_id) = held.split_once('/').unwrap();
                    protocols[protocol_id]
                        .rules
                        .iter()
                        .any(|rule| rule.id == rule_id && rule.kind != RuleKind::Anomaly)
                });
            let mut nts = format!("{:?}", f.nts_level);
            if !memory_rebuilt(rule, wearers.contains(&f.patient_id)) {
                let second_contact =
                    serde_json::json!({"factor": "alarm_signal", "signal": "second_contact"});
                explanation["factors"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|factor| *factor != second_contact);
                nts = "-".to_owned();
            }
            // A wearer's score carries the sustained NEWS2 of the last
            // twelve hours, which reads the minute-rate pulse the rebuild
            // keeps only for its last hour: compare the priority band.
            let score = if wearers.contains(&f.patient_id) {
                format!("band {}", (f.score / 1000.0).floor())
            } else {
                format!("{:.9}", f.score)
            };
            format!(
                "{} {} {:?} {} {:?} {nts} {score} {explanation}",
                f.patient_id,
                f.rule_id,
                f.transition,
                f.ts.micros(),
                f.priority,
            )
        })
        .collect()
}

async fn rebuild_restores_what_an_uninterrupted_run_holds(store: Arc<dyn Store>) {
    // Arrange: the population's history up to the restart is stored, and an
    // engine has seen all of it.
    let end = Timestamp(1_763_800_000_000_000);
    let population = Population::generate(SEED, PATIENTS, DAYS, end);
    let restart = population.start.plus_micros(RESTART_HOURS * HOUR);
    let all = readings(&population);
    let (before, rest): (Vec<SimReading>, Vec<SimReading>) =
        all.into_iter().partition(|r| r.0 <= restart);
    let after: Vec<SimReading> = rest
        .into_iter()
        .filter(|r| r.0 <= restart.plus_micros(AFTER_HOURS * HOUR))
        .collect();
    let wearers: Vec<Uuid> = population
        .patients
        .iter()
        .filter(|p| p.devices.iter().any(|d| d.profile == "wearable"))
        .map(|p| p.id)
        .collect();
    assert!(
        population
            .deteriorations
            .iter()
            .any(|d| wearers.contains(&d.patient_id) && d.onset < restart && d.end > restart),
        "a wearer deteriorates across the restart"
    );
    register(&store, &population).await.unwrap();
    store_readings(&store, &before).await;
    let mut uninterrupted = engine_for(&population);
    feed(&mut uninterrupted, &before);

    // Act
    let stage = TriageStage {
        store: store.clone(),
        protocols: Arc::new(thuiswacht::protocols::catalog::Catalog::fixed(protocols())),
        reraise_after: Duration::from_secs(0),
    };
    let (mut rebuilt, registered, report) = stage.rebuild_with_report(restart).await.unwrap();

    // Assert: far fewer readings read than stored, yet every history holds
    // what the uninterrupted one holds within the lookback...
    assert_eq!(registered.len(), PATIENTS);
    let since = restart.plus_micros(-rebuild_lookback_hours(&protocols()) * HOUR);
    assert_eq!(report.since, since);
    assert!(
        report.readings_read * 5 < before.len(),
        "read {} of {} stored readings",
        report.readings_read,
        before.len()
    );
    let protocols = protocols();
    for patient in &population.patients {
        let wearer = wearers.contains(&patient.id);
        let expected = uninterrupted.patient(&patient.id).unwrap();
        let actual = rebuilt.patient(&patient.id).unwrap();
        for metric in Metric::ALL {
            let want: Vec<(Timestamp, f64)> = expected
                .history(metric)
                .iter()
                .filter(|(ts, _)| *ts >= since)
                .collect();
            let got: Vec<(Timestamp, f64)> = actual.history(metric).iter().collect();
            assert_eq!(got, want, "{metric:?} of patient {}", patient.index);
        }
        // ...every rule is active exactly when it is in the uninterrupted
        // run, and where its memory is rebuilt, that memory is the same.
        assert_eq!(expected.rules.len(), actual.rules.len());
        for (want, got) in expected.rules.iter().zip(&actual.rules) {
            let rule = &protocols.values().nth(want.protocol()).unwrap().rules[want.rule()];
            let context = format!("rule {} of patient {}", rule.id, patient.index);
            if rule.kind == RuleKind::Anomaly {
                // The anomaly statistics are running (exponentially
                // weighted) means and covariances: the rebuild re-learns
                // them from the lookback's readings only, so they are close
                // to, not equal to, those of a run that saw every reading.
                continue;
            }
            assert_eq!(got.state.active, want.state.active, "{context}");
            if memory_rebuilt(rule, wearer) {
                let recent = |raised: [MaybeTime; 4]| -> Vec<Timestamp> {
                    raised
                        .into_iter()
                        .filter_map(MaybeTime::get)
                        .filter(|ts| ts.micros() >= restart.micros() - SECOND_CONTACT_DAYS * DAY)
                        .collect()
                };
                assert_eq!(
                    got.state.pending_since, want.state.pending_since,
                    "{context}"
                );
                assert_eq!(
                    recent(got.state.raised_at),
                    recent(want.state.raised_at),
                    "{context}"
                );
                assert_eq!(
                    got.state.second_contact, want.state.second_contact,
                    "{context}"
                );
                if wearer {
                    // See `comparable`: the sustained NEWS2 in the score.
                    assert_eq!(
                        (got.state.last_score / 1000.0).floor(),
                        (want.state.last_score / 1000.0).floor(),
                        "{context}"
                    );
                } else {
                    assert_eq!(got.state.last_score, want.state.last_score, "{context}");
                }
            }
        }
    }
    // And both say the same about the two days after the restart.
    let findings_uninterrupted = comparable(&feed(&mut uninterrupted, &after), &wearers);
    let findings_rebuilt = comparable(&feed(&mut rebuilt, &after), &wearers);
    assert!(findings_uninterrupted.len() > 100);
    assert!(findings_uninterrupted
        .iter()
        .any(|f| f.contains(" Raised ")));
    for (want, got) in findings_uninterrupted.iter().zip(&findings_rebuilt) {
        assert_eq!(got, want);
    }
    assert_eq!(findings_rebuilt.len(), findings_uninterrupted.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rebuild_restores_what_an_uninterrupted_run_holds() {
    let store = TestDatabase::create().await.store().await;
    rebuild_restores_what_an_uninterrupted_run_holds(store).await;
}

#[tokio::test]
async fn sqlite_rebuild_restores_what_an_uninterrupted_run_holds() {
    thuiswacht::app::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = thuiswacht::settings::Settings::defaults();
    settings.data_dir = dir.path().to_owned();
    let store = SqliteStore::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    rebuild_restores_what_an_uninterrupted_run_holds(Arc::new(store)).await;
}
