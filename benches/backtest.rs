//! Backtest ("preview") of a protocol change on 1,000 patients × 30 days:
//! every simulated patient's spot checks (blood pressure, pulse oximeter,
//! thermometer, often a scale, a glucose meter for diabetes) plus a wrist
//! wearable for everyone (heart rate and steps every minute while worn,
//! SpO2 and skin temperature less often) — about 80 million readings held
//! in memory, as the API holds them after reading them from the store.
//! Measured: the replay through the real triage engine on all cores and
//! the comparison ([`replay_all`] and [`summarize`]); reading the rows from
//! PostgreSQL is not included.
//!
//! - `backtest/fever_threshold`: `default/fever` from 38.0 to 38.5 °C. Only
//!   temperatures are replayed.
//! - `backtest/tachycardia_threshold`: `default/tachycardia` from 110 to
//!   105 /min: the wearable's minute-by-minute heart rate is replayed, the
//!   worst case of a threshold change.
//! - `backtest/news2_band`: `default/news2` from 4.5 to 5.5: every NEWS2
//!   vital sign is replayed.
//!
//! Run with `cargo bench --bench backtest`. Run as a test (`cargo test`,
//! `cargo nextest run --all-targets`, without `--bench`), it checks each
//! case once on 20 patients × 3 days.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;

use criterion::{criterion_group, criterion_main, Criterion};
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::{load_dir, Protocol};
use thuiswacht::simulate::{Population, SimDevice};
use thuiswacht::tuning::backtest::{replay_all, summarize, PatientInput, Setup};

/// 1,000 patients × 30 days when benchmarking, 20 × 3 as a test.
fn size() -> (usize, u32) {
    if std::env::args().any(|arg| arg == "--bench") {
        (1_000, 30)
    } else {
        (20, 3)
    }
}
/// The simulated population's last day ends at 2026-01-01T00:00:00Z.
const SIMULATION_END: Timestamp = Timestamp(1_767_225_600 * 1_000_000 - 1);

fn protocols() -> BTreeMap<String, Protocol> {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")).expect("alerts/ loads")
}

/// Every patient's readings of the 30 days, each with a wearable.
fn inputs() -> (Vec<PatientInput>, Timestamp, Timestamp) {
    let (patients, days) = size();
    let mut population = Population::generate(2026, patients, days, SIMULATION_END);
    let wearable = population
        .patients
        .iter()
        .flat_map(|patient| &patient.devices)
        .find(|device| device.profile == "wearable")
        .expect("some simulated patient wears one")
        .clone();
    for patient in &mut population.patients {
        if !patient.devices.iter().any(|d| d.profile == "wearable") {
            patient.devices.push(SimDevice {
                device_id: format!("bench-wear-{:05}", patient.index),
                ..wearable.clone()
            });
        }
    }
    let protocols = protocols();
    let inputs = population
        .patients
        .iter()
        .map(|patient| {
            let mut readings: Vec<_> = (0..days)
                .flat_map(|day| population.patient_day(patient.index, day))
                .filter(|message| !message.faulty)
                .flat_map(|message| message.readings)
                .collect();
            readings.sort_by_key(|(_, _, ts)| *ts);
            PatientInput {
                patient_id: patient.id,
                spo2_scale_two: patient
                    .protocols
                    .iter()
                    .any(|id| protocols[id].news2_scale == 2),
                personal: Vec::new(),
                readings,
            }
        })
        .collect();
    (inputs, population.start, SIMULATION_END)
}

/// A change to one rule.
type Change = fn(&mut thuiswacht::protocols::Rule);

fn proposal(rule: &str, change: impl Fn(&mut thuiswacht::protocols::Rule)) -> (Protocol, Protocol) {
    let current = protocols().remove("default").expect("default exists");
    let mut proposed = current.clone();
    change(
        proposed
            .rules
            .iter_mut()
            .find(|candidate| candidate.id == rule)
            .expect("the rule exists"),
    );
    (current, proposed)
}

fn backtest(c: &mut Criterion) {
    let (inputs, from, to) = inputs();
    let readings: usize = inputs.iter().map(|input| input.readings.len()).sum();
    let (patients, days) = size();
    eprintln!("backtest: {patients} patients × {days} days, {readings} readings in memory");
    let cases: [(&str, &str, Change); 3] = [
        ("fever_threshold", "fever", |rule| rule.above = Some(38.5)),
        ("tachycardia_threshold", "tachycardia", |rule| {
            rule.above = Some(105.0);
        }),
        ("news2_band", "news2", |rule| rule.above = Some(5.5)),
    ];
    let mut group = c.benchmark_group("backtest");
    group.sample_size(10);
    for (name, rule, change) in cases {
        let (current, proposed) = proposal(rule, change);
        let setup = Setup::new("default", &[(Timestamp::MIN, current)], &proposed, from, to);
        let done = AtomicUsize::new(0);
        let once = summarize(
            &setup,
            &replay_all(&setup, &inputs, &done, &|| false).expect("not cancelled"),
            &[],
        );
        eprintln!(
            "backtest/{name}: {} readings evaluated, alerts {} → {} ({} removed, {} added)",
            once.readings_replayed,
            once.totals.current,
            once.totals.proposed,
            once.totals.removed,
            once.totals.added
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let done = AtomicUsize::new(0);
                let episodes =
                    replay_all(&setup, &inputs, &done, &|| false).expect("not cancelled");
                summarize(&setup, &episodes, &[])
            });
        });
    }
    group.finish();
}

criterion_group!(benches, backtest);
criterion_main!(benches);
