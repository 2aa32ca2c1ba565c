//! `thuiswacht-load rebuild`: times the start-up rebuild of triage state
//! ([`TriageStage::rebuild_with_report`], the code path `serve` runs) on a
//! large stored history.
//!
//! In: a population size, days of history and a wearable rate. It creates a
//! fresh PostgreSQL database (`tw_test_load_…`, dropped afterwards unless
//! `--keep`), registers the simulator's population through the store (teams,
//! patients with their protocols, devices), bulk-loads the simulated history
//! with binary `COPY`, day by day in event-time order as it would have
//! arrived, then vacuums and analyses the table as autovacuum would have.
//! Out: a [`RebuildLoadReport`]: rows stored and read, seconds (reading and
//! replaying), patients, triage state bytes in total and per patient, and
//! this process's RSS around the rebuild.
//!
//! # Choices
//!
//! - The history is the simulator's ([`Population`]): spot checks several
//!   times a day (blood pressure with pulse twice, pulse oximetry twice,
//!   temperature, weight for about half, glucose for diabetics), injected
//!   deteriorations, late uploads. A fifth of the patients wear a wearable
//!   (heart rate and steps every minute, SpO2 and skin temperature every ten);
//!   `--wearable-minutes N` stores its readings of every N-th minute, 0
//!   leaves wearables out. Faulty-device readings are left out, as the
//!   quarantine would have taken them.
//! - Registration goes through [`Store`] (eight at a time), so it keeps
//!   working when the registry's tables change; only the readings, which
//!   dominate, are loaded with `COPY`.
//! - The rebuild runs `--repeat` times; the first run follows the load (the
//!   table's pages are mostly in the OS cache, as on a server that just
//!   restarted the service, not the machine).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::postgres::PgPoolCopyExt;
use sqlx::PgPool;
use uuid::Uuid;

use super::{create_database, drop_database, own_peak_rss_mib, own_rss_mib, reset_own_peak_rss};
use crate::alert_book::stage::TriageStage;
use crate::domain::{Metric, Timestamp};
use crate::protocols::load_dir;
use crate::simulate::{register, Population};
use crate::store::{PgStore, Store};
use crate::triage::TriageEngine;

/// Options of `thuiswacht-load rebuild`.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Patients to register.
    #[arg(long, default_value_t = 10_000)]
    pub patients: usize,
    /// Days of history to store, ending now.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Store the wearables' readings of every this many minutes (a fifth of
    /// the patients wear one); 0 leaves wearables out.
    #[arg(long, default_value_t = 0)]
    pub wearable_minutes: u32,
    /// Seed of the simulated population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Times to run the rebuild.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// The PostgreSQL server (a fresh database is created on it).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// The protocols folder.
    #[arg(long, default_value = "alerts")]
    pub alerts_dir: PathBuf,
    /// Keep the database afterwards (its name is in the report) for `--reuse`.
    #[arg(long)]
    pub keep: bool,
    /// Time the rebuild on a database an earlier `--keep` run loaded, at the
    /// current time, instead of loading a new one.
    #[arg(long)]
    pub reuse: Option<String>,
}

/// One timed rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildRun {
    pub seconds: f64,
    /// Registering patients and reading the history from the database.
    pub read_seconds: f64,
    /// Sorting and replaying it into the engine.
    pub replay_seconds: f64,
    pub rows_read: usize,
    pub rows_replayed: usize,
}

/// What `thuiswacht-load rebuild` measured.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildLoadReport {
    pub database: String,
    pub patients: usize,
    /// Days and wearable rate of the history loaded; `None` with `--reuse`.
    pub days: Option<u32>,
    pub wearable_minutes: Option<u32>,
    pub rows_in_database: i64,
    /// Heap and indexes of the readings table.
    pub readings_table_mib: f64,
    pub load_seconds: f64,
    pub runs: Vec<RebuildRun>,
    pub patients_in_state: usize,
    pub state_bytes: usize,
    pub state_bytes_per_patient: f64,
    /// This process's RSS just before the last rebuild and with its engine
    /// built, and the peak in between.
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    pub rss_peak_mib: f64,
}

