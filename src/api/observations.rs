//! `POST /api/v1/patients/{id}/observations`: vital signs a nurse observed or
//! measured by hand — above all respiration rate, consciousness (ACVPU) and
//! air or oxygen, which no home device measures and without which NEWS2 stays
//! partial.
//!
//! In: a JSON object with an optional event time and at least one value.
//! Out: `201` with what was stored, after the commit; the values reach the
//! triage stage as readings of the device `observation:{patient id}`. The
//! caller is a signed-in nurse or coordinator of the patient's team (with
//! the session's CSRF token), or a bearer token of scope `observe` for the
//! patient's team (a care record system); the username or the token's name
//! is recorded as the author, and the entry is audited. A patient outside
//! the caller's teams answers 404, like one that does not exist.
//!
//! Values outside what a human body can show are refused with every problem
//! listed, and nothing is stored: a mistyped respiration rate of 220 must not
//! silently raise (or hide) an alert.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::openapi::{BadRequest, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable};
use super::{ApiError, AppState};
use crate::auth::{patient_for, Caller, Purpose};
use crate::domain::{Metric, Reading, Timestamp};
use crate::store::writer::StoredBatch;
use crate::store::{observation_device, NewObservation};
use crate::triage::news2::Consciousness;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_observations))
}

/// The body of an observation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationBody {
    /// When observed (RFC 3339); default: now.
    #[serde(default)]
    pub ts: Option<String>,
    /// Breaths per minute.
    #[serde(default)]
    pub respiratory_rate: Option<f64>,
    /// "A", "C", "V", "P" or "U".
    #[serde(default)]
    pub acvpu: Option<Consciousness>,
    /// Whether the patient breathes supplemental oxygen.
    #[serde(default)]
    pub on_oxygen: Option<bool>,
    #[serde(default)]
    pub spo2: Option<f64>,
    #[serde(default)]
    pub heart_rate: Option<f64>,
    #[serde(default)]
    pub bp_systolic: Option<f64>,
    #[serde(default)]
    pub bp_diastolic: Option<f64>,
    #[serde(default)]
    pub body_temperature: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// What was stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ObservationStored {
    id: Uuid,
    patient_id: Uuid,
    ts: Timestamp,
    author: String,
    /// Readings stored (0 when the same observation was posted before).
    stored: usize,
    duplicates: usize,
}

/// Values a human body can show; outside them the entry is a typing error.
const RANGES: [(Metric, f64, f64); 6] = [
    (Metric::RespiratoryRate, 1.0, 80.0),
    (Metric::Spo2, 40.0, 100.0),
    (Metric::HeartRate, 15.0, 300.0),
    (Metric::BpSystolic, 40.0, 300.0),
    (Metric::BpDiastolic, 15.0, 200.0),
    (Metric::BodyTemperature, 25.0, 45.0),
];

/// Longest note kept.
const MAX_NOTE_CHARS: usize = 2000;

