//! The command line (DESIGN §3): `serve` (default), `migrate`, `check`,
//! `simulate`, `admin …`. Every subcommand reads the same settings; the
//! flags below override the file and the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Telemonitoring ingestion and triage for frail older people at home.
#[derive(Debug, Parser)]
#[command(name = "thuiswacht", version, about)]
pub struct Cli {
    /// Settings file (TOML); also THUISWACHT_CONFIG.
    #[arg(long, global = true, env = "THUISWACHT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flags: SettingsFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings that can be given as flags; each overrides only when given.
#[derive(Debug, Args, Default)]
pub struct SettingsFlags {
    /// postgres://… or sqlite://…; absent: an embedded SQLite file.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// mqtt://host:port or mqtts://host:port; absent: the embedded broker.
    #[arg(long, global = true)]
    pub mqtt_url: Option<String>,
    /// Address of the HTTP service, e.g. 127.0.0.1:8080.
    #[arg(long, global = true)]
    pub http_addr: Option<String>,
    #[arg(long, global = true)]
    pub devices_dir: Option<String>,
    #[arg(long, global = true)]
    pub alerts_dir: Option<String>,
    /// Folder of the embedded store.
    #[arg(long, global = true)]
    pub data_dir: Option<String>,
    /// MQTT client id (the persistent session's name).
    #[arg(long, global = true)]
    pub mqtt_client_id: Option<String>,
    /// Run the simulated demo population (true/false).
    #[arg(long, global = true)]
    pub demo: Option<String>,
}

impl SettingsFlags {
    /// Returns the given flags as (settings key, value) pairs.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let fields: [(&'static str, &Option<String>); 8] = [
            ("database_url", &self.database_url),
            ("mqtt_url", &self.mqtt_url),
            ("http_addr", &self.http_addr),
            ("devices_dir", &self.devices_dir),
            ("alerts_dir", &self.alerts_dir),
            ("data_dir", &self.data_dir),
            ("mqtt_client_id", &self.mqtt_client_id),
            ("demo", &self.demo),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                pairs.push((key, value.clone()));
            }
        }
        pairs
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline and the web service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate devices/ and alerts/ and exit non-zero on any error.
    Check,
    /// Score NEWS2 for vital-sign sets: JSON lines on stdin, one JSON object per line on stdout.
    News2,
    /// Run the triage engine over recorded vital signs and write one JSON line per patient-hour.
    Replay(ReplayArgs),
    /// Run a simulated population through the triage engine and report detection, lead time and false alerts.
    Evaluate(EvaluateArgs),
    /// Simulate a population of older people at home and publish their readings over MQTT.
    Simulate(SimulateArgs),
    /// Manage teams, patients, devices, tokens; list the quarantine.
    Admin {
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Care teams.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// Patients (pseudonymous).
    Patient {
        #[command(subcommand)]
        command: PatientCommand,
    },
    /// Devices and the patient each is linked to.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Bearer tokens for gateways and integrations.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// People who sign in: nurses, coordinators and admins.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Personal thresholds: a patient's own settings for a rule, versioned.
    Threshold {
        #[command(subcommand)]
        command: ThresholdCommand,
    },
    /// What was refused, why and when.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team; prints its id.
    Add { name: String },
    /// Set the team's response target for a priority (wins over the protocols').
    Target {
        #[arg(long)]
        team: String,
        #[arg(long, value_parser = ["high", "medium", "low", "informational"])]
        priority: String,
        #[arg(long)]
        minutes: u32,
        /// Who sets it.
        #[arg(long)]
        author: String,
    },
    /// List teams.
    List,
}

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    /// Register a patient; prints the patient id.
    Add {
        #[arg(long)]
        team: String,
        #[arg(long)]
        display_name: String,
        #[arg(long)]
        birth_year: Option<i32>,
        /// Protocol ids from alerts/, comma separated.
        #[arg(long, value_delimiter = ',')]
        protocol: Vec<String>,
    },
    /// List patients.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Link a device to a patient; prints the device id.
    Add {
        device_id: String,
        /// Profile id from devices/ (its file stem).
        #[arg(long)]
        profile: String,
        #[arg(long)]
        patient: uuid::Uuid,
    },
    /// List devices.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints the secret once (only its hash is stored).
    Add {
        name: String,
        #[arg(long, value_parser = ["ingest", "read", "observe"])]
        scope: String,
        /// Teams whose patients a read or observe token may reach (repeat
        /// or comma separate).
        #[arg(long, value_delimiter = ',')]
        team: Vec<String>,
        /// Let a read or observe token reach every team's patients.
        #[arg(long, conflicts_with = "team")]
        all_teams: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a generated password once (only its argon2id
    /// hash is stored).
    Add {
        /// Letters, digits, '.', '-', '_' and '@'; stored lowercase.
        username: String,
        #[arg(long, value_parser = ["nurse", "coordinator", "admin"])]
        role: String,
        /// The user's teams (repeat or comma separate); nurses and
        /// coordinators need at least one, admins have none.
        #[arg(long, value_delimiter = ',')]
        team: Vec<String>,
        /// The name shown to colleagues (default: the username).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users with their role, teams and whether they are disabled.
    List,
    /// Disable a user: no more sign-ins, and open sessions end at once.
    Disable { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ThresholdCommand {
    /// Store a new version of a patient's settings for one rule; prints it.
    Set {
        #[arg(long)]
        patient: uuid::Uuid,
        /// The rule as protocol/rule, e.g. default/fever.
        #[arg(long)]
        rule: String,
        /// The settings as JSON, e.g. '{"above": 38.5, "recover_at": 38.2}';
        /// '{}' restores the protocol's values; null removes a bound;
        /// '{"enabled": false}' switches the rule off for the patient.
        #[arg(long)]
        settings: String,
        /// From when the settings apply (RFC 3339; default now).
        #[arg(long)]
        from: Option<String>,
        /// Until when (RFC 3339): a temporary threshold.
        #[arg(long)]
        until: Option<String>,
        /// Who sets it.
        #[arg(long)]
        author: String,
        /// Why, as it should read in the patient's record.
        #[arg(long)]
        reason: String,
    },
    /// List every version of a patient's personal settings.
    List {
        #[arg(long)]
        patient: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List the newest quarantine entries.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Options of `thuiswacht simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of patients.
    #[arg(long, default_value_t = 50)]
    pub patients: usize,
    /// Seed: the same seed gives the same population and readings.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history to publish, ending now, as fast as possible (or at --rate).
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Messages per second (default: as fast as the broker takes them).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Create the population's teams, patients and devices first.
    #[arg(long)]
    pub register: bool,
    /// After the history, keep publishing in real time until stopped.
    #[arg(long)]
    pub follow: bool,
    /// End the history at this moment (RFC 3339) instead of now: two runs
    /// with the same seed and --until publish the very same readings, also
    /// when a scheduled measurement fell due between them. Not with --follow.
    #[arg(long, conflicts_with = "follow")]
    pub until: Option<String>,
    /// Where to write the injected deteriorations (JSON lines);
    /// default: simulation-truth.jsonl in the data folder.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// Formats `thuiswacht replay` reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReplayFormat {
    /// PhysioNet/CinC Challenge 2019 `.psv` files (hourly ICU vitals with SepsisLabel).
    Physionet2019,
}

/// Options of `thuiswacht replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long, value_enum)]
    pub format: ReplayFormat,
    /// Folder of input files.
    pub dir: PathBuf,
    /// Where to write the JSON lines.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `thuiswacht evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Number of simulated patients.
    #[arg(long, default_value_t = 500)]
    pub patients: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Seed: the same seed gives the same population and figures.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
