//! Team scoping: who may see and act on which patient, and the audit rows
//! for it.
//!
//! | caller | own team | other team |
//! |---|---|---|
//! | nurse | read, observe, act on alerts | 404 |
//! | coordinator | as nurse, plus the access overview and personal thresholds | 404 |
//! | admin | 404, unless an active break-glass grant: then read only | 404, same |
//! | token `read` | read, if the team is in the token's scope | 404 |
//! | token `observe` | observe, if the team is in the token's scope | 404 |
//! | token `ingest` | 403 | 403 |
//!
//! A patient outside the caller's scope answers exactly like one that does
//! not exist (404), so its existence does not leak; the attempt is audited
//! (`access_refused`) when the patient exists. Within scope, a purpose the
//! role may not serve answers 403. For a token, a purpose its scope never
//! serves answers 403 before the patient is looked at, the same for every id.

use serde::Serialize;
use uuid::Uuid;

use super::caller::{Caller, Identity};
use crate::api::{ApiError, AppState};
use crate::domain::Timestamp;
use crate::store::{AuditAction, Patient, Role, TokenScope};

/// Why a handler reaches for a patient; decides what is allowed and what
/// the audit row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The patient is shown on a worklist.
    Worklist,
    /// The patient's page or record.
    PatientPage,
    /// The patient's readings or charts.
    Readings,
    /// The patient is shown as a search result.
    Search,
    /// Who looked at this patient's data (coordinators).
    AccessOverview,
    /// Entering observations (a change).
    Observe,
    /// Claiming, resolving, snoozing, escalating or annotating an alert (a change).
    AlertChange,
    /// Setting, proposing, approving or rejecting a personal threshold
    /// (coordinators; a change).
    ThresholdChange,
}

impl Purpose {
    /// Returns whether the purpose changes data (audited by
    /// [`PatientAccess::record_change`] after the change) rather than
    /// reading it (audited by [`patient_for`] itself).
    pub const fn is_change(self) -> bool {
        matches!(
            self,
            Purpose::Observe | Purpose::AlertChange | Purpose::ThresholdChange
        )
    }

    /// Returns the audit action of the purpose.
    pub const fn audit_action(self) -> AuditAction {
        match self {
            Purpose::Worklist => AuditAction::ReadWorklist,
            Purpose::PatientPage => AuditAction::ReadPatient,
            Purpose::Readings => AuditAction::ReadReadings,
            Purpose::Search => AuditAction::Search,
            Purpose::AccessOverview => AuditAction::ReadAccessOverview,
            Purpose::Observe => AuditAction::AddObservation,
            Purpose::AlertChange => AuditAction::ChangeAlert,
            Purpose::ThresholdChange => AuditAction::ChangeThreshold,
        }
    }

    const fn is_plain_read(self) -> bool {
        matches!(
            self,
            Purpose::Worklist | Purpose::PatientPage | Purpose::Readings | Purpose::Search
        )
    }
}

/// What the rules answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Out of scope: answered as if the patient did not exist.
    NotFound,
    /// In scope (or patient-independent), but not for this purpose.
    Forbidden,
}

/// Returns whether a token of `scope` can ever serve `purpose`.
pub const fn token_may(scope: TokenScope, purpose: Purpose) -> bool {
    match scope {
        TokenScope::Read => purpose.is_plain_read(),
        TokenScope::Observe => matches!(purpose, Purpose::Observe),
        TokenScope::Ingest => false,
    }
}

/// The rules of the module docs' table, without side effects: `caller`
/// reaching a patient of `patient_team` for `purpose`, `break_glass` telling
/// whether an admin holds an active grant for the patient.
pub fn decide(
    identity: &Identity,
    patient_team: Uuid,
    purpose: Purpose,
    break_glass: bool,
) -> Decision {
    match identity {
        Identity::Token(token) => {
            if !token_may(token.scope, purpose) {
                Decision::Forbidden
            } else if token.teams.contains(patient_team) {
                Decision::Allow
            } else {
                Decision::NotFound
            }
        }
        Identity::User(session) => {
            let user = &session.user;
            let visible = match user.role {
                Role::Nurse | Role::Coordinator => user.teams.iter().any(|t| t.id == patient_team),
                Role::Admin => break_glass,
            };
            if !visible {
                return Decision::NotFound;
            }
            let allowed = match user.role {
                Role::Nurse => {
                    !matches!(purpose, Purpose::AccessOverview | Purpose::ThresholdChange)
                }
                Role::Coordinator => true,
                Role::Admin => purpose.is_plain_read(),
            };
            if allowed {
                Decision::Allow
            } else {
                Decision::Forbidden
            }
        }
    }
}

