//! Settings: one flat tree read from a TOML file, overridden by `THUISWACHT_*`
//! environment variables, overridden by command-line flags (DESIGN §3).
//!
//! Keys are flat so that each environment name matches its key
//! (`database_url` ↔ `THUISWACHT_DATABASE_URL`). Every layer is merged into one
//! TOML table before deserializing, so unknown keys and badly typed values are
//! reported the same way whichever layer they came from, and
//! [`Settings::validate`] then lists every remaining problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The type of a settings key, used to read environment values and flags
/// (which are strings) into the right TOML type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Boolean,
}

/// Every key, with its type. A test checks that it matches [`Settings`].
const KEYS: &[(&str, Kind)] = &[
    ("database_url", Kind::Text),
    ("data_dir", Kind::Text),
    ("mqtt_url", Kind::Text),
    ("mqtt_username", Kind::Text),
    ("mqtt_password", Kind::Text),
    ("mqtt_client_id", Kind::Text),
    ("mqtt_share_group", Kind::Text),
    ("mqtt_topic_root", Kind::Text),
    ("mqtt_keep_alive_s", Kind::Integer),
    ("mqtt_ca_file", Kind::Text),
    ("mqtt_max_packet_bytes", Kind::Integer),
    ("embedded_broker_addr", Kind::Text),
    ("http_addr", Kind::Text),
    ("devices_dir", Kind::Text),
    ("alerts_dir", Kind::Text),
    ("batch_max_rows", Kind::Integer),
    ("batch_max_wait_ms", Kind::Integer),
    ("db_max_connections", Kind::Integer),
    ("store_concurrent_commits", Kind::Integer),
    ("db_acquire_timeout_ms", Kind::Integer),
    ("max_payload_bytes", Kind::Integer),
    ("max_future_skew_s", Kind::Integer),
    ("quarantine_raw_max_bytes", Kind::Integer),
    ("demo", Kind::Boolean),
    ("triage_enabled", Kind::Boolean),
    ("reraise_after_minutes", Kind::Integer),
    ("time_zone", Kind::Text),
    ("missed_sweep_interval_ms", Kind::Integer),
    ("shutdown_timeout_ms", Kind::Integer),
    ("session_idle_timeout_s", Kind::Integer),
    ("session_max_age_s", Kind::Integer),
    ("cookie_secure", Kind::Boolean),
    ("trust_proxy_headers", Kind::Boolean),
    ("login_max_failures", Kind::Integer),
    ("login_max_failures_per_address", Kind::Integer),
    ("login_failure_window_s", Kind::Integer),
    ("break_glass_minutes", Kind::Integer),
    ("audit_reads_synchronous", Kind::Boolean),
];

/// The environment prefix of every setting.
pub const ENV_PREFIX: &str = "THUISWACHT_";

/// Environment variables with the prefix that are not settings keys.
const ENV_NOT_SETTINGS: &[&str] = &["THUISWACHT_CONFIG", "THUISWACHT_LOG"];

