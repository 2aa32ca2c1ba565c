//! Encodes a simulated message in its device's payload format.

use serde_json::json;

use super::{SimMessage, SimStatus};
use crate::decode::PayloadFormat;
use crate::domain::Metric;

/// Returns the payload bytes of a message, as its device would publish it.
pub fn encode(message: &SimMessage, seq: u64) -> Vec<u8> {
    match message.format {
        PayloadFormat::ThuiswachtV1 => thuiswacht_v1(message, seq),
        PayloadFormat::SenMl => senml(message),
        PayloadFormat::Fhir => fhir(message),
    }
}

/// Returns the payload of a status message, as its gateway would publish it
/// on `{root}/devices/{device_id}/status`.
pub fn encode_status(status: &SimStatus) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "device_id": status.device_id,
        "ts": status.ts.to_string(),
        "battery_pct": status.battery_pct,
        "fault": status.fault,
    }))
    .expect("json values serialize")
}

fn thuiswacht_v1(message: &SimMessage, seq: u64) -> Vec<u8> {
    let readings: Vec<serde_json::Value> = message
        .readings
        .iter()
        .map(|(metric, value, ts)| {
            json!({"metric": metric.code(), "value": value, "unit": metric.unit().ucum(), "ts": ts.to_string()})
        })
        .collect();
    serde_json::to_vec(&json!({"device_id": message.device_id, "seq": seq, "readings": readings}))
        .expect("json values serialize")
}

/// SenML units as devices write them (RFC 8428 §12.1 names where they exist).
fn senml_unit(metric: Metric) -> &'static str {
    match metric {
        Metric::HeartRate | Metric::RespiratoryRate => "beat/min",
        other => other.unit().ucum(),
    }
}

fn senml(message: &SimMessage) -> Vec<u8> {
    let base_time = message.readings[0].2;
    let records: Vec<serde_json::Value> = message
        .readings
        .iter()
        .enumerate()
        .map(|(index, (metric, value, ts))| {
            let mut record = json!({"n": metric.code(), "u": senml_unit(*metric), "v": value});
            if index == 0 {
                record["bn"] = json!(format!("{}/", message.device_id));
                record["bt"] = json!(base_time.micros() as f64 / 1_000_000.0);
            }
            let relative = ts.seconds_since(base_time);
            if relative != 0.0 {
                record["t"] = json!(relative);
            }
            record
        })
        .collect();
    serde_json::to_vec(&records).expect("json values serialize")
}

fn observation(device_id: &str, metric: Metric, value: f64, ts: &str) -> serde_json::Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": metric.loinc()}]},
        "device": {"reference": format!("Device/{device_id}")},
        "effectiveDateTime": ts,
        "valueQuantity": {"value": value, "unit": metric.unit().ucum(), "system": "http://unitsofmeasure.org", "code": metric.unit().ucum()}
    })
}

fn fhir(message: &SimMessage) -> Vec<u8> {
    let ts = message.readings[0].2.to_string();
    let systolic = message.readings.iter().find(|r| r.0 == Metric::BpSystolic);
    let diastolic = message.readings.iter().find(|r| r.0 == Metric::BpDiastolic);
    let mut resources = Vec::new();
    if let (Some(systolic), Some(diastolic)) = (systolic, diastolic) {
        // Blood pressure as the FHIR vital-signs panel with two components.
        let component = |metric: Metric, value: f64| {
            json!({"code": {"coding": [{"system": "http://loinc.org", "code": metric.loinc()}]},
                   "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}})
        };
        resources.push(json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "device": {"reference": format!("Device/{}", message.device_id)},
            "effectiveDateTime": ts,
            "component": [component(Metric::BpSystolic, systolic.1), component(Metric::BpDiastolic, diastolic.1)]
        }));
    }
    for (metric, value, reading_ts) in &message.readings {
        if matches!(metric, Metric::BpSystolic | Metric::BpDiastolic) {
            continue;
        }
        resources.push(observation(
            &message.device_id,
            *metric,
            *value,
            &reading_ts.to_string(),
        ));
    }
    let payload = if resources.len() == 1 {
        resources.pop().expect("one resource")
    } else {
        json!({"resourceType": "Bundle", "type": "collection",
               "entry": resources.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
    };
    serde_json::to_vec(&payload).expect("json values serialize")
}