/// A patient the caller may reach for a purpose.
#[derive(Debug, Clone)]
pub struct PatientAccess {
    pub patient: Patient,
    pub purpose: Purpose,
    /// The break-glass grant that opened the patient to an admin.
    pub break_glass: Option<Uuid>,
}

impl PatientAccess {
    /// Audits a change made under this access (call it after the change
    /// is stored), with what changed in `detail` (ids, not clinical values).
    ///
    /// # Errors
    /// A store failure.
    pub async fn record_change(
        &self,
        state: &AppState,
        caller: &Caller,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        let mut record = caller.audit_record(self.purpose.audit_action());
        record.patient_id = Some(self.patient.id);
        record.team_id = Some(self.patient.team_id);
        record.detail = detail;
        state.store.append_audit(&[record]).await?;
        Ok(())
    }
}

/// Returns the patient if `caller` may reach it for `purpose`, and for a
/// read writes the audit row before anything is shown; see the module docs.
///
/// # Errors
/// [`ApiError::NotFound`] for a patient that does not exist or is out of
/// scope, [`ApiError::Forbidden`] for a purpose the caller may not serve,
/// store failures (then nothing may be shown: no read without its row).
pub async fn patient_for(
    state: &AppState,
    caller: &Caller,
    patient_id: Uuid,
    purpose: Purpose,
) -> Result<PatientAccess, ApiError> {
    if let Identity::Token(token) = &caller.identity {
        if !token_may(token.scope, purpose) {
            return Err(ApiError::Forbidden);
        }
    }
    let Some(patient) = state.store.patient(patient_id).await? else {
        return Err(ApiError::NotFound);
    };
    let now = Timestamp::now();
    let break_glass = match &caller.identity {
        Identity::User(session) if session.user.role == Role::Admin => {
            state
                .store
                .active_break_glass(session.user.id, patient_id, now)
                .await?
        }
        _ => None,
    };
    let decision = decide(
        &caller.identity,
        patient.team_id,
        purpose,
        break_glass.is_some(),
    );
    let mut record = caller.audit_record(match decision {
        Decision::NotFound => AuditAction::AccessRefused,
        _ => purpose.audit_action(),
    });
    record.patient_id = Some(patient.id);
    record.team_id = Some(patient.team_id);
    record.detail = serde_json::json!({
        "purpose": purpose,
        "break_glass": break_glass.as_ref().map(|grant| grant.id),
    });
    match decision {
        Decision::NotFound => {
            state.store.append_audit(&[record]).await?;
            Err(ApiError::NotFound)
        }
        Decision::Forbidden => Err(ApiError::Forbidden),
        Decision::Allow => {
            if !purpose.is_change() {
                state.store.append_audit(&[record]).await?;
            }
            Ok(PatientAccess {
                patient,
                purpose,
                break_glass: break_glass.map(|grant| grant.id),
            })
        }
    }
}

