//! Sign-in, sessions, CSRF, team scoping and the audit trail: the security
//! foundation every page and API endpoint stands on.
//!
//! # For handler authors
//!
//! Take a [`Caller`] (or [`SignedIn`] for pages only people use) as an
//! extractor; it is a signed-in user from the session cookie or an
//! integration from `Authorization: Bearer`. Without either the request is
//! answered 401 (`session-expired` when a cookie was sent for a session that
//! has ended, so pages can redirect to `/login`).
//!
//! - One patient: `let access = patient_for(&state, &caller, id, Purpose::Readings).await?;`
//!   returns the patient or 404 when it is out of the caller's scope (never
//!   403: existence must not leak), and writes the audit row of the read
//!   before you show anything. For a change (`Purpose::Observe`,
//!   `Purpose::AlertChange`) it only authorises; store the change, then call
//!   `access.record_change(&state, &caller, detail)`.
//! - Lists (worklist, search): filter by `caller.visible_teams()` (a
//!   [`TeamScope`]) in the query, then `audit_reads(&state, &caller,
//!   Purpose::Worklist, &[(patient_id, team_id), …])` with the patients
//!   shown, before responding.
//! - Anything else worth recording: `caller.audit_record(action)`, fill in
//!   the fields, `state.store.append_audit(&[record])`.
//! - Forms: put `<input type="hidden" name="csrf_token" value="…">` with
//!   `signed_in.session.csrf_token` in every form that posts; scripts send
//!   the `X-CSRF-Token` header (the token comes with `POST`/`GET
//!   /api/v1/session`). [`csrf::guard`] refuses state-changing requests
//!   without it (403 `csrf`) before any handler runs.
//! - Pages: a 401 problem of type `session-expired` or `unauthorized` means
//!   "send the person to `/login?next=…`"; [`login_page`] redirects back to
//!   `next` (local paths only) after signing in.
//! - Everything user-visible on [`login_page`] is Dutch by default with
//!   `?lang=en`; move its texts into the web module's i18n when that exists.
//!
//! The rules (see [`scope`] for the table): nurses and coordinators see
//! the patients of their own teams; coordinators also the access overview;
//! admins manage users and devices and read a patient only through a
//! time-limited, audited break-glass grant with a reason; tokens of scope
//! `read` or `observe` reach the teams they were created for (`--team`, or
//! `--all-teams` only when asked for explicitly); `ingest` tokens reach no
//! patient data.
//!
//! # What lives where
//!
//! - [`password`]: argon2id hashing, generated passwords.
//! - [`throttle`]: the sign-in rate limit (per username and per address).
//! - [`session`]: signing in and out, shared by the JSON and form endpoints.
//! - [`request`]: client address, user agent, https, the cookie itself.
//! - [`caller`]: the [`Caller`] and [`SignedIn`] extractors.
//! - [`csrf`]: the middleware that enforces CSRF tokens.
//! - [`scope`]: [`patient_for`], [`audit_reads`] and the rules.
//! - [`headers`]: security headers (CSP without inline scripts, and others).
//! - [`login_page`]: `GET`/`POST /login`, `POST /logout`.
//! - [`admin`]: `thuiswacht admin user …` and the teams of new tokens.
//!
//! The JSON endpoints are in `api`: `session` (`/api/v1/session`) and
//! `access` (break-glass and the access overview).
//!
//! # Choices
//!
//! - Sessions are server-side rows; the cookie holds 32 random bytes whose
//!   SHA-256 is stored. A session ends after `session_idle_timeout_s`
//!   without use or `session_max_age_s` after sign-in, at sign-out, or when
//!   its user is disabled.
//! - The cookie is `HttpOnly; SameSite=Strict; Path=/`, plus `Secure` when
//!   `cookie_secure` is set or, with `trust_proxy_headers`, the proxy says
//!   the request came over https.
//! - Every sign-in, failure, refusal by the rate limit, sign-out, patient
//!   read, change and break-glass is a row in the append-only `audit_log`
//!   (the database refuses UPDATE and DELETE on it).

pub mod admin;
pub mod caller;
pub mod csrf;
pub mod headers;
pub mod login_page;
pub mod password;
pub mod request;
pub mod scope;
pub mod session;
pub mod throttle;

pub use caller::{Caller, Identity, SessionUser, SignedIn, TokenCaller};
pub use request::RequestOrigin;
pub use scope::{audit_reads, patient_for, PatientAccess, Purpose};
pub use throttle::LoginThrottle;

pub use crate::store::TeamScope;
