//! Test harness: fresh databases, a running Thuiswacht (in-process or as the
//! real binary), an MQTT publisher, and waiting with deadlines.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use sqlx::postgres::PgPoolOptions;
use sqlx::Connection;
use thuiswacht::app::{install_crypto_provider, Application};
use thuiswacht::domain::DeviceId;
use thuiswacht::settings::Settings;
use thuiswacht::store::{NewDevice, NewPatient, PgStore, Store, TokenScope};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The PostgreSQL server the tests use.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Mosquitto the tests use.
pub fn mqtt_url() -> String {
    std::env::var("THUISWACHT_TEST_MQTT_URL")
        .unwrap_or_else(|_| "mqtt://127.0.0.1:18831".to_owned())
}

/// The shared test data folder (`../shared/data`).
pub fn shared_data() -> PathBuf {
    match std::env::var("THUISWACHT_TEST_SHARED_DATA") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A fresh, empty PostgreSQL database for one test. Dropped by the next
/// `scripts/test` run (its name starts with `tw_test_`).
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name = format!("tw_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&database_url())
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/test starts it)");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let base = database_url();
        let (prefix, _) = base.rsplit_once('/').expect("database url has a path");
        TestDatabase {
            url: format!("{prefix}/{name}"),
            name,
        }
    }

    /// Returns a migrated store on this database.
    pub async fn store(&self) -> Arc<dyn Store> {
        install_crypto_provider();
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await
            .expect("connect to test database");
        let store = PgStore::from_pool(pool);
        store.migrate().await.expect("migrate");
        Arc::new(store)
    }
}

/// Settings for a test: its own database, the test broker, a unique client id
/// and topic root, an ephemeral HTTP port.
pub fn test_settings(database_url: &str, topic_root: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.database_url = Some(database_url.to_owned().into());
    settings.mqtt_url = Some(mqtt_url());
    settings.mqtt_client_id = format!("tw-test-{}", Uuid::new_v4().simple());
    settings.mqtt_topic_root = topic_root.to_owned();
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    settings.devices_dir = repo_path("devices");
    settings.alerts_dir = repo_path("alerts");
    settings.demo = Some(false);
    settings
}

/// A unique topic root per test, so tests never see each other's messages.
pub fn unique_topic_root() -> String {
    format!("t{}/thuiswacht/v1", Uuid::new_v4().simple())
}

/// A Thuiswacht running in this process.
pub struct TestApp {
    pub http: String,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<thuiswacht::telemetry::Metrics>,
    pub settings: Settings,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> TestApp {
        let app = Application::build(settings.clone())
            .await
            .expect("build application");
        let http = format!("http://{}", app.http_addr());
        let store = app.store();
        let metrics = app.metrics();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let test_app = TestApp {
            http,
            store,
            metrics,
            settings,
            shutdown,
            task,
        };
        test_app.wait_until_ready().await;
        test_app
    }

    pub async fn wait_until_ready(&self) {
        wait_until_ready(&self.http).await;
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("app task")
            .expect("app stopped cleanly");
    }
}

/// Registers a team, one patient and the given devices; returns the patient id.
pub async fn register_devices(store: &Arc<dyn Store>, devices: &[(&str, &str)]) -> Uuid {
    let team = format!("team-{}", Uuid::new_v4().simple());
    store.add_team(&team).await.expect("add team");
    let patient = store
        .add_patient(&NewPatient {
            id: uuid::Uuid::new_v4(),
            team,
            display_name: "Mevrouw Test".to_owned(),
            birth_year: Some(1938),
            protocols: vec!["default".to_owned()],
        })
        .await
        .expect("add patient");
    for (device_id, profile) in devices {
        store
            .add_device(&NewDevice {
                device_id: DeviceId::parse(device_id).unwrap(),
                profile_id: (*profile).to_owned(),
                patient_id: patient,
            })
            .await
            .expect("add device");
    }
    patient
}

/// Creates an ingest token and returns its secret.
pub async fn ingest_token(store: &Arc<dyn Store>) -> String {
    let secret = thuiswacht::commands::new_token_secret();
    store
        .add_token(
            "test gateway",
            TokenScope::Ingest,
            &thuiswacht::api::token_hash(&secret),
        )
        .await
        .expect("add token");
    secret
}

/// Waits until `condition` holds, polling; panics with `what` at the deadline.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    loop {
        if condition().await {
            return;
        }
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the store holds exactly `expected` readings.
pub async fn wait_for_readings(store: &Arc<dyn Store>, expected: i64, deadline: Duration) {
    let mut last = -1;
    let started = tokio::time::Instant::now();
    loop {
        let count = store.count_readings().await.unwrap_or(-1);
        if count == expected {
            return;
        }
        assert!(
            count <= expected,
            "more readings stored ({count}) than published ({expected})"
        );
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?}: {count} of {expected} readings stored (previous poll {last})");
        }
        last = count;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An MQTT publisher with its own connection (a "device gateway").