/// Audits reads of several patients at once (a worklist, search results):
/// one row naming every `(patient id, team id)` shown (see
/// [`NewAuditRecord::shown`](crate::store::NewAuditRecord::shown)), or the
/// usual row of one patient. Call it before the response is sent, with
/// exactly the patients shown.
///
/// # Errors
/// A store failure; then show nothing.
pub async fn audit_reads(
    state: &AppState,
    caller: &Caller,
    purpose: Purpose,
    patients: &[(Uuid, Uuid)],
) -> Result<(), ApiError> {
    let mut record = caller.audit_record(purpose.audit_action());
    record.detail = serde_json::json!({"purpose": purpose});
    match patients {
        [] => return Ok(()),
        [(patient_id, team_id)] => {
            record.patient_id = Some(*patient_id);
            record.team_id = Some(*team_id);
        }
        // One read showing many patients is one row naming them all: a
        // worklist page of a hundred patients is one row, not a hundred.
        _ => record.shown = patients.to_vec(),
    }
    state.store.append_audit(&[record]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::caller::{SessionUser, TokenCaller};
    use crate::store::{Team, TeamScope, User};

    const TEAM_A: Uuid = Uuid::from_u128(0xA);
    const TEAM_B: Uuid = Uuid::from_u128(0xB);

    fn user(role: Role, teams: &[Uuid]) -> Identity {
        Identity::User(SessionUser {
            user: User {
                id: Uuid::from_u128(1),
                username: "u".to_owned(),
                display_name: "U".to_owned(),
                role,
                teams: teams
                    .iter()
                    .map(|id| Team {
                        id: *id,
                        name: id.to_string(),
                    })
                    .collect(),
                created_at: Timestamp(0),
                disabled_at: None,
            },
            session_id: Uuid::from_u128(2),
            csrf_token: "t".to_owned(),
            expires_at: Timestamp(0),
        })
    }

    fn token(scope: TokenScope, teams: TeamScope) -> Identity {
        Identity::Token(TokenCaller {
            id: Uuid::from_u128(3),
            name: "ECD".to_owned(),
            scope,
            teams,
            on_behalf_of: None,
        })
    }

    const READS: [Purpose; 4] = [
        Purpose::Worklist,
        Purpose::PatientPage,
        Purpose::Readings,
        Purpose::Search,
    ];
    const ALL: [Purpose; 8] = [
        Purpose::Worklist,
        Purpose::PatientPage,
        Purpose::Readings,
        Purpose::Search,
        Purpose::AccessOverview,
        Purpose::Observe,
        Purpose::AlertChange,
        Purpose::ThresholdChange,
    ];

    #[test]
    fn every_role_gets_404_for_another_teams_patient_whatever_the_purpose() {
        let callers = [
            user(Role::Nurse, &[TEAM_A]),
            user(Role::Coordinator, &[TEAM_A]),
            user(Role::Admin, &[]),
        ];
        for caller in &callers {
            for purpose in ALL {
                assert_eq!(
                    decide(caller, TEAM_B, purpose, false),
                    Decision::NotFound,
                    "{caller:?} {purpose:?}"
                );
            }
        }
    }

    #[test]
    fn a_nurse_reads_and_acts_in_her_team_but_cannot_see_the_access_overview() {
        let nurse = user(Role::Nurse, &[TEAM_B, TEAM_A]);
        for purpose in READS
            .into_iter()
            .chain([Purpose::Observe, Purpose::AlertChange])
        {
            assert_eq!(decide(&nurse, TEAM_A, purpose, false), Decision::Allow);
        }
        assert_eq!(
            decide(&nurse, TEAM_A, Purpose::AccessOverview, false),
            Decision::Forbidden
        );
    }

    #[test]
    fn only_a_coordinator_changes_personal_thresholds() {
        let nurse = user(Role::Nurse, &[TEAM_A]);
        let coordinator = user(Role::Coordinator, &[TEAM_A]);
        assert_eq!(
            decide(&nurse, TEAM_A, Purpose::ThresholdChange, false),
            Decision::Forbidden
        );
        assert_eq!(
            decide(&coordinator, TEAM_A, Purpose::ThresholdChange, false),
            Decision::Allow
        );
        for scope in [TokenScope::Read, TokenScope::Observe, TokenScope::Ingest] {
            assert!(!token_may(scope, Purpose::ThresholdChange));
        }
    }

    #[test]
    fn a_coordinator_may_do_everything_in_her_team() {
        let coordinator = user(Role::Coordinator, &[TEAM_A]);
        for purpose in ALL {
            assert_eq!(
                decide(&coordinator, TEAM_A, purpose, false),
                Decision::Allow
            );
        }
    }

    #[test]
    fn an_admin_reads_only_through_break_glass_and_never_changes() {
        let admin = user(Role::Admin, &[]);
        for purpose in ALL {
            assert_eq!(decide(&admin, TEAM_A, purpose, false), Decision::NotFound);
        }
        for purpose in READS {
            assert_eq!(decide(&admin, TEAM_A, purpose, true), Decision::Allow);
        }
        for purpose in [
            Purpose::Observe,
            Purpose::AlertChange,
            Purpose::AccessOverview,
            Purpose::ThresholdChange,
        ] {
            assert_eq!(decide(&admin, TEAM_A, purpose, true), Decision::Forbidden);
        }
    }

    #[test]
    fn tokens_serve_their_scope_in_their_teams_only() {
        let observe = token(TokenScope::Observe, TeamScope::Teams(vec![TEAM_A]));
        assert_eq!(
            decide(&observe, TEAM_A, Purpose::Observe, false),
            Decision::Allow
        );
        assert_eq!(
            decide(&observe, TEAM_B, Purpose::Observe, false),
            Decision::NotFound
        );
        assert_eq!(
            decide(&observe, TEAM_A, Purpose::Readings, false),
            Decision::Forbidden
        );
        let read_all = token(TokenScope::Read, TeamScope::All);
        for purpose in READS {
            assert_eq!(decide(&read_all, TEAM_B, purpose, false), Decision::Allow);
        }
        assert_eq!(
            decide(&read_all, TEAM_B, Purpose::Observe, false),
            Decision::Forbidden
        );
        let unscoped = token(TokenScope::Read, TeamScope::Teams(Vec::new()));
        assert_eq!(
            decide(&unscoped, TEAM_A, Purpose::Readings, false),
            Decision::NotFound
        );
        let ingest = token(TokenScope::Ingest, TeamScope::All);
        for purpose in ALL {
            assert_eq!(decide(&ingest, TEAM_A, purpose, false), Decision::Forbidden);
        }
    }
}
