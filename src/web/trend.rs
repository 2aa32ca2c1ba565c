//! `GET /alerts/{id}/trend.svg`: the small trend chart of an alert's
//! explanation card: the metric behind the alert over the last days, with
//! the limit it crossed and the patient's own baseline band.
//!
//! Loaded as an image only when the card is opened (`loading="lazy"` in a
//! closed `<details>`), so the worklist stays light. Scoped and audited as
//! a read of the patient's readings; out of scope answers 404.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::chart::{self, ChartSpec};
use super::explain::{chart_metric, value_with_unit};
use super::i18n::fill;
use super::Viewer;
use crate::api::{ApiError, AppState};
use crate::auth::{patient_for, Purpose};
use crate::domain::{Metric, Timestamp};

const HOUR: i64 = 3_600_000_000;
/// Hours shown when the alert names no longer window.
const DEFAULT_HOURS: i64 = 72;
/// Readings drawn at most (a wearable's minute data is thinned by the query limit).
const MAX_POINTS: i64 = 5_000;
/// The baseline band drawn: median ± this many MADs.
pub const BAND_MADS: f64 = 2.0;

/// Limits drawn on a chart: `(value, label)`.
pub type Limits = Vec<(f64, String)>;

/// Returns the limits and the baseline band (low, high) an explanation
/// names for `metric`.
pub fn limits_and_band(
    explanation: &Value,
    metric: Metric,
    lang: crate::worklist::Lang,
) -> (Limits, Option<(f64, f64)>) {
    let factors = explanation
        .get("factors")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let about_metric =
        |factor: &&Value| factor.get("metric").and_then(Value::as_str) == Some(metric.code());
    let mut limits = Vec::new();
    let mut band = None;
    for factor in factors.iter().filter(about_metric) {
        match factor.get("factor").and_then(Value::as_str) {
            Some("threshold") => {
                if let Some(threshold) = factor.get("threshold").and_then(Value::as_f64) {
                    let direction = factor
                        .get("direction")
                        .and_then(Value::as_str)
                        .unwrap_or("above");
                    limits.push((
                        threshold,
                        format!(
                            "{} {}",
                            lang.text(direction),
                            value_with_unit(lang, metric, threshold)
                        ),
                    ));
                }
            }
            Some("baseline") => {
                let baseline = &factor["baseline"];
                if let (Some(median), Some(mad)) = (
                    baseline.get("median").and_then(Value::as_f64),
                    baseline.get("mad").and_then(Value::as_f64),
                ) {
                    band = Some((median - BAND_MADS * mad, median + BAND_MADS * mad));
                }
            }
            _ => {}
        }
    }
    (limits, band)
}

fn trend_hours(explanation: &Value) -> i64 {
    explanation
        .get("factors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|factor| factor.get("window_hours").and_then(Value::as_i64))
        .map(|hours| hours * 2)
        .max()
        .unwrap_or(DEFAULT_HOURS)
        .max(DEFAULT_HOURS)
}

pub async fn svg(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(alert_id): Path<Uuid>,
) -> Response {
    match draw(&state, &viewer, alert_id).await {
        Ok(svg) => {
            let mut response = (StatusCode::OK, svg).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn draw(state: &AppState, viewer: &Viewer, alert_id: Uuid) -> Result<String, ApiError> {
    let alert = state
        .store
        .alert(alert_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let caller = viewer.caller();
    let access = patient_for(state, &caller, alert.patient_id, Purpose::Readings).await?;
    let metric = chart_metric(&alert.explanation).ok_or(ApiError::NotFound)?;
    let to = Timestamp::now();
    let from = to.plus_micros(-trend_hours(&alert.explanation) * HOUR);
    let readings = state
        .store
        .patient_readings(access.patient.id, Some(metric), from, to, MAX_POINTS)
        .await?;
    let points: Vec<(i64, f64)> = readings
        .iter()
        .map(|reading| (reading.ts.micros(), reading.value))
        .collect();
    let lang = viewer.lang;
    let texts = viewer.texts();
    let (limits, band) = limits_and_band(&alert.explanation, metric, lang);
    let description = match readings.last() {
        Some(last) => fill(
            texts.chart_summary,
            &[
                &readings.len().to_string(),
                &value_with_unit(lang, metric, last.value),
                &super::i18n::moment(lang, viewer.zone, last.ts),
            ],
        ),
        None => texts.no_readings.to_owned(),
    };
    let title = format!("{} {}", texts.chart_caption, lang.metric(metric));
    let from_label = super::i18n::moment(lang, viewer.zone, from);
    let to_label = super::i18n::moment(lang, viewer.zone, to);
    Ok(chart::document(&ChartSpec {
        title: &title,
        description: &description,
        points: &points,
        from_micros: from.micros(),
        to_micros: to.micros(),
        limits: &limits,
        band,
        from_label: &from_label,
        to_label: &to_label,
        decimals: 1,
        width: 480,
        height: 160,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_and_band_come_from_the_factors_of_the_charted_metric() {
        let explanation = json!({"factors": [
            {"factor": "threshold", "metric": "body_temperature", "value": 38.9, "threshold": 38.0, "direction": "above"},
            {"factor": "threshold", "metric": "heart_rate", "value": 120.0, "threshold": 110.0, "direction": "above"},
            {"factor": "baseline", "metric": "body_temperature", "baseline": {"median": 36.8, "mad": 0.2, "count": 20}}]});
        let (limits, band) = limits_and_band(
            &explanation,
            Metric::BodyTemperature,
            crate::worklist::Lang::Nl,
        );
        assert_eq!(limits, vec![(38.0, "boven 38 °C".to_owned())]);
        let (low, high) = band.unwrap();
        assert!((low - 36.4).abs() < 1e-9 && (high - 37.2).abs() < 1e-9);
    }

    #[test]
    fn a_trend_window_widens_the_chart() {
        assert_eq!(trend_hours(&json!({"factors": []})), 72);
        assert_eq!(
            trend_hours(&json!({"factors": [{"factor": "trend", "window_hours": 72}]})),
            144
        );
    }
}
