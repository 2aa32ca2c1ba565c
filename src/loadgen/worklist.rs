//! `thuiswacht-load worklist`: how fast the nurses' worklist answers on a
//! year of data while readings pour in, and how soon a new alert reaches a
//! connected browser.
//!
//! In: a data size (default 10,000 patients in the four teams, 365 days of
//! spot checks, about 36 million readings, 100,000 past alerts and a few
//! hundred open ones; see [`worklist_data`](super::worklist_data)), a
//! request rate and duration, a background ingest rate. It creates a fresh
//! PostgreSQL database and loads it (or, with `--reuse`, takes one an
//! earlier `--keep` run loaded), creates a nurse of one team, starts the
//! release `thuiswacht serve` as its own process against that database and
//! the local Mosquitto, signs in over HTTP, and then, while gateways
//! publish in the background at `--ingest-rate` readings/s (heart rates of
//! `--ingest-devices` wearables at the time of publishing, each varying by
//! a few beats around its wearer's resting rate: [`EventTimes::Live`]):
//!
//! 1. sends `GET` requests for the worklist API and page, open-loop at
//!    `--rps` in total ([`open_loop`](super::open_loop)), after a warm-up
//!    that is not counted;
//! 2. measures MQTT publish → SSE `alert` event with fever probes
//!    ([`sse_probe`](super::sse_probe)).
//!
//! Out: a [`WorklistLoadReport`]: per path p50/p90/p99/max and errors, the
//! SSE latencies, and the readings/s the service committed meanwhile.
//! Probe alerts are resolved afterwards (outcome `measurement_error`), and
//! a run on a reused database first resolves what earlier runs raised and
//! removes the readings they published, so every run starts from the
//! fixture's worklist and triage state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::open_loop::{self, PathReport};
use super::sse_probe::{self, ProbeTarget, SseReport};
use super::worklist_data::{self, add_nurse, LoadedData, WorklistData};
use super::{
    create_database, drop_database, forget_session, free_port, publish, stored_total, EventTimes,
    Service, PROBE_DEVICE,
};
use crate::alert_book::Outcome;
use crate::domain::{DeviceId, Timestamp};
use crate::protocols::{load_dir, Protocol};
use crate::store::{NewDevice, PgStore, Store};

/// Options of `thuiswacht-load worklist`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorklistArgs {
    /// Patients to register, spread over the four teams.
    #[arg(long, default_value_t = 10_000)]
    pub patients: usize,
    /// Days of spot-check history (about ten readings a patient a day).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Resolved alerts with outcomes and events, spread over the days.
    #[arg(long, default_value_t = 100_000)]
    pub past_alerts: usize,
    /// Unresolved alerts, spread over all patients (a quarter per team).
    #[arg(long, default_value_t = 400)]
    pub open_alerts: usize,
    /// Seed of the simulated population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The nurse's team.
    #[arg(long, default_value = "Assen")]
    pub team: String,
    /// Requests per second, in total over the paths.
    #[arg(long, default_value_t = 200.0)]
    pub rps: f64,
    /// Seconds of measured requests.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Seconds of requests before measuring (not counted).
    #[arg(long, default_value_t = 5.0)]
    pub warmup_seconds: f64,
    /// Paths to request, in turn. A 404 on `/` means this build serves no
    /// worklist page; it is then left out with a message.
    #[arg(long, value_delimiter = ',', default_value = "/api/v1/worklist,/")]
    pub paths: Vec<String>,
    /// Readings per second the gateways publish in the background; 0: none.
    #[arg(long, default_value_t = 10_000.0)]
    pub ingest_rate: f64,
    /// Background wearables (registered to the first patients).
    #[arg(long, default_value_t = 1_000)]
    pub ingest_devices: usize,
    /// Readings per MQTT message of the background ingest (a gateway
    /// forwarding what a wearable measured since its last upload).
    #[arg(long, default_value_t = 1)]
    pub ingest_per_message: usize,
    /// Fever probes for the SSE latency; 0: none.
    #[arg(long, default_value_t = 150)]
    pub probes: usize,
    /// Milliseconds between probes.
    #[arg(long, default_value_t = 200)]
    pub probe_spacing_ms: u64,
    /// The broker.
    #[arg(long, default_value = "mqtt://127.0.0.1:18831")]
    pub mqtt_url: String,
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
    /// The `thuiswacht` binary (default: next to this one).
    #[arg(long)]
    pub service: Option<PathBuf>,
    /// Extra `KEY=VALUE` environment for the service.
    #[arg(long = "service-env")]
    pub service_env: Vec<String>,
    /// Keep the database afterwards (its name is in the report) for `--reuse`.
    #[arg(long)]
    pub keep: bool,
    /// Measure on a database an earlier `--keep` run loaded (first brought
    /// back to the fixture: earlier runs' alerts resolved, their readings
    /// removed).
    #[arg(long)]
    pub reuse: Option<String>,
}

