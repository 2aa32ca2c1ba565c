//! Triage throughput, in readings per second, of the synchronous core.
//!
//! Sizes: batches of 1,000 readings, about what 100 patients send in ten
//! minutes with a wrist wearable each, so the per-reading figure includes a
//! warm, full ring buffer and not a cold start. The patient follows `default`
//! plus `heart-failure` (11 evaluated rules), the heaviest common combination
//! in the simulator.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use thuiswacht::domain::{Metric, Timestamp};
use thuiswacht::protocols::{load_dir, Protocol};
use thuiswacht::triage::baseline::personal_baseline;
use thuiswacht::triage::news2::{self, Consciousness, SpO2Scale, VitalSet};
use thuiswacht::triage::patient_state::{PatientState, RuleState, HISTORY_CAPACITY};
use thuiswacht::triage::rules::{self, Trigger};
use thuiswacht::triage::TriageEngine;
use uuid::Uuid;

const BATCH: usize = 1_000;
const MINUTE: i64 = 60_000_000;

fn protocols() -> BTreeMap<String, Protocol> {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")).expect("alerts/ loads")
}

/// A spot-measurement pattern: pulse, SpO2, blood pressure, temperature,
/// weight, with values that wander around normal and now and then cross a
/// threshold, so some rules fire and recover.
fn mixed_readings(start_minute: i64, count: usize) -> Vec<(Metric, f64, Timestamp)> {
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

fn warm_engine(patient: Uuid) -> TriageEngine {
    let mut engine = TriageEngine::new(protocols());
    engine
        .register_patient(patient, &["default".to_owned(), "heart-failure".to_owned()])
        .expect("protocols exist");
    let mut findings = Vec::new();
    for (metric, value, ts) in mixed_readings(0, 6 * HISTORY_CAPACITY) {
        engine.evaluate_measurement(patient, metric, value, ts, &mut findings);
    }
    engine
}

fn bench_full_evaluation(c: &mut Criterion) {
    let patient = Uuid::from_u128(7);
    let engine = warm_engine(patient);
    let readings = mixed_readings(10 * 6 * HISTORY_CAPACITY as i64, BATCH);
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("full_evaluation", |b| {
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
    let fever = protocols()["default"]
        .rules
        .iter()
        .find(|rule| rule.id == "fever")
        .cloned()
        .expect("default has a fever rule");
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

fn bench_news2_full_set(c: &mut Criterion) {
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
    group.finish();
}

fn bench_baseline_update(c: &mut Criterion) {
    // A full 14-day SpO2 history: the worst case of the median/MAD.
    let mut patient = PatientState::new(Vec::new(), false);
    for i in 0..HISTORY_CAPACITY as i64 {
        let value = 95.0 + ((i * 7) % 5) as f64 * 0.5;
        patient.record(Metric::Spo2, Timestamp(i * 5 * 60 * MINUTE), value);
    }
    let before = Timestamp(HISTORY_CAPACITY as i64 * 5 * 60 * MINUTE);
    let mut group = c.benchmark_group("triage");
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline_update", |b| {
        b.iter(|| {
            personal_baseline(
                black_box(patient.history(Metric::Spo2)),
                Metric::Spo2,
                before,
                false,
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_threshold_reading,
    bench_news2_full_set,
    bench_full_evaluation,
    bench_baseline_update
);
criterion_main!(benches);
