//! The load benchmarks behind `thuiswacht-load` (and `scripts/load`).
//!
//! Without a subcommand it measures what a deployment cares about, from the
//! outside: the service runs as its own process (the release binary), devices
//! publish over MQTT at QoS 1, and a reading counts when it is committed.
//! Throughput is read from the service's own
//! `thuiswacht_readings_stored_total` counter; latency from probe readings
//! whose event time is their publish time, found in the database by a poller
//! (the poll interval, 2 ms, bounds the error); peak RSS from the service's
//! `VmHWM`.
//!
//! `rebuild` times the start-up rebuild of triage state on a large stored
//! history ([`rebuild`]); `memory` measures triage state per monitored
//! patient ([`memory`]); `worklist` measures the nurses' worklist API and
//! page under load on a year of data, and MQTT publish → SSE alert latency
//! ([`worklist`]).

pub mod memory;
pub mod open_loop;
pub mod rebuild;
pub mod sse_probe;
pub mod worklist;
pub mod worklist_data;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;
use sqlx::Connection;
use uuid::Uuid;

use crate::domain::{DeviceId, Timestamp};
use crate::settings::Settings;
use crate::store::{NewDevice, NewPatient, PgStore, SqliteStore, Store};

/// Where the service under test keeps its data and gets its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The local Mosquitto and PostgreSQL.
    Mosquitto,
    /// The embedded default: in-process broker and SQLite.
    Embedded,
}

/// The command line of `thuiswacht-load`: an end-to-end load run by
/// default, or one of the measurements of the subcommands.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "thuiswacht-load",
    about = "Load benchmarks of thuiswacht",
    args_conflicts_with_subcommands = true
)]
pub struct LoadCli {
    #[command(subcommand)]
    pub command: Option<LoadCommand>,
    #[command(flatten)]
    pub run: LoadArgs,
}

/// The measurements besides the end-to-end run.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LoadCommand {
    /// Time the start-up rebuild of triage state from a large stored history.
    Rebuild(rebuild::RebuildArgs),
    /// Measure the memory of triage state for many monitored patients.
    Memory(memory::MemoryArgs),
    /// Measure the worklist API and page under load on a year of data, and
    /// MQTT publish → SSE alert latency.
    Worklist(worklist::WorklistArgs),
}

/// Options of one end-to-end load run.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value = "mosquitto")]
    pub target: Target,
    /// Messages to publish.
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Readings per message (1: a wearable's single reading; 10: a gateway batch).
    #[arg(long, default_value_t = 1)]
    pub per_message: usize,
    /// Readings per second to offer; 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Publishing connections (gateways).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Distinct devices.
    #[arg(long, default_value_t = 1_000)]
    pub devices: usize,
    /// The broker for `--target mosquitto`.
    #[arg(long, default_value = "mqtt://127.0.0.1:18831")]
    pub mqtt_url: String,
    /// The PostgreSQL server for `--target mosquitto` (a fresh database is created on it).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// The `thuiswacht` binary (default: next to this one).
    #[arg(long)]
    pub service: Option<PathBuf>,
    /// Run the service with triage on (the default) or off, to measure its cost.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub triage: bool,
    /// Extra `KEY=VALUE` environment for the service (e.g. THUISWACHT_BATCH_MAX_ROWS=2000).
    #[arg(long = "service-env")]
    pub service_env: Vec<String>,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub target: Target,
    pub triage: bool,
    pub messages: u64,
    pub readings_per_message: usize,
    pub offered_readings_per_s: Option<f64>,
    /// Readings committed per second over the run, first publish to last commit.
    pub readings_per_s: f64,
    /// Messages committed per second, likewise.
    pub messages_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub latency_samples: usize,
    pub peak_rss_mib: f64,
    pub seconds: f64,
}

impl LoadReport {
    /// One human-readable line.
    pub fn summary(&self) -> String {
        format!(
            "{:?}{}: {} msgs × {} readings{}: {:.0} readings/s ({:.0} msgs/s) publish→commit, latency p50 {:.1} ms p99 {:.1} ms (max {:.1}, n={}), peak RSS {:.1} MiB, {:.1} s",
            self.target,
            if self.triage { " (triage on)" } else { " (triage off)" },
            self.messages,
            self.readings_per_message,
            self.offered_readings_per_s
                .map(|r| format!(" offered at {r:.0} readings/s"))
                .unwrap_or_default(),
            self.readings_per_s,
            self.messages_per_s,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms,
            self.latency_samples,
            self.peak_rss_mib,
            self.seconds
        )
    }
}

/// The device whose readings carry their publish time, for latency.
const PROBE_DEVICE: &str = "probe-0";
/// A probe message every this many messages per publisher.
const PROBE_EVERY: u64 = 97;

