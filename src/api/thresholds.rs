//! Personal thresholds with a review-by date and four-eyes approval; the
//! rules are in [`crate::thresholds`].
//!
//! - `GET /api/v1/patients/{id}/thresholds` — every version of the
//!   patient's personal thresholds (those in force marked, with their
//!   review dates), the proposals awaiting a second coordinator and those
//!   decided. For whoever may read the patient.
//! - `POST /api/v1/patients/{id}/thresholds` with `{rule, settings, reason,
//!   review_by, valid_until?}` — coordinators of the patient's team (403 for
//!   nurses, 404 outside the team). A change that makes alerts more likely
//!   applies at once (201 with the version); one that makes them less
//!   likely, or mixed, waits for a second coordinator (202 with the
//!   proposal). Either replaces (withdraws) proposals still pending for the
//!   rule. 400 lists every problem.
//! - `POST /api/v1/threshold-proposals/{id}/approve` and `/reject`, with an
//!   optional `{note}` — a coordinator of the patient's team; approving
//!   stores the version, valid from that moment. The proposer cannot
//!   approve their own (403 `four-eyes`); their rejection withdraws it. A
//!   proposal decided already answers 409 with the proposal as it now is.
//!
//! Every change, approval, rejection and withdrawal leaves an audit row
//! (`change_threshold`, with what happened in `detail.action`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::openapi::{
    BadRequest, Forbidden, FourEyesForbidden, InvalidValues, NotFound, ProposalConflict,
    Unauthorized,
};
use super::{no_store, ApiError, AppState};
use crate::auth::{patient_for, Caller, PatientAccess, Purpose};
use crate::domain::Timestamp;
use crate::protocols::{Priority, RuleSettings};
use crate::store::{
    NewRuleOverride, NewThresholdProposal, ProposalStatus, RuleOverride, StoreError,
    ThresholdDecision, ThresholdProposal as StoredProposal,
};
use crate::thresholds::direction::Direction;
use crate::thresholds::{self as rules, ChangeRequest, MAX_TEXT_CHARS};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_thresholds, change_threshold))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// A patient's personal settings for one rule: each field given replaces
/// the protocol's value; `above`, `below` and `recover_at` may be `null`
/// to remove that bound. `{}` means "as the protocol says".
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"above": 38.5, "recover_at": 38.2}))]
#[allow(dead_code)] // documents `RuleSettings`, which the handlers parse
struct ThresholdSettings {
    /// Fires when the value is above this.
    above: Option<f64>,
    /// Fires when the value is below this.
    below: Option<f64>,
    /// Where an alert ends (hysteresis).
    recover_at: Option<f64>,
    /// The condition must hold this long.
    for_minutes: Option<u32>,
    /// Fires when `repeat_count` of the last `repeat_of` readings meet the condition.
    repeat_count: Option<u32>,
    repeat_of: Option<u32>,
    /// For trend and baseline rules: the change that fires…
    delta: Option<f64>,
    /// …over this many hours.
    window_hours: Option<u32>,
    /// For missed-measurement rules: the local time by which the metric is due, "HH:MM".
    due_by: Option<String>,
    priority: Option<Priority>,
    /// `false` switches the rule off for the patient (default `true`).
    enabled: Option<bool>,
}

/// A change of a personal threshold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ThresholdChangeBody {
    /// `"{protocol id}/{rule id}"` of one of the patient's protocols.
    #[schema(example = "default/fever")]
    rule: String,
    #[schema(value_type = ThresholdSettings)]
    settings: RuleSettings,
    /// Why; required, at most 1000 characters.
    #[schema(required = true, value_type = String)]
    #[serde(default)]
    reason: Option<String>,
    /// The date (`YYYY-MM-DD`, after today in the team's time zone) by
    /// which a coordinator should look at the threshold again; required.
    #[schema(required = true, value_type = String, format = Date)]
    #[serde(default)]
    review_by: Option<String>,
    /// RFC 3339: a temporary threshold ends then.
    #[serde(default)]
    valid_until: Option<String>,
}

