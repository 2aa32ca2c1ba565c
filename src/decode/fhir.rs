//! FHIR R4: one `Observation`, or a `Bundle` whose `entry[].resource` are
//! Observations (any type of bundle; entries of other resource types are
//! rejected one by one).
//!
//! Each observation stands or falls on its own, in this order:
//!
//! - **Device**: `device.reference` of the form `Device/{id}` (absolute and
//!   `_history` forms too), else `device.identifier.value`, else the topic's
//!   device. References to other resource types, like the HL7 satO2 example's
//!   `DeviceMetric/example`, do not name a device and are passed over. An
//!   observation naming a device other than the topic's is rejected as
//!   `device_mismatch` on its own: other observations of a bundle still count.
//!   Over HTTP each observation must name its device.
//! - **Status**: `registered`, `preliminary`, `final`, `amended` and
//!   `corrected` are measurements; `entered-in-error` and `cancelled` are
//!   rejected, as are `unknown`, a missing status and anything else.
//! - **Metric**: the `http://loinc.org` codings of `code` (several may agree,
//!   as 2708-6 and 59408-5 do for SpO2). A blood-pressure panel (85354-9), or
//!   any observation with `component` but no `valueQuantity`, yields one
//!   reading per component (systolic 8480-6, diastolic 8462-4), and each
//!   component with an unknown code is rejected alone. Other panels, such as
//!   the vital-signs panel 85353-1, are `unknown_metric`.
//! - **Time**: `effectiveDateTime`, else `effectiveInstant`, else
//!   `effectivePeriod.start`. A partial dateTime (`2012`, `2012-09`,
//!   `2012-09-17`) is the start of that period in UTC.
//! - **Value and unit**: `valueQuantity.value` (a value with a `comparator` is
//!   a bound, not a reading). The unit is the UCUM `code` when the quantity has
//!   one (system `http://unitsofmeasure.org`, or no system), else the
//!   human-readable `unit`, else the metric's own unit. Values are not
//!   converted here.
//!
//! The raw bytes of a rejection are the observation's JSON, as sent.

use bytes::Bytes;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{resolve_device, DecodeContext, Decoded};
use crate::domain::{DecodedReading, DeviceId, Metric, RejectReason, Rejection, Timestamp, Unit};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
/// LOINC "Blood pressure panel with all children optional".
const BLOOD_PRESSURE_PANEL: &str = "85354-9";

pub(super) fn decode(payload: &Bytes, context: &DecodeContext<'_>) -> Decoded {
    let topic = context.topic_device.map(DeviceId::as_str);
    let refuse = |detail: String| {
        Decoded::rejected(Rejection::new(
            RejectReason::MalformedPayload,
            detail,
            topic,
            payload.clone(),
        ))
    };
    let resource: Resource<'_> = match serde_json::from_slice(payload) {
        Ok(resource) => resource,
        Err(error) => return refuse(format!("invalid FHIR JSON: {error}")),
    };
    let mut decoded = Decoded::default();
    match resource.resource_type.as_str() {
        "Observation" => decode_observation(&resource, payload, context, &mut decoded),
        "Bundle" => {
            for entry in &resource.entry {
                decode_entry(entry, payload, context, &mut decoded);
            }
        }
        other => {
            return refuse(format!(
                "unsupported resource type {other}; expected Observation or Bundle"
            ))
        }
    }
    decoded
}

/// Decodes one bundle entry; `payload` is the bundle the entry was read from.
fn decode_entry(entry: &RawValue, payload: &Bytes, context: &DecodeContext<'_>, out: &mut Decoded) {
    let topic = context.topic_device.map(DeviceId::as_str);
    let reject = |detail: String, raw: &RawValue| {
        let raw = payload.slice_ref(raw.get().as_bytes());
        Rejection::new(RejectReason::MalformedPayload, detail, topic, raw)
    };
    let resource = match serde_json::from_str::<Entry<'_>>(entry.get()) {
        Ok(Entry {
            resource: Some(resource),
        }) => resource,
        Ok(Entry { resource: None }) => {
            out.rejections
                .push(reject("bundle entry has no resource".to_owned(), entry));
            return;
        }
        Err(error) => {
            out.rejections
                .push(reject(format!("invalid bundle entry: {error}"), entry));
            return;
        }
    };
    match serde_json::from_str::<Resource<'_>>(resource.get()) {
        Ok(observation) if observation.resource_type.as_str() == "Observation" => {
            let raw = payload.slice_ref(resource.get().as_bytes());
            decode_observation(&observation, &raw, context, out);
        }
        Ok(other) => out.rejections.push(reject(
            format!("unsupported resource type {}", other.resource_type.as_str()),
            resource,
        )),
        Err(error) => out.rejections.push(reject(
            format!("invalid bundle entry resource: {error}"),
            resource,
        )),
    }
}