impl RebuildLoadReport {
    /// Human-readable lines.
    pub fn summary(&self) -> String {
        let history = match (self.days, self.wearable_minutes) {
            (Some(days), Some(0)) => format!("{days} days, no wearables"),
            (Some(days), Some(minutes)) => format!("{days} days, wearables every {minutes} min"),
            _ => format!("database {}", self.database),
        };
        let mut lines = vec![format!(
            "rebuild: {} patients, {history}: {} rows in the database ({:.0} MiB), loaded in {:.0} s",
            self.patients,
            self.rows_in_database,
            self.readings_table_mib,
            self.load_seconds
        )];
        for (index, run) in self.runs.iter().enumerate() {
            lines.push(format!(
                "  run {}: {:.2} s (read {:.2} s, replay {:.2} s), {} rows read, {} replayed",
                index + 1,
                run.seconds,
                run.read_seconds,
                run.replay_seconds,
                run.rows_read,
                run.rows_replayed
            ));
        }
        lines.push(format!(
            "  triage state: {} patients, {:.1} MiB, {:.0} bytes per patient; RSS {:.0} MiB before, {:.0} MiB after, peak {:.0} MiB",
            self.patients_in_state,
            self.state_bytes as f64 / 1_048_576.0,
            self.state_bytes_per_patient,
            self.rss_before_mib,
            self.rss_after_mib,
            self.rss_peak_mib
        ));
        lines.join("\n")
    }
}

/// Loads (or reuses) a database and times the rebuild on it.
///
/// # Errors
/// Returns what failed: the database, the protocols or the rebuild.
pub async fn run(args: RebuildArgs) -> anyhow::Result<RebuildLoadReport> {
    crate::app::install_crypto_provider();
    anyhow::ensure!(args.repeat >= 1, "--repeat must be at least 1");
    let protocols = Arc::new(crate::protocols::catalog::Catalog::fixed(
        load_dir(&args.alerts_dir).with_context(|| {
            format!("cannot load the protocols in {}", args.alerts_dir.display())
        })?,
    ));
    let name = args
        .reuse
        .clone()
        .unwrap_or_else(|| format!("tw_test_load_rebuild_{}", Uuid::new_v4().simple()));
    let url = match &args.reuse {
        Some(_) => {
            let (prefix, _) = args
                .database_url
                .rsplit_once('/')
                .context("database url has no path")?;
            format!("{prefix}/{name}")
        }
        None => create_database(&args.database_url, &name).await?,
    };
    let result = measure(&args, &name, &url, protocols).await;
    if !args.keep {
        drop_database(&args.database_url, &name).await;
    }
    result
}

async fn measure(
    args: &RebuildArgs,
    name: &str,
    url: &str,
    protocols: Arc<crate::protocols::catalog::Catalog>,
) -> anyhow::Result<RebuildLoadReport> {
    let pool = PgPool::connect(url)
        .await
        .with_context(|| format!("cannot connect to {name}"))?;
    let store: Arc<dyn Store> = Arc::new(PgStore::from_pool(pool.clone()));
    store.migrate().await?;
    let now = Timestamp::now();
    let (rows_in_database, load_seconds) = match args.reuse {
        Some(_) => (store.count_readings().await?, 0.0),
        None => {
            let started = Instant::now();
            let population = Population::generate(args.seed, args.patients, args.days, now);
            register_concurrently(&store, &population).await?;
            eprintln!(
                "registered {} patients in {:.1} s",
                population.patients.len(),
                started.elapsed().as_secs_f64()
            );
            let rows = load_history(&pool, &population, now, args.wearable_minutes).await?;
            sqlx::raw_sql("vacuum analyze readings")
                .execute(&pool)
                .await
                .context("vacuum analyze")?;
            let rows = i64::try_from(rows).unwrap_or(i64::MAX);
            (rows, started.elapsed().as_secs_f64())
        }
    };
    let table_bytes: i64 = sqlx::query_scalar("select pg_total_relation_size('readings')")
        .fetch_one(&pool)
        .await?;

    let stage = TriageStage {
        store: store.clone(),
        protocols,
        reraise_after: Duration::ZERO,
    };
    let mut runs = Vec::new();
    let mut last: Option<(TriageEngine, f64)> = None;
    for _ in 0..args.repeat {
        // The previous run's engine goes first, so each run starts alike.
        drop(last.take());
        let rss_before_mib = own_rss_mib();
        reset_own_peak_rss();
        let started = Instant::now();
        let (engine, _registered, report) = stage.rebuild_with_report(now).await?;
        let seconds = started.elapsed().as_secs_f64();
        runs.push(RebuildRun {
            seconds,
            read_seconds: report.read_seconds,
            replay_seconds: report.replay_seconds,
            rows_read: report.readings_read,
            rows_replayed: report.readings_replayed,
        });
        eprintln!("rebuild: {seconds:.2} s");
        last = Some((engine, rss_before_mib));
    }
    let (engine, rss_before_mib) = last.expect("--repeat is at least 1");
    let state_bytes = engine.state_bytes();
    let patients_in_state = engine.patient_count();
    Ok(RebuildLoadReport {
        database: name.to_owned(),
        patients: patients_in_state,
        days: args.reuse.is_none().then_some(args.days),
        wearable_minutes: args.reuse.is_none().then_some(args.wearable_minutes),
        rows_in_database,
        readings_table_mib: table_bytes as f64 / 1_048_576.0,
        load_seconds,
        runs,
        patients_in_state,
        state_bytes,
        state_bytes_per_patient: state_bytes as f64 / patients_in_state.max(1) as f64,
        rss_before_mib,
        rss_after_mib: own_rss_mib(),
        rss_peak_mib: own_peak_rss_mib(),
    })
}

