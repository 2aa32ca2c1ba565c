//! Signing in and out, shared by the JSON API (`/api/v1/session`) and the
//! login form (`/login`, `/logout`).
//!
//! Sign-in: rate limit first (before any hashing), then the password check
//! on a blocking thread, against a dummy hash when the username is unknown
//! so both answers take as long; a disabled account fails like a wrong
//! password. A success stores a new session (a fresh secret for the cookie,
//! a fresh CSRF token) together with its audit row; every failure and every
//! refusal by the rate limit is audited too.

use std::time::Instant;

use rand::RngCore;
use uuid::Uuid;

use super::password::{dummy_hash, verify_password, MAX_PASSWORD_BYTES};
use super::request::RequestOrigin;
use super::SessionUser;
use crate::api::{token_hash, ApiError, AppState};
use crate::domain::Timestamp;
use crate::store::{ActorKind, AuditAction, NewAuditRecord, NewSession, User};

/// Usernames longer than this cannot exist (see `admin user add`).
pub const MAX_USERNAME_CHARS: usize = 64;

/// A successful sign-in: what the response needs.
#[derive(Debug, Clone)]
pub struct SignedInSession {
    pub user: User,
    /// The cookie's secret; only its hash is stored.
    pub secret: String,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// Returns 32 random bytes in hex: session secrets and CSRF tokens.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Returns a username as stored: trimmed and lowercase.
pub fn normalize_username(username: &str) -> String {
    username.trim().to_lowercase()
}

fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Returns the session of this cookie secret if it is valid now, marking it used.
///
/// # Errors
/// A store failure.
pub async fn active_session(
    state: &AppState,
    secret: &str,
) -> Result<Option<SessionUser>, ApiError> {
    let session = state
        .store
        .active_session(
            &token_hash(secret),
            Timestamp::now(),
            micros(state.settings.session_idle_timeout()),
        )
        .await?;
    Ok(session.map(SessionUser::from))
}

fn anonymous_record(
    action: AuditAction,
    username: &str,
    origin: &RequestOrigin,
    detail: serde_json::Value,
) -> NewAuditRecord {
    NewAuditRecord {
        at: Timestamp::now(),
        actor: username.chars().take(MAX_USERNAME_CHARS).collect(),
        actor_kind: ActorKind::Anonymous,
        actor_id: None,
        on_behalf_of: None,
        action,
        patient_id: None,
        team_id: None,
        detail,
        source_address: origin.address.clone(),
        user_agent: origin.user_agent.clone(),
        shown: Vec::new(),
    }
}

/// Checks a username and password and starts a session.
///
/// # Errors
/// [`ApiError::TooManyRequests`] when the rate limit refuses the attempt,
/// [`ApiError::SignInFailed`] for an unknown user, a wrong password or a
/// disabled account; store failures.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    origin: &RequestOrigin,
) -> Result<SignedInSession, ApiError> {
    let username = normalize_username(username);
    let address = origin.address.as_deref();
    if let Err(wait) = state
        .login_throttle
        .begin(&username, address, Instant::now())
    {
        let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        state
            .store
            .append_audit(&[anonymous_record(
                AuditAction::SignInThrottled,
                &username,
                origin,
                serde_json::json!({"retry_after_s": retry_after_s}),
            )])
            .await?;
        state.metrics.security_event("sign_in_throttled");
        return Err(ApiError::TooManyRequests(retry_after_s));
    }
    let credentials = if username.is_empty() || username.chars().count() > MAX_USERNAME_CHARS {
        None
    } else {
        state.store.user_credentials(&username).await?
    };
    let hash = credentials
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |c| c.password_hash.clone());
    let typed = password.to_owned();
    let password_matches = tokio::task::spawn_blocking(move || {
        typed.len() <= MAX_PASSWORD_BYTES && verify_password(&typed, &hash)
    })
    .await
    .map_err(|error| ApiError::Internal(error.into()))?;
    let failure = match &credentials {
        None => Some("unknown_user"),
        Some(_) if !password_matches => Some("wrong_password"),
        Some(credentials) if credentials.user.disabled_at.is_some() => Some("disabled"),
        Some(_) => None,
    };
    let user = match (credentials, failure) {
        (Some(credentials), None) => credentials.user,
        (credentials, reason) => {
            let mut record = anonymous_record(
                AuditAction::SignInFailed,
                &username,
                origin,
                serde_json::json!({"reason": reason}),
            );
            // The account that was tried, so that its owner can be told.
            record.actor_id = credentials.map(|c| c.user.id);
            state.store.append_audit(&[record]).await?;
            state.metrics.security_event("sign_in_failed");
            return Err(ApiError::SignInFailed);
        }
    };
    state.login_throttle.succeeded(&username, address);
    let now = Timestamp::now();
    let secret = new_secret();
    let session = NewSession {
        id: Uuid::new_v4(),
        secret_sha256: token_hash(&secret),
        user_id: user.id,
        csrf_token: new_secret(),
        created_at: now,
        expires_at: now.plus_micros(micros(state.settings.session_max_age())),
    };
    let audit = NewAuditRecord {
        at: now,
        actor: user.username.clone(),
        actor_kind: ActorKind::User,
        actor_id: Some(user.id),
        on_behalf_of: None,
        action: AuditAction::SignIn,
        patient_id: None,
        team_id: None,
        detail: serde_json::json!({"session_id": session.id, "role": user.role}),
        source_address: origin.address.clone(),
        user_agent: origin.user_agent.clone(),
        shown: Vec::new(),
    };
    state.store.add_session(&session, &audit).await?;
    state.metrics.security_event("sign_in");
    Ok(SignedInSession {
        user,
        secret,
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    })
}

/// Ends the session of this cookie secret and audits it; returns whether
/// there was a valid session to end.
///
/// # Errors
/// Store failures.
pub async fn sign_out(
    state: &AppState,
    secret: &str,
    origin: &RequestOrigin,
) -> Result<bool, ApiError> {
    let Some(session) = active_session(state, secret).await? else {
        return Ok(false);
    };
    let now = Timestamp::now();
    let revoked = state.store.revoke_session(&token_hash(secret), now).await?;
    if revoked {
        let record = NewAuditRecord {
            at: now,
            actor: session.user.username.clone(),
            actor_kind: ActorKind::User,
            actor_id: Some(session.user.id),
            on_behalf_of: None,
            action: AuditAction::SignOut,
            patient_id: None,
            team_id: None,
            detail: serde_json::json!({"session_id": session.session_id}),
            source_address: origin.address.clone(),
            user_agent: origin.user_agent.clone(),
            shown: Vec::new(),
        };
        state.store.append_audit(&[record]).await?;
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_hex() {
        let first = new_secret();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, new_secret());
    }

    #[test]
    fn usernames_are_compared_trimmed_and_lowercase() {
        assert_eq!(normalize_username("  Anouk.de.Vries "), "anouk.de.vries");
    }
}
