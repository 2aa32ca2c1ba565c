//! Storage: the [`Store`] interface and its two implementations, PostgreSQL
//! (with TimescaleDB when present) and embedded SQLite, plus the
//! [`StoreWriter`](writer::StoreWriter) stage that batches readings into them.
//!
//! Both implementations pass the same contract tests (`tests/it/store_contract.rs`).
//! SQL lives here only, always with bound parameters.

pub mod alert_cache;
mod auth;
mod pg_auth;
mod pg_thresholds;
mod postgres;
mod sqlite;
mod sqlite_auth;
mod sqlite_thresholds;
mod thresholds;
pub mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::Serialize;
use uuid::Uuid;

use crate::alert_book::{Alert, AlertEvent, AlertStatus, NewAlert};
use crate::domain::{
    DeviceId, DeviceStatus, Metric, Reading, RejectReason, StatusReport, Timestamp,
};
use crate::protocols::RuleSettings;
use crate::settings::{DatabaseKind, Settings};
use crate::validate::DeviceRecord;

pub use auth::{
    ActiveSession, ActorKind, AuditAction, AuditRecord, BreakGlass, NewAuditRecord, NewBreakGlass,
    NewSession, NewUser, Role, TeamScope, User, UserCredentials,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use thresholds::{
    NewThresholdProposal, PendingProposalItem, ProposalStatus, ThresholdDecision,
    ThresholdProposal, ThresholdReviewItem,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the connection broke: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database refused the statement itself: retrying will not help.
    #[error("database refused the statement: {0}")]
    Rejected(#[source] sqlx::Error),
    /// A name that must be unique is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// A referenced row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Returns whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Database error codes that mean "try again": SQLite busy or locked, and
/// PostgreSQL serialization failure, deadlock, too many connections, and the
/// admin shutdown / cannot-connect-now classes.
const TRANSIENT_DATABASE_CODES: &[&str] =
    &["5", "6", "517", "40001", "40P01", "53300", "57P01", "57P03"];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(database_error) = &error {
            if database_error
                .code()
                .is_some_and(|code| TRANSIENT_DATABASE_CODES.contains(&code.as_ref()))
            {
                return StoreError::Unavailable(error);
            }
        }
        match error {
            sqlx::Error::Database(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::RowNotFound => StoreError::Rejected(error),
            other => StoreError::Unavailable(other),
        }
    }
}

/// A rejection as the quarantine keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    pub received_at: Timestamp,
    /// `mqtt:{topic}` or `http`.
    pub source: String,
    pub device_id: Option<String>,
    pub reason: RejectReason,
    pub detail: String,
    /// The offending bytes, cut to `quarantine_raw_max_bytes`.
    pub raw: Vec<u8>,
    /// The size of the offending bytes before cutting.
    pub raw_size: i64,
}

/// A quarantine row as listed for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineEntry {
    pub id: i64,
    pub received_at: Timestamp,
    pub source: String,
    pub device_id: Option<String>,
    pub reason: String,
    pub detail: String,
    pub raw_size: i64,
    /// The kept bytes, as text where they are UTF-8 (lossy otherwise).
    pub raw_preview: String,
}

/// A care team (e.g. a region's district nurses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
}

/// A patient to register. Pseudonymous: a display name and a birth year, no national id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    /// The patient id; callers choose it so that a registration can be repeated safely.
    pub id: Uuid,
    pub team: String,
    pub display_name: String,
    pub birth_year: Option<i32>,
    pub protocols: Vec<String>,
}

/// A registered patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Patient {
    pub id: Uuid,
    pub team_id: Uuid,
    pub team: String,
    pub display_name: String,
    pub birth_year: Option<i32>,
    pub protocols: Vec<String>,
}

/// A device to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub device_id: DeviceId,
    pub profile_id: String,
    pub patient_id: Uuid,
}

