//! Triage throughput, in readings per second, of the synchronous core.
//!
//! - `triage/full_evaluation`: one simulated day of a population of 200
//!   patients (the simulator's mix: every patient follows `default`, 30 %
//!   also `heart-failure`, 22 % `copd`, 45 % `hypertension`, 20 % `diabetes`;
//!   spot devices twice a day and a wrist wearable sending heart rate and
//!   steps every minute for one in five), after three simulated days of
//!   warm-up so that histories and personal baselines are full. The readings
//!   arrive interleaved across patients in event-time order, as from the
//!   store, so the per-reading figure includes the patient lookup and a state
//!   that does not sit in the L1 cache. Most readings come from the
//!   wearables, as in production.
//! - `triage/full_evaluation_spot`: the earlier synthetic case, one patient
//!   with `default` and `heart-failure` sending a spot measurement every
//!   five minutes that half the rules read and many of which cross a
//!   threshold: a worst case, not a typical one.
//! - `triage/threshold_reading`: one threshold rule over a warm temperature
//!   history, a value wandering across the threshold.
//! - `triage/news2_full_set` and `triage/news2_current`: the NEWS2 chart over
//!   complete vital sets, and NEWS2 from a patient's newest values.
//! - `triage/trend_reading`: the COPD "heart rate rising" trend on a wearable's
//!   minute-by-minute heart rate, the worst case of the trend rules (a full
//!   history inside the window, each level smoothed over an hour).
//! - `triage/anomaly_update`: a reading recorded, its metric's personal
//!   baseline (median and MAD over the full 64-reading window), the
//!   patient's deterioration index and the multivariate (Mahalanobis) score.
//!
//! Batches of 1,000 readings are about what 100 patients send in ten
//! minutes with a wearable each.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use thuiswacht::domain::{Metric, Timestamp};
use thuiswacht::protocols::{load_dir, Protocol};
use thuiswacht::simulate::Population;
use thuiswacht::triage::baseline::personal_baseline;
use thuiswacht::triage::evaluation::{day_readings, DeviceOwners, SimulatedReading};
use thuiswacht::triage::news2::{self, Consciousness, SpO2Scale, VitalSet};
use thuiswacht::triage::patient_state::{PatientState, RuleState, HISTORY_CAPACITY};
use thuiswacht::triage::rules::{self, Trigger};
use thuiswacht::triage::TriageEngine;
use uuid::Uuid;

const BATCH: usize = 1_000;
const MINUTE: i64 = 60_000_000;
/// The simulated population's last day ends at 2026-01-01T00:00:00Z.
const SIMULATION_END: Timestamp = Timestamp(1_767_225_600 * 1_000_000 - 1);
const POPULATION_PATIENTS: usize = 200;
const WARM_UP_DAYS: u32 = 3;

fn protocols() -> BTreeMap<String, Protocol> {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")).expect("alerts/ loads")
}

fn protocol_rule(protocol: &str, rule: &str) -> thuiswacht::protocols::Rule {
    protocols()[protocol]
        .rules
        .iter()
        .find(|candidate| candidate.id == rule)
        .cloned()
        .expect("the rule exists")
}

/// Returns an engine warmed up with the first days of a simulated population
/// and the readings of the day after.
fn warm_population() -> (TriageEngine, Vec<SimulatedReading>) {
    let population =
        Population::generate(2026, POPULATION_PATIENTS, WARM_UP_DAYS + 1, SIMULATION_END);
    let owners = DeviceOwners::of(&population);
    let mut engine = TriageEngine::new(protocols());
    for patient in &population.patients {
        engine
            .register_patient(patient.id, &patient.protocols)
            .expect("simulated protocols exist");
    }
    let mut findings = Vec::new();
    for day in 0..WARM_UP_DAYS {
        for reading in day_readings(&population, &owners, day) {
            engine.evaluate_measurement(
                reading.patient_id,
                reading.metric,
                reading.value,
                reading.ts,
                &mut findings,
            );
            findings.clear();
        }
    }
    (engine, day_readings(&population, &owners, WARM_UP_DAYS))
}