// ---------------------------------------------------------------------------
// The FHIR JSON this decoder reads; every other element is skipped.

use super::text::Text;

fn text<'t>(value: &'t Option<Text<'_>>) -> Option<&'t str> {
    value.as_ref().map(Text::as_str)
}

/// An Observation or a Bundle: the elements of both that are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource<'a> {
    #[serde(borrow)]
    resource_type: Text<'a>,
    #[serde(borrow, default)]
    status: Option<Text<'a>>,
    #[serde(borrow, default)]
    code: Option<CodeableConcept<'a>>,
    #[serde(borrow, default)]
    value_quantity: Option<Quantity<'a>>,
    #[serde(borrow, default)]
    data_absent_reason: Option<CodeableConcept<'a>>,
    #[serde(borrow, default)]
    effective_date_time: Option<Text<'a>>,
    #[serde(borrow, default)]
    effective_instant: Option<Text<'a>>,
    #[serde(borrow, default)]
    effective_period: Option<Period<'a>>,
    #[serde(borrow, default)]
    device: Option<Reference<'a>>,
    #[serde(borrow, default)]
    component: Vec<Component<'a>>,
    /// Bundle entries, each read on its own so that one bad entry stays alone.
    #[serde(borrow, default)]
    entry: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CodeableConcept<'a> {
    #[serde(borrow, default)]
    coding: Vec<Coding<'a>>,
    #[serde(borrow, default)]
    text: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Coding<'a> {
    #[serde(borrow, default)]
    system: Option<Text<'a>>,
    #[serde(borrow, default)]
    code: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Quantity<'a> {
    #[serde(default)]
    value: Option<f64>,
    #[serde(borrow, default)]
    comparator: Option<Text<'a>>,
    #[serde(borrow, default)]
    unit: Option<Text<'a>>,
    #[serde(borrow, default)]
    system: Option<Text<'a>>,
    #[serde(borrow, default)]
    code: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Component<'a> {
    #[serde(borrow, default)]
    code: Option<CodeableConcept<'a>>,
    #[serde(borrow, default)]
    value_quantity: Option<Quantity<'a>>,
    #[serde(borrow, default)]
    data_absent_reason: Option<CodeableConcept<'a>>,
}

#[derive(Deserialize)]
struct Period<'a> {
    #[serde(borrow, default)]
    start: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow, default)]
    reference: Option<Text<'a>>,
    #[serde(borrow, default)]
    identifier: Option<Identifier<'a>>,
}

#[derive(Deserialize)]
struct Identifier<'a> {
    #[serde(borrow, default)]
    value: Option<Text<'a>>,
}

// ---------------------------------------------------------------------------
// Observations to readings

type Refusal = (RejectReason, String);

fn malformed(detail: impl Into<String>) -> Refusal {
    (RejectReason::MalformedPayload, detail.into())
}

/// Decodes one observation; `raw` is its JSON, for rejections.
fn decode_observation(
    observation: &Resource<'_>,
    raw: &Bytes,
    context: &DecodeContext<'_>,
    out: &mut Decoded,
) {
    let named = observation.device.as_ref().and_then(Reference::device_id);
    let device_id = match resolve_device(named, context, raw) {
        Ok(device_id) => device_id,
        Err(rejection) => {
            out.rejections.push(rejection);
            return;
        }
    };
    let mut record = |reading: Result<(Metric, f64, Unit, Timestamp), Refusal>| match reading {
        Ok((metric, value, unit, ts)) => out.readings.push(DecodedReading {
            device_id: device_id.clone(),
            metric,
            value,
            unit,
            ts,
        }),
        Err((reason, detail)) => out.rejections.push(Rejection::new(
            reason,
            detail,
            Some(device_id.as_str()),
            raw.clone(),
        )),
    };
    let planned = check_status(observation)
        .and_then(|()| plan(observation))
        .and_then(|plan| effective_time(observation).map(|ts| (plan, ts)));
    match planned {
        Err(refusal) => record(Err(refusal)),
        Ok((Plan::Single(metric, quantity), ts)) => record(
            quantity_reading(metric, quantity, "observation")
                .map(|(value, unit)| (metric, value, unit, ts)),
        ),
        Ok((Plan::Components(components), ts)) => {
            for (index, component) in components.iter().enumerate() {
                let what = format!("component {index}");
                let reading = component
                    .code
                    .as_ref()
                    .map_or_else(|| Err(no_code(&what)), loinc_metric)
                    .map_err(|(reason, detail)| (reason, format!("{what}: {detail}")))
                    .and_then(|metric| {
                        component_quantity(component, metric, &what)
                            .map(|(value, unit)| (metric, value, unit, ts))
                    });
                record(reading);
            }
        }
    }
}

