//! The application: builds every stage from the settings and runs them until
//! stopped (DESIGN §1).
//!
//! `Application::build` connects and migrates the store, loads the device
//! profiles, starts the embedded broker when no broker is configured, and
//! binds the HTTP listener (port 0 allowed). `run_until_stopped` runs ingest,
//! the store writer and the HTTP service until the token fires, then shuts
//! down in data-flow order: ingest and HTTP stop taking input, the writer
//! commits and acknowledges what it holds, and the MQTT connection sends
//! those acknowledgements before it closes.

use crate::protocols::catalog::Catalog;
use std::net::SocketAddr;
use std::sync::{Arc, Once};

use anyhow::Context;
use rumqttc::{AsyncClient, EventLoop};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::collections::HashSet;

use uuid::Uuid;

use crate::alert_book::missed::MissedMeasurementSweeper;
use crate::alert_book::stage::{run_escalation_sweeper, TriageStage};
use crate::api::{self, AppState};
use crate::ingest::mqtt::{mqtt_options, MqttIngestor};
use crate::ingest::{IngestedBatch, INGESTED_CHANNEL_CAPACITY};
use crate::profiles::Profiles;
use crate::settings::Settings;
use crate::store::writer::StoreWriter;
use crate::store::writer::StoredBatch;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::triage::engine::TriageEngine;

/// Installs the process-wide rustls crypto provider (ring) once. rumqttc and
/// sqlx would otherwise disagree about which provider to use.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A built, not yet running, Thuiswacht.
pub struct Application {
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
    profiles: Arc<Profiles>,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    broker_url: String,
    mqtt_client: AsyncClient,
    mqtt_eventloop: EventLoop,
    /// The protocols in force (files and saved versions).
    protocols: Arc<Catalog>,
    /// The triage stage with its rebuilt engine, when triage is on.
    triage: Option<(TriageStage, TriageEngine, HashSet<Uuid>)>,
}