/// The validated configuration of one Thuiswacht process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `postgres://…` or `sqlite://…`; absent: an embedded SQLite file in `data_dir`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Where the embedded SQLite store and broker keep their files.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `mqtt://host:port` or `mqtts://host:port`; absent: the embedded broker.
    #[serde(default)]
    pub mqtt_url: Option<String>,
    #[serde(default)]
    pub mqtt_username: Option<String>,
    #[serde(default)]
    pub mqtt_password: Option<SecretString>,
    /// Stable client id: the broker keeps the persistent session (and the
    /// unacknowledged messages) under this id across restarts.
    #[serde(default = "default_mqtt_client_id")]
    pub mqtt_client_id: String,
    /// Shared-subscription group (`$share/{group}/…`) for several instances.
    #[serde(default)]
    pub mqtt_share_group: Option<String>,
    /// Topic root; readings arrive on `{root}/devices/{device_id}/readings`.
    #[serde(default = "default_mqtt_topic_root")]
    pub mqtt_topic_root: String,
    #[serde(default = "default_mqtt_keep_alive_s")]
    pub mqtt_keep_alive_s: u64,
    /// PEM file with the CA certificates trusted for `mqtts://`; absent: the system roots.
    #[serde(default)]
    pub mqtt_ca_file: Option<PathBuf>,
    /// Largest MQTT packet accepted from the broker. Larger than
    /// `max_payload_bytes` on purpose: an oversized payload must reach us to be
    /// quarantined, instead of breaking the connection and being redelivered forever.
    #[serde(default = "default_mqtt_max_packet_bytes")]
    pub mqtt_max_packet_bytes: usize,
    /// Where the embedded broker listens. Not 1883, so it never clashes with a
    /// system broker.
    #[serde(default = "default_embedded_broker_addr")]
    pub embedded_broker_addr: SocketAddr,
    #[serde(default = "default_http_addr")]
    pub http_addr: SocketAddr,
    #[serde(default = "default_devices_dir")]
    pub devices_dir: PathBuf,
    #[serde(default = "default_alerts_dir")]
    pub alerts_dir: PathBuf,
    /// A batch is committed when it holds this many readings…
    #[serde(default = "default_batch_max_rows")]
    pub batch_max_rows: usize,
    /// …or when its first message has waited this long.
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// Batches committed at the same time. Each uses one connection; two
    /// keep a two-core database busy while the next batch gathers.
    #[serde(default = "default_store_concurrent_commits")]
    pub store_concurrent_commits: usize,
    /// Pool size. PostgreSQL allows 100 connections by default; the writer
    /// uses at most two at a time, the rest serve the HTTP API.
    #[serde(default = "default_db_max_connections")]
    pub db_max_connections: u32,
    #[serde(default = "default_db_acquire_timeout_ms")]
    pub db_acquire_timeout_ms: u64,
    /// Payloads larger than this are quarantined as `payload_too_large`.
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Readings stamped further than this in the future are quarantined.
    #[serde(default = "default_max_future_skew_s")]
    pub max_future_skew_s: u64,
    /// How much of a rejected payload the quarantine keeps.
    #[serde(default = "default_quarantine_raw_max_bytes")]
    pub quarantine_raw_max_bytes: usize,
    /// Run the simulated demo population. Absent: on only when neither a
    /// database nor a broker is configured (the no-setup mode).
    #[serde(default)]
    pub demo: Option<bool>,
    /// Evaluate stored readings against the protocols in `alerts/` and keep
    /// the alert book. Off only to measure ingest alone.
    #[serde(default = "default_true")]
    pub triage_enabled: bool,
    /// An alert resolved while its condition still holds opens again after
    /// this many minutes (DESIGN: re-raise after resolve-while-abnormal).
    #[serde(default = "default_reraise_after_minutes")]
    pub reraise_after_minutes: u64,
    /// The care teams' time zone (IANA name): missed-measurement rules are
    /// due at a local time of day, and a "day" is a local calendar day.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// How often the missed-measurement sweep looks for measurements that
    /// are due and missing, and for late uploads that resolve them.
    #[serde(default = "default_missed_sweep_interval_ms")]
    pub missed_sweep_interval_ms: u64,
    /// How long shutdown may take to commit and acknowledge what is in flight.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// A session not used for this long ends (NEN 7510 asks for automatic
    /// sign-out of unattended workstations).
    #[serde(default = "default_session_idle_timeout_s")]
    pub session_idle_timeout_s: u64,
    /// A session ends this long after sign-in, used or not (one shift).
    #[serde(default = "default_session_max_age_s")]
    pub session_max_age_s: u64,
    /// Mark the session cookie `Secure` (and send HSTS): set it when the
    /// service is reached over https, directly or through a proxy.
    #[serde(default)]
    pub cookie_secure: bool,
    /// Believe `X-Forwarded-For` (its last address) and
    /// `X-Forwarded-Proto` from the peer: set it only when a reverse proxy
    /// you run is the only way in, or clients can forge their address.
    #[serde(default)]
    pub trust_proxy_headers: bool,
    /// Failed sign-ins per username within the window before further
    /// attempts are refused (429).
    #[serde(default = "default_login_max_failures")]
    pub login_max_failures: u32,
    /// Failed sign-ins per client address within the window: higher than
    /// per username, because a team's office may share one address.
    #[serde(default = "default_login_max_failures_per_address")]
    pub login_max_failures_per_address: u32,
    #[serde(default = "default_login_failure_window_s")]
    pub login_failure_window_s: u64,
    /// How long an admin's break-glass access to one patient lasts.
    #[serde(default = "default_break_glass_minutes")]
    pub break_glass_minutes: u64,
    /// Wait for the disk before answering a read of patient data (a
    /// worklist, a patient page): PostgreSQL's `synchronous_commit` for its
    /// audit row. Off (the default), the row is committed and visible at
    /// once and reaches the disk within a fraction of a second, so a
    /// database crash in that moment can lose the record of a read, while a
    /// nurse's page never waits on a slow disk flush. Changes (and their
    /// audit rows), sign-ins and break-glass always wait.
    #[serde(default)]
    pub audit_reads_synchronous: bool,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_mqtt_client_id() -> String {
    "thuiswacht".to_owned()
}
fn default_mqtt_topic_root() -> String {
    "thuiswacht/v1".to_owned()
}
const fn default_mqtt_keep_alive_s() -> u64 {
    30
}
const fn default_mqtt_max_packet_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_embedded_broker_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 18830))
}
fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_devices_dir() -> PathBuf {
    PathBuf::from("devices")
}
fn default_alerts_dir() -> PathBuf {
    PathBuf::from("alerts")
}
const fn default_batch_max_rows() -> usize {
    5_000
}
const fn default_batch_max_wait_ms() -> u64 {
    10
}
const fn default_store_concurrent_commits() -> usize {
    2
}
const fn default_db_max_connections() -> u32 {
    10
}
const fn default_db_acquire_timeout_ms() -> u64 {
    5_000
}
const fn default_max_payload_bytes() -> usize {
    256 * 1024
}
const fn default_max_future_skew_s() -> u64 {
    300
}
const fn default_quarantine_raw_max_bytes() -> usize {
    64 * 1024
}
const fn default_reraise_after_minutes() -> u64 {
    240
}
fn default_time_zone() -> String {
    "Europe/Amsterdam".to_owned()
}
const fn default_missed_sweep_interval_ms() -> u64 {
    60_000
}
const fn default_true() -> bool {
    true
}
const fn default_shutdown_timeout_ms() -> u64 {
    10_000
}
const fn default_session_idle_timeout_s() -> u64 {
    30 * 60
}
const fn default_session_max_age_s() -> u64 {
    12 * 3600
}
const fn default_login_max_failures() -> u32 {
    5
}
const fn default_login_max_failures_per_address() -> u32 {
    20
}
const fn default_login_failure_window_s() -> u64 {
    15 * 60
}
const fn default_break_glass_minutes() -> u64 {
    60
}