/// What `thuiswacht-load worklist` measured.
#[derive(Debug, Clone, Serialize)]
pub struct WorklistLoadReport {
    pub database: String,
    /// What this run loaded; `None` with `--reuse`.
    pub loaded: Option<LoadedData>,
    pub load_seconds: f64,
    /// The planner's estimate (counting 36 M rows takes long).
    pub readings_estimate: i64,
    pub alerts: i64,
    pub open_alerts_of_team: i64,
    pub team: String,
    pub offered_rps: f64,
    pub seconds: f64,
    pub paths: Vec<PathReport>,
    /// Paths left out because the service does not serve them.
    pub absent_paths: Vec<String>,
    pub offered_ingest_rate: f64,
    /// Readings the service committed per second while requests ran.
    pub ingest_readings_per_s: f64,
    pub sse: Option<SseReport>,
}

impl WorklistLoadReport {
    /// Human-readable lines.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "worklist: database {} (~{} readings, {} alerts, {} open for team {}){}",
            self.database,
            self.readings_estimate,
            self.alerts,
            self.open_alerts_of_team,
            self.team,
            if self.loaded.is_some() {
                format!(", loaded in {:.0} s", self.load_seconds)
            } else {
                String::new()
            }
        )];
        lines.push(format!(
            "  {:.0} requests/s offered for {:.0} s, signed in as a nurse of {}; background ingest offered {:.0} readings/s, committed {:.0} readings/s",
            self.offered_rps,
            self.seconds,
            self.team,
            self.offered_ingest_rate,
            self.ingest_readings_per_s
        ));
        for path in &self.paths {
            lines.push(format!("  {}", path.summary()));
        }
        for path in &self.absent_paths {
            lines.push(format!(
                "  GET {path}: not served by this build (404), left out"
            ));
        }
        if let Some(sse) = &self.sse {
            lines.push(format!("  {}", sse.summary()));
        }
        lines.join("\n")
    }
}

/// Loads (or reuses) the database and runs the measurements.
///
/// # Errors
/// Returns what failed: the database, the service, the broker or sign-in.
pub async fn run(args: WorklistArgs) -> anyhow::Result<WorklistLoadReport> {
    crate::app::install_crypto_provider();
    anyhow::ensure!(
        args.rps > 0.0 && args.seconds > 0.0,
        "--rps and --seconds must be positive"
    );
    anyhow::ensure!(!args.paths.is_empty(), "--paths names no path");
    let protocols = load_dir(&args.alerts_dir)
        .with_context(|| format!("cannot load the protocols in {}", args.alerts_dir.display()))?;
    // A kept fixture is not named like a test database, which the test
    // script drops as stale.
    let prefix = if args.keep {
        "tw_load_worklist"
    } else {
        "tw_test_load_worklist"
    };
    let name = args
        .reuse
        .clone()
        .unwrap_or_else(|| format!("{prefix}_{}", Uuid::new_v4().simple()));
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
    let result = measure(&args, &name, &url, &protocols).await;
    if !args.keep {
        drop_database(&args.database_url, &name).await;
    }
    result
}

