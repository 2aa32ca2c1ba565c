//! `POST /api/v1/readings`: HTTP ingestion for gateways without MQTT. Same
//! payloads as MQTT, bearer token of scope `ingest`, answered only after the
//! commit (the writer completes the request's [`AckToken::Http`]).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::Json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{Forbidden, PayloadRejected, PayloadTooLarge, Unauthorized, Unavailable};
use super::{ApiError, AppState};
use crate::decode::{decode, DecodeContext};
use crate::domain::{RejectReason, Timestamp};
use crate::ingest::{AckToken, CommitReport, IngestedBatch, Source};
use crate::settings::Settings;
use crate::store::TokenScope;

pub fn router(settings: &Settings) -> OpenApiRouter<AppState> {
    // Accept bodies somewhat over the payload limit so that an oversized one
    // is decoded far enough to be quarantined with its reason.
    let transport_limit = settings.max_payload_bytes.saturating_mul(4);
    OpenApiRouter::new()
        .routes(routes!(post_readings))
        .layer(DefaultBodyLimit::max(transport_limit))
}

/// Returns the SHA-256 of a bearer token's secret, the form in which tokens are stored.
pub fn token_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Checks the bearer token and its scope.
pub(super) async fn require_token(
    state: &AppState,
    headers: &HeaderMap,
    scope: TokenScope,
) -> Result<crate::store::TokenRecord, ApiError> {
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let token = state
        .store
        .find_token(&token_hash(secret.trim()))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if token.revoked {
        return Err(ApiError::Unauthorized);
    }
    if token.scope != scope {
        return Err(ApiError::Forbidden);
    }
    Ok(token)
}

/// Stores readings posted by a gateway (Thuiswacht JSON v1, SenML or a FHIR
/// R4 Observation or Bundle; the format is detected). Answered after the
/// commit; what was refused is quarantined and listed in `rejected`.
#[utoipa::path(
    post,
    path = "/api/v1/readings",
    tag = "ingest",
    request_body(
        content = Object,
        content_type = "application/json",
        description = "Thuiswacht JSON v1, SenML (RFC 8428) or FHIR R4",
        example = json!({"device_id": "bpm-0001", "readings": [
            {"metric": "bp_systolic", "value": 128, "unit": "mm[Hg]", "ts": "2026-11-23T08:00:00Z"},
            {"metric": "bp_diastolic", "value": 76, "unit": "mm[Hg]", "ts": "2026-11-23T08:00:00Z"}]})
    ),
    responses(
        (status = 200, description = "Stored (some readings may have been refused)", body = CommitReport),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = PayloadRejected),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = ["ingest"]))
)]
async fn post_readings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CommitReport>, ApiError> {
    require_token(&state, &headers, TokenScope::Ingest).await?;
    let received_at = Timestamp::now();
    let decoded = decode(
        &body,
        &DecodeContext {
            topic_device: None,
            received_at,
            max_payload_bytes: state.settings.max_payload_bytes,
        },
    );
    state
        .metrics
        .message_received("http", decoded.readings.len());
    let (reply_tx, reply_rx) = oneshot::channel();
    let batch = IngestedBatch {
        source: Source::Http,
        received_at,
        decoded: decoded.readings,
        statuses: Vec::new(),
        rejections: decoded.rejections,
        ack: AckToken::Http(reply_tx),
    };
    state
        .ingested_tx
        .send(batch)
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".to_owned()))?;
    let report = reply_rx
        .await
        .map_err(|_| ApiError::Unavailable("the readings were not committed; retry".to_owned()))?;
    let extra = || serde_json::to_value(&report).unwrap_or_default();
    if report.stored == 0 && report.duplicates == 0 && !report.rejected.is_empty() {
        if report
            .rejected
            .iter()
            .any(|r| r.reason == RejectReason::PayloadTooLarge)
        {
            return Err(ApiError::PayloadTooLarge(extra()));
        }
        return Err(ApiError::Unprocessable(extra()));
    }
    Ok(Json(report))
}