/// Why the settings could not be read; each line is one problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl SettingsError {
    fn one(problem: String) -> SettingsError {
        SettingsError {
            problems: vec![problem],
        }
    }
}

/// The database a [`Settings`] points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

impl Settings {
    /// Reads the layers: the TOML file (if any), then the environment, then
    /// `flags` (key, value-as-text), and validates the result.
    ///
    /// # Errors
    /// Lists every problem found, one per line.
    pub fn load(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Settings, SettingsError> {
        let mut table = match config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    SettingsError::one(format!("cannot read {}: {error}", path.display()))
                })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|error| SettingsError::one(format!("{}: {error}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let mut problems = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_SETTINGS.contains(&name.as_str()) || key.starts_with("TEST_") {
                continue;
            }
            let key = key.to_ascii_lowercase();
            match typed_value(&key, &value) {
                Ok(value) => {
                    table.insert(key, value);
                }
                Err(problem) => problems.push(format!("environment variable {name}: {problem}")),
            }
        }
        for (key, value) in flags {
            match typed_value(key, value) {
                Ok(value) => {
                    table.insert((*key).to_owned(), value);
                }
                Err(problem) => {
                    problems.push(format!("flag --{}: {problem}", key.replace('_', "-")))
                }
            }
        }
        if !problems.is_empty() {
            return Err(SettingsError { problems });
        }
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|error: toml::de::Error| SettingsError::one(error.message().to_owned()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Returns settings with every default, as if no layer set anything.
    pub fn defaults() -> Settings {
        toml::Value::Table(toml::Table::new())
            .try_into()
            .expect("every settings field has a default")
    }

    /// Checks what types alone cannot; lists every problem at once.
    ///
    /// # Errors
    /// Returns all problems found.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                problems.push(
                    "database_url must start with postgres://, postgresql:// or sqlite:".to_owned(),
                );
            }
        }
        if let Some(url) = &self.mqtt_url {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "mqtt" | "mqtts") => {
                    if parsed.host_str().is_none() {
                        problems.push(format!("mqtt_url {url} names no host"));
                    }
                }
                Ok(parsed) => problems.push(format!(
                    "mqtt_url scheme must be mqtt or mqtts, not {}",
                    parsed.scheme()
                )),
                Err(error) => problems.push(format!("mqtt_url {url} is not a URL: {error}")),
            }
        }
        if self.mqtt_password.is_some() && self.mqtt_username.is_none() {
            problems.push("mqtt_password is set but mqtt_username is not".to_owned());
        }
        if let Some(group) = &self.mqtt_share_group {
            if group.is_empty() || group.contains(['/', '+', '#']) {
                problems.push("mqtt_share_group must be non-empty and contain no / + #".to_owned());
            }
        }
        if self.mqtt_client_id.is_empty() || self.mqtt_client_id.len() > 128 {
            problems.push("mqtt_client_id must have 1 to 128 characters".to_owned());
        }
        if self.mqtt_topic_root.is_empty()
            || self.mqtt_topic_root.contains(['+', '#'])
            || self.mqtt_topic_root.ends_with('/')
        {
            problems.push(
                "mqtt_topic_root must be non-empty, without wildcards or a trailing /".to_owned(),
            );
        }
        if !(5..=3600).contains(&self.mqtt_keep_alive_s) {
            problems.push("mqtt_keep_alive_s must be between 5 and 3600".to_owned());
        }
        if let Some(path) = &self.mqtt_ca_file {
            if !path.is_file() {
                problems.push(format!("mqtt_ca_file {} does not exist", path.display()));
            }
        }
        if !(1..=50_000).contains(&self.batch_max_rows) {
            problems.push("batch_max_rows must be between 1 and 50000".to_owned());
        }
        if !(1..=10_000).contains(&self.batch_max_wait_ms) {
            problems.push("batch_max_wait_ms must be between 1 and 10000".to_owned());
        }
        if !(1..=16).contains(&self.store_concurrent_commits) {
            problems.push("store_concurrent_commits must be between 1 and 16".to_owned());
        }
        if !(2..=1_000).contains(&self.db_max_connections) {
            problems.push("db_max_connections must be between 2 and 1000".to_owned());
        }
        if self.max_payload_bytes < 1024 {
            problems.push("max_payload_bytes must be at least 1024".to_owned());
        }
        if self.mqtt_max_packet_bytes <= self.max_payload_bytes {
            problems.push(
                "mqtt_max_packet_bytes must be larger than max_payload_bytes, so oversized payloads reach the quarantine"
                    .to_owned(),
            );
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "time_zone {:?} is not an IANA time zone such as Europe/Amsterdam",
                self.time_zone
            ));
        }
        if !(10..=3_600_000).contains(&self.missed_sweep_interval_ms) {
            problems.push("missed_sweep_interval_ms must be between 10 and 3600000".to_owned());
        }
        if !(1..=86_400).contains(&self.session_idle_timeout_s) {
            problems.push("session_idle_timeout_s must be between 1 and 86400".to_owned());
        }
        if !(1..=7 * 86_400).contains(&self.session_max_age_s) {
            problems.push("session_max_age_s must be between 1 and 604800".to_owned());
        }
        if self.login_max_failures == 0 || self.login_max_failures_per_address == 0 {
            problems.push(
                "login_max_failures and login_max_failures_per_address must be at least 1"
                    .to_owned(),
            );
        }
        if !(1..=86_400).contains(&self.login_failure_window_s) {
            problems.push("login_failure_window_s must be between 1 and 86400".to_owned());
        }
        if !(1..=24 * 60).contains(&self.break_glass_minutes) {
            problems.push("break_glass_minutes must be between 1 and 1440".to_owned());
        }
        for (key, dir) in [
            ("devices_dir", &self.devices_dir),
            ("alerts_dir", &self.alerts_dir),
        ] {
            if !dir.is_dir() {
                problems.push(format!("{key} {} is not a directory", dir.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError { problems })
        }
    }

    /// Returns which database the settings point at.
    pub fn database_kind(&self) -> DatabaseKind {
        match &self.database_url {
            Some(url) if url.expose_secret().starts_with("postgres") => DatabaseKind::Postgres,
            _ => DatabaseKind::Sqlite,
        }
    }

    /// Returns the database URL, with the embedded SQLite file as default.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("thuiswacht.db").display()
            )),
        }
    }

    /// Returns whether the embedded broker runs (no `mqtt_url` configured).
    pub fn uses_embedded_broker(&self) -> bool {
        self.mqtt_url.is_none()
    }

    /// Returns whether the demo population runs.
    pub fn demo_enabled(&self) -> bool {
        self.demo
            .unwrap_or(self.database_url.is_none() && self.mqtt_url.is_none())
    }

    /// Returns the topic filter of readings the ingestor subscribes to.
    pub fn readings_topic_filter(&self) -> String {
        self.device_topic_filter("readings")
    }

    /// Returns the topic filter of device statuses the ingestor subscribes to.
    pub fn status_topic_filter(&self) -> String {
        self.device_topic_filter("status")
    }

    fn device_topic_filter(&self, leaf: &str) -> String {
        let topic = format!("{}/devices/+/{leaf}", self.mqtt_topic_root);
        match &self.mqtt_share_group {
            Some(group) => format!("$share/{group}/{topic}"),
            None => topic,
        }
    }

    /// Returns the care teams' time zone (validated at load).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.time_zone
            .parse()
            .unwrap_or(crate::triage::schedule::DEFAULT_TIME_ZONE)
    }

    pub fn missed_sweep_interval(&self) -> Duration {
        Duration::from_millis(self.missed_sweep_interval_ms)
    }

    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    pub fn session_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.session_idle_timeout_s)
    }

    pub fn session_max_age(&self) -> Duration {
        Duration::from_secs(self.session_max_age_s)
    }

    pub fn login_failure_window(&self) -> Duration {
        Duration::from_secs(self.login_failure_window_s)
    }

    pub fn break_glass_duration(&self) -> Duration {
        Duration::from_secs(self.break_glass_minutes.saturating_mul(60))
    }
}