impl Application {
    /// Connects, migrates, loads profiles, starts the embedded broker if
    /// needed and binds the HTTP listener.
    ///
    /// # Errors
    /// Returns what failed, with context.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        install_crypto_provider();
        // Hash the dummy password now, so the first sign-in of an unknown
        // user takes no longer than that of a known one.
        tokio::task::spawn_blocking(crate::auth::password::dummy_hash);
        let settings = Arc::new(settings);
        let profiles =
            Profiles::load_dir(&settings.devices_dir).context("failed to load device profiles")?;
        let store = crate::store::open(&settings).await?;
        let broker_url = match &settings.mqtt_url {
            Some(url) => url.clone(),
            None => {
                crate::broker::start(settings.embedded_broker_addr, settings.max_payload_bytes)
                    .context("failed to start the embedded mqtt broker")?;
                format!("mqtt://{}", settings.embedded_broker_addr)
            }
        };
        let options = mqtt_options(&settings, &broker_url).context("invalid mqtt settings")?;
        let (mqtt_client, mqtt_eventloop) =
            AsyncClient::new(options, crate::ingest::mqtt::REQUEST_CHANNEL_CAPACITY);
        let protocols = Arc::new(
            Catalog::load(&settings.alerts_dir).context("failed to load alert protocols")?,
        );
        protocols
            .refresh(store.as_ref())
            .await
            .context("failed to read the saved protocol versions")?;
        let triage = if settings.triage_enabled {
            let stage = TriageStage {
                store: store.clone(),
                protocols: protocols.clone(),
                reraise_after: std::time::Duration::from_secs(
                    settings.reraise_after_minutes.saturating_mul(60),
                ),
            };
            let (engine, registered) = stage
                .rebuild(crate::domain::Timestamp::now())
                .await
                .context("failed to rebuild triage state")?;
            Some((stage, engine, registered))
        } else {
            None
        };
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("failed to listen on {}", settings.http_addr))?;
        Ok(Application {
            settings,
            store,
            profiles: Arc::new(profiles),
            metrics: Arc::new(Metrics::new()),
            listener,
            broker_url,
            mqtt_client,
            mqtt_eventloop,
            protocols,
            triage,
        })
    }

    /// Returns the address the HTTP service listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Returns the HTTP port.
    pub fn port(&self) -> u16 {
        self.http_addr().port()
    }

    /// Returns the URL of the broker in use (the embedded one or the configured one).
    pub fn broker_url(&self) -> &str {
        &self.broker_url
    }

    /// Returns the store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Returns the metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs every stage until `shutdown` fires, then stops them in order.
    ///
    /// # Errors
    /// Returns an error when a stage fails; the process should then exit.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application {
            settings,
            store,
            profiles,
            metrics,
            listener,
            broker_url: _,
            mqtt_client,
            mqtt_eventloop,
            protocols,
            triage,
        } = self;
        let tracker = TaskTracker::new();
        let abort = CancellationToken::new();
        let writer_done = CancellationToken::new();
        let (ingested_tx, ingested_rx) = mpsc::channel::<IngestedBatch>(INGESTED_CHANNEL_CAPACITY);

        let stored_tx = match triage {
            Some((stage, engine, registered)) => {
                let stage_protocols = stage.protocols.clone();
                let (stored_tx, stored_rx) =
                    mpsc::channel::<StoredBatch>(crate::store::writer::STORED_CHANNEL_CAPACITY);
                tracker.spawn(stage.run(engine, registered, stored_rx));
                tracker.spawn(run_escalation_sweeper(store.clone(), shutdown.clone()));
                let missed = MissedMeasurementSweeper::new(
                    store.clone(),
                    stage_protocols,
                    profiles.clone(),
                    settings.time_zone(),
                );
                tracker.spawn(missed.run(settings.missed_sweep_interval(), shutdown.clone()));
                Some(stored_tx)
            }
            None => None,
        };
        let api_stored_tx = stored_tx.clone();
        let writer = StoreWriter {
            store: store.clone(),
            profiles,
            settings: settings.clone(),
            metrics: metrics.clone(),
            acker: Some(mqtt_client.clone()),
            stored_tx,
        };
        let writer_task = {
            let abort = abort.clone();
            let writer_done = writer_done.clone();
            tracker.spawn(async move {
                writer.run(ingested_rx, abort).await;
                writer_done.cancel();
            })
        };

        let ingestor = MqttIngestor {
            client: mqtt_client,
            eventloop: mqtt_eventloop,
            settings: settings.clone(),
            metrics: metrics.clone(),
            ingested_tx: ingested_tx.clone(),
        };
        let ingest_task = tracker.spawn(ingestor.run(shutdown.clone(), writer_done.clone()));

        let store_for_demo = store.clone();
        let state = AppState {
            store,
            settings: settings.clone(),
            metrics,
            ingested_tx,
            stored_tx: api_stored_tx,
            login_throttle: Arc::new(crate::auth::LoginThrottle::from_settings(&settings)),
            shutdown: shutdown.clone(),
            protocols: protocols.clone(),
            backtests: Arc::default(),
        };
        tracker.spawn(reload_protocols_on_hangup(
            protocols.clone(),
            shutdown.clone(),
        ));
        let router = api::app(state);
        let http_task = {
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                // Connection info gives the audit trail and the sign-in rate
                // limit the client's address.
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
            })
        };
        if settings.demo_enabled() {
            tracker.spawn(run_demo(store_for_demo, settings.clone(), shutdown.clone()));
        }
        tracker.close();

        // A stage that ends before shutdown is a failure: report it and stop.
        let outcome = tokio::select! {
            biased;
            _ = shutdown.cancelled() => Ok(()),
            _ = writer_done.cancelled() => Err(anyhow::anyhow!("store writer stopped unexpectedly")),
        };
        shutdown.cancel();
        let deadline = settings.shutdown_timeout();
        let abort_after_deadline = {
            let abort = abort.clone();
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                tracing::warn!("shutdown deadline passed; abandoning uncommitted batches");
                abort.cancel();
            })
        };
        match http_task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(error = %error, "http server failed"),
            Err(error) => tracing::error!(error = %error, "http server task failed"),
        }
        let _ = writer_task.await;
        let _ = ingest_task.await;
        tracker.wait().await;
        abort_after_deadline.abort();
        tracing::info!("stopped");
        outcome
    }
}

/// Returns a token that fires on Ctrl-C or SIGTERM.
/// Reloads the protocol files on `SIGHUP` until `shutdown`; an invalid
/// file is refused and logged, and the rules in force stay.
async fn reload_protocols_on_hangup(protocols: Arc<Catalog>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(error = %error, "no SIGHUP handler; protocol files reload only by restart");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hangups.recv() => log_reload(&protocols.reload(crate::domain::Timestamp::now())),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (protocols, shutdown);
    }
}