/// The scope of an API bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// May post readings.
    Ingest,
    /// May read the API.
    Read,
    /// May post nurse-entered observations (a care record system).
    Observe,
}

impl TokenScope {
    pub const fn code(self) -> &'static str {
        match self {
            TokenScope::Ingest => "ingest",
            TokenScope::Read => "read",
            TokenScope::Observe => "observe",
        }
    }

    pub fn from_code(code: &str) -> Option<TokenScope> {
        match code {
            "ingest" => Some(TokenScope::Ingest),
            "read" => Some(TokenScope::Read),
            "observe" => Some(TokenScope::Observe),
            _ => None,
        }
    }
}

/// A new version of a patient's personal settings for one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRuleOverride {
    pub patient_id: Uuid,
    /// `"{protocol id}/{rule id}"`.
    pub rule_key: String,
    pub settings: RuleSettings,
    pub valid_from: Timestamp,
    /// Set for a temporary threshold.
    pub valid_until: Option<Timestamp>,
    pub author: String,
    pub reason: String,
    /// When a coordinator should look at the version again (a date in the
    /// team's time zone).
    pub review_by: Option<chrono::NaiveDate>,
    /// The second coordinator who approved a looser version.
    pub approved_by: Option<String>,
}

/// One stored version of a patient's personal settings for one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOverride {
    /// Increases with every version stored, over all patients.
    pub id: i64,
    pub patient_id: Uuid,
    pub rule_key: String,
    /// 1, 2, … per patient and rule.
    pub version: i32,
    pub settings: RuleSettings,
    pub valid_from: Timestamp,
    pub valid_until: Option<Timestamp>,
    pub author: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub review_by: Option<chrono::NaiveDate>,
    pub approved_by: Option<String>,
}

/// A protocol version to store: the next version of `protocol_id`, if the
/// newest stored version is still `base_version` (0: none, the file).
#[derive(Debug, Clone, PartialEq)]
pub struct NewProtocolVersion {
    pub protocol_id: String,
    pub definition: crate::protocols::Protocol,
    pub base_version: i32,
    pub valid_from: Timestamp,
    pub author: String,
    pub reason: String,
    /// The version this one restores, if it does.
    pub restored_from: Option<i32>,
}

/// One stored protocol version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtocolVersion {
    /// Increases with every version stored, over all protocols.
    pub id: i64,
    pub protocol_id: String,
    /// 1, 2, … per protocol (0 is the file).
    pub version: i32,
    pub definition: crate::protocols::Protocol,
    pub valid_from: Timestamp,
    pub author: String,
    pub reason: String,
    pub restored_from: Option<i32>,
    pub created_at: Timestamp,
}

/// Nurse-entered observations of one patient at one moment; the values are
/// stored as readings of the device [`observation_device`]`(patient_id)`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewObservation {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub ts: Timestamp,
    pub author: String,
    pub note: Option<String>,
    /// What was entered, as entered (for the record).
    pub entered: serde_json::Value,
    pub readings: Vec<Reading>,
}

/// Returns the reserved device id under which a patient's nurse-entered
/// observations are stored: `observation:{patient id}`. No registered
/// device may start with `observation:`.
pub fn observation_device(patient_id: Uuid) -> DeviceId {
    DeviceId::parse(&format!("{OBSERVATION_DEVICE_PREFIX}{patient_id}"))
        .expect("a uuid after the prefix is a valid device id")
}

/// See [`observation_device`].
pub const OBSERVATION_DEVICE_PREFIX: &str = "observation:";

/// A bearer token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub scope: TokenScope,
    pub revoked: bool,
    /// Whose patients a token of scope `read` or `observe` may reach;
    /// ignored for `ingest` (the device registry decides there).
    pub teams: TeamScope,
}

/// One stored reading as read back.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredReading {
    pub device_id: String,
    pub patient_id: Uuid,
    pub metric: Metric,
    pub value: f64,
    pub ts: Timestamp,
}

