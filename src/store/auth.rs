//! What the store keeps for sign-in, sessions, team scoping and the audit
//! trail: users and their teams, server-side sessions, the append-only
//! `audit_log`, break-glass grants and the teams of bearer tokens
//! (migration 0009). The rules that use them live in [`crate::auth`].

use serde::Serialize;
use uuid::Uuid;

use super::Team;
use crate::domain::Timestamp;

/// What a user may do (see [`crate::auth`] for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and acts on the patients of her own teams.
    Nurse,
    /// As a nurse, and may show a patient's access overview.
    Coordinator,
    /// Manages users and devices; reads a patient only through break-glass.
    Admin,
}

impl Role {
    pub const fn code(self) -> &'static str {
        match self {
            Role::Nurse => "nurse",
            Role::Coordinator => "coordinator",
            Role::Admin => "admin",
        }
    }

    pub fn from_code(code: &str) -> Option<Role> {
        match code {
            "nurse" => Some(Role::Nurse),
            "coordinator" => Some(Role::Coordinator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: Uuid,
    /// Lowercase; unique.
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// The PHC string of an argon2id hash.
    pub password_hash: String,
    /// Team names; each must exist.
    pub teams: Vec<String>,
}

/// A user as stored (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// By name.
    pub teams: Vec<Team>,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

impl User {
    /// Returns the ids of the user's teams.
    pub fn team_ids(&self) -> Vec<Uuid> {
        self.teams.iter().map(|team| team.id).collect()
    }
}

/// A user with the hash to check a password against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

/// A session to store at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: Uuid,
    /// SHA-256 of the cookie's secret.
    pub secret_sha256: Vec<u8>,
    pub user_id: Uuid,
    pub csrf_token: String,
    pub created_at: Timestamp,
    /// The absolute end of the session.
    pub expires_at: Timestamp,
}

/// A session that is valid now: not revoked, not past its absolute end or
/// its idle timeout, and of a user that is not disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    pub id: Uuid,
    pub user: User,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Which teams' patients a caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamScope {
    /// Every team (an integration created with `--all-teams`).
    All,
    /// These teams only; empty means no patient at all.
    Teams(Vec<Uuid>),
}

impl TeamScope {
    /// Returns whether a patient of `team_id` is in scope.
    pub fn contains(&self, team_id: Uuid) -> bool {
        match self {
            TeamScope::All => true,
            TeamScope::Teams(teams) => teams.contains(&team_id),
        }
    }
}

/// Who an audit row names as the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    Token,
    /// The service itself or an operator at the command line.
    System,
    /// Nobody signed in (a failed sign-in names the username typed).
    Anonymous,
}

impl ActorKind {
    pub const fn code(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Token => "token",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// What an audit row records. The code is what the database keeps; add a
/// variant (never rename a code) when a new kind of access or change appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    SignIn,
    SignInFailed,
    /// A sign-in refused by the rate limit, before the password was checked.
    SignInThrottled,
    SignOut,
    /// A patient shown on a worklist.
    ReadWorklist,
    /// A patient's page or record.
    ReadPatient,
    ReadReadings,
    /// A patient found by a search.
    Search,
    ReadAccessOverview,
    AddObservation,
    /// A claim, resolve, snooze, escalate or note on an alert.
    ChangeAlert,
    /// A personal threshold set, proposed, approved, rejected or withdrawn.
    ChangeThreshold,
    BreakGlass,
    /// A caller reached for a patient outside its teams (answered 404).
    AccessRefused,
    UserAdded,
    UserDisabled,
    TokenAdded,
    /// A protocol version saved or restored, or the files reloaded.
    ChangeProtocol,
    /// A backtest of proposed rules on stored readings.
    RunBacktest,
}

impl AuditAction {
    /// Whether this is a plain read of patient data (no change, no grant).
    pub const fn is_read(self) -> bool {
        matches!(
            self,
            AuditAction::ReadWorklist
                | AuditAction::ReadPatient
                | AuditAction::ReadReadings
                | AuditAction::Search
                | AuditAction::ReadAccessOverview
        )
    }

    pub const fn code(self) -> &'static str {
        match self {
            AuditAction::SignIn => "sign_in",
            AuditAction::SignInFailed => "sign_in_failed",
            AuditAction::SignInThrottled => "sign_in_throttled",
            AuditAction::SignOut => "sign_out",
            AuditAction::ReadWorklist => "read_worklist",
            AuditAction::ReadPatient => "read_patient",
            AuditAction::ReadReadings => "read_readings",
            AuditAction::Search => "search",
            AuditAction::ReadAccessOverview => "read_access_overview",
            AuditAction::AddObservation => "add_observation",
            AuditAction::ChangeAlert => "change_alert",
            AuditAction::ChangeThreshold => "change_threshold",
            AuditAction::BreakGlass => "break_glass",
            AuditAction::AccessRefused => "access_refused",
            AuditAction::UserAdded => "user_added",
            AuditAction::UserDisabled => "user_disabled",
            AuditAction::TokenAdded => "token_added",
            AuditAction::ChangeProtocol => "change_protocol",
            AuditAction::RunBacktest => "run_backtest",
        }
    }
}

/// One row to append to the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    pub at: Timestamp,
    pub actor: String,
    pub actor_kind: ActorKind,
    /// The user or token id.
    pub actor_id: Option<Uuid>,
    pub on_behalf_of: Option<String>,
    pub action: AuditAction,
    pub patient_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    /// What else matters: the purpose, a break-glass reason, an id. Never a
    /// password or a session secret.
    pub detail: serde_json::Value,
    pub source_address: Option<String>,
    pub user_agent: Option<String>,
    /// For a read that showed several patients at once (a worklist page):
    /// each patient with their team, all in this one row, while
    /// `patient_id` and `team_id` stay empty. The view
    /// `audit_log_patients` and the access overview read it as one row
    /// per patient.
    pub shown: Vec<(Uuid, Uuid)>,
}

/// One row of the audit trail as read back.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Increases with every row appended.
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    /// `user`, `token`, `system` or `anonymous`.
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub on_behalf_of: Option<String>,
    /// An [`AuditAction`] code.
    pub action: String,
    pub patient_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub detail: serde_json::Value,
    pub source_address: Option<String>,
    pub user_agent: Option<String>,
}

/// A break-glass grant to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBreakGlass {
    pub id: Uuid,
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub reason: String,
    pub at: Timestamp,
    pub expires_at: Timestamp,
}

/// A stored break-glass grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakGlass {
    pub id: Uuid,
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub reason: String,
    pub at: Timestamp,
    pub expires_at: Timestamp,
}
