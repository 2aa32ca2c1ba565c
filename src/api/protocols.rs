//! Protocols: read, edit as a new version, compare and restore versions,
//! reload the files.
//!
//! - `GET /api/v1/protocols`: every protocol, newest version, without rules.
//! - `GET /api/v1/protocols/{id}`: the newest version, a [`ProtocolDocument`].
//! - `PUT /api/v1/protocols/{id}` with `{"protocol": <document>, "reason": …}`:
//!   saves the document as the next version. The document's `version` is
//!   the version it was based on; when someone saved another meanwhile the
//!   answer is 409 with the newest, so no change is lost silently.
//! - `GET /api/v1/protocols/{id}/versions`, `…/versions/{n}`: the history;
//!   version 0 is the file in `alerts/`.
//! - `GET /api/v1/protocols/{id}/compare?from=&to=`: field-by-field changes.
//! - `POST /api/v1/protocols/{id}/versions/{n}/restore` with `{"reason"}`:
//!   saves version `n`'s rules as the next version.
//! - `POST /api/v1/protocols/reload`: reads the files again (as `SIGHUP`).
//!
//! Everyone signed in reads protocols (they hold no patient data); only
//! coordinators change them (admins may reload the files). Every change is
//! in the audit trail with the protocol, version and reason.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery};
use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable};
use super::{no_store, ApiError, AppState};
use crate::auth::Caller;
use crate::domain::Timestamp;
use crate::protocols::catalog::{ReloadReport, VersionInfo};
use crate::protocols::diff::{compare, Change};
use crate::protocols::{Priority, Protocol, Rule};
use crate::store::{AuditAction, NewProtocolVersion, Role, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_protocols))
        .routes(routes!(get_protocol, put_protocol))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(compare_versions))
        .routes(routes!(restore_version))
        .routes(routes!(reload_files))
}

/// A protocol as the API reads and writes it. `id` and `saved` are read
/// only (ignored when sent); `version` is the version this document is, and
/// when sent back, the version the change is based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtocolDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// 0 is the file in `alerts/`.
    #[serde(default)]
    pub version: i32,
    /// Who saved this version, when and why (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<VersionInfo>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// NEWS2 SpO2 scale: 1, or 2 for a prescribed target of 88–92%.
    pub news2_scale: u8,
    /// Minutes within which an alert of each priority should be claimed.
    #[schema(value_type = BTreeMap<String, u32>)]
    pub response_targets: BTreeMap<Priority, u32>,
    pub rules: Vec<Rule>,
}

impl ProtocolDocument {
    /// Returns the document of `protocol` as version `info`.
    pub fn new(id: &str, info: VersionInfo, protocol: Protocol) -> ProtocolDocument {
        ProtocolDocument {
            id: Some(id.to_owned()),
            version: info.version,
            saved: Some(info),
            name: protocol.name,
            description: protocol.description,
            news2_scale: protocol.news2_scale,
            response_targets: protocol.response_targets,
            rules: protocol.rules,
        }
    }

    /// Returns the protocol the document describes.
    pub fn protocol(&self) -> Protocol {
        Protocol {
            name: self.name.clone(),
            description: self.description.clone(),
            news2_scale: self.news2_scale,
            response_targets: self.response_targets.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// A proposed protocol for the examples of the document: the default
/// protocol's fever rule from 38.5 °C.
#[macro_export]
#[doc(hidden)]
macro_rules! example_protocol_json {
    () => {
        serde_json::json!({
            "version": 0,
            "name": "Kwetsbare ouderen thuis (standaard)",
            "news2_scale": 1,
            "response_targets": {"high": 60, "medium": 240, "low": 1440},
            "rules": [{
                "id": "fever", "kind": "threshold", "metric": "body_temperature",
                "above": 38.5, "recover_at": 38.2, "priority": "medium"
            }]
        })
    };
}

/// One protocol in the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProtocolSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub rules: usize,
    /// The newest version.
    pub current: VersionInfo,
}

/// A change to save.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    pub protocol: ProtocolDocument,
    /// Why: shown in the version history.
    pub reason: String,
}

/// A restore to save.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub reason: String,
}

/// Which versions to compare.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompareParams {
    /// The older version (0: the file); default: the one before `to`.
    pub from: Option<i32>,
    /// The newer version; default: the newest.
    pub to: Option<i32>,
}

/// The differences between two versions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub from: i32,
    pub to: i32,
    pub changes: Vec<Change>,
}

