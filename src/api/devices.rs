//! `POST /api/v1/devices/{id}/status`: a device status over HTTP, for
//! gateways without MQTT. The same payload as the MQTT status topic, a
//! bearer token of scope `ingest`, answered only after the status is stored
//! (through the same store writer as MQTT).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use tokio::sync::oneshot;

use super::readings::require_token;
use super::{ApiError, AppState};
use crate::decode::{decode_status, DecodeContext};
use crate::domain::{DeviceId, RejectReason, Timestamp};
use crate::ingest::{AckToken, CommitReport, IngestedBatch, Source};
use crate::store::TokenScope;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/devices/{device_id}/status", post(post_status))
}

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