fn bench_full_evaluation(c: &mut Criterion) {
    let (engine, readings) = warm_population();
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.sample_size(20);
    group.bench_function("full_evaluation", |b| {
        b.iter_batched(
            || (engine.clone(), Vec::with_capacity(1024)),
            |(mut engine, mut findings)| {
                for reading in &readings {
                    engine.evaluate_measurement(
                        reading.patient_id,
                        reading.metric,
                        reading.value,
                        reading.ts,
                        &mut findings,
                    );
                    // The triage stage drains findings after each batch.
                    if findings.len() >= 1024 {
                        findings.clear();
                    }
                }
                (engine, findings)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// A spot-measurement pattern: pulse, SpO2, blood pressure, temperature,
/// weight, with values that wander around normal and now and then cross a
/// threshold, so some rules fire and recover.
fn spot_readings(start_minute: i64, count: usize) -> Vec<(Metric, f64, Timestamp)> {
    (0..count)
        .map(|i| {
            let ts = Timestamp((start_minute + i as i64 * 5) * MINUTE);
            let wave = (i as f64 * 0.37).sin();
            match i % 6 {
                0 => (Metric::HeartRate, 78.0 + 30.0 * wave, ts),
                1 => (Metric::Spo2, 95.0 + 3.0 * wave, ts),
                2 => (Metric::BpSystolic, 120.0 + 30.0 * wave, ts),
                3 => (Metric::BpDiastolic, 75.0 + 10.0 * wave, ts),
                4 => (Metric::BodyTemperature, 37.4 + 0.8 * wave, ts),
                _ => (Metric::BodyWeight, 80.0 + 1.5 * wave, ts),
            }
        })
        .collect()
}

/// One patient following `default` and `heart-failure` (the heaviest common
/// combination) sending only spot measurements that every rule reads, many
/// of them past a threshold: harder than any real patient, a worst case next
/// to `full_evaluation`.
fn bench_full_evaluation_spot(c: &mut Criterion) {
    let patient = Uuid::from_u128(7);
    let mut engine = TriageEngine::new(protocols());
    engine
        .register_patient(patient, &["default".to_owned(), "heart-failure".to_owned()])
        .expect("protocols exist");
    let mut findings = Vec::new();
    for (metric, value, ts) in spot_readings(0, 6 * HISTORY_CAPACITY) {
        engine.evaluate_measurement(patient, metric, value, ts, &mut findings);
    }
    let readings = spot_readings(10 * 6 * HISTORY_CAPACITY as i64, BATCH);
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("full_evaluation_spot", |b| {
        b.iter_batched(
            || (engine.clone(), Vec::with_capacity(BATCH)),
            |(mut engine, mut findings)| {
                for (metric, value, ts) in &readings {
                    engine.evaluate_measurement(patient, *metric, *value, *ts, &mut findings);
                }
                (engine, findings)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_threshold_reading(c: &mut Criterion) {
    let fever = protocol_rule("default", "fever");
    let mut warm = PatientState::new(Vec::new(), false);
    for i in 0..HISTORY_CAPACITY as i64 {
        warm.record(Metric::BodyTemperature, Timestamp(i * MINUTE), 36.8);
    }
    let readings: Vec<(f64, Timestamp)> = (0..BATCH)
        .map(|i| {
            let ts = Timestamp((HISTORY_CAPACITY + i) as i64 * MINUTE);
            (37.5 + (i as f64 * 0.3).sin(), ts)
        })
        .collect();
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("threshold_reading", |b| {
        b.iter_batched(
            || (warm.clone(), RuleState::default()),
            |(mut patient, mut state)| {
                for (value, ts) in &readings {
                    patient.record(Metric::BodyTemperature, *ts, *value);
                    let trigger = Trigger {
                        metric: Metric::BodyTemperature,
                        ts: *ts,
                        late: false,
                    };
                    black_box(rules::evaluate(&fever, &patient, trigger, &mut state));
                }
                patient
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_news2(c: &mut Criterion) {
    let sets: Vec<VitalSet> = (0..BATCH)
        .map(|i| {
            let wave = (i as f64 * 0.41).sin();
            VitalSet {
                respiration_rate: Some(18.0 + 6.0 * wave),
                spo2: Some(94.0 + 3.0 * wave),
                on_oxygen: Some(i % 7 == 0),
                systolic: Some(115.0 + 25.0 * wave),
                pulse: Some(85.0 + 30.0 * wave),
                consciousness: Some(Consciousness::Alert),
                temperature: Some(37.2 + wave),
                scale: if i % 5 == 0 {
                    SpO2Scale::Two
                } else {
                    SpO2Scale::One
                },
            }
        })
        .collect();
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("news2_full_set", |b| {
        b.iter(|| {
            for set in &sets {
                black_box(news2::score(black_box(set)));
            }
        })
    });

    // A patient measuring pulse, SpO2, pressure, temperature and
    // respiration rate; each reading is followed by the NEWS2 of the
    // patient's newest values.
    let metrics = [
        Metric::HeartRate,
        Metric::Spo2,
        Metric::BpSystolic,
        Metric::BodyTemperature,
        Metric::RespiratoryRate,
    ];
    let readings: Vec<(Metric, f64, Timestamp)> = (0..BATCH)
        .map(|i| {
            let wave = (i as f64 * 0.37).sin();
            let metric = metrics[i % metrics.len()];
            let value = match metric {
                Metric::HeartRate => 85.0 + 30.0 * wave,
                Metric::Spo2 => 94.0 + 3.0 * wave,
                Metric::BpSystolic => 115.0 + 25.0 * wave,
                Metric::BodyTemperature => 37.2 + wave,
                _ => 18.0 + 6.0 * wave,
            };
            (metric, value, Timestamp(i as i64 * 10 * MINUTE))
        })
        .collect();
    let mut warm = PatientState::new(Vec::new(), false);
    for (metric, value, ts) in &readings {
        warm.record(*metric, Timestamp(ts.micros() - 10_000 * MINUTE), *value);
    }
    group.bench_function("news2_current", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut patient| {
                for (metric, value, ts) in &readings {
                    patient.record(*metric, *ts, *value);
                    black_box(rules::current_news2(&patient));
                }
                patient
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_trend_reading(c: &mut Criterion) {
    let rising = protocol_rule("copd", "heart_rate_rising");
    let mut warm = PatientState::new(Vec::new(), true);
    for i in 0..HISTORY_CAPACITY as i64 {
        warm.record(Metric::HeartRate, Timestamp(i * MINUTE), 72.0);
    }
    // A wearable's heart rate, one a minute, drifting up and down.
    let readings: Vec<(f64, Timestamp)> = (0..BATCH)
        .map(|i| {
            let ts = Timestamp((HISTORY_CAPACITY + i) as i64 * MINUTE);
            let noise = ((i * 7919) % 13) as f64 - 6.0;
            (80.0 + 15.0 * (i as f64 * 0.01).sin() + noise, ts)
        })
        .collect();
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("trend_reading", |b| {
        b.iter_batched(
            || (warm.clone(), RuleState::default()),
            |(mut patient, mut state)| {
                for (value, ts) in &readings {
                    patient.record(Metric::HeartRate, *ts, *value);
                    let trigger = Trigger {
                        metric: Metric::HeartRate,
                        ts: *ts,
                        late: false,
                    };
                    black_box(rules::evaluate(&rising, &patient, trigger, &mut state));
                }
                patient
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_anomaly_update(c: &mut Criterion) {
    // Spot measurements of a home patient, several a day, with full
    // 14-day histories: the worst case of the median and MAD.
    let patient_id = Uuid::from_u128(7);
    let metrics = [
        Metric::HeartRate,
        Metric::Spo2,
        Metric::BpSystolic,
        Metric::BpDiastolic,
        Metric::BodyTemperature,
        Metric::RespiratoryRate,
    ];
    let reading = |i: usize| {
        let wave = (i as f64 * 0.37).sin();
        let metric = metrics[i % metrics.len()];
        let value = match metric {
            Metric::HeartRate => 78.0 + 10.0 * wave,
            Metric::Spo2 => 95.0 + 2.0 * wave,
            Metric::BpSystolic => 130.0 + 15.0 * wave,
            Metric::BpDiastolic => 78.0 + 8.0 * wave,
            Metric::BodyTemperature => 36.9 + 0.4 * wave,
            _ => 16.0 + 3.0 * wave,
        };
        // Six metrics every five hours: about one measurement round a day each.
        (metric, value, Timestamp(i as i64 * 50 * MINUTE))
    };
    let mut engine = TriageEngine::new(protocols());
    engine
        .register_patient(patient_id, &["default".to_owned()])
        .expect("default exists");
    let mut findings = Vec::new();
    let warm_up = metrics.len() * HISTORY_CAPACITY;
    for i in 0..warm_up {
        let (metric, value, ts) = reading(i);
        engine.evaluate_measurement(patient_id, metric, value, ts, &mut findings);
    }
    let readings: Vec<(Metric, f64, Timestamp)> = (warm_up..warm_up + BATCH).map(reading).collect();
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("anomaly_update", |b| {
        b.iter_batched(
            || engine.patient(&patient_id).expect("registered").clone(),
            |mut patient| {
                for (metric, value, ts) in &readings {
                    patient.record(*metric, *ts, *value);
                    black_box(personal_baseline(
                        patient.history(*metric),
                        *metric,
                        *ts,
                        false,
                    ));
                    black_box(thuiswacht::triage::baseline::multivariate(&patient));
                }
                patient
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_threshold_reading,
    bench_news2,
    bench_trend_reading,
    bench_anomaly_update,
    bench_full_evaluation,
    bench_full_evaluation_spot,
);
criterion_main!(benches);