/// What an observation's readings are read from.
enum Plan<'o, 'a> {
    /// `valueQuantity` (which may be absent: that is rejected with a reason).
    Single(Metric, &'o Quantity<'a>),
    Components(&'o [Component<'a>]),
}

impl Reference<'_> {
    /// The device id a `device` reference names, if it names one.
    fn device_id(&self) -> Option<&str> {
        text(&self.reference)
            .and_then(device_in_reference)
            .or_else(|| {
                self.identifier
                    .as_ref()
                    .and_then(|identifier| text(&identifier.value))
            })
    }
}

/// The id in a reference to a Device: `Device/{id}`,
/// `https://host/fhir/Device/{id}` or `Device/{id}/_history/{version}`.
fn device_in_reference(reference: &str) -> Option<&str> {
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let (kind, id) = path.rsplit_once('/')?;
    let kind = kind.rsplit('/').next().unwrap_or(kind);
    (kind == "Device" && !id.is_empty()).then_some(id)
}

fn check_status(observation: &Resource<'_>) -> Result<(), Refusal> {
    match text(&observation.status) {
        Some("registered" | "preliminary" | "final" | "amended" | "corrected") => Ok(()),
        Some(status @ ("entered-in-error" | "cancelled" | "unknown")) => Err(malformed(format!(
            "observation status {status} is not a measurement"
        ))),
        Some(status) => Err(malformed(format!(
            "observation status {status:?} is not a FHIR R4 status"
        ))),
        None => Err(malformed("observation has no status")),
    }
}

fn plan<'o, 'a>(observation: &'o Resource<'a>) -> Result<Plan<'o, 'a>, Refusal> {
    let code = observation.code.as_ref();
    let is_panel = code.is_some_and(|code| code.has_loinc(BLOOD_PRESSURE_PANEL))
        || (observation.value_quantity.is_none() && !observation.component.is_empty());
    if is_panel {
        if observation.component.is_empty() {
            return Err(malformed("blood-pressure panel has no component"));
        }
        return Ok(Plan::Components(&observation.component));
    }
    let metric = code.map_or_else(|| Err(no_code("observation")), loinc_metric)?;
    match &observation.value_quantity {
        Some(quantity) => Ok(Plan::Single(metric, quantity)),
        None => Err(no_value(
            "observation",
            observation.data_absent_reason.as_ref(),
        )),
    }
}

fn no_code(what: &str) -> Refusal {
    (RejectReason::UnknownMetric, format!("{what} has no code"))
}

fn no_value(what: &str, absent: Option<&CodeableConcept<'_>>) -> Refusal {
    let reason = absent
        .and_then(|absent| {
            text(&absent.text)
                .or_else(|| absent.coding.iter().find_map(|coding| text(&coding.code)))
        })
        .map(|reason| format!(" (dataAbsentReason {reason})"))
        .unwrap_or_default();
    malformed(format!("{what} has no valueQuantity{reason}"))
}

impl CodeableConcept<'_> {
    fn loinc_codes(&self) -> impl Iterator<Item = &str> {
        self.coding
            .iter()
            .filter(|coding| text(&coding.system) == Some(LOINC))
            .filter_map(|coding| text(&coding.code))
    }

    fn has_loinc(&self, wanted: &str) -> bool {
        self.loinc_codes().any(|code| code == wanted)
    }
}

/// The metric the LOINC codings of a code stand for; all that Thuiswacht
/// knows must agree.
fn loinc_metric(code: &CodeableConcept<'_>) -> Result<Metric, Refusal> {
    let mut found: Option<(Metric, &str)> = None;
    for loinc in code.loinc_codes() {
        let Some(metric) = Metric::from_loinc(loinc) else {
            continue;
        };
        match found {
            None => found = Some((metric, loinc)),
            Some((first, first_code)) if first != metric => {
                return Err(malformed(format!(
                    "LOINC codes {first_code} ({first}) and {loinc} ({metric}) disagree"
                )))
            }
            Some(_) => {}
        }
    }
    found.map(|(metric, _)| metric).ok_or_else(|| {
        let codes: Vec<&str> = code.loinc_codes().collect();
        let detail = if codes.is_empty() {
            "no LOINC code".to_owned()
        } else {
            format!("unknown LOINC code {}", codes.join(", "))
        };
        (RejectReason::UnknownMetric, detail)
    })
}