/// How stale a session's last use may get before a request records it:
/// a quarter of the idle timeout, at most 30 s. The idle timeout is thus
/// kept to within that much, and a nurse's requests do not each commit.
pub fn session_touch_micros(idle_timeout_micros: i64) -> i64 {
    (idle_timeout_micros / 4).min(30_000_000)
}

/// The storage interface every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Returns which backend this is.
    fn kind(&self) -> DatabaseKind;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Writes readings and quarantine records in one transaction, skipping
    /// readings whose `(device_id, metric, ts)` is already stored. Returns,
    /// per reading, whether it was new.
    async fn commit_batch(
        &self,
        readings: &[Reading],
        quarantine: &[QuarantineRecord],
    ) -> Result<Vec<bool>, StoreError>;

    /// Returns the registry entries of those of `ids` that are registered.
    async fn find_devices(&self, ids: &[DeviceId]) -> Result<Vec<DeviceRecord>, StoreError>;

    /// Creates a team and returns its id.
    async fn add_team(&self, name: &str) -> Result<Uuid, StoreError>;
    async fn list_teams(&self) -> Result<Vec<Team>, StoreError>;
    /// Creates a patient in an existing team and returns its id.
    async fn add_patient(&self, patient: &NewPatient) -> Result<Uuid, StoreError>;
    async fn list_patients(&self) -> Result<Vec<Patient>, StoreError>;
    /// Links a device to a patient; a device id already registered is a conflict.
    async fn add_device(&self, device: &NewDevice) -> Result<(), StoreError>;
    async fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Returns every alert opened in `[from, to)` with its patient and
    /// team, oldest first; `teams` limits it to those teams (`None`: all).
    /// For the alarm-burden figures, which look at a period, not a page.
    async fn alerts_opened_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        teams: Option<&[Uuid]>,
    ) -> Result<Vec<AlertListItem>, StoreError>;
    /// Returns the devices registered to one patient (active or not).
    async fn patient_devices(&self, patient_id: Uuid) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Stores a token by the SHA-256 of its secret and returns its id.
    async fn add_token(
        &self,
        name: &str,
        scope: TokenScope,
        secret_sha256: &[u8],
    ) -> Result<Uuid, StoreError>;
    /// Returns the token with this secret hash, if any.
    async fn find_token(&self, secret_sha256: &[u8]) -> Result<Option<TokenRecord>, StoreError>;

    /// Returns the newest quarantine entries, newest first.
    async fn list_quarantine(&self, limit: i64) -> Result<Vec<QuarantineEntry>, StoreError>;
    /// Counts quarantine entries with this reason.
    async fn count_quarantine(&self, reason: RejectReason) -> Result<i64, StoreError>;

    /// Returns the readings of a device in event-time order.
    async fn device_readings(
        &self,
        device_id: &DeviceId,
    ) -> Result<Vec<StoredReading>, StoreError> {
        self.device_readings_after(device_id, None).await
    }
    /// Returns the readings of a device with an event time after `after`, in order.
    async fn device_readings_after(
        &self,
        device_id: &DeviceId,
        after: Option<Timestamp>,
    ) -> Result<Vec<StoredReading>, StoreError>;
    /// Returns every reading with an event time at or after `since`, in event-time order.
    async fn readings_since(&self, since: Timestamp) -> Result<Vec<StoredReading>, StoreError>;
    /// Records a finding in the alert book: opens an alert when the patient
    /// has none unresolved for the rule, otherwise updates that one with the
    /// new evidence (never lowering its priority). Returns the alert and
    /// whether it was opened now.
    async fn raise_alert(&self, alert: &NewAlert) -> Result<(Alert, bool), StoreError>;
    /// Returns when the patient's latest alert for the rule was resolved, if
    /// it has no unresolved alert for the rule now.
    async fn last_resolution(
        &self,
        patient_id: Uuid,
        rule_key: &str,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Returns one alert.
    async fn alert(&self, id: Uuid) -> Result<Option<Alert>, StoreError>;
    /// Saves a transition made on `alert` (whose status was `from`) with its
    /// event, only if nobody changed the alert's status meanwhile.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the alert's status is no longer `from`.
    async fn save_transition(
        &self,
        alert: &Alert,
        from: AlertStatus,
        event: &AlertEvent,
    ) -> Result<(), StoreError>;
    /// Returns an alert's history, oldest first.
    async fn alert_events(&self, id: Uuid) -> Result<Vec<AlertEvent>, StoreError>;
    /// Returns every unresolved alert.
    async fn unresolved_alerts(&self) -> Result<Vec<Alert>, StoreError>;
    /// Counts all stored readings.
    async fn count_readings(&self) -> Result<i64, StoreError>;

    /// Stores a new version of a patient's settings for one rule (the next
    /// version number for that patient and rule) and returns it.
    async fn add_rule_override(
        &self,
        rule_override: &NewRuleOverride,
    ) -> Result<RuleOverride, StoreError>;

    /// Returns every version stored after `after_id`, oldest first.
    async fn rule_overrides_after(&self, after_id: i64) -> Result<Vec<RuleOverride>, StoreError>;

    /// Returns every version of one patient's personal settings, oldest first.
    async fn patient_rule_overrides(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<RuleOverride>, StoreError>;

    /// Stores the next version of a protocol. Fails with
    /// [`StoreError::Conflict`] when another version was stored after
    /// `base_version` (someone else saved first).
    async fn add_protocol_version(
        &self,
        version: &NewProtocolVersion,
    ) -> Result<ProtocolVersion, StoreError>;

    /// Returns every protocol version stored after `after_id`, oldest first.
    async fn protocol_versions_after(
        &self,
        after_id: i64,
    ) -> Result<Vec<ProtocolVersion>, StoreError>;

    /// Stores an observation and its readings in one transaction; returns,
    /// per reading, whether it was new (an observation posted twice stores
    /// its readings once and returns all `false`).
    async fn commit_observation(
        &self,
        observation: &NewObservation,
    ) -> Result<Vec<bool>, StoreError>;

    /// Returns a patient, `None` when it is not registered.
    async fn patient(&self, patient_id: Uuid) -> Result<Option<Patient>, StoreError>;

    /// Subscribes to committed alert changes: on PostgreSQL those of every
    /// instance (LISTEN/NOTIFY), on SQLite those of this process.
    fn alert_changes(&self) -> tokio::sync::broadcast::Receiver<AlertChange>;

    /// Sets a team's response target for a priority (replacing the previous one).
    async fn set_team_response_target(&self, target: &TeamResponseTarget)
        -> Result<(), StoreError>;

    /// Returns every team's response targets.
    async fn team_response_targets(&self) -> Result<Vec<TeamResponseTarget>, StoreError>;

    /// Returns one page of the alerts the query selects, with their patients.
    async fn query_alerts(&self, query: &AlertQuery) -> Result<AlertPage, StoreError>;

    /// Returns what [`Store::query_alerts`] returns, shared: a store that
    /// keeps pages (PostgreSQL's, see [`alert_cache`]) hands every reader
    /// of an unchanged page the same one, so what the worklist derives from
    /// it can be kept with it too.
    async fn shared_alerts(&self, query: &AlertQuery) -> Result<Arc<AlertPage>, StoreError> {
        Ok(Arc::new(self.query_alerts(query).await?))
    }

    /// Returns a patient's readings (from all the devices they were stored
    /// under, and nurse observations) with event times in `[from, to)`,
    /// oldest first, at most `limit`.
    async fn patient_readings(
        &self,
        patient_id: Uuid,
        metric: Option<Metric>,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredReading>, StoreError>;

    /// Stores device status messages: each device keeps its newest status
    /// (by the device's time), and every heartbeat moves its `last_seen_at`.
    /// Returns, per report, whether it is now the device's newest status
    /// (`false` for a redelivery or an older status arriving late), in one
    /// transaction. See [`DeviceStatus::merge`].
    async fn record_statuses(&self, reports: &[StatusReport]) -> Result<Vec<bool>, StoreError>;
    /// Returns a device's latest status, if it ever sent one.
    async fn device_status(&self, device_id: &DeviceId)
        -> Result<Option<DeviceStatus>, StoreError>;
    /// Returns, for those of `device_ids` heard from at or after `since`,
    /// the latest time they were heard: the arrival of a heartbeat, or of a
    /// reading of one of `metrics` with an event time at or after
    /// `measured_since` (a bound that keeps the lookup on the readings key).
    async fn last_heard(
        &self,
        device_ids: &[DeviceId],
        metrics: &[Metric],
        since: Timestamp,
        measured_since: Timestamp,
    ) -> Result<Vec<(DeviceId, Timestamp)>, StoreError>;
    /// Returns the event time of the patient's earliest reading of `metric`
    /// from one of `device_ids` with an event time in `[from, to)`.
    async fn first_reading_between(
        &self,
        patient_id: Uuid,
        device_ids: &[DeviceId],
        metric: Metric,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Returns the patient's unresolved alert for the rule, if any.
    async fn unresolved_alert(
        &self,
        patient_id: Uuid,
        rule_key: &str,
    ) -> Result<Option<Alert>, StoreError>;

    // Proposals of looser personal thresholds and review reminders
    // (migration 0012); the rules that use them are in `crate::thresholds`.

    /// Stores a pending proposal and returns it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the patient does not exist.
    async fn add_threshold_proposal(
        &self,
        proposal: &NewThresholdProposal,
    ) -> Result<ThresholdProposal, StoreError>;
    /// Returns one proposal.
    async fn threshold_proposal(&self, id: i64) -> Result<Option<ThresholdProposal>, StoreError>;
    /// Returns every proposal for one patient, oldest first.
    async fn patient_threshold_proposals(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<ThresholdProposal>, StoreError>;
    /// Approves a pending proposal: in one transaction, marks it approved
    /// and stores its settings as the rule's next version, valid from
    /// `decision.at`, with the proposal's author, reason, end and review
    /// date and `decision.decided_by` as approver. Returns both.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the proposal is no longer pending,
    /// [`StoreError::NotFound`] when there is no such proposal.
    async fn approve_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
    ) -> Result<(ThresholdProposal, RuleOverride), StoreError>;
    /// Closes a pending proposal as `rejected` or `withdrawn` without
    /// storing a version, and returns it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when it is no longer pending,
    /// [`StoreError::NotFound`] when there is no such proposal.
    async fn close_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
        status: ProposalStatus,
    ) -> Result<ThresholdProposal, StoreError>;
    /// Withdraws every pending proposal for the patient's rule (a newer
    /// change replaces them); returns their ids.
    async fn withdraw_threshold_proposals(
        &self,
        patient_id: Uuid,
        rule_key: &str,
        decided_by: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<Vec<i64>, StoreError>;
    /// Returns the pending proposals of patients of `teams` (`None`: all;
    /// `patient_id`: that patient's only), oldest first.
    async fn pending_threshold_proposals(
        &self,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<PendingProposalItem>, StoreError>;
    /// Returns, for patients of `teams` (`None`: all; `patient_id`: that
    /// patient's only), every rule whose newest version in force at `at`
    /// has a review-by date on or before `today`, earliest date first.
    async fn threshold_reviews_due(
        &self,
        at: Timestamp,
        today: chrono::NaiveDate,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<ThresholdReviewItem>, StoreError>;

    // Users, sessions, the audit trail and break-glass (migration 0009);
    // the rules that use them are in `crate::auth`.

    /// Creates a user in existing teams and returns its id.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the username is taken,
    /// [`StoreError::NotFound`] naming a team that does not exist.
    async fn add_user(&self, user: &NewUser) -> Result<Uuid, StoreError>;
    /// Returns every user with their teams, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Returns a user (a disabled one too) with the password hash to check.
    async fn user_credentials(&self, username: &str)
        -> Result<Option<UserCredentials>, StoreError>;
    /// Disables a user and revokes all the user's sessions; returns the user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such user.
    async fn disable_user(&self, username: &str, at: Timestamp) -> Result<User, StoreError>;
    /// Stores a new session together with its sign-in audit row, in one
    /// transaction; deletes sessions that ended over a week before.
    async fn add_session(
        &self,
        session: &NewSession,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError>;
    /// Returns the session with this secret hash if it is valid at `now`
    /// (not revoked, before its absolute end, used within the idle timeout,
    /// its user not disabled) and marks it used at `now` when its last use
    /// is older than [`session_touch_micros`] (so a busy session costs a
    /// read, not a commit, per request).
    async fn active_session(
        &self,
        secret_sha256: &[u8],
        now: Timestamp,
        idle_timeout_micros: i64,
    ) -> Result<Option<ActiveSession>, StoreError>;
    /// Revokes a session; returns whether an unrevoked one was found.
    async fn revoke_session(&self, secret_sha256: &[u8], at: Timestamp)
        -> Result<bool, StoreError>;
    /// Appends rows to the audit trail, all or none.
    async fn append_audit(&self, records: &[NewAuditRecord]) -> Result<(), StoreError>;
    /// Returns the audit rows that name a patient, newest first: at most
    /// `limit`, only those with an id below `before_id` when given (paging).
    async fn patient_audit(
        &self,
        patient_id: Uuid,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Stores a break-glass grant together with its audit row, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the patient does not exist.
    async fn add_break_glass(
        &self,
        grant: &NewBreakGlass,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError>;
    /// Returns the user's break-glass grant for the patient that is valid at
    /// `now`, the one that ends last when there are several.
    async fn active_break_glass(
        &self,
        user_id: Uuid,
        patient_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<BreakGlass>, StoreError>;
    /// Sets whose patients a token may reach (replacing what was set).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown token or team.
    async fn set_token_teams(&self, token_id: Uuid, teams: &TeamScope) -> Result<(), StoreError>;

    /// Streams, for every (device, metric) series, its newest `per_series`
    /// readings with an event time at or after `since`, series by series, in
    /// no particular order. This is what the triage rebuild reads: the engine
    /// keeps a bounded number of readings per patient and metric, so a
    /// series' older readings cannot be part of its state. Each series costs
    /// a few index probes on the `(device_id, metric, ts)` key, however long
    /// it is.
    fn newest_readings_per_series(
        &self,
        since: Timestamp,
        per_series: u32,
    ) -> BoxStream<'_, Result<SeriesTail, StoreError>>;
}

/// The newest readings of one (device, metric) series that belong to one
/// patient, as [`Store::newest_readings_per_series`] returns them. A series
/// comes in one piece per patient when its device was linked to several
/// (readings keep the patient they were stored under); usually in one.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesTail {
    pub device_id: String,
    pub metric: Metric,
    pub patient_id: Uuid,
    /// (event time, value), in no particular order.
    pub readings: Vec<(Timestamp, f64)>,
    /// Whether these are all of the series' readings since `since`: fewer
    /// than `per_series` were found (counting every patient's piece).
    pub complete: bool,
    /// The oldest event time read of the series, over every patient's piece.
    pub oldest: Timestamp,
}

/// Connects to the store the settings name (without migrating).
///
/// # Errors
/// Returns an error when the database cannot be reached or opened.
pub async fn connect(settings: &Settings) -> Result<Arc<dyn Store>, StoreError> {
    match settings.database_kind() {
        DatabaseKind::Postgres => Ok(Arc::new(PgStore::connect(settings).await?)),
        DatabaseKind::Sqlite => Ok(Arc::new(SqliteStore::connect(settings).await?)),
    }
}

/// Connects to the store the settings name and applies pending migrations:
/// what every command that uses the database does first.
///
/// # Errors
/// Says whether opening or migrating failed.
pub async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context;
    crate::app::install_crypto_provider();
    let store = connect(settings)
        .await
        .context("failed to open the database")?;
    store
        .migrate()
        .await
        .context("failed to migrate the database")?;
    Ok(store)
}

/// Cuts `raw` to at most `max` bytes for the quarantine.
pub fn quarantine_record(
    rejection: &crate::domain::Rejection,
    source: &str,
    received_at: Timestamp,
    raw_max_bytes: usize,
) -> QuarantineRecord {
    let kept = rejection.raw.len().min(raw_max_bytes);
    QuarantineRecord {
        received_at,
        source: source.to_owned(),
        device_id: rejection.device_id.clone(),
        reason: rejection.reason,
        // PostgreSQL text cannot hold NUL; details quote payload fragments.
        detail: rejection.detail.replace('\0', "\\0"),
        raw: rejection.raw[..kept].to_vec(),
        raw_size: rejection.raw.len() as i64,
    }
}

/// Builds the text preview of quarantined bytes.
fn raw_preview(raw: &[u8]) -> String {
    const PREVIEW_BYTES: usize = 512;
    let cut = &raw[..raw.len().min(PREVIEW_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] and a
/// foreign-key violation to [`StoreError::NotFound`].
fn on_constraint(error: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(database_error) = &error {
        match database_error.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return StoreError::Conflict(what.to_owned())
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::NotFound(format!("what {what} refers to"))
            }
            _ => {}
        }
    }
    StoreError::from(error)
}

/// A change to an alert (an `alert_events` row), announced to every
/// subscriber of [`Store::alert_changes`] once committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AlertChange {
    pub alert_id: Uuid,
    pub patient_id: Uuid,
    /// The event kind: raised, updated, claimed, resolved, …
    pub kind: String,
}

/// How many changes a slow subscriber may fall behind before it misses some
/// (it is then told so and reloads).
pub const ALERT_CHANGES_CAPACITY: usize = 4096;

/// A team's response target for one priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamResponseTarget {
    pub team_id: Uuid,
    pub priority: crate::protocols::Priority,
    pub minutes: u32,
    pub updated_by: String,
}

/// Which alerts a list shows, and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertQuery {
    /// Only alerts of patients of these teams; `None`: every team.
    pub teams: Option<Vec<Uuid>>,
    pub patient_id: Option<Uuid>,
    /// Empty: every unresolved status.
    pub statuses: Vec<AlertStatus>,
    /// Empty: every priority.
    pub priorities: Vec<crate::protocols::Priority>,
    pub order: AlertOrder,
    pub limit: i64,
    pub offset: i64,
}

/// The order of an alert list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertOrder {
    /// The worklist's: priority, then score, then the earliest response target.
    Urgency,
    /// Newest first (a patient's history).
    Newest,
}

impl Default for AlertQuery {
    fn default() -> AlertQuery {
        AlertQuery {
            teams: None,
            patient_id: None,
            statuses: Vec::new(),
            priorities: Vec::new(),
            order: AlertOrder::Urgency,
            limit: 100,
            offset: 0,
        }
    }
}

impl AlertQuery {
    /// Returns the status codes the query matches.
    pub fn status_codes(&self) -> Vec<&'static str> {
        if self.statuses.is_empty() {
            vec!["open", "claimed", "snoozed", "escalated"]
        } else {
            self.statuses.iter().map(|status| status.code()).collect()
        }
    }

    /// Returns the priority codes the query matches.
    pub fn priority_codes(&self) -> Vec<&'static str> {
        if self.priorities.is_empty() {
            vec!["high", "medium", "low", "informational"]
        } else {
            self.priorities
                .iter()
                .map(|priority| crate::alert_book::priority_code(*priority))
                .collect()
        }
    }
}

/// An alert with the patient and team it concerns.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertListItem {
    #[serde(flatten)]
    pub alert: Alert,
    pub patient_display_name: String,
    pub team_id: Uuid,
    pub team: String,
}

