//! Who is calling: the [`Caller`] extractor, from the session cookie or a
//! bearer token, and [`SignedIn`] for handlers that serve signed-in people only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use uuid::Uuid;

use super::request::{bearer_secret, session_secret, RequestOrigin};
use crate::api::{token_hash, ApiError, AppState};
use crate::domain::Timestamp;
use crate::store::{
    ActiveSession, ActorKind, AuditAction, NewAuditRecord, Role, TeamScope, TokenScope, User,
};

/// The header in which an integration names the person it acts for
/// (recorded in the audit trail as `on_behalf_of`).
pub const ON_BEHALF_OF_HEADER: &str = "x-on-behalf-of";
const MAX_ON_BEHALF_OF_CHARS: usize = 128;

/// An authenticated caller and where the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub origin: RequestOrigin,
}

/// A person with a session, or an integration with a bearer token.
#[derive(Debug, Clone)]
pub enum Identity {
    User(SessionUser),
    Token(TokenCaller),
}

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionUser {
    pub user: User,
    #[serde(skip)]
    pub session_id: Uuid,
    /// What forms (`csrf_token` field) and scripts (`X-CSRF-Token` header)
    /// must send with every state-changing request.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

impl From<ActiveSession> for SessionUser {
    fn from(session: ActiveSession) -> SessionUser {
        SessionUser {
            user: session.user,
            session_id: session.id,
            csrf_token: session.csrf_token,
            expires_at: session.expires_at,
        }
    }
}

/// An integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCaller {
    pub id: Uuid,
    pub name: String,
    pub scope: TokenScope,
    pub teams: TeamScope,
    /// The person it says it acts for (`X-On-Behalf-Of`), if any.
    pub on_behalf_of: Option<String>,
}

/// Set on a request by [`super::csrf::guard`] once it has looked the
/// session up, so the extractor need not do it again.
#[derive(Debug, Clone)]
pub(super) enum SessionLookup {
    Active(Box<SessionUser>),
    Ended,
}

impl Caller {
    /// Returns the signed-in person, if the caller is one.
    pub fn user(&self) -> Option<&User> {
        match &self.identity {
            Identity::User(session) => Some(&session.user),
            Identity::Token(_) => None,
        }
    }

    /// Returns the user's role, `None` for a token.
    pub fn role(&self) -> Option<Role> {
        self.user().map(|user| user.role)
    }

    /// Returns the name recorded as author of what the caller writes: the
    /// username, or the token's name.
    pub fn author(&self) -> &str {
        match &self.identity {
            Identity::User(session) => &session.user.username,
            Identity::Token(token) => &token.name,
        }
    }

    /// Returns whose patients the caller may see on lists (worklist,
    /// search): nurses and coordinators their teams, tokens of scope
    /// `read` their teams (or all), admins and other tokens none. An
    /// admin's break-glass opens one patient through [`super::patient_for`],
    /// never a list.
    pub fn visible_teams(&self) -> TeamScope {
        match &self.identity {
            Identity::User(session) => match session.user.role {
                Role::Nurse | Role::Coordinator => TeamScope::Teams(session.user.team_ids()),
                Role::Admin => TeamScope::Teams(Vec::new()),
            },
            Identity::Token(token) if token.scope == TokenScope::Read => token.teams.clone(),
            Identity::Token(_) => TeamScope::Teams(Vec::new()),
        }
    }

    /// Returns an audit row for this caller; fill in the patient and
    /// detail as needed.
    pub fn audit_record(&self, action: AuditAction) -> NewAuditRecord {
        let (actor, actor_kind, actor_id, on_behalf_of) = match &self.identity {
            Identity::User(session) => (
                session.user.username.clone(),
                ActorKind::User,
                session.user.id,
                None,
            ),
            Identity::Token(token) => (
                token.name.clone(),
                ActorKind::Token,
                token.id,
                token.on_behalf_of.clone(),
            ),
        };
        NewAuditRecord {
            at: Timestamp::now(),
            actor,
            actor_kind,
            actor_id: Some(actor_id),
            on_behalf_of,
            action,
            patient_id: None,
            team_id: None,
            detail: serde_json::json!({}),
            source_address: self.origin.address.clone(),
            user_agent: self.origin.user_agent.clone(),
            shown: Vec::new(),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// A bearer token wins over a cookie (a script that sends both means
    /// the token). Without either: 401; with an ended session: 401
    /// `session-expired`, so pages can send the person to `/login`.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let origin = RequestOrigin::of(parts, &state.settings);
        if let Some(secret) = bearer_secret(&parts.headers) {
            let token = state
                .store
                .find_token(&token_hash(secret))
                .await?
                .filter(|token| !token.revoked)
                .ok_or(ApiError::Unauthorized)?;
            let on_behalf_of = parts
                .headers
                .get(ON_BEHALF_OF_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(|name| {
                    name.trim()
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_ON_BEHALF_OF_CHARS)
                        .collect::<String>()
                })
                .filter(|name| !name.is_empty());
            return Ok(Caller {
                identity: Identity::Token(TokenCaller {
                    id: token.id,
                    name: token.name,
                    scope: token.scope,
                    teams: token.teams,
                    on_behalf_of,
                }),
                origin,
            });
        }
        let session = match parts.extensions.get::<SessionLookup>() {
            Some(SessionLookup::Active(session)) => Some((**session).clone()),
            Some(SessionLookup::Ended) => return Err(ApiError::SessionExpired),
            None => match session_secret(&parts.headers) {
                Some(secret) => Some(
                    super::session::active_session(state, &secret)
                        .await?
                        .ok_or(ApiError::SessionExpired)?,
                ),
                None => None,
            },
        };
        match session {
            Some(session) => Ok(Caller {
                identity: Identity::User(session),
                origin,
            }),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// A signed-in person (not a token): for pages and the session endpoints.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: SessionUser,
    pub origin: RequestOrigin,
}

impl SignedIn {
    /// Returns the caller this person is, for the scoping helpers.
    pub fn caller(&self) -> Caller {
        Caller {
            identity: Identity::User(self.session.clone()),
            origin: self.origin.clone(),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    /// A bearer token is refused with 403: this is for people.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<SignedIn, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.identity {
            Identity::User(session) => Ok(SignedIn {
                session,
                origin: caller.origin,
            }),
            Identity::Token(_) => Err(ApiError::Forbidden),
        }
    }
}