/// One stored version of a personal threshold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ThresholdVersion {
    /// Increases with every version stored.
    id: i64,
    rule_key: String,
    /// 1, 2, … per patient and rule.
    version: i32,
    #[schema(value_type = ThresholdSettings)]
    settings: RuleSettings,
    valid_from: Timestamp,
    valid_until: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = Date)]
    review_by: Option<NaiveDate>,
    author: String,
    /// The second coordinator who approved a looser version.
    approved_by: Option<String>,
    reason: String,
    created_at: Timestamp,
    /// Whether the triage engine applies this version now.
    in_force: bool,
    /// In force, and its review-by date reached.
    review_due: bool,
}

impl ThresholdVersion {
    fn of(version: RuleOverride, in_force: bool, today: NaiveDate) -> ThresholdVersion {
        ThresholdVersion {
            review_due: in_force && rules::review_due(&version, today),
            in_force,
            id: version.id,
            rule_key: version.rule_key,
            version: version.version,
            settings: version.settings,
            valid_from: version.valid_from,
            valid_until: version.valid_until,
            review_by: version.review_by,
            author: version.author,
            approved_by: version.approved_by,
            reason: version.reason,
            created_at: version.created_at,
        }
    }
}

/// A proposal of a looser personal threshold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ThresholdProposal {
    id: i64,
    patient_id: Uuid,
    rule_key: String,
    #[schema(value_type = ThresholdSettings)]
    settings: RuleSettings,
    valid_until: Option<Timestamp>,
    #[schema(value_type = String, format = Date)]
    review_by: NaiveDate,
    /// Who proposed it.
    author: String,
    reason: String,
    created_at: Timestamp,
    status: ProposalStatus,
    decided_by: Option<String>,
    decided_at: Option<Timestamp>,
    decision_note: Option<String>,
    /// The version stored on approval.
    override_id: Option<i64>,
}

impl From<StoredProposal> for ThresholdProposal {
    fn from(proposal: StoredProposal) -> ThresholdProposal {
        ThresholdProposal {
            id: proposal.id,
            patient_id: proposal.patient_id,
            rule_key: proposal.rule_key,
            settings: proposal.settings,
            valid_until: proposal.valid_until,
            review_by: proposal.review_by,
            author: proposal.author,
            reason: proposal.reason,
            created_at: proposal.created_at,
            status: proposal.status,
            decided_by: proposal.decided_by,
            decided_at: proposal.decided_at,
            decision_note: proposal.decision_note,
            override_id: proposal.override_id,
        }
    }
}

/// A patient's personal thresholds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PatientThresholds {
    patient_id: Uuid,
    /// Today in the team's time zone, which review dates are compared with.
    #[schema(value_type = String, format = Date)]
    today: NaiveDate,
    /// Every version, newest first.
    versions: Vec<ThresholdVersion>,
    /// Proposals awaiting a second coordinator, oldest first.
    pending: Vec<ThresholdProposal>,
    /// Approved, rejected and withdrawn proposals, newest first.
    decided: Vec<ThresholdProposal>,
}

/// A change applied at once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ThresholdApplied {
    /// `tightening` or `unchanged`.
    direction: Direction,
    version: ThresholdVersion,
    /// Pending proposals for the rule this change replaced.
    withdrawn_proposals: Vec<i64>,
}

/// A change awaiting a second coordinator.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ThresholdProposed {
    /// `loosening` or `mixed`.
    direction: Direction,
    /// The settings that make alerts less likely.
    loosening: Vec<String>,
    proposal: ThresholdProposal,
    /// Pending proposals for the rule this one replaced.
    withdrawn_proposals: Vec<i64>,
}

/// An approval: the proposal and the version it stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ThresholdApproved {
    proposal: ThresholdProposal,
    version: ThresholdVersion,
}

/// A decision's optional note.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// At most 1000 characters.
    #[serde(default)]
    note: Option<String>,
}

/// 409 with the proposal as it now is.
fn conflict(detail: &str, proposal: Option<StoredProposal>) -> Response {
    super::error::conflict(detail, "proposal", proposal.map(ThresholdProposal::from))
}