/// Turns a text value (from the environment or a flag) into a TOML value of
/// the key's type.
fn typed_value(key: &str, text: &str) -> Result<toml::Value, String> {
    let Some((_, kind)) = KEYS.iter().find(|(name, _)| *name == key) else {
        return Err(format!("unknown setting {key}"));
    };
    match kind {
        Kind::Text => Ok(toml::Value::String(text.to_owned())),
        Kind::Integer => text
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{key} must be a whole number, not {text:?}")),
        Kind::Boolean => match text.trim() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("{key} must be true or false, not {text:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_dirs() -> Vec<(&'static str, String)> {
        let root = env!("CARGO_MANIFEST_DIR");
        vec![
            ("devices_dir", format!("{root}/devices")),
            ("alerts_dir", format!("{root}/alerts")),
        ]
    }

    #[test]
    fn every_key_is_a_settings_field() {
        // Arrange: a table setting each key to a value of its kind.
        let mut table = toml::Table::new();
        for (key, kind) in KEYS {
            let value = match kind {
                Kind::Text => toml::Value::String("127.0.0.1:1".to_owned()),
                Kind::Integer => toml::Value::Integer(1),
                Kind::Boolean => toml::Value::Boolean(true),
            };
            table.insert((*key).to_owned(), value);
        }
        // Act + Assert: deny_unknown_fields would refuse a key that is not a field.
        let parsed: Result<Settings, _> = toml::Value::Table(table).try_into();
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }

    #[test]
    fn flags_override_environment_which_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("thuiswacht.toml");
        std::fs::write(
            &file,
            "batch_max_rows = 10\nbatch_max_wait_ms = 7\nmqtt_client_id = \"file\"\n",
        )
        .unwrap();
        let env = vec![
            ("THUISWACHT_BATCH_MAX_ROWS".to_owned(), "20".to_owned()),
            ("THUISWACHT_MQTT_CLIENT_ID".to_owned(), "1234".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let mut flags = with_dirs();
        flags.push(("mqtt_client_id", "flag".to_owned()));
        let settings = Settings::load(Some(&file), env, &flags).unwrap();
        assert_eq!(settings.batch_max_rows, 20);
        assert_eq!(settings.batch_max_wait_ms, 7);
        assert_eq!(settings.mqtt_client_id, "flag");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let env = vec![
            ("THUISWACHT_MQTT_URL".to_owned(), "http://broker".to_owned()),
            ("THUISWACHT_BATCH_MAX_ROWS".to_owned(), "0".to_owned()),
            ("THUISWACHT_DATABASE_URL".to_owned(), "mysql://x".to_owned()),
            (
                "THUISWACHT_TIME_ZONE".to_owned(),
                "Europe/Drenthe".to_owned(),
            ),
        ];
        let error = Settings::load(None, env, &with_dirs()).unwrap_err();
        assert_eq!(error.problems.len(), 4, "{error}");
        assert!(error.to_string().contains("time_zone \"Europe/Drenthe\""));
        assert!(error
            .to_string()
            .contains("mqtt_url scheme must be mqtt or mqtts"));
    }

    #[test]
    fn unknown_and_badly_typed_environment_values_are_named() {
        let env = vec![
            ("THUISWACHT_BATCH_SIZE".to_owned(), "5".to_owned()),
            ("THUISWACHT_BATCH_MAX_ROWS".to_owned(), "many".to_owned()),
        ];
        let error = Settings::load(None, env, &with_dirs()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("THUISWACHT_BATCH_SIZE: unknown setting batch_size"),
            "{text}"
        );
        assert!(
            text.contains("batch_max_rows must be a whole number"),
            "{text}"
        );
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("thuiswacht.toml");
        std::fs::write(&file, "databse_url = \"postgres://x\"\n").unwrap();
        let error = Settings::load(Some(&file), Vec::new(), &with_dirs()).unwrap_err();
        assert!(error.to_string().contains("databse_url"), "{error}");
    }

    #[test]
    fn no_configuration_means_embedded_defaults_and_demo() {
        let settings = Settings::load(None, Vec::new(), &with_dirs()).unwrap();
        assert!(settings.uses_embedded_broker());
        assert_eq!(settings.database_kind(), DatabaseKind::Sqlite);
        assert!(settings.demo_enabled());
        assert_eq!(
            settings.readings_topic_filter(),
            "thuiswacht/v1/devices/+/readings"
        );
        let shared = Settings {
            mqtt_share_group: Some("ingest".to_owned()),
            ..settings
        };
        assert_eq!(
            shared.readings_topic_filter(),
            "$share/ingest/thuiswacht/v1/devices/+/readings"
        );
        assert_eq!(
            shared.status_topic_filter(),
            "$share/ingest/thuiswacht/v1/devices/+/status"
        );
    }
}