/// Registers the population through the store, eight patients at a time.
pub(super) async fn register_concurrently(
    store: &Arc<dyn Store>,
    population: &Population,
) -> anyhow::Result<()> {
    const CONCURRENT: usize = 8;
    let chunk_size = population.patients.len().div_ceil(CONCURRENT).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in population.patients.chunks(chunk_size) {
        let part = Population {
            seed: population.seed,
            patients: chunk.to_vec(),
            deteriorations: Vec::new(),
            start: population.start,
            days: population.days,
        };
        let store = store.clone();
        tasks.spawn(async move { register(&store, &part).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("registration task")??;
    }
    Ok(())
}

/// PostgreSQL's binary `COPY` header: signature, flags, extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_MINUTE: i64 = 60_000_000;
/// Bytes gathered before they are sent to the server.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Appends one readings row in the binary `COPY` format.
fn copy_row(
    buffer: &mut Vec<u8>,
    device_id: &str,
    metric: Metric,
    ts: Timestamp,
    patient_id: Uuid,
    value: f64,
    received_at: Timestamp,
) {
    // Six columns, in the order of the COPY statement of `load_history`.
    buffer.extend_from_slice(&6_i16.to_be_bytes());
    let mut field = |bytes: &[u8]| {
        buffer.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buffer.extend_from_slice(bytes);
    };
    field(device_id.as_bytes());
    field(metric.code().as_bytes());
    field(&(ts.micros() - POSTGRES_EPOCH_MICROS).to_be_bytes());
    field(patient_id.as_bytes());
    field(&value.to_bits().to_be_bytes());
    field(&(received_at.micros() - POSTGRES_EPOCH_MICROS).to_be_bytes());
}

/// Streams the population's history up to `now` into `readings` with
/// binary `COPY`, one statement per simulated day; returns the rows stored.
pub(super) async fn load_history(
    pool: &PgPool,
    population: &Population,
    now: Timestamp,
    wearable_minutes: u32,
) -> anyhow::Result<u64> {
    let mut device_owner: HashMap<&str, (Uuid, bool)> = HashMap::new();
    for patient in &population.patients {
        for device in &patient.devices {
            device_owner.insert(
                device.device_id.as_str(),
                (patient.id, device.profile == "wearable"),
            );
        }
    }
    let wearable_every = i64::from(wearable_minutes.max(1)) * MICROS_PER_MINUTE;
    let mut stored = 0;
    let started = Instant::now();
    for day in 0..population.days {
        let mut copy = pool
            .copy_in_raw(
                "copy readings (device_id, metric, ts, patient_id, value, received_at) \
                 from stdin with (format binary)",
            )
            .await?;
        let mut buffer = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
        buffer.extend_from_slice(COPY_HEADER);
        for message in population.day(day) {
            if message.faulty {
                continue;
            }
            let Some(&(patient_id, wearable)) = device_owner.get(message.device_id.as_str()) else {
                continue;
            };
            if wearable && wearable_minutes == 0 {
                continue;
            }
            for (metric, value, ts) in &message.readings {
                if *ts > now || (wearable && ts.micros() % wearable_every != 0) {
                    continue;
                }
                copy_row(
                    &mut buffer,
                    &message.device_id,
                    *metric,
                    *ts,
                    patient_id,
                    *value,
                    message.upload_at.max(*ts),
                );
            }
            if buffer.len() >= COPY_CHUNK_BYTES {
                copy.send(std::mem::take(&mut buffer)).await?;
                buffer.reserve(COPY_CHUNK_BYTES + 4096);
            }
        }
        buffer.extend_from_slice(&(-1_i16).to_be_bytes());
        copy.send(buffer).await?;
        stored += copy.finish().await?;
        eprintln!(
            "loaded day {}/{}: {stored} rows, {:.0} s",
            day + 1,
            population.days,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(stored)
}
