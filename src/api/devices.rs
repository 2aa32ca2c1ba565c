//! `POST /api/v1/devices/{id}/status`: a device status over HTTP, for
//! gateways without MQTT. The same payload as the MQTT status topic, a
//! bearer token of scope `ingest`, answered only after the status is stored
//! (through the same store writer as MQTT).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use tokio::sync::oneshot;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{
    BadRequest, Forbidden, PayloadRejected, PayloadTooLarge, Unauthorized, Unavailable,
};
use super::readings::require_token;
use super::{ApiError, AppState};
use crate::decode::{decode_status, DecodeContext};
use crate::domain::{DeviceId, RejectReason, Timestamp};
use crate::ingest::{AckToken, CommitReport, IngestedBatch, Source};
use crate::store::TokenScope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_status))
}

/// Stores a device's status (battery, fault; a heartbeat in any case), as
/// on the MQTT status topic. Answered after it is stored.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{device_id}/status",
    tag = "ingest",
    params(("device_id" = String, Path, description = "The device id, as registered", example = "bpm-0001")),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "Every member is optional: `device_id`, `ts` (RFC 3339), `battery_pct` (0–100), `fault`, `online`",
        example = json!({"ts": "2026-11-23T08:00:00Z", "battery_pct": 14, "fault": null})
    ),
    responses(
        (status = 200, description = "Stored", body = CommitReport),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = PayloadRejected),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = ["ingest"]))
)]
async fn post_status(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CommitReport>, ApiError> {
    require_token(&state, &headers, TokenScope::Ingest).await?;
    let device_id = DeviceId::parse(&device_id)
        .map_err(|error| ApiError::BadRequest(format!("invalid device id: {error}")))?;
    let received_at = Timestamp::now();
    let context = DecodeContext {
        topic_device: Some(&device_id),
        received_at,
        max_payload_bytes: state.settings.max_payload_bytes,
    };
    let (statuses, rejections) = match decode_status(&body, &device_id, &context) {
        Ok(status) => (vec![status], Vec::new()),
        Err(rejection) => (Vec::new(), vec![rejection]),
    };
    state.metrics.message_received("http", 0);
    let (reply_tx, reply_rx) = oneshot::channel();
    let batch = IngestedBatch {
        source: Source::Http,
        received_at,
        decoded: Vec::new(),
        statuses,
        rejections,
        ack: AckToken::Http(reply_tx),
    };
    state
        .ingested_tx
        .send(batch)
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".to_owned()))?;
    let report = reply_rx
        .await
        .map_err(|_| ApiError::Unavailable("the status was not stored; retry".to_owned()))?;
    if report.statuses == 0 {
        let extra = serde_json::to_value(&report).unwrap_or_default();
        if report
            .rejected
            .iter()
            .any(|r| r.reason == RejectReason::PayloadTooLarge)
        {
            return Err(ApiError::PayloadTooLarge(extra));
        }
        return Err(ApiError::Unprocessable(extra));
    }
    Ok(Json(report))
}
