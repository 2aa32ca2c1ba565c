//! Backtests of proposed protocols as jobs: `POST
//! /api/v1/protocols/{id}/preview` starts one and answers 202 with its
//! address (or, with `Prefer: wait=N`, waits up to N seconds and answers
//! 200 with the result when it finished by then); `GET
//! /api/v1/previews/{job}` shows its progress and, once done, the result;
//! `DELETE` cancels it. A job belongs to the coordinator who started it;
//! it reads the stored readings of the patients of that coordinator's
//! teams who follow the protocol (or the given patients or team) and
//! replays them ([`crate::tuning::backtest`]). Every backtest is audited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::ApiJson;
use super::openapi::{BadRequest, Forbidden, NotFound, Unauthorized, Unprocessable};
use super::protocols::ProtocolDocument;
use super::{ApiError, AppState};
use crate::auth::{audit_reads, Caller, Purpose};
use crate::domain::Timestamp;
use crate::store::{AuditAction, Role, TeamScope};
use crate::tuning::backtest::{self, BacktestResult, PatientInput, Setup};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_preview))
        .routes(routes!(get_preview, cancel_preview))
}

const DAY: i64 = 86_400_000_000;
/// Days looked back without `days`.
pub const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 90;
/// Finished jobs are kept this long for their owner to read.
const KEEP_FINISHED: Duration = Duration::from_secs(30 * 60);
/// Patients whose readings are read at once.
const CONCURRENT_READS: usize = 4;

/// A backtest to run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The proposed protocol, as `GET /api/v1/protocols/{id}` returns it.
    pub protocol: ProtocolDocument,
    /// Days back from now, 1–90 (default 30).
    #[serde(default)]
    pub days: Option<i64>,
    /// Only these patients (of the caller's teams).
    #[serde(default)]
    pub patients: Option<Vec<Uuid>>,
    /// Only this team (one of the caller's).
    #[serde(default)]
    pub team: Option<Uuid>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Cancelled,
    Failed,
}

/// A job as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub protocol_id: String,
    pub state: JobState,
    /// Steps done and to do: each patient is read, then replayed.
    pub done: usize,
    pub total: usize,
    pub seconds: f64,
    /// Set when `state` is `failed`.
    pub error: Option<String>,
    /// Set when `state` is `done`.
    pub result: Option<BacktestResult>,
}

/// How a job ended: its state, result or error, and when.
type Outcome = (JobState, Option<BacktestResult>, Option<String>, Instant);

#[derive(Debug)]
struct Job {
    id: Uuid,
    owner: Uuid,
    protocol_id: String,
    started: Instant,
    loaded: AtomicUsize,
    replayed: AtomicUsize,
    patients: AtomicUsize,
    cancel: CancellationToken,
    outcome: Mutex<Option<Outcome>>,
    finished: tokio::sync::Notify,
}

impl Job {
    fn view(&self) -> JobView {
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (state, result, error, seconds) = match outcome {
            Some((state, result, error, at)) => {
                (state, result, error, (at - self.started).as_secs_f64())
            }
            None => (
                JobState::Running,
                None,
                None,
                self.started.elapsed().as_secs_f64(),
            ),
        };
        let patients = self.patients.load(Ordering::Relaxed);
        JobView {
            id: self.id,
            protocol_id: self.protocol_id.clone(),
            state,
            done: self.loaded.load(Ordering::Relaxed) + self.replayed.load(Ordering::Relaxed),
            total: 2 * patients,
            seconds,
            error,
            result,
        }
    }

    fn finish(&self, state: JobState, result: Option<BacktestResult>, error: Option<String>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((state, result, error, Instant::now()));
        self.finished.notify_waiters();
    }

    fn is_finished(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// The running and recently finished backtests of this process.
#[derive(Debug, Default)]
pub struct Backtests {
    jobs: Mutex<HashMap<Uuid, Arc<Job>>>,
}

impl Backtests {
    fn insert(&self, job: Arc<Job>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.retain(|_, job| {
            job.outcome
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_none_or(|(_, _, _, at)| at.elapsed() < KEEP_FINISHED)
        });
        jobs.insert(job.id, job);
    }

    /// Returns the job if `caller` owns it.
    fn get(&self, id: Uuid, caller: &Caller) -> Option<Arc<Job>> {
        let owner = caller.user()?.id;
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .filter(|job| job.owner == owner)
            .cloned()
    }
}

/// Parses `Prefer: wait=N` (RFC 7240), at most 60 s.
fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|preference| {
            let (name, value) = preference.trim().split_once('=')?;
            (name.trim().eq_ignore_ascii_case("wait"))
                .then(|| value.trim().parse::<u64>().ok())
                .flatten()
        })
        .map(|seconds| Duration::from_secs(seconds.min(60)))
}

fn job_response(status: StatusCode, job: &Job) -> Response {
    let mut response = (status, Json(job.view())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/previews/{}", job.id)) {
        headers.insert(header::LOCATION, location);
    }
    response
}