pub struct Publisher {
    pub client: AsyncClient,
    acked: tokio::sync::watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(broker_url: &str) -> Publisher {
        let url = url::Url::parse(broker_url).unwrap();
        let mut options = MqttOptions::new(
            format!("tw-gw-{}", Uuid::new_v4().simple()),
            url.host_str().unwrap(),
            url.port().unwrap_or(1883),
        );
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(8 * 1024 * 1024, 8 * 1024 * 1024);
        options.set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let (acked_tx, acked) = tokio::sync::watch::channel(0_u64);
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            let mut acked_count = 0_u64;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked_count += 1;
                        let _ = acked_tx.send(acked_count);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(error = %error, "test publisher connection error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .expect(
                "publisher connects to the broker (is Mosquitto running? scripts/test starts it)",
            )
            .unwrap();
        Publisher {
            client,
            acked,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("queue publish");
    }

    /// Waits until the broker has acknowledged `count` publishes in all.
    pub async fn wait_acked(&self, count: u64) {
        let mut acked = self.acked.clone();
        tokio::time::timeout(Duration::from_secs(120), acked.wait_for(|n| *n >= count))
            .await
            .expect("broker acknowledges the publishes")
            .unwrap();
    }

    pub fn acked(&self) -> u64 {
        *self.acked.borrow()
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A Thuiswacht v1 payload with `count` readings of one metric, one second apart.
pub fn v1_payload(
    device_id: &str,
    metric: &str,
    unit: &str,
    start_seconds: i64,
    count: usize,
    value: f64,
) -> String {
    let readings: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let ts = chrono::DateTime::from_timestamp(start_seconds + i as i64, 0).unwrap();
            serde_json::json!({"metric": metric, "value": value, "unit": unit, "ts": ts.to_rfc3339()})
        })
        .collect();
    serde_json::json!({"device_id": device_id, "readings": readings}).to_string()
}

pub fn readings_topic(root: &str, device_id: &str) -> String {
    format!("{root}/devices/{device_id}/readings")
}

/// A Thuiswacht process started from the real binary.
pub struct ServiceProcess {
    pub child: Child,
    pub http: String,
}

impl ServiceProcess {
    /// Starts `thuiswacht serve` with `env` and waits until it is ready.
    pub async fn start(env: &[(&str, String)]) -> ServiceProcess {
        let http_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_thuiswacht"));
        command
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("THUISWACHT_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env(
                "THUISWACHT_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start thuiswacht binary");
        let process = ServiceProcess {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
        };
        wait_until_ready(&process.http).await;
        process
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: `kill` from the shell, to avoid a libc dependency.
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("wait")
    }

    /// Returns the resident set size in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse().ok())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `GET {http}/readyz` answers 200.
pub async fn wait_until_ready(http: &str) {
    let client = reqwest::Client::new();
    let url = format!("{http}/readyz");
    wait_for(
        "the service to become ready",
        Duration::from_secs(30),
        || async {
            matches!(client.get(&url).send().await, Ok(response) if response.status() == 200)
        },
    )
    .await;
}

/// The password the test users get: `geheim-{username}-2026`.
pub fn test_password(username: &str) -> String {
    format!("geheim-{username}-2026")
}

/// Adds a user with [`test_password`] to the named teams; returns its id.
pub async fn add_test_user(
    store: &Arc<dyn Store>,
    username: &str,
    role: thuiswacht::store::Role,
    teams: &[&str],
) -> Uuid {
    store
        .add_user(&thuiswacht::store::NewUser {
            id: Uuid::new_v4(),
            username: username.to_owned(),
            display_name: username.to_owned(),
            role,
            password_hash: thuiswacht::auth::password::hash_password(&test_password(username))
                .expect("hash the test password"),
            teams: teams.iter().map(|team| (*team).to_owned()).collect(),
        })
        .await
        .expect("add test user")
}

/// Adds a team (if new) and a patient of it following `default`; returns
/// the patient's id.
pub async fn add_test_patient(store: &Arc<dyn Store>, team: &str, display_name: &str) -> Uuid {
    match store.add_team(team).await {
        Ok(_) | Err(thuiswacht::store::StoreError::Conflict(_)) => {}
        Err(error) => panic!("add team {team}: {error}"),
    }
    store
        .add_patient(&NewPatient {
            id: Uuid::new_v4(),
            team: team.to_owned(),
            display_name: display_name.to_owned(),
            birth_year: Some(1938),
            protocols: vec!["default".to_owned()],
        })
        .await
        .expect("add test patient")
}

/// Signs `username` in (with [`test_password`]); returns a client holding
/// the session cookie and the session's CSRF token.
pub async fn sign_in(http: &str, username: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let body: serde_json::Value = client
        .post(format!("{http}/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": test_password(username)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (client, body["csrf_token"].as_str().unwrap().to_owned())
}