fn signed_in(caller: &Caller) -> Result<(), ApiError> {
    if caller.user().is_some() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn coordinator(caller: &Caller) -> Result<(), ApiError> {
    if caller.role() == Some(Role::Coordinator) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/protocols",
    tag = "tuning",
    responses(
        (status = 200, description = "Every protocol, newest version", body = Vec<ProtocolSummary>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden)
    ),
    security(("session_cookie" = []))
)]
async fn list_protocols(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    signed_in(&caller)?;
    let summaries: Vec<ProtocolSummary> = state
        .protocols
        .current()
        .keys()
        .filter_map(|id| {
            let (current, protocol) = state.protocols.get(id)?;
            Some(ProtocolSummary {
                id: id.clone(),
                name: protocol.name,
                description: protocol.description,
                rules: protocol.rules.len(),
                current,
            })
        })
        .collect();
    Ok(no_store(Json(summaries)))
}

#[utoipa::path(
    get,
    path = "/api/v1/protocols/{protocol_id}",
    tag = "tuning",
    params(("protocol_id" = String, Path, description = "The protocol id (its file name in `alerts/`)", example = "default")),
    responses(
        (status = 200, description = "The newest version", body = ProtocolDocument),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []))
)]
async fn get_protocol(
    State(state): State<AppState>,
    caller: Caller,
    Path(protocol_id): Path<String>,
) -> Result<Response, ApiError> {
    signed_in(&caller)?;
    let (info, protocol) = state
        .protocols
        .get(&protocol_id)
        .ok_or(ApiError::NotFound)?;
    Ok(no_store(Json(ProtocolDocument::new(
        &protocol_id,
        info,
        protocol,
    ))))
}

/// Saves `protocol` as the next version after `base`; shared by save and
/// restore. Audits the change.
async fn save(
    state: &AppState,
    caller: &Caller,
    protocol_id: &str,
    protocol: Protocol,
    base: i32,
    reason: &str,
    restored_from: Option<i32>,
) -> Result<Response, ApiError> {
    coordinator(caller)?;
    let (current, current_protocol) = state.protocols.get(protocol_id).ok_or(ApiError::NotFound)?;
    let reason = reason.trim();
    let mut problems = Vec::new();
    if reason.is_empty() {
        problems.push("give a reason: it is shown in the version history".to_owned());
    }
    problems.extend(state.protocols.problems(protocol_id, &protocol));
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(
            serde_json::json!({ "problems": problems }),
        ));
    }
    if base != current.version {
        return Ok(conflict(protocol_id, current, current_protocol));
    }
    let changes = compare(&current_protocol, &protocol);
    let saved = match state
        .store
        .add_protocol_version(&NewProtocolVersion {
            protocol_id: protocol_id.to_owned(),
            definition: protocol,
            base_version: base,
            valid_from: Timestamp::now(),
            author: caller.author().to_owned(),
            reason: reason.to_owned(),
            restored_from,
        })
        .await
    {
        Ok(saved) => saved,
        Err(StoreError::Conflict(_)) => {
            state.protocols.refresh(state.store.as_ref()).await?;
            let (current, current_protocol) =
                state.protocols.get(protocol_id).ok_or(ApiError::NotFound)?;
            return Ok(conflict(protocol_id, current, current_protocol));
        }
        Err(error) => return Err(error.into()),
    };
    state.protocols.refresh(state.store.as_ref()).await?;
    let mut audit = caller.audit_record(AuditAction::ChangeProtocol);
    audit.detail = serde_json::json!({
        "protocol": protocol_id,
        "version": saved.version,
        "based_on": base,
        "restored_from": restored_from,
        "reason": reason,
        "changes": changes.len(),
    });
    state.store.append_audit(&[audit]).await?;
    let (info, protocol) = state
        .protocols
        .versions(protocol_id)
        .into_iter()
        .find(|(info, _)| info.version == saved.version)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("saved version not read back")))?;
    Ok(no_store((
        StatusCode::OK,
        Json(ProtocolDocument::new(protocol_id, info, protocol)),
    )))
}

/// 409 with the newest version.
fn conflict(protocol_id: &str, current: VersionInfo, protocol: Protocol) -> Response {
    let detail = format!(
        "version {} of {protocol_id} was saved meanwhile; compare and save again",
        current.version
    );
    super::error::conflict(
        &detail,
        "protocol",
        ProtocolDocument::new(protocol_id, current, protocol),
    )
}

#[utoipa::path(
    put,
    path = "/api/v1/protocols/{protocol_id}",
    tag = "tuning",
    params(("protocol_id" = String, Path, description = "The protocol id", example = "default")),
    request_body(content = SaveRequest, example = json!({
        "protocol": crate::example_protocol_json!(),
        "reason": "Minder koortsmeldingen: 38,5 °C na overleg met de huisartsen"
    })),
    responses(
        (status = 200, description = "Saved as the next version; it applies to readings from now on", body = ProtocolDocument),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn put_protocol(
    State(state): State<AppState>,
    caller: Caller,
    Path(protocol_id): Path<String>,
    ApiJson(request): ApiJson<SaveRequest>,
) -> Result<Response, ApiError> {
    if request
        .protocol
        .id
        .as_deref()
        .is_some_and(|id| id != protocol_id)
    {
        return Err(ApiError::BadRequest(format!(
            "the document is protocol {}, not {protocol_id}",
            request.protocol.id.unwrap_or_default()
        )));
    }
    save(
        &state,
        &caller,
        &protocol_id,
        request.protocol.protocol(),
        request.protocol.version,
        &request.reason,
        None,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/api/v1/protocols/{protocol_id}/versions",
    tag = "tuning",
    params(("protocol_id" = String, Path, description = "The protocol id", example = "default")),
    responses(
        (status = 200, description = "Every version, oldest first; 0 is the file", body = Vec<VersionInfo>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []))
)]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(protocol_id): Path<String>,
) -> Result<Response, ApiError> {
    signed_in(&caller)?;
    let versions: Vec<VersionInfo> = state
        .protocols
        .versions(&protocol_id)
        .into_iter()
        .map(|(info, _)| info)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(no_store(Json(versions)))
}