impl ObservationBody {
    /// Returns the readings the body stands for, or every problem.
    ///
    /// # Errors
    /// Lists each value out of range, a bad or future time, an empty body
    /// and an overlong note.
    pub fn readings(
        &self,
        patient_id: Uuid,
        now: Timestamp,
        max_future_skew_s: u64,
    ) -> Result<(Timestamp, Vec<Reading>), Vec<String>> {
        let mut problems = Vec::new();
        let ts = match &self.ts {
            None => now,
            Some(text) => match Timestamp::parse_rfc3339(text) {
                Some(ts) => ts,
                None => {
                    problems.push(format!("ts {text:?} is not an RFC 3339 time"));
                    now
                }
            },
        };
        let skew = i64::try_from(max_future_skew_s)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000);
        if ts > now.plus_micros(skew) {
            problems.push(format!("ts {ts} lies in the future"));
        }
        let mut values: Vec<(Metric, f64)> = Vec::new();
        let measured = [
            (Metric::RespiratoryRate, self.respiratory_rate),
            (Metric::Spo2, self.spo2),
            (Metric::HeartRate, self.heart_rate),
            (Metric::BpSystolic, self.bp_systolic),
            (Metric::BpDiastolic, self.bp_diastolic),
            (Metric::BodyTemperature, self.body_temperature),
        ];
        for (metric, value) in measured {
            let Some(value) = value else { continue };
            let (_, low, high) = RANGES
                .iter()
                .find(|(candidate, _, _)| *candidate == metric)
                .copied()
                .expect("every measured metric has a range");
            if !(low..=high).contains(&value) {
                problems.push(format!(
                    "{metric} {value} is outside {low}–{high} {}",
                    metric.unit()
                ));
            } else {
                values.push((metric, value));
            }
        }
        if let Some(acvpu) = self.acvpu {
            values.push((Metric::Consciousness, f64::from(acvpu.level())));
        }
        if let Some(on_oxygen) = self.on_oxygen {
            values.push((Metric::SupplementalOxygen, f64::from(u8::from(on_oxygen))));
        }
        if values.is_empty() && problems.is_empty() {
            problems.push("give at least one value".to_owned());
        }
        if self
            .note
            .as_ref()
            .is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS)
        {
            problems.push(format!("note is longer than {MAX_NOTE_CHARS} characters"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let device_id = observation_device(patient_id);
        let readings = values
            .into_iter()
            .map(|(metric, value)| Reading {
                device_id: device_id.clone(),
                patient_id,
                metric,
                value,
                ts,
                received_at: now,
            })
            .collect();
        Ok((ts, readings))
    }
}

/// Stores vital signs a nurse observed (respiration rate, ACVPU, oxygen and
/// any other); they are triaged like device readings.
#[utoipa::path(
    post,
    path = "/api/v1/patients/{patient_id}/observations",
    tag = "patients",
    params(("patient_id" = Uuid, Path, description = "The patient")),
    request_body(
        content = ObservationBody,
        example = json!({"respiratory_rate": 22, "acvpu": "A", "on_oxygen": false, "note": "kortademig bij inspanning"})
    ),
    responses(
        (status = 201, description = "Stored (`stored` is 0 when the same observation was posted before)", body = ObservationStored),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("session_cookie" = [], "csrf_token" = []), ("bearer" = ["observe"]))
)]
async fn post_observations(
    State(state): State<AppState>,
    Path(patient_id): Path<Uuid>,
    caller: Caller,
    body: Result<Json<ObservationBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let access = patient_for(&state, &caller, patient_id, Purpose::Observe).await?;
    let Json(body) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let now = Timestamp::now();
    let (ts, readings) = body
        .readings(patient_id, now, state.settings.max_future_skew_s)
        .map_err(|problems| ApiError::Unprocessable(serde_json::json!({"problems": problems})))?;
    let entered = serde_json::json!({
        "respiratory_rate": body.respiratory_rate,
        "acvpu": body.acvpu,
        "on_oxygen": body.on_oxygen,
        "spo2": body.spo2,
        "heart_rate": body.heart_rate,
        "bp_systolic": body.bp_systolic,
        "bp_diastolic": body.bp_diastolic,
        "body_temperature": body.body_temperature,
    });
    let observation = NewObservation {
        id: Uuid::now_v7(),
        patient_id,
        ts,
        author: caller.author().to_owned(),
        note: body.note.clone(),
        entered,
        readings,
    };
    let is_new = state.store.commit_observation(&observation).await?;
    let stored = is_new.iter().filter(|new| **new).count();
    access
        .record_change(
            &state,
            &caller,
            serde_json::json!({"observation": observation.id, "stored": stored}),
        )
        .await?;
    if stored > 0 {
        if let Some(stored_tx) = &state.stored_tx {
            // Triage is best effort here like for device readings: the
            // readings are stored, and a restart's rebuild replays them.
            let batch = StoredBatch {
                readings: observation.readings.clone(),
                is_new,
                implausible: Vec::new(),
                statuses: Vec::new(),
            };
            if stored_tx.send(batch).await.is_err() {
                tracing::warn!(%patient_id, "triage stopped; observation stored only");
            }
        }
    }
    let answer = ObservationStored {
        id: observation.id,
        patient_id,
        ts,
        author: observation.author.clone(),
        stored,
        duplicates: observation.readings.len() - stored,
    };
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(answer).map_err(|error| ApiError::Internal(error.into()))?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> ObservationBody {
        serde_json::from_str(json).unwrap()
    }

    const NOW: Timestamp = Timestamp(1_790_000_000_000_000);

    #[test]
    fn nurse_values_become_readings_of_the_observation_device() {
        let patient = Uuid::from_u128(7);
        let (ts, readings) = body(r#"{"respiratory_rate": 24, "acvpu": "C", "on_oxygen": true}"#)
            .readings(patient, NOW, 300)
            .unwrap();
        assert_eq!(ts, NOW);
        let values: Vec<(Metric, f64)> = readings.iter().map(|r| (r.metric, r.value)).collect();
        assert_eq!(
            values,
            vec![
                (Metric::RespiratoryRate, 24.0),
                (Metric::Consciousness, 1.0),
                (Metric::SupplementalOxygen, 1.0)
            ]
        );
        assert!(readings
            .iter()
            .all(|r| r.device_id.as_str() == format!("observation:{patient}")));
    }

    #[test]
    fn every_problem_is_listed_and_nothing_is_kept() {
        let problems = body(
            r#"{"respiratory_rate": 220, "spo2": 101, "ts": "2026-13-01T00:00:00Z", "acvpu": "A"}"#,
        )
        .readings(Uuid::nil(), NOW, 300)
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[1].contains("respiratory_rate 220"));
        assert!(body("{}").readings(Uuid::nil(), NOW, 300).is_err());
        assert!(serde_json::from_str::<ObservationBody>(r#"{"acvpu": "X"}"#).is_err());
        assert!(serde_json::from_str::<ObservationBody>(r#"{"rr": 20}"#).is_err());
    }

    #[test]
    fn a_future_time_beyond_the_skew_is_refused() {
        let future = NOW.plus_micros(3_600_000_000).to_string();
        let problems = body(&format!(r#"{{"ts": "{future}", "acvpu": "A"}}"#))
            .readings(Uuid::nil(), NOW, 300)
            .unwrap_err();
        assert!(problems[0].contains("future"), "{problems:?}");
    }
}