/// One page of an alert list and the number of alerts in all pages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertPage {
    pub items: Vec<AlertListItem>,
    pub total: i64,
}

/// The urgency order of both stores' alert lists.
const URGENCY_ORDER: &str =
    "case x.priority when 'high' then 3 when 'medium' then 2 when 'low' then 1 else 0 end desc, \
     x.score desc, x.respond_by, x.id";

/// The alert columns, in the order both stores select them.
const ALERT_COLUMNS: &str = "id, patient_id, rule_key, status, priority, nts, score, explanation, opened_at, \
     updated_at, respond_by, claimed_by, claimed_at, snoozed_until, escalated_to, resolved_at, resolved_by, outcome";

/// The upsert of a finding, shared by both stores (their SQL dialects agree
/// here). The conflict target names the partial unique index, so only an
/// unresolved alert is updated; priority and NTS level only ever become more
/// urgent; `id = $1` tells whether the row is the one just inserted.
const RAISE_ALERT_SQL: &str = "insert into alerts (id, patient_id, rule_key, status, priority, nts, score, explanation,
                        opened_at, updated_at, respond_by)
     values ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $10, $9)
     on conflict (patient_id, rule_key) where status <> 'resolved' do update set
         score = excluded.score,
         explanation = excluded.explanation,
         updated_at = excluded.updated_at,
         priority = case when (case excluded.priority when 'high' then 3 when 'medium' then 2 when 'low' then 1 else 0 end)
                             > (case alerts.priority when 'high' then 3 when 'medium' then 2 when 'low' then 1 else 0 end)
                         then excluded.priority else alerts.priority end,
         nts = case when excluded.nts < alerts.nts then excluded.nts else alerts.nts end
     returning id";