/// The protocols in force (files and saved versions), which personal
/// thresholds are checked against.
fn protocols(
    state: &AppState,
) -> std::sync::Arc<std::collections::BTreeMap<String, crate::protocols::Protocol>> {
    state.protocols.current()
}

/// A patient's personal thresholds: every version (those in force
/// marked, with their review dates) and the proposals.
#[utoipa::path(
    get,
    path = "/api/v1/patients/{patient_id}/thresholds",
    tag = "thresholds",
    params(("patient_id" = Uuid, Path, description = "The patient")),
    responses(
        (status = 200, description = "The patient's personal thresholds", body = PatientThresholds),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []), ("bearer" = ["read"]))
)]
async fn get_thresholds(
    State(state): State<AppState>,
    Path(patient_id): Path<Uuid>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let access = patient_for(&state, &caller, patient_id, Purpose::PatientPage).await?;
    let now = Timestamp::now();
    let today = rules::today(&state.settings, now);
    let versions = state.store.patient_rule_overrides(patient_id).await?;
    let in_force: Vec<i64> = rules::versions_in_force(&versions, now)
        .values()
        .map(|version| version.id)
        .collect();
    let mut versions: Vec<ThresholdVersion> = versions
        .into_iter()
        .map(|version| {
            let current = in_force.contains(&version.id);
            ThresholdVersion::of(version, current, today)
        })
        .collect();
    versions.reverse();
    let (pending, mut decided): (Vec<ThresholdProposal>, Vec<ThresholdProposal>) = state
        .store
        .patient_threshold_proposals(patient_id)
        .await?
        .into_iter()
        .map(ThresholdProposal::from)
        .partition(|proposal| proposal.status == ProposalStatus::Pending);
    decided.reverse();
    Ok(no_store(Json(PatientThresholds {
        patient_id: access.patient.id,
        today,
        versions,
        pending,
        decided,
    })))
}