fn component_quantity(
    component: &Component<'_>,
    metric: Metric,
    what: &str,
) -> Result<(f64, Unit), Refusal> {
    let what = format!("{what} ({metric})");
    match &component.value_quantity {
        Some(quantity) => quantity_reading(metric, quantity, &what),
        None => Err(no_value(&what, component.data_absent_reason.as_ref())),
    }
}

/// The value and unit (as sent) of a quantity.
fn quantity_reading(
    metric: Metric,
    quantity: &Quantity<'_>,
    what: &str,
) -> Result<(f64, Unit), Refusal> {
    if let Some(comparator) = text(&quantity.comparator) {
        return Err(malformed(format!(
            "{what} value has comparator {comparator:?}: a bound is not a reading"
        )));
    }
    let Some(value) = quantity.value else {
        return Err(malformed(format!("{what} valueQuantity has no value")));
    };
    let system = text(&quantity.system);
    let ucum = text(&quantity.code).filter(|_| system.is_none_or(|system| system == UCUM));
    let unit = match ucum.or_else(|| text(&quantity.unit)) {
        None => metric.unit(),
        Some(written) => Unit::parse(written).ok_or_else(|| {
            (
                RejectReason::UnknownUnit,
                format!("unknown unit {written:?} for {metric}"),
            )
        })?,
    };
    Ok((value, unit))
}

fn effective_time(observation: &Resource<'_>) -> Result<Timestamp, Refusal> {
    let (element, written, parsed) = if let Some(written) = text(&observation.effective_date_time) {
        ("effectiveDateTime", written, parse_date_time(written))
    } else if let Some(written) = text(&observation.effective_instant) {
        (
            "effectiveInstant",
            written,
            Timestamp::parse_rfc3339(written),
        )
    } else if let Some(written) = observation
        .effective_period
        .as_ref()
        .and_then(|period| text(&period.start))
    {
        ("effectivePeriod.start", written, parse_date_time(written))
    } else {
        return Err(malformed(
            "observation has no effectiveDateTime, effectiveInstant or effectivePeriod.start",
        ));
    };
    parsed.ok_or_else(|| malformed(format!("{element} {written:?} is not a FHIR date-time")))
}