struct Service {
    child: std::process::Child,
    http: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Returns readings committed so far: new plus duplicates.
async fn stored_total(client: &reqwest::Client, http: &str) -> anyhow::Result<f64> {
    let text = client
        .get(format!("{http}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let counter = |name: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    Ok(counter("thuiswacht_readings_stored_total ")
        + counter("thuiswacht_readings_duplicate_total "))
}

/// Runs one load scenario end to end.
///
/// # Errors
/// Returns what failed: the service, the broker or the database.
pub async fn run(args: LoadArgs) -> anyhow::Result<LoadReport> {
    crate::app::install_crypto_provider();
    anyhow::ensure!(args.per_message >= 1 && args.publishers >= 1 && args.devices >= 1);
    let data_dir = tempfile_dir()?;
    let (store, database_url): (Arc<dyn Store>, Option<String>) = match args.target {
        Target::Mosquitto => {
            let name = format!("tw_test_load_{}", Uuid::new_v4().simple());
            let url = create_database(&args.database_url, &name).await?;
            let store = PgStore::from_pool(sqlx::PgPool::connect(&url).await?);
            store.migrate().await?;
            (Arc::new(store), Some(url))
        }
        Target::Embedded => {
            let mut settings = Settings::defaults();
            settings.data_dir = data_dir.clone();
            let store = SqliteStore::connect(&settings).await?;
            store.migrate().await?;
            (Arc::new(store), None)
        }
    };
    register(&store, args.devices).await?;

    let http_port = free_port()?;
    let broker_url = match args.target {
        Target::Mosquitto => args.mqtt_url.clone(),
        Target::Embedded => format!("mqtt://127.0.0.1:{}", free_port()?),
    };
    let topic_root = format!("load{}/thuiswacht/v1", Uuid::new_v4().simple());
    let service_path = match &args.service {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("thuiswacht"),
    };
    let service_client_id = format!("thuiswacht-load-{}", Uuid::new_v4().simple());
    let mut command = std::process::Command::new(&service_path);
    command
        .arg("serve")
        .env("THUISWACHT_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("THUISWACHT_MQTT_TOPIC_ROOT", &topic_root)
        .env("THUISWACHT_MQTT_CLIENT_ID", &service_client_id)
        .env("THUISWACHT_DEMO", "false")
        .env("THUISWACHT_TRIAGE_ENABLED", args.triage.to_string())
        .env("THUISWACHT_DATA_DIR", &data_dir)
        .env("THUISWACHT_LOG", "warn")
        .stdout(std::process::Stdio::null());
    match args.target {
        Target::Mosquitto => {
            command.env("THUISWACHT_MQTT_URL", &broker_url).env(
                "THUISWACHT_DATABASE_URL",
                database_url.as_deref().unwrap_or_default(),
            );
        }
        Target::Embedded => {
            command
                .env_remove("THUISWACHT_MQTT_URL")
                .env_remove("THUISWACHT_DATABASE_URL")
                .env(
                    "THUISWACHT_EMBEDDED_BROKER_ADDR",
                    broker_url.trim_start_matches("mqtt://"),
                );
        }
    }
    for pair in &args.service_env {
        let (key, value) = pair
            .split_once('=')
            .context("--service-env takes KEY=VALUE")?;
        command.env(key, value);
    }
    let service = Service {
        child: command
            .spawn()
            .with_context(|| format!("cannot start {}", service_path.display()))?,
        http: format!("http://127.0.0.1:{http_port}"),
    };
    let http = reqwest::Client::new();
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if matches!(http.get(format!("{}/readyz", service.http)).send().await, Ok(r) if r.status() == 200)
        {
            break;
        }
        if Instant::now() > ready_deadline {
            bail!("the service did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Latency poller.
    let probe_stop = tokio_util::sync::CancellationToken::new();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let poller = tokio::spawn(poll_probe(
        store.clone(),
        latencies.clone(),
        probe_stop.clone(),
    ));

    // Publishers.
    let expected = args.messages * args.per_message as u64;
    let started = Instant::now();
    let per_publisher = args.messages / args.publishers as u64;
    let published = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for publisher in 0..args.publishers {
        let count = if publisher == 0 {
            args.messages - per_publisher * (args.publishers as u64 - 1)
        } else {
            per_publisher
        };
        let rate =
            (args.rate > 0.0).then(|| args.rate / args.per_message as f64 / args.publishers as f64);
        tasks.push(tokio::spawn(publish(
            broker_url.clone(),
            topic_root.clone(),
            publisher,
            args.publishers,
            count,
            args.per_message,
            args.devices,
            rate,
            EventTimes::Spread,
            published.clone(),
        )));
    }
    for task in tasks {
        task.await??;
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    // Wait for every reading to be committed.
    let expected_total = expected as f64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stored = stored_total(&http, &service.http).await.unwrap_or(0.0);
        if stored >= expected_total {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {stored} of {expected_total} readings were committed");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(50)).await;
    probe_stop.cancel();
    let _ = poller.await;
    let peak_rss_kib = peak_rss_kib(service.child.id()).unwrap_or(0);
    drop(service);
    forget_session(&broker_url, &service_client_id).await;
    if let Some(url) = database_url {
        drop(store);
        let name = url.rsplit('/').next().unwrap_or_default();
        drop_database(&args.database_url, name).await;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut samples = latencies.lock().expect("latency lock").clone();
    samples.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if samples.is_empty() {
            f64::NAN
        } else {
            samples[((samples.len() - 1) as f64 * q).round() as usize]
        }
    };
    tracing::info!(publish_seconds, "publishing done");
    Ok(LoadReport {
        target: args.target,
        triage: args.triage,
        messages: args.messages,
        readings_per_message: args.per_message,
        offered_readings_per_s: (args.rate > 0.0).then_some(args.rate),
        readings_per_s: expected_total / seconds,
        messages_per_s: args.messages as f64 / seconds,
        latency_p50_ms: quantile(0.50),
        latency_p99_ms: quantile(0.99),
        latency_max_ms: samples.last().copied().unwrap_or(f64::NAN),
        latency_samples: samples.len(),
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        seconds,
    })
}

/// Creates the database `name` (which starts with `tw_test_`, so that
/// `scripts/test` drops it if a run is cut short) on the server of
/// `server_url`, and returns its URL.
async fn create_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(server_url)
        .await
        .context("cannot reach PostgreSQL")?;
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await?;
    let (prefix, _) = server_url
        .rsplit_once('/')
        .context("database url has no path")?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops the database `name` on the server of `server_url`; best effort.
async fn drop_database(server_url: &str, name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(server_url).await {
        let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut admin)
            .await;
    }
}

/// Ends the service's persistent session at the broker, so a benchmark
/// leaves nothing queued behind.
async fn forget_session(broker_url: &str, client_id: &str) {
    let Ok(url) = url::Url::parse(broker_url) else {
        return;
    };
    let Some(host) = url.host_str() else { return };
    let mut options = MqttOptions::new(client_id, host, url.port().unwrap_or(1883));
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                let _ = client.try_disconnect();
            }
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("thuiswacht-load-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmHWM:")
}

/// Reads a size field (`VmRSS:`, `VmHWM:`) of `/proc/{pid}/status`.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Returns this process's resident set size in MiB (0 where `/proc` is missing).
fn own_rss_mib() -> f64 {
    status_kib("self", "VmRSS:").unwrap_or(0) as f64 / 1024.0
}

/// Returns this process's peak resident set size in MiB since the start or
/// the last [`reset_own_peak_rss`].
fn own_peak_rss_mib() -> f64 {
    status_kib("self", "VmHWM:").unwrap_or(0) as f64 / 1024.0
}

/// Resets this process's peak RSS to its current RSS (Linux `clear_refs`
/// value 5), so a later peak belongs to what ran in between. Best effort.
fn reset_own_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn register(store: &Arc<dyn Store>, devices: usize) -> anyhow::Result<()> {
    store.add_team("Assen").await?;
    let mut patient = Uuid::nil();
    for device in 0..=devices {
        // Ten wearables per patient keeps registration quick for large runs.
        if device % 10 == 0 {
            patient = Uuid::new_v4();
            store
                .add_patient(&NewPatient {
                    id: patient,
                    team: "Assen".to_owned(),
                    display_name: format!("load {device}"),
                    birth_year: None,
                    protocols: vec!["default".to_owned()],
                })
                .await?;
        }
        let device_id = if device == devices {
            PROBE_DEVICE.to_owned()
        } else {
            format!("load-{device}")
        };
        store
            .add_device(&NewDevice {
                device_id: DeviceId::parse(&device_id)?,
                profile_id: "wearable".to_owned(),
                patient_id: patient,
            })
            .await?;
    }
    Ok(())
}

/// Finds probe readings as soon as they are committed and records
/// now − event time (= publish time).
async fn poll_probe(
    store: Arc<dyn Store>,
    latencies: Arc<std::sync::Mutex<Vec<f64>>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let probe = DeviceId::parse(PROBE_DEVICE).expect("valid id");
    let mut after: Option<Timestamp> = None;
    while !stop.is_cancelled() {
        if let Ok(new) = store.device_readings_after(&probe, after).await {
            let now = Timestamp::now();
            let mut found = latencies.lock().expect("latency lock");
            for reading in new {
                found.push(now.seconds_since(reading.ts) * 1_000.0);
                after = after.max(Some(reading.ts));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The event times and values of the readings a publisher sends.
#[derive(Debug, Clone, PartialEq)]
pub enum EventTimes {
    /// Spread over the last month, microseconds apart per device, heart
    /// rates cycling 60–99: as many distinct keys as fast as possible, for
    /// the ingest benchmark.
    Spread,
    /// At the time of publishing, each wearer's heart rate varying by a few
    /// beats around their own resting rate (`resting[device]`, /min), as a
    /// worn wearable sends: the background traffic of a service whose other
    /// parts are measured.
    Live {
        resting: Arc<Vec<f64>>,
        /// Microseconds between two readings of one device; a message
        /// carries the readings since the device's previous one.
        spacing_micros: i64,
    },
}

/// Returns the heart rate of the `round`-th reading of a background
/// wearable whose wearer rests at `resting` /min ([`EventTimes::Live`]):
/// within ±3 of it, whole beats.
pub fn live_heart_rate(resting: f64, device: usize, round: u64) -> i64 {
    let jitter = ((round * 31 + device as u64) % 7) as i64 - 3;
    resting.round() as i64 + jitter
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn publish(
    broker_url: String,
    topic_root: String,
    publisher: usize,
    publishers: usize,
    count: u64,
    per_message: usize,
    devices: usize,
    messages_per_s: Option<f64>,
    event_times: EventTimes,
    published: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let url = url::Url::parse(&broker_url)?;
    let mut options = MqttOptions::new(
        format!("load-gw-{publisher}-{}", Uuid::new_v4().simple()),
        url.host_str().context("broker host")?,
        url.port().unwrap_or(1883),
    );
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(u16::MAX)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let (acked_tx, mut acked_rx) = tokio::sync::watch::channel(0_u64);
    let connection = tokio::spawn(async move {
        let mut acked = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    let _ = acked_tx.send(acked);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "load publisher connection error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let base = Timestamp::now().micros() - 30 * 86_400_000_000;
    let started = Instant::now();
    let mut payload = String::with_capacity(128 * per_message);
    let mut last_probe_slot = i64::MIN / 2;
    let mut last_live: std::collections::HashMap<usize, i64> = std::collections::HashMap::new();
    for index in 0..count {
        let probe = index % PROBE_EVERY == 0;
        let device_index = (index as usize * publishers + publisher) % devices;
        let (device, topic_device) = if probe {
            (PROBE_DEVICE.to_owned(), PROBE_DEVICE.to_owned())
        } else {
            let device = format!("load-{device_index}");
            (device.clone(), device)
        };
        // Live: now, and after this device's previous reading (the key is
        // device, metric and time).
        let live_start = match &event_times {
            EventTimes::Live { spacing_micros, .. } if !probe => {
                let spacing = (*spacing_micros).max(1);
                let previous = last_live.entry(device_index).or_insert(i64::MIN);
                let newest = Timestamp::now().micros();
                let start = (newest - (per_message as i64 - 1) * spacing).max(*previous + 1);
                *previous = start + (per_message as i64 - 1) * spacing;
                Some((start, spacing))
            }
            _ => None,
        };
        payload.clear();
        payload.push_str("{\"device_id\":\"");
        payload.push_str(&device);
        payload.push_str("\",\"readings\":[");
        for reading in 0..per_message {
            if reading > 0 {
                payload.push(',');
            }
            let ts = if probe {
                // The probe's event time is its publish time, in a slot of
                // its own so that two publishers never send the same key.
                let slot = (per_message * publishers) as i64;
                let mut start = Timestamp::now().micros() / slot * slot;
                if start <= last_probe_slot {
                    start = last_probe_slot + slot;
                }
                if reading + 1 == per_message {
                    last_probe_slot = start;
                }
                Timestamp(start + (publisher * per_message + reading) as i64)
            } else if let Some((start, spacing)) = live_start {
                Timestamp(start + reading as i64 * spacing)
            } else {
                // Unique per (publisher, message, reading), spread over a month.
                Timestamp(
                    base + ((index * publishers as u64 + publisher as u64) * per_message as u64
                        + reading as u64) as i64,
                )
            };
            let value = match (&event_times, live_start) {
                (EventTimes::Live { resting, .. }, Some(_)) => live_heart_rate(
                    resting.get(device_index).copied().unwrap_or(72.0),
                    device_index,
                    index / devices as u64,
                ),
                _ => 60 + (index % 40) as i64,
            };
            payload.push_str(&format!(
                "{{\"metric\":\"heart_rate\",\"value\":{value},\"unit\":\"/min\",\"ts\":\"{ts}\"}}"
            ));
        }
        payload.push_str("]}");
        let topic = format!("{topic_root}/devices/{topic_device}/readings");
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone().into_bytes())
            .await?;
        published.fetch_add(1, Ordering::Relaxed);
        if let Some(rate) = messages_per_s {
            let due = Duration::from_secs_f64((index + 1) as f64 / rate);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(300), acked_rx.wait_for(|n| *n >= count))
        .await
        .context("broker did not acknowledge every publish")??;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
    Ok(())
}