/// Sets a personal threshold: a stricter one applies at once (201), a
/// looser or mixed one waits for a second coordinator (202).
#[utoipa::path(
    post,
    path = "/api/v1/patients/{patient_id}/thresholds",
    tag = "thresholds",
    params(("patient_id" = Uuid, Path, description = "The patient")),
    request_body(content = ThresholdChangeBody, example = json!({
        "rule": "default/fever",
        "settings": {"above": 38.5, "recover_at": 38.2},
        "reason": "Loopt 's avonds vaak 38,1 zonder infectie; besproken met de huisarts.",
        "review_by": "2027-03-01"
    })),
    responses(
        (status = 201, description = "Stricter or unchanged: stored and in force at once", body = ThresholdApplied),
        (status = 202, description = "Looser or mixed: a proposal awaiting a second coordinator", body = ThresholdProposed),
        (status = 400, response = InvalidValues),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn change_threshold(
    State(state): State<AppState>,
    Path(patient_id): Path<Uuid>,
    caller: Caller,
    body: Result<Json<ThresholdChangeBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    // Who may, before what: a nurse learns nothing from her body's errors.
    let access = patient_for(&state, &caller, patient_id, Purpose::ThresholdChange).await?;
    let Json(body) = body?;
    let protocols = protocols(&state);
    let now = Timestamp::now();
    let today = rules::today(&state.settings, now);
    let versions = state.store.patient_rule_overrides(patient_id).await?;
    let checked = rules::check_change(
        &protocols,
        &access.patient,
        &versions,
        &ChangeRequest {
            rule_key: body.rule.trim(),
            settings: &body.settings,
            reason: body.reason.as_deref(),
            review_by: body.review_by.as_deref(),
            valid_until: body.valid_until.as_deref(),
        },
        now,
        today,
    )
    .map_err(ApiError::Invalid)?;
    let direction = checked.direction();
    let author = caller.author().to_owned();
    if direction.needs_second_coordinator() {
        let withdrawn = state
            .store
            .withdraw_threshold_proposals(
                patient_id,
                &checked.rule_key,
                &author,
                now,
                "replaced by a newer proposal",
            )
            .await?;
        let proposal = state
            .store
            .add_threshold_proposal(&NewThresholdProposal {
                patient_id,
                rule_key: checked.rule_key.clone(),
                settings: checked.settings.clone(),
                valid_until: checked.valid_until,
                review_by: checked.review_by,
                author,
                reason: checked.reason.clone(),
                created_at: now,
            })
            .await?;
        let loosening: Vec<String> = checked
            .classification
            .loosening_fields()
            .into_iter()
            .map(str::to_owned)
            .collect();
        access
            .record_change(
                &state,
                &caller,
                serde_json::json!({
                    "action": "proposed",
                    "rule_key": proposal.rule_key,
                    "proposal_id": proposal.id,
                    "direction": direction,
                    "loosening": loosening,
                    "withdrawn_proposals": withdrawn,
                }),
            )
            .await?;
        return Ok(no_store((
            StatusCode::ACCEPTED,
            Json(ThresholdProposed {
                direction,
                loosening,
                proposal: proposal.into(),
                withdrawn_proposals: withdrawn,
            }),
        )));
    }
    let version = state
        .store
        .add_rule_override(&NewRuleOverride {
            patient_id,
            rule_key: checked.rule_key.clone(),
            settings: checked.settings.clone(),
            valid_from: now,
            valid_until: checked.valid_until,
            author: author.clone(),
            reason: checked.reason.clone(),
            review_by: Some(checked.review_by),
            approved_by: None,
        })
        .await?;
    let withdrawn = state
        .store
        .withdraw_threshold_proposals(
            patient_id,
            &checked.rule_key,
            &author,
            now,
            &format!("replaced by version {}", version.version),
        )
        .await?;
    access
        .record_change(
            &state,
            &caller,
            serde_json::json!({
                "action": "set",
                "rule_key": version.rule_key,
                "override_id": version.id,
                "version": version.version,
                "direction": direction,
                "replaces_override_id": checked.in_force,
                "withdrawn_proposals": withdrawn,
            }),
        )
        .await?;
    Ok(no_store((
        StatusCode::CREATED,
        Json(ThresholdApplied {
            direction,
            version: ThresholdVersion::of(version, true, today),
            withdrawn_proposals: withdrawn,
        }),
    )))
}

/// Reads the decision's note: no body, or `{}`, is none.
fn decision_note(
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Option<String>, ApiError> {
    let body = match body {
        Ok(Json(body)) => body,
        Err(JsonRejection::MissingJsonContentType(_)) => DecisionBody::default(),
        Err(rejection) => return Err(rejection.into()),
    };
    let note = body
        .note
        .map(|note| note.trim().to_owned())
        .filter(|note| !note.is_empty());
    if note
        .as_ref()
        .is_some_and(|note| note.chars().count() > MAX_TEXT_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "a note is at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(note)
}

/// Loads a pending proposal the caller may decide on: 404 when it does not
/// exist or its patient is outside the caller's teams, 403 for anyone but
/// a coordinator, 409 (as a response) when it was decided already.
async fn decidable(
    state: &AppState,
    caller: &Caller,
    proposal_id: i64,
) -> Result<Result<(StoredProposal, PatientAccess), Response>, ApiError> {
    let proposal = state
        .store
        .threshold_proposal(proposal_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = patient_for(state, caller, proposal.patient_id, Purpose::ThresholdChange).await?;
    if proposal.status != ProposalStatus::Pending {
        let detail = format!("the proposal was {} already", proposal.status.code());
        return Ok(Err(conflict(&detail, Some(proposal))));
    }
    Ok(Ok((proposal, access)))
}

/// Answers a store conflict (someone decided meanwhile) with the proposal
/// as it now is.
async fn decided_meanwhile(state: &AppState, proposal_id: i64) -> Response {
    let current = state
        .store
        .threshold_proposal(proposal_id)
        .await
        .ok()
        .flatten();
    conflict("the proposal was decided meanwhile", current)
}

/// Approves a proposal: its version is stored, in force from now. Not by
/// its proposer.
#[utoipa::path(
    post,
    path = "/api/v1/threshold-proposals/{proposal_id}/approve",
    tag = "thresholds",
    params(("proposal_id" = i64, Path, description = "The proposal", example = 17)),
    request_body(content = DecisionBody, example = json!({"note": "Akkoord, past bij de afspraken met de huisarts."})),
    responses(
        (status = 200, description = "Approved: the version is in force", body = ThresholdApproved),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = FourEyesForbidden),
        (status = 404, response = NotFound),
        (status = 409, response = ProposalConflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn approve(
    State(state): State<AppState>,
    Path(proposal_id): Path<i64>,
    caller: Caller,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (proposal, access) = match decidable(&state, &caller, proposal_id).await? {
        Ok(decidable) => decidable,
        Err(response) => return Ok(response),
    };
    let decided_by = caller.author().to_owned();
    if proposal.author == decided_by {
        return Err(ApiError::FourEyes);
    }
    let note = decision_note(body)?;
    let now = Timestamp::now();
    if proposal.valid_until.is_some_and(|until| until <= now) {
        return Ok(conflict(
            "the proposal's end time has passed; reject it and propose again",
            Some(proposal),
        ));
    }
    // The protocols may have changed since it was proposed.
    if let Err(problems) = crate::protocols::personal_rule(
        &protocols(&state),
        &access.patient.protocols,
        &proposal.rule_key,
        &proposal.settings,
    ) {
        let detail = format!(
            "the proposal no longer fits the patient's protocols: {}",
            problems.join("; ")
        );
        return Ok(conflict(&detail, Some(proposal)));
    }
    let decision = ThresholdDecision {
        proposal_id,
        decided_by,
        at: now,
        note,
    };
    let (proposal, version) = match state.store.approve_threshold_proposal(&decision).await {
        Ok(approved) => approved,
        Err(StoreError::Conflict(_)) => return Ok(decided_meanwhile(&state, proposal_id).await),
        Err(error) => return Err(error.into()),
    };
    access
        .record_change(
            &state,
            &caller,
            serde_json::json!({
                "action": "approved",
                "rule_key": proposal.rule_key,
                "proposal_id": proposal.id,
                "proposed_by": proposal.author,
                "override_id": version.id,
                "version": version.version,
            }),
        )
        .await?;
    let today = rules::today(&state.settings, now);
    Ok(no_store(Json(ThresholdApproved {
        proposal: proposal.into(),
        version: ThresholdVersion::of(version, true, today),
    })))
}

/// Rejects a proposal; its proposer's rejection withdraws it. Nothing
/// changes for the patient.
#[utoipa::path(
    post,
    path = "/api/v1/threshold-proposals/{proposal_id}/reject",
    tag = "thresholds",
    params(("proposal_id" = i64, Path, description = "The proposal", example = 17)),
    request_body(content = DecisionBody, example = json!({"note": "Eerst overleggen met de huisarts."})),
    responses(
        (status = 200, description = "Rejected (or, by its proposer, withdrawn)", body = ThresholdProposal),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = ProposalConflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn reject(
    State(state): State<AppState>,
    Path(proposal_id): Path<i64>,
    caller: Caller,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (proposal, access) = match decidable(&state, &caller, proposal_id).await? {
        Ok(decidable) => decidable,
        Err(response) => return Ok(response),
    };
    let note = decision_note(body)?;
    let decided_by = caller.author().to_owned();
    let status = if proposal.author == decided_by {
        ProposalStatus::Withdrawn
    } else {
        ProposalStatus::Rejected
    };
    let decision = ThresholdDecision {
        proposal_id,
        decided_by,
        at: Timestamp::now(),
        note,
    };
    let proposal = match state
        .store
        .close_threshold_proposal(&decision, status)
        .await
    {
        Ok(proposal) => proposal,
        Err(StoreError::Conflict(_)) => return Ok(decided_meanwhile(&state, proposal_id).await),
        Err(error) => return Err(error.into()),
    };
    access
        .record_change(
            &state,
            &caller,
            serde_json::json!({
                "action": status.code(),
                "rule_key": proposal.rule_key,
                "proposal_id": proposal.id,
                "proposed_by": proposal.author,
            }),
        )
        .await?;
    Ok(no_store(Json(ThresholdProposal::from(proposal))))
}