/// Parses a FHIR dateTime: `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (the start of
/// that period, UTC), or a full date-time with offset (RFC 3339).
fn parse_date_time(written: &str) -> Option<Timestamp> {
    if written.len() > 10 {
        return Timestamp::parse_rfc3339(written);
    }
    let number = |part: &str, digits: usize| {
        (part.len() == digits && part.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let mut parts = written.split('-');
    let year = number(parts.next()?, 4)?;
    let month = parts.next().map_or(Some(1), |part| number(part, 2))?;
    let day = parts.next().map_or(Some(1), |part| number(part, 2))?;
    if parts.next().is_some() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    Some(Timestamp::from_datetime(
        date.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HL7 examples; see SOURCE.md there.
    const HL7_DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/fhir-r4-vitalsigns-examples"
    );

    fn read_example(file: &str) -> String {
        let path = format!("{HL7_DIR}/{file}");
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
    }

    use crate::decode::test_support::{context, decode_str, reasons};

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    type Expected = (Metric, f64, Unit, &'static str);

    /// Every example file and what it decodes to, sent on the topic of a made-up device.
    fn hl7_expectations() -> Vec<(&'static str, Vec<Expected>)> {
        use Metric::*;
        vec![
            (
                "observation-example-bloodpressure.json",
                vec![
                    (
                        BpSystolic,
                        107.0,
                        Unit::MillimetreMercury,
                        "2012-09-17T00:00:00Z",
                    ),
                    (
                        BpDiastolic,
                        60.0,
                        Unit::MillimetreMercury,
                        "2012-09-17T00:00:00Z",
                    ),
                ],
            ),
            (
                "observation-example-body-temperature.json",
                vec![(BodyTemperature, 36.5, Unit::Celsius, "1999-07-02T00:00:00Z")],
            ),
            (
                "observation-example-heart-rate.json",
                vec![(HeartRate, 44.0, Unit::PerMinute, "1999-07-02T00:00:00Z")],
            ),
            (
                "observation-example-respiratory-rate.json",
                vec![(
                    RespiratoryRate,
                    26.0,
                    Unit::PerMinute,
                    "1999-07-02T00:00:00Z",
                )],
            ),
            (
                "observation-example-satO2.json",
                vec![(Spo2, 95.0, Unit::Percent, "2014-12-05T08:30:10Z")],
            ),
        ]
    }

    #[test]
    fn every_hl7_vital_signs_example_decodes() {
        let expectations = hl7_expectations();
        let mut on_disk: Vec<String> = std::fs::read_dir(HL7_DIR)
            .unwrap_or_else(|error| panic!("cannot list {HL7_DIR}: {error}"))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|file| file.ends_with(".json"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<&str> = expectations.iter().map(|(file, _)| *file).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "every example file has expectations");

        for (file, expected) in expectations {
            let decoded = decode_str(&read_example(file), Some("hl7-example"));
            assert!(
                decoded.rejections.is_empty(),
                "{file}: {:?}",
                decoded.rejections
            );
            let got: Vec<_> = decoded
                .readings
                .iter()
                .map(|r| (r.metric, r.value, r.unit, r.ts))
                .collect();
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(metric, value, unit, ts)| (metric, value, unit, at(ts)))
                .collect();
            assert_eq!(got, expected, "{file}");
            assert!(decoded
                .readings
                .iter()
                .all(|r| r.device_id.as_str() == "hl7-example"));
        }
    }

    #[test]
    fn blood_pressure_readings_match_the_file() {
        let text = read_example("observation-example-bloodpressure.json");
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let decoded = decode_str(&text, Some("hl7-example"));
        assert_eq!(decoded.readings.len(), 2);
        for (reading, component) in decoded
            .readings
            .iter()
            .zip(file["component"].as_array().unwrap())
        {
            assert_eq!(
                component["code"]["coding"][0]["code"],
                reading.metric.loinc()
            );
            assert_eq!(component["valueQuantity"]["value"], reading.value);
            assert_eq!(component["valueQuantity"]["code"], reading.unit.ucum());
        }
    }

    #[test]
    fn sat_o2_example_uses_both_spo2_codes_and_names_no_device() {
        let text = read_example("observation-example-satO2.json");
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let loinc: Vec<&str> = file["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|coding| coding["system"] == LOINC)
            .map(|coding| coding["code"].as_str().unwrap())
            .collect();
        assert_eq!(loinc, vec!["2708-6", "59408-5"]);
        assert!(loinc
            .iter()
            .all(|code| Metric::from_loinc(code) == Some(Metric::Spo2)));
        // Its `device` is a DeviceMetric reference, which names no device.
        assert_eq!(file["device"]["reference"], "DeviceMetric/example");
        let decoded = decode_str(&text, None);
        assert!(decoded.readings.is_empty());
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(decoded.rejections[0].detail, "payload names no device");
        // Through the format sniffer.
        let topic = DeviceId::parse("ox-1").unwrap();
        let decoded = super::super::decode(&Bytes::from(text), &context(Some(&topic)));
        assert_eq!(decoded.format, Some(super::super::PayloadFormat::Fhir));
        assert_eq!(decoded.readings[0].metric, Metric::Spo2);
    }

    /// A heart-rate observation with the given extra members.
    fn heart_rate(extra: &str) -> String {
        format!(
            r#"{{"resourceType":"Observation","status":"final",
            "code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4"}}]}},
            "effectiveDateTime":"2026-11-22T07:31:05+01:00",
            "valueQuantity":{{"value":77,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}{extra}}}"#
        )
    }

    #[test]
    fn bundle_entries_are_decoded_one_by_one() {
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[
                {{"fullUrl":"urn:uuid:1","resource":{hr}}},
                {{"resource":{bp}}},
                {{"resource":{{"resourceType":"Patient","id":"p1"}}}},
                {{"request":{{"method":"DELETE","url":"Observation/9"}}}},
                {{"resource":{{"resourceType":"Observation","status":"final","valueQuantity":{{"value":"high"}}}}}}
            ]}}"#,
            hr = heart_rate(r#","device":{"reference":"Device/bpm-0042"}"#),
            bp = read_example("observation-example-bloodpressure.json"),
        );
        let decoded = decode_str(&bundle, Some("bpm-0042"));
        let got: Vec<_> = decoded
            .readings
            .iter()
            .map(|r| (r.metric, r.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (Metric::HeartRate, 77.0),
                (Metric::BpSystolic, 107.0),
                (Metric::BpDiastolic, 60.0)
            ]
        );
        assert_eq!(decoded.readings[0].ts, at("2026-11-22T06:31:05Z"));
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload; 3]);
        assert_eq!(
            decoded.rejections[0].detail,
            "unsupported resource type Patient"
        );
        assert_eq!(
            decoded.rejections[0].raw.as_ref(),
            br#"{"resourceType":"Patient","id":"p1"}"#
        );
        assert_eq!(decoded.rejections[1].detail, "bundle entry has no resource");
        assert!(decoded.rejections[2]
            .detail
            .starts_with("invalid bundle entry resource"));
    }

    #[test]
    fn devices_are_read_from_references_and_identifiers() {
        for device in [
            r#"{"reference":"Device/bpm-0042"}"#,
            r#"{"reference":"https://fhir.example.org/r4/Device/bpm-0042/_history/3"}"#,
            r#"{"identifier":{"system":"urn:thuiswacht:device","value":"bpm-0042"}}"#,
            r#"{"reference":"DeviceMetric/m-1","identifier":{"value":"bpm-0042"}}"#,
        ] {
            let decoded = decode_str(&heart_rate(&format!(r#","device":{device}"#)), None);
            assert!(
                decoded.rejections.is_empty(),
                "{device}: {:?}",
                decoded.rejections
            );
            assert_eq!(
                decoded.readings[0].device_id.as_str(),
                "bpm-0042",
                "{device}"
            );
        }
        assert_eq!(device_in_reference("Device/"), None);
        assert_eq!(device_in_reference("#contained"), None);
        assert_eq!(device_in_reference("Patient/example"), None);
    }

    #[test]
    fn device_mismatch_rejects_only_that_observation() {
        let bundle = format!(
            r#"{{"resourceType":"Bundle","entry":[{{"resource":{other}}},{{"resource":{plain}}}]}}"#,
            other = heart_rate(r#","device":{"reference":"Device/bpm-0042"}"#),
            plain = heart_rate(""),
        );
        let decoded = decode_str(&bundle, Some("bpm-0001"));
        assert_eq!(reasons(&decoded), vec![RejectReason::DeviceMismatch]);
        assert!(decoded.rejections[0].detail.contains("bpm-0042"));
        assert_eq!(decoded.readings.len(), 1);
        assert_eq!(decoded.readings[0].device_id.as_str(), "bpm-0001");
        // A single observation on the wrong topic.
        let decoded = decode_str(
            &heart_rate(r#","device":{"reference":"Device/bpm-0042"}"#),
            Some("bpm-0001"),
        );
        assert!(decoded.readings.is_empty());
        assert_eq!(reasons(&decoded), vec![RejectReason::DeviceMismatch]);
        // Over HTTP each observation brings its own device.
        let bundle = format!(
            r#"{{"resourceType":"Bundle","entry":[{{"resource":{a}}},{{"resource":{b}}}]}}"#,
            a = heart_rate(r#","device":{"reference":"Device/bpm-1"}"#),
            b = heart_rate(r#","device":{"reference":"Device/bpm-2"}"#),
        );
        let decoded = decode_str(&bundle, None);
        let devices: Vec<_> = decoded
            .readings
            .iter()
            .map(|r| r.device_id.as_str())
            .collect();
        assert_eq!(devices, vec!["bpm-1", "bpm-2"]);
    }

    #[test]
    fn status_decides_whether_an_observation_is_a_measurement() {
        for status in ["registered", "preliminary", "final", "amended", "corrected"] {
            let observation = heart_rate("").replace(r#""final""#, &format!("{status:?}"));
            let decoded = decode_str(&observation, Some("hr-1"));
            assert_eq!(decoded.readings.len(), 1, "{status}");
        }
        for (status, detail) in [
            (
                r#""status":"entered-in-error","#,
                "observation status entered-in-error is not a measurement",
            ),
            (
                r#""status":"cancelled","#,
                "observation status cancelled is not a measurement",
            ),
            (
                r#""status":"unknown","#,
                "observation status unknown is not a measurement",
            ),
            (
                r#""status":"done","#,
                "observation status \"done\" is not a FHIR R4 status",
            ),
            ("", "observation has no status"),
        ] {
            let observation = heart_rate("").replace(r#""status":"final","#, status);
            let decoded = decode_str(&observation, Some("hr-1"));
            assert!(decoded.readings.is_empty(), "{status}");
            assert_eq!(
                reasons(&decoded),
                vec![RejectReason::MalformedPayload],
                "{status}"
            );
            assert_eq!(decoded.rejections[0].detail, detail);
            assert_eq!(decoded.rejections[0].raw.as_ref(), observation.as_bytes());
        }
    }

    #[test]
    fn missing_values_are_rejected() {
        let without_value = heart_rate("").replace(
            r#""valueQuantity":{"value":77,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}"#,
            r#""dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"error"}]}"#,
        );
        let decoded = decode_str(&without_value, Some("hr-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(
            decoded.rejections[0].detail,
            "observation has no valueQuantity (dataAbsentReason error)"
        );

        let no_number = heart_rate("").replace(r#""value":77,"#, "");
        let decoded = decode_str(&no_number, Some("hr-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(
            decoded.rejections[0].detail,
            "observation valueQuantity has no value"
        );

        let bound = heart_rate("").replace(r#""value":77,"#, r#""value":40,"comparator":"<","#);
        let decoded = decode_str(&bound, Some("hr-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert!(decoded.rejections[0].detail.contains("comparator"));
    }

    #[test]
    fn effective_times_and_partial_dates() {
        let cases = [
            (
                r#""effectiveDateTime":"2026-11-22""#,
                "2026-11-22T00:00:00Z",
            ),
            (r#""effectiveDateTime":"2026-11""#, "2026-11-01T00:00:00Z"),
            (r#""effectiveDateTime":"2026""#, "2026-01-01T00:00:00Z"),
            (
                r#""effectiveDateTime":"2026-11-22T07:31:05.25Z""#,
                "2026-11-22T07:31:05.25Z",
            ),
            (
                r#""effectiveInstant":"2026-11-22T07:31:05-05:00""#,
                "2026-11-22T12:31:05Z",
            ),
            (
                r#""effectivePeriod":{"start":"2026-11-21","end":"2026-11-22"}"#,
                "2026-11-21T00:00:00Z",
            ),
        ];
        for (effective, expected) in cases {
            let observation = heart_rate("").replace(
                r#""effectiveDateTime":"2026-11-22T07:31:05+01:00""#,
                effective,
            );
            let decoded = decode_str(&observation, Some("hr-1"));
            assert!(
                decoded.rejections.is_empty(),
                "{effective}: {:?}",
                decoded.rejections
            );
            assert_eq!(decoded.readings[0].ts, at(expected), "{effective}");
        }
        for effective in [
            r#""effectiveDateTime":"2026-13""#,
            r#""effectiveDateTime":"2026-02-30""#,
            r#""effectiveDateTime":"26-11-22""#,
            r#""effectiveDateTime":"2026-11-22T07:31""#,
            r#""effectiveInstant":"2026-11-22""#,
            r#""effectiveTiming":{"event":["2026-11-22"]}"#,
        ] {
            let observation = heart_rate("").replace(
                r#""effectiveDateTime":"2026-11-22T07:31:05+01:00""#,
                effective,
            );
            let decoded = decode_str(&observation, Some("hr-1"));
            assert!(decoded.readings.is_empty(), "{effective}");
            assert_eq!(
                reasons(&decoded),
                vec![RejectReason::MalformedPayload],
                "{effective}"
            );
        }
    }

    #[test]
    fn unknown_codes_are_unknown_metrics() {
        let panel = r#"{"resourceType":"Observation","status":"final",
            "code":{"coding":[{"system":"http://loinc.org","code":"85353-1"}]},
            "effectiveDateTime":"2026-11-22","hasMember":[{"reference":"Observation/heart-rate"}]}"#;
        let decoded = decode_str(panel, Some("hub-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::UnknownMetric]);
        assert_eq!(decoded.rejections[0].detail, "unknown LOINC code 85353-1");
        // A known code in another system is not read as LOINC.
        let snomed = heart_rate("").replace("http://loinc.org", "http://snomed.info/sct");
        let decoded = decode_str(&snomed, Some("hub-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::UnknownMetric]);
        assert_eq!(decoded.rejections[0].detail, "no LOINC code");
        // LOINC codes that name different metrics.
        let both = heart_rate("").replace(
            r#"{"system":"http://loinc.org","code":"8867-4"}"#,
            r#"{"system":"http://loinc.org","code":"8867-4"},{"system":"http://loinc.org","code":"8310-5"}"#,
        );
        let decoded = decode_str(&both, Some("hub-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        // A blood-pressure component with an unknown code is skipped alone.
        let bp = read_example("observation-example-bloodpressure.json").replace("8462-4", "8478-0");
        let decoded = decode_str(&bp, Some("bpm-1"));
        assert_eq!(decoded.readings.len(), 1);
        assert_eq!(decoded.readings[0].metric, Metric::BpSystolic);
        assert_eq!(reasons(&decoded), vec![RejectReason::UnknownMetric]);
        assert_eq!(
            decoded.rejections[0].detail,
            "component 1: unknown LOINC code 8478-0"
        );
    }

    #[test]
    fn panels_read_components_without_a_panel_code() {
        let old_panel = r#"{"resourceType":"Observation","status":"final",
            "code":{"coding":[{"system":"http://loinc.org","code":"55284-4"}]},
            "effectiveDateTime":"2026-11-22T07:31:05Z",
            "component":[
              {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":16.1,"unit":"kPa"}},
              {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"dataAbsentReason":{"text":"cuff slipped"}}]}"#;
        let decoded = decode_str(old_panel, Some("bpm-1"));
        assert_eq!(decoded.readings.len(), 1);
        assert_eq!(
            (
                decoded.readings[0].metric,
                decoded.readings[0].value,
                decoded.readings[0].unit
            ),
            (Metric::BpSystolic, 16.1, Unit::Kilopascal)
        );
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(
            decoded.rejections[0].detail,
            "component 1 (bp_diastolic) has no valueQuantity (dataAbsentReason cuff slipped)"
        );
        let empty = read_example("observation-example-bloodpressure.json");
        let empty: serde_json::Value = serde_json::from_str(&empty).unwrap();
        let mut empty = empty.as_object().unwrap().clone();
        empty.remove("component");
        let decoded = decode_str(&serde_json::to_string(&empty).unwrap(), Some("bpm-1"));
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(
            decoded.rejections[0].detail,
            "blood-pressure panel has no component"
        );
    }

    #[test]
    fn units_come_from_the_ucum_code_then_the_text() {
        let quantity = r#""valueQuantity":{"value":77,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}"#;
        let cases = [
            (
                r#""valueQuantity":{"value":1.3,"unit":"beats/min","system":"http://unitsofmeasure.org","code":"Hz"}"#,
                Some(Unit::PerSecond),
            ),
            (
                r#""valueQuantity":{"value":77,"unit":"bpm"}"#,
                Some(Unit::PerMinute),
            ),
            (
                r#""valueQuantity":{"value":77,"unit":"bpm","system":"urn:example:units","code":"BPM-X"}"#,
                Some(Unit::PerMinute),
            ),
            (r#""valueQuantity":{"value":77}"#, Some(Unit::PerMinute)),
            (
                r#""valueQuantity":{"value":77,"unit":"/min","system":"http://unitsofmeasure.org","code":"{beat}/h"}"#,
                None,
            ),
            (
                r#""valueQuantity":{"value":77,"unit":"slagen per minuut"}"#,
                None,
            ),
        ];
        for (replacement, expected) in cases {
            let observation = heart_rate("").replace(quantity, replacement);
            let decoded = decode_str(&observation, Some("hr-1"));
            match expected {
                Some(unit) => {
                    assert!(
                        decoded.rejections.is_empty(),
                        "{replacement}: {:?}",
                        decoded.rejections
                    );
                    assert_eq!(decoded.readings[0].unit, unit, "{replacement}");
                }
                None => assert_eq!(
                    reasons(&decoded),
                    vec![RejectReason::UnknownUnit],
                    "{replacement}"
                ),
            }
        }
    }

    #[test]
    fn unreadable_messages_are_one_rejection() {
        for payload in [
            r#"{"resourceType":"Observation","status":"final","#.to_owned(),
            r#"{"resourceType":"Patient","id":"p1"}"#.to_owned(),
            heart_rate("").replace(r#""value":77"#, r#""value":"77""#),
        ] {
            let decoded = decode_str(&payload, Some("hr-1"));
            assert!(decoded.readings.is_empty(), "{payload}");
            assert_eq!(
                reasons(&decoded),
                vec![RejectReason::MalformedPayload],
                "{payload}"
            );
            assert_eq!(decoded.rejections[0].raw.as_ref(), payload.as_bytes());
        }
    }

    #[test]
    fn escaped_strings_are_read() {
        let observation = heart_rate(r#","device":{"reference":"Device\/bpm-7"}"#)
            .replace("http://loinc.org", r"http:\/\/loinc.org")
            .replace(r#""code":"/min""#, r#""code":"\/min""#);
        let decoded = decode_str(&observation, Some("bpm-7"));
        assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
        assert_eq!(decoded.readings[0].metric, Metric::HeartRate);
        assert_eq!(decoded.readings[0].unit, Unit::PerMinute);
    }
}