#[utoipa::path(
    post,
    path = "/api/v1/protocols/{protocol_id}/preview",
    tag = "tuning",
    params(
        ("protocol_id" = String, Path, description = "The protocol id", example = "default"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds (at most 60) for the result")
    ),
    request_body(content = PreviewRequest, example = json!({
        "protocol": crate::example_protocol_json!(),
        "days": 30
    })),
    responses(
        (status = 200, description = "Finished within the wait asked for: the job with its result", body = JobView),
        (status = 202, description = "Started; follow `Location` for progress and the result", body = JobView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn start_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(protocol_id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PreviewRequest>,
) -> Result<Response, ApiError> {
    if caller.role() != Some(Role::Coordinator) {
        return Err(ApiError::Forbidden);
    }
    let owner = caller
        .user()
        .map(|user| user.id)
        .ok_or(ApiError::Forbidden)?;
    let days = request.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::BadRequest(format!(
            "days must lie between 1 and {MAX_DAYS}"
        )));
    }
    let current = state
        .protocols
        .chains()
        .remove(&protocol_id)
        .ok_or(ApiError::NotFound)?;
    let proposed = request.protocol.protocol();
    let problems = proposed.problems();
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(
            serde_json::json!({ "problems": problems }),
        ));
    }
    let mut teams = match caller.visible_teams() {
        TeamScope::Teams(teams) => teams,
        TeamScope::All => return Err(ApiError::Forbidden),
    };
    if let Some(team) = request.team {
        teams.retain(|id| *id == team);
    }
    let to = Timestamp::now();
    let from = to.plus_micros(-days * DAY);
    let job = Arc::new(Job {
        id: Uuid::now_v7(),
        owner,
        protocol_id: protocol_id.clone(),
        started: Instant::now(),
        loaded: AtomicUsize::new(0),
        replayed: AtomicUsize::new(0),
        patients: AtomicUsize::new(0),
        cancel: state.shutdown.child_token(),
        outcome: Mutex::new(None),
        finished: tokio::sync::Notify::new(),
    });
    state.backtests.insert(job.clone());
    let mut audit = caller.audit_record(AuditAction::RunBacktest);
    audit.detail = serde_json::json!({
        "protocol": protocol_id,
        "job": job.id,
        "days": days,
        "patients": request.patients,
        "team": request.team,
    });
    state.store.append_audit(&[audit]).await?;
    let setup = Setup::new(&protocol_id, &current, &proposed, from, to);
    let finished = job.finished.notified();
    tokio::spawn(run_job(
        state.clone(),
        job.clone(),
        setup,
        teams,
        request.patients,
    ));
    if let Some(wait) = prefer_wait(&headers) {
        if !job.is_finished() {
            let _ = tokio::time::timeout(wait, finished).await;
        }
        if job.is_finished() {
            let shown: Vec<(Uuid, Uuid)> = shown_patients(&state, &job).await;
            audit_reads(&state, &caller, Purpose::Worklist, &shown).await?;
            return Ok(job_response(StatusCode::OK, &job));
        }
    }
    Ok(job_response(StatusCode::ACCEPTED, &job))
}

/// The (patient, team) pairs a finished job's result names.
async fn shown_patients(state: &AppState, job: &Job) -> Vec<(Uuid, Uuid)> {
    let view = job.view();
    let Some(result) = view.result else {
        return Vec::new();
    };
    let Ok(patients) = state.store.list_patients().await else {
        return Vec::new();
    };
    result
        .by_patient
        .iter()
        .filter_map(|row| {
            let team = patients.iter().find(|p| p.id == row.patient_id)?.team_id;
            Some((row.patient_id, team))
        })
        .collect()
}

async fn run_job(
    state: AppState,
    job: Arc<Job>,
    setup: Setup,
    teams: Vec<Uuid>,
    only: Option<Vec<Uuid>>,
) {
    let outcome = tokio::select! {
        outcome = compute(&state, &job, setup, &teams, only.as_deref()) => outcome,
        () = job.cancel.cancelled() => Ok(None),
    };
    match outcome {
        Ok(Some(result)) => job.finish(JobState::Done, Some(result), None),
        Ok(None) => job.finish(JobState::Cancelled, None, None),
        Err(error) => {
            tracing::warn!(error = %error, job = %job.id, "backtest failed");
            job.finish(JobState::Failed, None, Some(error.to_string()));
        }
    }
}