/// Builds an [`Alert`] from decoded columns; shared by both stores.
#[allow(clippy::too_many_arguments)]
fn alert_from_parts(
    id: Uuid,
    patient_id: Uuid,
    rule_key: String,
    status: &str,
    priority: &str,
    nts: &str,
    score: f64,
    explanation: serde_json::Value,
    times: [Option<Timestamp>; 7],
    claimed_by: Option<String>,
    escalated_to: Option<String>,
    resolved_by: Option<String>,
    outcome: Option<String>,
) -> Result<Alert, StoreError> {
    let bad =
        |what: &str, value: &str| StoreError::NotFound(format!("valid {what} (found {value:?})"));
    let [opened_at, updated_at, respond_by, claimed_at, snoozed_until, resolved_at, _] = times;
    Ok(Alert {
        id,
        patient_id,
        rule_key,
        status: AlertStatus::from_code(status).ok_or_else(|| bad("alert status", status))?,
        priority: crate::alert_book::priority_from_code(priority)
            .ok_or_else(|| bad("priority", priority))?,
        nts: crate::alert_book::nts_from_code(nts).ok_or_else(|| bad("NTS level", nts))?,
        score,
        explanation,
        opened_at: opened_at.unwrap_or(Timestamp(0)),
        updated_at: updated_at.unwrap_or(Timestamp(0)),
        respond_by: respond_by.unwrap_or(Timestamp(0)),
        claimed_by,
        claimed_at,
        snoozed_until,
        escalated_to,
        resolved_at,
        resolved_by,
        outcome: match outcome {
            Some(code) => Some(
                crate::alert_book::Outcome::from_code(&code)
                    .ok_or_else(|| bad("outcome", &code))?,
            ),
            None => None,
        },
    })
}