/// Logs what a reload of the protocol files did.
pub fn log_reload(
    result: &Result<crate::protocols::catalog::ReloadReport, crate::protocols::ProtocolError>,
) {
    match result {
        Ok(report) => tracing::info!(
            applied = ?report.applied,
            overridden_by_saved_versions = ?report.overridden,
            unchanged = report.unchanged.len(),
            "protocol files reloaded"
        ),
        Err(error) => {
            tracing::error!(error = %error, "protocol files refused; the rules in force stay")
        }
    }
}

pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler succeeds on unix");
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

/// Patients in the demo population: enough to fill a worklist, few enough
/// that the 14-day history loads in seconds.
const DEMO_PATIENTS: usize = 16;
/// Days of demo history published at start, so charts and baselines have data.
const DEMO_DAYS: u32 = 14;
/// The demo seed: the same demo every time.
const DEMO_SEED: u64 = 2026;

/// Registers the demo population and publishes its history, then its
/// readings in real time, to the broker in use, like real devices would.
async fn run_demo(store: Arc<dyn Store>, settings: Arc<Settings>, shutdown: CancellationToken) {
    use crate::simulate::{publish, register, write_truth, Population, PublishOptions};
    let population = Population::generate(
        DEMO_SEED,
        DEMO_PATIENTS,
        DEMO_DAYS,
        crate::domain::Timestamp::now(),
    );
    if let Err(error) = register(&store, &population).await {
        tracing::error!(error = %error, "failed to register the demo population");
        return;
    }
    let truth = settings.data_dir.join("demo-truth.jsonl");
    if let Err(error) = write_truth(&population, &truth) {
        tracing::warn!(error = %error, "failed to write the demo deteriorations");
    }
    tracing::info!(
        patients = DEMO_PATIENTS,
        days = DEMO_DAYS,
        "demo population publishing its history"
    );
    let options = PublishOptions {
        broker_url: crate::commands::broker_url(&settings),
        topic_root: settings.mqtt_topic_root.clone(),
        client_id: "thuiswacht-demo-devices".to_owned(),
        rate: None,
        follow: true,
        until: None,
        progress: false,
    };
    if let Err(error) = publish(&population, &options, shutdown).await {
        tracing::warn!(error = %error, "demo devices stopped");
    }
}

/// The demo nurse's username.
pub const DEMO_USERNAME: &str = "demo";
/// Where the demo nurse's generated password is kept, inside `data_dir`.
const DEMO_LOGIN_FILE: &str = "demo-login.txt";

/// Makes sure the demo has a nurse of all four demo teams to sign in with,
/// and returns her password. The password is generated on the first run
/// and kept in `data_dir/demo-login.txt` (readable by the owner only), so
/// a restart shows the same one. Only for the demo: production users come
/// from `thuiswacht admin user add`.
///
/// # Errors
/// The store or the file could not be written.
pub async fn ensure_demo_user(
    store: &Arc<dyn Store>,
    settings: &Settings,
) -> anyhow::Result<String> {
    use crate::store::{NewUser, Role, StoreError};
    let path = settings.data_dir.join(DEMO_LOGIN_FILE);
    let exists = store
        .user_credentials(DEMO_USERNAME)
        .await
        .context("failed to look up the demo user")?
        .is_some();
    if exists {
        return match std::fs::read_to_string(&path) {
            Ok(password) => Ok(password.trim().to_owned()),
            // A demo user whose password nobody knows is of no use.
            Err(error) => Err(anyhow::anyhow!(
                "the demo user exists but {} cannot be read ({error}); remove {} to start the demo afresh",
                path.display(),
                settings.data_dir.display()
            )),
        };
    }
    for team in crate::simulate::DEMO_TEAMS {
        match store.add_team(team).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(error) => return Err(error).context("failed to add a demo team"),
        }
    }
    let password = crate::auth::password::generate_password();
    let hash = crate::auth::password::hash_password(&password)
        .context("failed to hash the demo password")?;
    store
        .add_user(&NewUser {
            id: Uuid::new_v4(),
            username: DEMO_USERNAME.to_owned(),
            display_name: "Demo verpleegkundige".to_owned(),
            role: Role::Nurse,
            password_hash: hash,
            teams: crate::simulate::DEMO_TEAMS
                .iter()
                .map(|team| (*team).to_owned())
                .collect(),
        })
        .await
        .context("failed to add the demo user")?;
    write_private(&path, &password).context("failed to keep the demo password")?;
    Ok(password)
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}