async fn compute(
    state: &AppState,
    job: &Arc<Job>,
    setup: Setup,
    teams: &[Uuid],
    only: Option<&[Uuid]>,
) -> anyhow::Result<Option<BacktestResult>> {
    let protocols = state.protocols.current();
    let patients: Vec<_> = state
        .store
        .list_patients()
        .await?
        .into_iter()
        .filter(|patient| teams.contains(&patient.team_id))
        .filter(|patient| patient.protocols.contains(&setup.protocol_id))
        .filter(|patient| only.is_none_or(|only| only.contains(&patient.id)))
        .collect();
    job.patients.store(patients.len(), Ordering::Relaxed);
    let names: HashMap<Uuid, String> = patients
        .iter()
        .map(|patient| (patient.id, patient.display_name.clone()))
        .collect();
    let personal = state.store.rule_overrides_after(0).await?;
    let warmup = backtest::warmup_hours(&protocols) * 3_600_000_000;
    let read_from = setup.from.plus_micros(-warmup);
    let store = state.store.clone();
    // Only the metrics the changed rules read: a fever threshold needs two
    // temperatures a day, not a wearable's minute-by-minute heart rate.
    let metrics = setup.metrics();
    let metrics = &metrics;
    let inputs: Vec<PatientInput> = futures_util::stream::iter(patients)
        .map(|patient| {
            let store = store.clone();
            let personal: Vec<_> = personal
                .iter()
                .filter(|version| version.patient_id == patient.id)
                .cloned()
                .collect();
            let spo2_scale_two = patient
                .protocols
                .iter()
                .any(|id| protocols.get(id).is_some_and(|p| p.news2_scale == 2));
            let to = setup.to;
            async move {
                let mut readings = Vec::new();
                for metric in metrics {
                    readings.extend(
                        store
                            .patient_readings(patient.id, Some(*metric), read_from, to, i64::MAX)
                            .await?,
                    );
                }
                // The store's order: event time, then metric.
                readings.sort_by(|a, b| {
                    a.ts.cmp(&b.ts)
                        .then_with(|| a.metric.code().cmp(b.metric.code()))
                });
                job.loaded.fetch_add(1, Ordering::Relaxed);
                Ok::<_, crate::store::StoreError>(PatientInput {
                    patient_id: patient.id,
                    spo2_scale_two,
                    personal,
                    readings: readings
                        .into_iter()
                        .map(|reading| (reading.metric, reading.value, reading.ts))
                        .collect(),
                })
            }
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    // The alerts of the protocol's rules; for a replayed rule's alert
    // resolved with a clinical outcome, the event time of the reading that
    // raised it (its opening time is when it reached the alert book).
    let prefix = format!("{}/", setup.protocol_id);
    let mut stored = Vec::new();
    for item in state
        .store
        .alerts_opened_between(setup.from, setup.to, Some(teams))
        .await?
    {
        let alert = item.alert;
        if !alert.rule_key.starts_with(&prefix) {
            continue;
        }
        let mut raised = alert.opened_at;
        if setup.replayed().contains(&alert.rule_key)
            && alert
                .outcome
                .is_some_and(crate::alert_book::Outcome::is_clinical)
        {
            if let Some(event) = state
                .store
                .alert_events(alert.id)
                .await?
                .into_iter()
                .find(|event| event.kind == "raised")
            {
                raised = event.at;
            }
        }
        stored.push((alert, raised));
    }
    let replay_job = job.clone();
    let result = tokio::task::spawn_blocking(move || {
        let cancelled = || replay_job.cancel.is_cancelled();
        let episodes = backtest::replay_all(&setup, &inputs, &replay_job.replayed, &cancelled)?;
        Some(backtest::summarize(&setup, &episodes, &stored))
    })
    .await?;
    Ok(result.map(|mut result| {
        for row in &mut result.by_patient {
            row.display_name = names.get(&row.patient_id).cloned();
        }
        result
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/previews/{job_id}",
    tag = "tuning",
    params(("job_id" = Uuid, Path, description = "The job (from `Location` of the start)", example = "01938a2e-7c4b-7d1e-9a51-0f6c3b2d4e8a")),
    responses(
        (status = 200, description = "The job: its progress, and its result once done", body = JobView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []))
)]
async fn get_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let job = state
        .backtests
        .get(job_id, &caller)
        .ok_or(ApiError::NotFound)?;
    if job.is_finished() {
        let shown = shown_patients(&state, &job).await;
        audit_reads(&state, &caller, Purpose::Worklist, &shown).await?;
    }
    Ok(job_response(StatusCode::OK, &job))
}

#[utoipa::path(
    delete,
    path = "/api/v1/previews/{job_id}",
    tag = "tuning",
    params(("job_id" = Uuid, Path, description = "The job (from `Location` of the start)", example = "01938a2e-7c4b-7d1e-9a51-0f6c3b2d4e8a")),
    responses(
        (status = 200, description = "Cancelled (or already finished): the job", body = JobView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn cancel_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let job = state
        .backtests
        .get(job_id, &caller)
        .ok_or(ApiError::NotFound)?;
    if !job.is_finished() {
        job.cancel.cancel();
        // The job records its end as soon as its task sees the token.
        let finished = job.finished.notified();
        if !job.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(5), finished).await;
        }
    }
    Ok(job_response(StatusCode::OK, &job))
}
