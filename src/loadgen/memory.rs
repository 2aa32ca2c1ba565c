//! `thuiswacht-load memory`: the memory of triage state for many monitored
//! patients, without a database.
//!
//! In: a population size and days of history. It draws the simulator's
//! population, registers every patient with their protocols in a
//! [`TriageEngine`] and feeds each one's recent history straight into it,
//! patient by patient (the engine's state of one patient does not depend on
//! another's, and this way the generated readings never pile up). Out: a
//! [`MemoryReport`]: the engine's own estimate of its state in bytes, and
//! this process's RSS before registering, after registering and after
//! feeding.
//!
//! # Choices
//!
//! - Spot checks are fed for all `--days`; a wearable's readings only for
//!   the last two days. The engine keeps 64 readings per metric, so a
//!   wearable's state is full after an hour of wearing, and feeding weeks of
//!   minute readings would only cost time.
//! - RSS is the figure that matters (it includes the allocator's overhead
//!   and the hash table's spare capacity); the difference between after
//!   feeding and before registering is the triage state. The population
//!   itself is allocated before the first measurement.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::own_rss_mib;
use crate::domain::{Metric, Timestamp};
use crate::protocols::load_dir;
use crate::simulate::Population;
use crate::triage::TriageEngine;

/// Options of `thuiswacht-load memory`.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Patients to monitor.
    #[arg(long, default_value_t = 100_000)]
    pub patients: usize,
    /// Days of spot-check history to feed, ending now.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Seed of the simulated population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The protocols folder.
    #[arg(long, default_value = "alerts")]
    pub alerts_dir: PathBuf,
}

/// What `thuiswacht-load memory` measured.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub patients: usize,
    pub wearers: usize,
    pub days: u32,
    pub readings_fed: u64,
    pub feed_seconds: f64,
    /// The engine's estimate of its patient state.
    pub state_bytes: usize,
    pub state_bytes_per_patient: f64,
    pub rss_before_mib: f64,
    pub rss_registered_mib: f64,
    pub rss_after_mib: f64,
    /// RSS after feeding minus RSS before registering, per patient.
    pub rss_bytes_per_patient: f64,
}

impl MemoryReport {
    /// Human-readable lines.
    pub fn summary(&self) -> String {
        format!(
            "memory: {} patients ({} with a wearable), {} days fed ({} readings, {:.0} s)\n  \
             triage state: {:.1} MiB by the engine's estimate, {:.0} bytes per patient\n  \
             RSS: {:.0} MiB before registering, {:.0} MiB registered, {:.0} MiB fed: {:.0} bytes per patient, {:.0} MiB for 100,000 patients",
            self.patients,
            self.wearers,
            self.days,
            self.readings_fed,
            self.feed_seconds,
            self.state_bytes as f64 / 1_048_576.0,
            self.state_bytes_per_patient,
            self.rss_before_mib,
            self.rss_registered_mib,
            self.rss_after_mib,
            self.rss_bytes_per_patient,
            self.rss_bytes_per_patient * 100_000.0 / 1_048_576.0
        )
    }
}

/// Fills an engine with the population's recent history and measures it.
///
/// # Errors
/// Returns an error when the protocols cannot be loaded or name one the
/// simulator's patients do not follow.
pub fn run(args: &MemoryArgs) -> anyhow::Result<MemoryReport> {
    const WEARABLE_DAYS: u32 = 2;
    let protocols = load_dir(&args.alerts_dir)
        .with_context(|| format!("cannot load the protocols in {}", args.alerts_dir.display()))?;
    let now = Timestamp::now();
    let population = Population::generate(args.seed, args.patients, args.days, now);
    let rss_before_mib = own_rss_mib();

    let mut engine = TriageEngine::new(protocols);
    for patient in &population.patients {
        engine
            .register_patient(patient.id, &patient.protocols)
            .with_context(|| format!("patient {} not registered", patient.index))?;
    }
    let rss_registered_mib = own_rss_mib();

    let started = Instant::now();
    let mut readings: Vec<(Timestamp, Metric, f64)> = Vec::new();
    let mut findings = Vec::new();
    let mut readings_fed = 0;
    let mut wearers = 0;
    let first_wearable_day = args.days.saturating_sub(WEARABLE_DAYS);
    for patient in &population.patients {
        let wearable = |device_id: &str| {
            patient
                .devices
                .iter()
                .any(|d| d.device_id == device_id && d.profile == "wearable")
        };
        if patient.devices.iter().any(|d| d.profile == "wearable") {
            wearers += 1;
        }
        readings.clear();
        for day in 0..args.days {
            for message in population.patient_day(patient.index, day) {
                if message.faulty || (day < first_wearable_day && wearable(&message.device_id)) {
                    continue;
                }
                readings.extend(
                    message
                        .readings
                        .iter()
                        .filter(|(_, _, ts)| *ts <= now)
                        .map(|&(metric, value, ts)| (ts, metric, value)),
                );
            }
        }
        readings.sort_by(|a, b| (a.0, a.1.code()).cmp(&(b.0, b.1.code())));
        for &(ts, metric, value) in &readings {
            engine.evaluate_measurement(patient.id, metric, value, ts, &mut findings);
            findings.clear();
        }
        readings_fed += readings.len() as u64;
    }
    drop(readings);
    let feed_seconds = started.elapsed().as_secs_f64();
    let rss_after_mib = own_rss_mib();
    let state_bytes = engine.state_bytes();
    let patients = engine.patient_count();
    Ok(MemoryReport {
        patients,
        wearers,
        days: args.days,
        readings_fed,
        feed_seconds,
        state_bytes,
        state_bytes_per_patient: state_bytes as f64 / patients.max(1) as f64,
        rss_before_mib,
        rss_registered_mib,
        rss_after_mib,
        rss_bytes_per_patient: (rss_after_mib - rss_before_mib) * 1_048_576.0
            / patients.max(1) as f64,
    })
}
