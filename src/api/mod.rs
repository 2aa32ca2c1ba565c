//! The HTTP service: health, readiness, metrics and the JSON API.
//!
//! [`app`] builds the whole router with its layers; tests call it directly or
//! through a bound listener. Each resource module exposes `router()`.
//! Sign-in, CSRF, team scoping and the audit trail come from [`crate::auth`]:
//! its CSRF guard and security headers wrap every route. The JSON API's
//! routes and its OpenAPI document come from the same handler attributes
//! ([`openapi`]); a path no route serves answers 404 `no-such-route`.

mod access;
pub mod backtest;
pub mod burden;
mod devices;
mod error;
mod extract;
mod health;
mod observations;
pub mod openapi;
mod patients;
pub mod protocols;
mod readings;
mod session;
mod thresholds;
mod worklist;

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::mpsc;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, PROBLEM_TYPES};
pub use readings::token_hash;

use crate::auth::LoginThrottle;
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
    /// Counts sign-in attempts (per process).
    pub login_throttle: Arc<LoginThrottle>,
    /// Fires at shutdown: long-lived responses (the worklist stream) end on
    /// it, so that a graceful shutdown does not wait for browsers to leave.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The protocols in force: files in `alerts/` and saved versions.
    pub protocols: Arc<crate::protocols::catalog::Catalog>,
    /// Running and recently finished backtests.
    pub backtests: Arc<backtest::Backtests>,
}

/// Requests that take longer than this are answered 408, so open requests
/// cannot hold shutdown forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Marks a response as not to be cached: it holds patient data or a state
/// that changes.
pub(crate) fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Builds the router with every route and layer.
pub fn app(state: AppState) -> Router {
    // The JSON API's routes come with their OpenAPI operations.
    let (api, _document) = openapi::api_router(&state.settings).split_for_parts();
    let router = Router::new()
        .merge(api)
        .merge(crate::auth::login_page::router())
        .merge(crate::web::router())
        .fallback(|| async { ApiError::NoSuchRoute })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::csrf::guard,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http());
    crate::auth::headers::apply(router, &state.settings).with_state(state)
}