async fn measure(
    args: &WorklistArgs,
    name: &str,
    url: &str,
    protocols: &BTreeMap<String, Protocol>,
) -> anyhow::Result<WorklistLoadReport> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {name}"))?;
    let store: Arc<dyn Store> = Arc::new(PgStore::from_pool(pool.clone()));
    store.migrate().await?;
    let now = Timestamp::now();
    let (loaded, load_seconds) = match args.reuse {
        Some(_) => (None, 0.0),
        None => {
            let started = Instant::now();
            let spec = WorklistData {
                patients: args.patients,
                days: args.days,
                past_alerts: args.past_alerts,
                open_alerts: args.open_alerts,
                seed: args.seed,
            };
            let population = worklist_data::spot_check_population(&spec, now);
            let loaded =
                worklist_data::load(&pool, &store, &spec, &population, protocols, now).await?;
            sqlx::raw_sql("vacuum analyze")
                .execute(&pool)
                .await
                .context("vacuum analyze")?;
            sqlx::raw_sql(
                "create table load_fixture (loaded_at timestamptz not null);
                 insert into load_fixture values (now());",
            )
            .execute(&pool)
            .await
            .context("recording the fixture's time")?;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("loaded in {seconds:.0} s: {loaded:?}");
            (Some(loaded), seconds)
        }
    };
    reset_to_fixture(&pool).await?;
    register_ingest_devices(&store, args.ingest_devices).await?;
    let resting = wearer_heart_rates(&pool, args.ingest_devices).await?;
    let nurse = add_nurse(&store, &args.team).await?;
    let team_id: Uuid = sqlx::query_scalar("select id from teams where name = $1")
        .bind(&args.team)
        .fetch_one(&pool)
        .await
        .context("the nurse's team")?;

    // The service, as its own process.
    let http_port = free_port()?;
    let topic_root = format!("load{}/thuiswacht/v1", Uuid::new_v4().simple());
    let service_client_id = format!("thuiswacht-load-{}", Uuid::new_v4().simple());
    let service_path = match &args.service {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("thuiswacht"),
    };
    let mut command = std::process::Command::new(&service_path);
    command
        .arg("serve")
        .env("THUISWACHT_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("THUISWACHT_MQTT_URL", &args.mqtt_url)
        .env("THUISWACHT_MQTT_TOPIC_ROOT", &topic_root)
        .env("THUISWACHT_MQTT_CLIENT_ID", &service_client_id)
        .env("THUISWACHT_DATABASE_URL", url)
        .env("THUISWACHT_ALERTS_DIR", &args.alerts_dir)
        .env("THUISWACHT_DEMO", "false")
        .env("THUISWACHT_LOG", "warn")
        .stdout(std::process::Stdio::null());
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
    let result = drive(
        args,
        &pool,
        &service,
        &topic_root,
        &nurse,
        team_id,
        &resting,
    )
    .await;
    drop(service);
    forget_session(&args.mqtt_url, &service_client_id).await;
    let (paths, absent_paths, ingest_readings_per_s, sse) = result?;

    let readings_estimate: f64 =
        sqlx::query_scalar("select reltuples::float8 from pg_class where relname = 'readings'")
            .fetch_one(&pool)
            .await?;
    let alerts: i64 = sqlx::query_scalar("select count(*) from alerts")
        .fetch_one(&pool)
        .await?;
    let open_alerts_of_team: i64 = sqlx::query_scalar(
        "select count(*) from alerts a join patients p on p.id = a.patient_id
         where a.status <> 'resolved' and p.team_id = $1",
    )
    .bind(team_id)
    .fetch_one(&pool)
    .await?;
    Ok(WorklistLoadReport {
        database: name.to_owned(),
        loaded,
        load_seconds,
        readings_estimate: readings_estimate as i64,
        alerts,
        open_alerts_of_team,
        team: args.team.clone(),
        offered_rps: args.rps,
        seconds: args.seconds,
        paths,
        absent_paths,
        offered_ingest_rate: args.ingest_rate,
        ingest_readings_per_s,
        sse,
    })
}

type Measured = (Vec<PathReport>, Vec<String>, f64, Option<SseReport>);

