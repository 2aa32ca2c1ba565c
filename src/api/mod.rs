//! The HTTP service: health, readiness, metrics and the JSON API.
//!
//! [`app`] builds the whole router with its layers; tests call it directly or
//! through a bound listener. Each resource module exposes `router()`.

mod devices;
mod error;
mod health;
mod observations;
mod readings;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::mpsc;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use readings::token_hash;

use crate::ingest::IngestedBatch;
use crate::settings::Settings;
use crate::store::writer::StoredBatch;
use crate::store::Store;
use crate::telemetry::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Where HTTP-ingested readings go (the same writer as MQTT).
    pub ingested_tx: mpsc::Sender<IngestedBatch>,
    /// Where readings stored by the API itself (nurse observations) go to
    /// be triaged; `None` when triage is off.
    pub stored_tx: Option<mpsc::Sender<StoredBatch>>,
}

/// Requests that take longer than this are answered 408, so open requests
/// cannot hold shutdown forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the router with every route and layer.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(readings::router(&state.settings))
        .merge(observations::router())
        .merge(devices::router())
        .fallback(|| async { ApiError::NotFound })
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