fn version_of(
    state: &AppState,
    protocol_id: &str,
    version: i32,
) -> Result<(VersionInfo, Protocol), ApiError> {
    state
        .protocols
        .versions(protocol_id)
        .into_iter()
        .find(|(info, _)| info.version == version)
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(
    get,
    path = "/api/v1/protocols/{protocol_id}/versions/{version}",
    tag = "tuning",
    params(
        ("protocol_id" = String, Path, description = "The protocol id", example = "default"),
        ("version" = i32, Path, description = "The version (0: the file)", example = 0)
    ),
    responses(
        (status = 200, description = "That version", body = ProtocolDocument),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []))
)]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((protocol_id, version)): Path<(String, i32)>,
) -> Result<Response, ApiError> {
    signed_in(&caller)?;
    let (info, protocol) = version_of(&state, &protocol_id, version)?;
    Ok(no_store(Json(ProtocolDocument::new(
        &protocol_id,
        info,
        protocol,
    ))))
}

#[utoipa::path(
    get,
    path = "/api/v1/protocols/{protocol_id}/compare",
    tag = "tuning",
    params(
        ("protocol_id" = String, Path, description = "The protocol id", example = "default"),
        CompareParams
    ),
    responses(
        (status = 200, description = "What changed from `from` to `to`", body = Comparison),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []))
)]
async fn compare_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(protocol_id): Path<String>,
    ApiQuery(params): ApiQuery<CompareParams>,
) -> Result<Response, ApiError> {
    signed_in(&caller)?;
    let newest = state
        .protocols
        .get(&protocol_id)
        .ok_or(ApiError::NotFound)?
        .0
        .version;
    let to = params.to.unwrap_or(newest);
    let from = params.from.unwrap_or((to - 1).max(0));
    let (_, before) = version_of(&state, &protocol_id, from)?;
    let (_, after) = version_of(&state, &protocol_id, to)?;
    Ok(no_store(Json(Comparison {
        from,
        to,
        changes: compare(&before, &after),
    })))
}

#[utoipa::path(
    post,
    path = "/api/v1/protocols/{protocol_id}/versions/{version}/restore",
    tag = "tuning",
    params(
        ("protocol_id" = String, Path, description = "The protocol id", example = "default"),
        ("version" = i32, Path, description = "The version to restore (0: the file)", example = 0)
    ),
    request_body(content = RestoreRequest, example = json!({"reason": "Terug naar de standaard"})),
    responses(
        (status = 200, description = "Saved as the next version", body = ProtocolDocument),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn restore_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((protocol_id, version)): Path<(String, i32)>,
    ApiJson(request): ApiJson<RestoreRequest>,
) -> Result<Response, ApiError> {
    coordinator(&caller)?;
    let (_, protocol) = version_of(&state, &protocol_id, version)?;
    let (current, _) = state
        .protocols
        .get(&protocol_id)
        .ok_or(ApiError::NotFound)?;
    save(
        &state,
        &caller,
        &protocol_id,
        protocol,
        current.version,
        &request.reason,
        Some(version),
    )
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/protocols/reload",
    tag = "tuning",
    responses(
        (status = 200, description = "The files were read; what changed", body = ReloadReport),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn reload_files(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if !matches!(caller.role(), Some(Role::Coordinator | Role::Admin)) {
        return Err(ApiError::Forbidden);
    }
    let result = state.protocols.reload(Timestamp::now());
    crate::app::log_reload(&result);
    let mut audit = caller.audit_record(AuditAction::ChangeProtocol);
    audit.detail = match &result {
        Ok(report) => {
            serde_json::json!({"reload": "applied", "applied": report.applied, "overridden": report.overridden})
        }
        Err(error) => serde_json::json!({"reload": "refused", "problems": error.problems}),
    };
    state.store.append_audit(&[audit]).await?;
    match result {
        Ok(report) => Ok(no_store(Json(report))),
        Err(error) => Err(ApiError::Unprocessable(
            serde_json::json!({ "problems": error.problems }),
        )),
    }
}