/// Signs in, starts the background ingest, and runs both measurements.
async fn drive(
    args: &WorklistArgs,
    pool: &PgPool,
    service: &Service,
    topic_root: &str,
    nurse: &worklist_data::BenchNurse,
    team_id: Uuid,
    resting: &Arc<Vec<f64>>,
) -> anyhow::Result<Measured> {
    // The start-up rebuild reads two weeks of readings; give it time.
    let plain = reqwest::Client::new();
    let ready_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if matches!(plain.get(format!("{}/readyz", service.http)).send().await, Ok(r) if r.status() == 200)
        {
            break;
        }
        if Instant::now() > ready_deadline {
            bail!("the service did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let signed_in = client
        .post(format!("{}/api/v1/session", service.http))
        .json(&serde_json::json!({"username": nurse.username, "password": nurse.password}))
        .send()
        .await
        .context("sign in")?;
    anyhow::ensure!(
        signed_in.status() == 200,
        "sign-in answered {}",
        signed_in.status()
    );

    let mut paths = Vec::new();
    let mut absent_paths = Vec::new();
    for path in &args.paths {
        let status = client
            .get(format!("{}{path}", service.http))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?
            .status();
        if status == 404 && path == "/" {
            eprintln!(
                "GET / answers 404: this build serves no worklist page; measuring the others"
            );
            absent_paths.push(path.clone());
        } else if status != 200 {
            bail!("GET {path} answered {status} for a signed-in nurse");
        } else {
            paths.push(path.clone());
        }
    }
    anyhow::ensure!(!paths.is_empty(), "no path to measure");

    // Background ingest for the whole measurement, with room to spare; the
    // publishers are stopped when the measurements end.
    let probe_seconds = args.probes as f64 * args.probe_spacing_ms as f64 / 1_000.0
        + sse_probe::PROBE_DEADLINE.as_secs_f64();
    let ingest_seconds = args.warmup_seconds + args.seconds + probe_seconds + 30.0;
    const PUBLISHERS: usize = 4;
    let mut publishers = Vec::new();
    if args.ingest_rate > 0.0 && args.ingest_devices > 0 {
        let per_message = args.ingest_per_message.max(1);
        let per_publisher =
            (args.ingest_rate * ingest_seconds / PUBLISHERS as f64 / per_message as f64) as u64;
        let published = Arc::new(AtomicU64::new(0));
        for publisher in 0..PUBLISHERS {
            publishers.push(tokio::spawn(publish(
                args.mqtt_url.clone(),
                topic_root.to_owned(),
                publisher,
                PUBLISHERS,
                per_publisher,
                per_message,
                args.ingest_devices,
                Some(args.ingest_rate / PUBLISHERS as f64 / per_message as f64),
                EventTimes::Live {
                    resting: resting.clone(),
                    spacing_micros: (args.ingest_devices as f64 * 1e6 / args.ingest_rate) as i64,
                },
                published.clone(),
            )));
        }
    }
    let outcome = async {
        if args.warmup_seconds > 0.0 {
            open_loop::run(
                &client,
                &service.http,
                &paths,
                args.rps,
                args.warmup_seconds,
            )
            .await;
        }
        let stored_before = stored_total(&plain, &service.http).await?;
        let started = Instant::now();
        let reports = open_loop::run(&client, &service.http, &paths, args.rps, args.seconds).await;
        let stored_after = stored_total(&plain, &service.http).await?;
        let ingest_rate = (stored_after - stored_before) / started.elapsed().as_secs_f64();
        for report in &reports {
            eprintln!("{}", report.summary());
        }
        let sse = if args.probes > 0 {
            let targets = probe_targets(pool, team_id, args.probes).await?;
            anyhow::ensure!(
                targets.len() == args.probes,
                "only {} patients of the team can take a fever probe",
                targets.len()
            );
            let probes_started = Timestamp::now();
            let report = sse_probe::run(
                &client,
                &service.http,
                &args.mqtt_url,
                topic_root,
                &targets,
                Duration::from_millis(args.probe_spacing_ms),
            )
            .await;
            resolve_probe_alerts(pool, &targets, probes_started).await?;
            Some(report?)
        } else {
            None
        };
        Ok::<_, anyhow::Error>((reports, ingest_rate, sse))
    }
    .await;
    for publisher in &publishers {
        publisher.abort();
    }
    let (reports, ingest_rate, sse) = outcome?;
    Ok((reports, absent_paths, ingest_rate, sse))
}

/// Registers the background wearables `load-0…` (and the publisher's probe
/// device) to the first patients, those not registered yet.
async fn register_ingest_devices(store: &Arc<dyn Store>, count: usize) -> anyhow::Result<()> {
    let patients = store.list_patients().await?;
    anyhow::ensure!(!patients.is_empty(), "the database has no patients");
    let mut ids = Vec::with_capacity(count + 1);
    for index in 0..count {
        ids.push(DeviceId::parse(&format!("load-{index}"))?);
    }
    ids.push(DeviceId::parse(PROBE_DEVICE)?);
    let known: std::collections::HashSet<DeviceId> = store
        .find_devices(&ids)
        .await?
        .into_iter()
        .map(|device| device.device_id)
        .collect();
    for (index, device_id) in ids.into_iter().enumerate() {
        if known.contains(&device_id) {
            continue;
        }
        store
            .add_device(&NewDevice {
                device_id,
                profile_id: "wearable".to_owned(),
                patient_id: patients[index % patients.len()].id,
            })
            .await?;
    }
    Ok(())
}

/// Returns the resting heart rate of the wearer of each background
/// wearable `load-{i}`: the median of the heart rates their other devices
/// measured in the last 30 days (72 /min without any), so the wearable
/// sends what this person's heart does and triage sees no stranger.
async fn wearer_heart_rates(pool: &PgPool, count: usize) -> anyhow::Result<Arc<Vec<f64>>> {
    let devices: Vec<String> = (0..count).map(|index| format!("load-{index}")).collect();
    let rows = sqlx::query(
        "select d.device_id,
                (select percentile_cont(0.5) within group (order by r.value)
                 from devices own join readings r on r.device_id = own.device_id
                 where own.patient_id = d.patient_id and own.device_id not like 'load-%'
                   and r.metric = 'heart_rate' and r.ts > now() - interval '30 days')
         from devices d where d.device_id = any($1)",
    )
    .bind(&devices)
    .fetch_all(pool)
    .await
    .context("the wearers' heart rates")?;
    let mut resting = vec![72.0; count];
    for row in rows {
        let device: String = row.get(0);
        let median: Option<f64> = row.get(1);
        if let (Some(index), Some(median)) = (
            device
                .strip_prefix("load-")
                .and_then(|n| n.parse::<usize>().ok()),
            median,
        ) {
            if let Some(slot) = resting.get_mut(index) {
                *slot = median;
            }
        }
    }
    Ok(Arc::new(resting))
}

/// Returns thermometers of patients of the team who have no unresolved
/// alert and none resolved within a day (so a fever raises a new one).
async fn probe_targets(
    pool: &PgPool,
    team_id: Uuid,
    count: usize,
) -> anyhow::Result<Vec<ProbeTarget>> {
    let rows = sqlx::query(
        "select d.patient_id, d.device_id
         from devices d join patients p on p.id = d.patient_id
         where p.team_id = $1 and d.profile_id = 'thermometer' and d.active_until is null
           and not exists (select 1 from alerts a
                           where a.patient_id = d.patient_id
                             and (a.status <> 'resolved' or a.resolved_at > now() - interval '1 day'))
         order by md5(d.device_id || now()::text)
         limit $2",
    )
    .bind(team_id)
    .bind(i64::try_from(count).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ProbeTarget {
            patient_id: row.get(0),
            device_id: row.get(1),
        })
        .collect())
}

/// Resolves the alerts earlier runs on this database raised (the probes',
/// the wearers', and the missed measurements of the days since the fixture
/// was loaded, whose spot checks it does not have), and removes the
/// readings they published, so that every run starts from the fixture's
/// worklist and triage state: otherwise each run's service would rebuild
/// the wearers' state from the heart rates of the runs before, and find
/// ever more of them in alarm.
async fn reset_to_fixture(pool: &PgPool) -> anyhow::Result<()> {
    let loaded_at: Option<chrono::DateTime<chrono::Utc>> =
        match sqlx::query_scalar("select max(loaded_at) from load_fixture")
            .fetch_one(pool)
            .await
        {
            Ok(loaded_at) => loaded_at,
            Err(_) => {
                eprintln!("no load_fixture table (an older database): alerts of earlier runs stay");
                return Ok(());
            }
        };
    let Some(loaded_at) = loaded_at else {
        return Ok(());
    };
    let ids: Vec<Uuid> =
        sqlx::query_scalar("select id from alerts where status <> 'resolved' and opened_at > $1")
            .bind(loaded_at)
            .fetch_all(pool)
            .await?;
    resolve_as_measurement_errors(pool, &ids).await?;
    if !ids.is_empty() {
        eprintln!(
            "resolved {} alerts raised since the fixture was loaded",
            ids.len()
        );
    }
    // The fixture's readings all lie before it was loaded (the BRIN index
    // on ts finds the rest at the table's end).
    let removed = sqlx::query("delete from readings where ts > $1")
        .bind(loaded_at)
        .execute(pool)
        .await?
        .rows_affected();
    if removed > 0 {
        eprintln!("removed {removed} readings published since the fixture was loaded");
    }
    Ok(())
}

/// Resolves what the probes raised, as a nurse who found a measurement
/// error, so that a reused database keeps its worklist.
async fn resolve_probe_alerts(
    pool: &PgPool,
    targets: &[ProbeTarget],
    since: Timestamp,
) -> anyhow::Result<()> {
    let patients: Vec<Uuid> = targets.iter().map(|target| target.patient_id).collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select id from alerts where patient_id = any($1) and status <> 'resolved' and opened_at >= $2",
    )
    .bind(&patients)
    .bind(since.to_datetime())
    .fetch_all(pool)
    .await?;
    resolve_as_measurement_errors(pool, &ids).await
}

/// Resolves `ids` through the alert book, as a nurse who found a
/// measurement error.
async fn resolve_as_measurement_errors(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<()> {
    let store = PgStore::from_pool(pool.clone());
    for id in ids.iter().copied() {
        let Some(mut alert) = store.alert(id).await? else {
            continue;
        };
        let from = alert.status;
        let event = alert.resolve(
            "thuiswacht-load",
            Outcome::MeasurementError,
            Timestamp::now(),
        )?;
        // A concurrent change (the triage stage updating it) is no failure here.
        let _ = store.save_transition(&alert, from, &event).await;
    }
    Ok(())
}
