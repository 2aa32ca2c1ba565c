//! SenML JSON (RFC 8428): a pack is an array of records such as
//! `[{"bn":"ox-0007/","bt":1.7637e9,"n":"spo2","u":"%","v":96},{"n":"heart_rate","u":"beat/min","v":72}]`.
//!
//! Decoding takes three steps:
//!
//! 1. **Parse** each record on its own. A record whose regular fields do not
//!    parse (say `"v":"96"`) is kept with its base fields, so the records after
//!    it still resolve against the right base name and time, and is rejected
//!    alone. A record whose base fields do not parse, or that is not an object,
//!    makes the pack unreadable.
//! 2. **Resolve** ([`resolve`], RFC 8428 §4.6): name = `bn` + `n`, time = `bt` +
//!    `t` (below 2^28 relative to the receive time, §4.5.3), unit = `u` else
//!    `bu`, value = `bv` + `v`, sum = `bs` + `s`. A field ending in `_` (§4.4)
//!    or a version newer than 10 refuses the whole pack. Records of base
//!    fields only (the RFC's actuator example) resolve to nothing. Resolved
//!    records keep the order of the pack.
//! 3. **Map** each resolved record to a reading. The device and the metric
//!    come from the name: with both `bn` and `n`, the device is `bn` without
//!    one trailing `/` or `:` and the metric is `n`; with only one of them, the
//!    name is split at its last `/` (`ox-0007/spo2`), and a name without `/`
//!    is a metric of an unnamed device. `:` alone never splits a name, as
//!    device ids may contain it (`urn:dev:ow:…`). The metric is a Thuiswacht
//!    code (`heart_rate`) or a LOINC code (`8867-4`); the unit is parsed but not
//!    converted (validation converts).
//!
//! A pack speaks for one device. Over MQTT every device it names must be the
//! topic's, else the whole pack is a `device_mismatch`; over HTTP it must name
//! exactly one device, which records without a device name then belong to.
//!
//! Readings are numbers: `vs`/`vb`/`vd` records are rejected one by one, and a
//! sum (`s`) is only read for `steps` (the value wins when a record has both).
//! The raw bytes of a per-record rejection are the resolved record as SenML
//! JSON, self-contained as §4.6 asks of records used outside their pack; for a
//! record that did not parse they are the record as sent.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{resolve_device, DecodeContext, Decoded};
use crate::domain::{DecodedReading, DeviceId, Metric, RejectReason, Rejection, Timestamp, Unit};

/// Times below 2^28 seconds are relative to "now" (RFC 8428 §4.5.3).
const RELATIVE_TIME_LIMIT: f64 = 268_435_456.0;
/// The SenML version this decoder implements; `bver` defaults to it.
const SENML_VERSION: u64 = 10;

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
    let (raws, records) = match parse_pack(payload) {
        Ok(pack) => pack,
        Err(detail) => return refuse(detail),
    };
    let resolved = match resolve(&records, context.received_at) {
        Ok(resolved) => resolved,
        Err(error) => return refuse(format!("unusable SenML pack: {error}")),
    };
    let targets: Vec<Target<'_>> = resolved.iter().map(Target::of).collect();
    let device_id = match pack_device(&targets, context, payload) {
        Ok(device_id) => device_id,
        Err(rejection) => return Decoded::rejected(rejection),
    };

    let mut decoded = Decoded {
        readings: Vec::with_capacity(resolved.len()),
        ..Decoded::default()
    };
    for (record, target) in resolved.iter().zip(&targets) {
        let own_sum = records[record.index].sum.is_some();
        match to_reading(record, target, own_sum) {
            Ok((metric, value, unit, ts)) => decoded.readings.push(DecodedReading {
                device_id: device_id.clone(),
                metric,
                value,
                unit,
                ts,
            }),
            Err((reason, detail)) => {
                let raw = match record.defect {
                    Some(_) => payload.slice_ref(raws[record.index].get().as_bytes()),
                    None => record.to_json(),
                };
                decoded.rejections.push(Rejection::new(
                    reason,
                    detail,
                    Some(device_id.as_str()),
                    raw,
                ));
            }
        }
    }
    decoded
}

// ---------------------------------------------------------------------------
// Parsing

use super::text::Text;

/// One SenML record as sent (RFC 8428 §4.3, Table 1), with the fields this
/// decoder understands. Other fields are ignored (§4.4), except that the first
/// label ending in `_` is remembered, as it must not be ignored.
#[derive(Debug, Default, Clone, PartialEq)]
struct Record<'a> {
    base_name: Option<Text<'a>>,
    base_time: Option<f64>,
    base_unit: Option<Text<'a>>,
    base_value: Option<f64>,
    base_sum: Option<f64>,
    base_version: Option<f64>,
    name: Option<Text<'a>>,
    unit: Option<Text<'a>>,
    value: Option<f64>,
    string_value: Option<Text<'a>>,
    bool_value: Option<bool>,
    data_value: Option<Text<'a>>,
    sum: Option<f64>,
    time: Option<f64>,
    update_time: Option<f64>,
    /// The first label ending in `_` (mandatory to understand, §4.4).
    must_understand: Option<String>,
    /// Why the regular fields could not be read; only the base fields are set then.
    defect: Option<String>,
}

impl Record<'_> {
    /// Whether the record has anything besides base fields.
    fn has_regular_fields(&self) -> bool {
        self.name.is_some()
            || self.unit.is_some()
            || self.value.is_some()
            || self.string_value.is_some()
            || self.bool_value.is_some()
            || self.data_value.is_some()
            || self.sum.is_some()
            || self.time.is_some()
            || self.update_time.is_some()
            || self.defect.is_some()
    }

    /// Whether the record carries a value other than a number.
    fn has_other_value(&self) -> bool {
        self.string_value.is_some() || self.bool_value.is_some() || self.data_value.is_some()
    }
}

/// Reads a record; with `base_only`, reads only the base fields and skips the rest.
struct RecordVisitor<'a> {
    base_only: bool,
    lifetime: PhantomData<&'a ()>,
}

impl<'de: 'a, 'a> Visitor<'de> for RecordVisitor<'a> {
    type Value = Record<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SenML record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'a>, A::Error> {
        let mut record = Record::default();
        // Reads the value of a field into its slot, refusing a repeated label.
        macro_rules! set {
            ($slot:expr, $label:literal) => {{
                let value = map.next_value()?;
                if $slot.is_some() {
                    return Err(de::Error::duplicate_field($label));
                }
                $slot = Some(value);
            }};
        }
        while let Some(label) = map.next_key::<Text<'de>>()? {
            match label.as_str() {
                "bn" => set!(record.base_name, "bn"),
                "bt" => set!(record.base_time, "bt"),
                "bu" => set!(record.base_unit, "bu"),
                "bv" => set!(record.base_value, "bv"),
                "bs" => set!(record.base_sum, "bs"),
                "bver" => set!(record.base_version, "bver"),
                "n" if !self.base_only => set!(record.name, "n"),
                "u" if !self.base_only => set!(record.unit, "u"),
                "v" if !self.base_only => set!(record.value, "v"),
                "vs" if !self.base_only => set!(record.string_value, "vs"),
                "vb" if !self.base_only => set!(record.bool_value, "vb"),
                "vd" if !self.base_only => set!(record.data_value, "vd"),
                "s" if !self.base_only => set!(record.sum, "s"),
                "t" if !self.base_only => set!(record.time, "t"),
                "ut" if !self.base_only => set!(record.update_time, "ut"),
                other => {
                    if other.ends_with('_') && record.must_understand.is_none() {
                        record.must_understand = Some(other.to_owned());
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(record)
    }
}

fn parse_record<'a>(text: &'a str, base_only: bool) -> serde_json::Result<Record<'a>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let visitor = RecordVisitor {
        base_only,
        lifetime: PhantomData,
    };
    let record = (&mut deserializer).deserialize_map(visitor)?;
    deserializer.end()?;
    Ok(record)
}

/// Parses a pack into its records (and each record's bytes), or says why it is unreadable.
fn parse_pack(payload: &[u8]) -> Result<(Vec<&RawValue>, Vec<Record<'_>>), String> {
    let raws: Vec<&RawValue> =
        serde_json::from_slice(payload).map_err(|error| format!("invalid SenML JSON: {error}"))?;
    let mut records = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        let record = match parse_record(raw.get(), false) {
            Ok(record) => record,
            Err(error) => match parse_record(raw.get(), true) {
                Ok(mut base) => {
                    base.defect = Some(error.to_string());
                    base
                }
                Err(base_error) => {
                    return Err(format!("SenML record {index} is unreadable: {base_error}"))
                }
            },
        };
        records.push(record);
    }
    Ok((raws, records))
}

// ---------------------------------------------------------------------------
// Resolution (RFC 8428 §4.6)

/// A record with the base fields of its pack applied (RFC 8428 §4.6).
#[derive(Debug, Clone, PartialEq)]
struct Resolved<'r> {
    /// The position of the record in the pack.
    index: usize,
    /// The base name in effect, `""` when none.
    base_name: &'r str,
    /// The record's own name, `""` when none.
    local_name: &'r str,
    unit: Option<&'r str>,
    /// The absolute time; `None` when `bt` + `t` is no representable instant.
    time: Option<Timestamp>,
    value: Option<f64>,
    string_value: Option<&'r str>,
    bool_value: Option<bool>,
    data_value: Option<&'r str>,
    sum: Option<f64>,
    update_time: Option<f64>,
    /// Why the record's regular fields could not be read.
    defect: Option<&'r str>,
}

/// Why a pack cannot be resolved at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum PackError {
    #[error("field {0:?} must be understood (RFC 8428 §4.4) and is not supported")]
    MustUnderstand(String),
    #[error("bver {0} is not a positive integer")]
    BadVersion(f64),
    #[error(
        "SenML version {0} is newer than version {SENML_VERSION}, which this decoder implements"
    )]
    NewerVersion(u64),
    #[error("records carry different SenML versions ({0} and {1})")]
    MixedVersions(u64, u64),
}

impl Resolved<'_> {
    /// The resolved name: base name and name concatenated.
    fn name(&self) -> String {
        let mut name = String::with_capacity(self.base_name.len() + self.local_name.len());
        name.push_str(self.base_name);
        name.push_str(self.local_name);
        name
    }

    /// The record in resolved SenML JSON form.
    fn to_json(&self) -> Bytes {
        #[derive(Serialize)]
        struct Json<'r> {
            n: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            u: Option<&'r str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            t: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            v: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            vs: Option<&'r str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            vb: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            vd: Option<&'r str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            s: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ut: Option<f64>,
        }
        let json = Json {
            n: self.name(),
            u: self.unit,
            t: self.time.map(|ts| ts.micros() as f64 / 1_000_000.0),
            v: self.value,
            vs: self.string_value,
            vb: self.bool_value,
            vd: self.data_value,
            s: self.sum,
            ut: self.update_time,
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(&json)
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

/// Applies the base fields of a pack to its records (RFC 8428 §4.6). Base
/// fields hold for the record that carries them and every later one until
/// changed. `now` resolves times below 2^28 (§4.5.3). A value is resolved when
/// the record has `v`, or when a base value holds and the record has no other
/// value and no sum of its own; a sum when `s` or a base sum is present.
fn resolve<'r>(records: &'r [Record<'_>], now: Timestamp) -> Result<Vec<Resolved<'r>>, PackError> {
    let mut base_name = "";
    let mut base_time = 0.0;
    let mut base_unit: Option<&str> = None;
    let mut base_value: Option<f64> = None;
    let mut base_sum: Option<f64> = None;
    let mut version = SENML_VERSION;
    let mut resolved = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        if let Some(label) = &record.must_understand {
            return Err(PackError::MustUnderstand(label.clone()));
        }
        if let Some(bver) = record.base_version {
            if !(bver >= 1.0 && bver.fract() == 0.0 && bver <= u32::MAX as f64) {
                return Err(PackError::BadVersion(bver));
            }
            let bver = bver as u64;
            if bver > SENML_VERSION {
                return Err(PackError::NewerVersion(bver));
            }
            // All records of a pack share one version (§4.4); records before
            // this one had the version in effect until now.
            if index > 0 && bver != version {
                return Err(PackError::MixedVersions(version, bver));
            }
            version = bver;
        }
        if let Some(name) = &record.base_name {
            base_name = name.as_str();
        }
        if let Some(time) = record.base_time {
            base_time = time;
        }
        if let Some(unit) = &record.base_unit {
            base_unit = Some(unit.as_str());
        }
        if let Some(value) = record.base_value {
            base_value = Some(value);
        }
        if let Some(sum) = record.base_sum {
            base_sum = Some(sum);
        }
        if !record.has_regular_fields() {
            continue;
        }
        let value = match (record.value, base_value) {
            (Some(value), base) => Some(base.unwrap_or(0.0) + value),
            (None, Some(base)) if !record.has_other_value() && record.sum.is_none() => Some(base),
            (None, _) => None,
        };
        let sum = match (record.sum, base_sum) {
            (None, None) => None,
            (sum, base) => Some(base.unwrap_or(0.0) + sum.unwrap_or(0.0)),
        };
        resolved.push(Resolved {
            index,
            base_name,
            local_name: record.name.as_ref().map_or("", Text::as_str),
            unit: record.unit.as_ref().map(Text::as_str).or(base_unit),
            time: absolute_time(base_time + record.time.unwrap_or(0.0), now),
            value,
            string_value: record.string_value.as_ref().map(Text::as_str),
            bool_value: record.bool_value,
            data_value: record.data_value.as_ref().map(Text::as_str),
            sum,
            update_time: record.update_time,
            defect: record.defect.as_deref(),
        });
    }
    Ok(resolved)
}

/// Turns a resolved SenML time in seconds into an instant: at or above 2^28
/// since the epoch, below relative to `now` (0 is "now", negative is past).
fn absolute_time(seconds: f64, now: Timestamp) -> Option<Timestamp> {
    if !seconds.is_finite() {
        return None;
    }
    if seconds >= RELATIVE_TIME_LIMIT {
        return Timestamp::from_unix_seconds(seconds);
    }
    let offset = (seconds * 1_000_000.0).round();
    if offset.abs() > 8.0e18 {
        return None;
    }
    let micros = now.micros().checked_add(offset as i64)?;
    Utc.timestamp_micros(micros).single()?;
    Some(Timestamp(micros))
}

// ---------------------------------------------------------------------------
// Mapping resolved records to readings

/// The device and metric key a resolved record's name stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Target<'r> {
    device: Option<&'r str>,
    metric_key: &'r str,
}

impl<'r> Target<'r> {
    fn of(record: &Resolved<'r>) -> Target<'r> {
        let (base, local) = (record.base_name, record.local_name);
        if !base.is_empty() && !local.is_empty() {
            let device = base
                .strip_suffix('/')
                .or_else(|| base.strip_suffix(':'))
                .unwrap_or(base);
            return Target {
                device: Some(device).filter(|device| !device.is_empty()),
                metric_key: local,
            };
        }
        let name = if base.is_empty() { local } else { base };
        match name.rsplit_once('/') {
            Some((device, metric_key)) => Target {
                device: Some(device).filter(|device| !device.is_empty()),
                metric_key,
            },
            None => Target {
                device: None,
                metric_key: name,
            },
        }
    }
}

/// Decides the one device a pack speaks for, or the rejection of the pack.
fn pack_device(
    targets: &[Target<'_>],
    context: &DecodeContext<'_>,
    payload: &Bytes,
) -> Result<DeviceId, Rejection> {
    let mut named: Vec<&str> = Vec::new();
    for device in targets.iter().filter_map(|target| target.device) {
        if !named.contains(&device) {
            named.push(device);
        }
    }
    if let Some(topic) = context.topic_device {
        let other = named
            .iter()
            .copied()
            .find(|device| *device != topic.as_str());
        return resolve_device(other, context, payload);
    }
    if named.len() > 1 {
        return Err(Rejection::new(
            RejectReason::MalformedPayload,
            format!("pack names several devices: {}", named.join(", ")),
            None,
            payload.clone(),
        ));
    }
    resolve_device(named.first().copied(), context, payload)
}

/// Whether a resolved name uses only the characters RFC 8428 §4.5.1 allows.
fn is_valid_name(name: &str) -> bool {
    let allowed =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b':' | b'.' | b'/' | b'_');
    name.as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric)
        && name.bytes().all(allowed)
}

type Refusal = (RejectReason, String);

fn malformed(detail: impl Into<String>) -> Refusal {
    (RejectReason::MalformedPayload, detail.into())
}

/// Reads one resolved record as a reading of metric, value, unit as sent, and time.
fn to_reading(
    record: &Resolved<'_>,
    target: &Target<'_>,
    own_sum: bool,
) -> Result<(Metric, f64, Unit, Timestamp), Refusal> {
    if let Some(defect) = record.defect {
        return Err(malformed(format!("invalid SenML record: {defect}")));
    }
    let name = record.name();
    if !is_valid_name(&name) {
        return Err(malformed(format!(
            "record name {name:?} is not a valid SenML name"
        )));
    }
    let value_fields = [
        record.value.is_some(),
        record.string_value.is_some(),
        record.bool_value.is_some(),
        record.data_value.is_some(),
    ];
    if value_fields.into_iter().filter(|present| *present).count() > 1 {
        return Err(malformed(format!(
            "record {name:?} has more than one value field"
        )));
    }
    if record.string_value.is_some() || record.bool_value.is_some() || record.data_value.is_some() {
        return Err(malformed(format!(
            "non-numeric value (vs/vb/vd) in record {name:?}; readings are numbers"
        )));
    }
    if target.metric_key.is_empty() {
        return Err((
            RejectReason::UnknownMetric,
            format!("record {name:?} names no metric"),
        ));
    }
    let Some(metric) =
        Metric::from_code(target.metric_key).or_else(|| Metric::from_loinc(target.metric_key))
    else {
        return Err((
            RejectReason::UnknownMetric,
            format!("unknown metric {:?}", target.metric_key),
        ));
    };
    if record.sum.is_some() && metric != Metric::Steps && (own_sum || record.value.is_none()) {
        return Err(malformed(format!(
            "a sum (s) is only accepted for steps, not for {metric}"
        )));
    }
    let Some(value) = record.value.or(record.sum) else {
        return Err(malformed(format!("record {name:?} has no value")));
    };
    if !value.is_finite() {
        return Err(malformed(format!(
            "value of {metric} is not a finite number"
        )));
    }
    let unit = match record.unit {
        None => metric.unit(),
        Some(text) => Unit::parse(text).ok_or_else(|| {
            (
                RejectReason::UnknownUnit,
                format!("unknown unit {text:?} for {metric}"),
            )
        })?,
    };
    let ts = record
        .time
        .ok_or_else(|| malformed(format!("time of {metric} is not a representable instant")))?;
    Ok((metric, value, unit, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC examples; see SOURCE.md there.
    const RFC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/senml-rfc8428");

    fn read_example(file: &str) -> String {
        let path = format!("{RFC_DIR}/{file}");
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
    }

    fn seconds(seconds: f64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds).unwrap()
    }

    use crate::decode::test_support::{context, decode_str, reasons};

    fn parsed(pack: &str) -> Vec<Record<'_>> {
        parse_pack(pack.as_bytes()).expect("pack parses").1
    }

    /// The examples with a resolved oracle, with the clock their oracle was
    /// generated at when the pack has no base time (SOURCE.md). ex7's oracle
    /// was generated on another day than ex1/ex2/ex9's.
    const ORACLES: [(&str, Option<f64>); 12] = [
        ("ex1", Some(1.498780179e9)),
        ("ex2", Some(1.498780179e9)),
        ("ex3", None),
        ("ex4", None),
        ("ex5", None),
        ("ex6", None),
        ("ex7", Some(1.499109309e9)),
        ("ex8", None),
        ("ex9", Some(1.498780179e9)),
        ("ex10", None),
        ("ex11", None),
        ("ex12", None),
    ];

    #[test]
    fn every_rfc_example_resolves_like_its_oracle() {
        // Every oracle in the folder is in the table, so none is skipped silently.
        let mut on_disk: Vec<String> = std::fs::read_dir(RFC_DIR)
            .unwrap_or_else(|error| panic!("cannot list {RFC_DIR}: {error}"))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter_map(|file| file.strip_suffix(".gen.resolved.json").map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ORACLES.iter().map(|(name, _)| name.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);

        // A clock far from every absolute time: absolute times must not depend on it.
        let unrelated_now = seconds(1.7e9);
        for (example, clock) in ORACLES {
            let pack = read_example(&format!("{example}.gen.json"));
            let oracle: Vec<serde_json::Value> =
                serde_json::from_str(&read_example(&format!("{example}.gen.resolved.json")))
                    .unwrap();
            let records = parsed(&pack);
            let resolved = resolve(&records, clock.map_or(unrelated_now, seconds)).unwrap();
            // The oracles predate the data value `vd`: ex7's omits its `vd`
            // record (checked separately below).
            let ours: Vec<&Resolved<'_>> =
                resolved.iter().filter(|r| r.data_value.is_none()).collect();
            assert_eq!(ours.len(), oracle.len(), "{example}: number of records");
            for (i, (got, want)) in ours.iter().zip(&oracle).enumerate() {
                let want = want.as_object().unwrap();
                let at = format!("{example} record {i}");
                for key in want.keys() {
                    // `l` (links, ex8) is an extension this decoder ignores (§4.4).
                    assert!(
                        ["n", "u", "t", "v", "vs", "vb", "s", "l"].contains(&key.as_str()),
                        "{at}: {key}"
                    );
                }
                assert_eq!(got.name(), want["n"].as_str().unwrap(), "{at}: n");
                assert_eq!(got.unit, want.get("u").and_then(|u| u.as_str()), "{at}: u");
                let want_t = seconds(want["t"].as_f64().unwrap());
                assert_eq!(got.time, Some(want_t), "{at}: t");
                assert_eq!(
                    got.value,
                    want.get("v").map(|v| v.as_f64().unwrap()),
                    "{at}: v"
                );
                assert_eq!(
                    got.string_value,
                    want.get("vs").map(|v| v.as_str().unwrap()),
                    "{at}: vs"
                );
                assert_eq!(
                    got.bool_value,
                    want.get("vb").map(|v| v.as_bool().unwrap()),
                    "{at}: vb"
                );
                assert_eq!(
                    got.sum,
                    want.get("s").map(|v| v.as_f64().unwrap()),
                    "{at}: s"
                );
            }
            if example == "ex7" {
                let data = resolved.last().unwrap();
                assert_eq!(data.name(), "urn:dev:ow:10e2073a01080063:nfv-reader");
                assert_eq!(data.data_value, Some("aGkgCg"));
                assert_eq!(data.time, Some(seconds(1.499109309e9)));
            }
        }
    }

    #[test]
    fn times_without_base_time_are_relative_to_now() {
        let now = seconds(1.498780179e9);
        let pack = read_example("ex2.gen.json");
        let records = parsed(&pack);
        for record in resolve(&records, now).unwrap() {
            assert_eq!(record.time, Some(now));
        }
        // ex13 (no oracle): relative t = 0.1 is added to the absolute base time.
        let pack = read_example("ex13.gen.json");
        let records = parsed(&pack);
        let resolved = resolve(&records, now).unwrap();
        let times: Vec<_> = resolved.iter().map(|r| r.time.unwrap()).collect();
        let bt = seconds(1.320078429e9);
        assert_eq!(
            times,
            vec![bt, bt, bt.plus_micros(100_000), bt.plus_micros(100_000)]
        );
        assert_eq!(resolved[3].unit, Some("/"), "bu holds for later records");
        assert_eq!(resolved[3].value, Some(0.0));
    }

    #[test]
    fn relative_and_missing_times_use_the_receive_time() {
        let pack = r#"[{"n":"ox-9/spo2","v":97,"t":-60},{"n":"ox-9/spo2","v":96},{"bt":-120,"n":"ox-9/spo2","v":95,"t":30}]"#;
        let decoded = decode_str(pack, Some("ox-9"));
        let received = context(None).received_at;
        let times: Vec<_> = decoded.readings.iter().map(|r| r.ts).collect();
        assert_eq!(
            times,
            vec![
                received.plus_micros(-60_000_000),
                received,
                received.plus_micros(-90_000_000)
            ]
        );
    }

    #[test]
    fn base_value_and_base_sum_are_added() {
        let pack = r#"[{"bn":"pm-1/","bv":100,"bs":1000,"n":"steps","s":5},{"n":"steps","v":2},{"n":"steps","vs":"x"}]"#;
        let records = parsed(pack);
        let resolved = resolve(&records, Timestamp(0)).unwrap();
        assert_eq!(
            resolved[0].value, None,
            "a sum record has no value of its own"
        );
        assert_eq!(resolved[0].sum, Some(1005.0));
        assert_eq!(resolved[1].value, Some(102.0));
        assert_eq!(resolved[1].sum, Some(1000.0));
        assert_eq!(
            resolved[2].value, None,
            "bv does not apply to a string value"
        );
        assert_eq!(resolved[2].string_value, Some("x"));
    }

    #[test]
    fn base_only_records_resolve_to_nothing_and_base_name_changes() {
        let pack = read_example("ex6.gen.json");
        let records = parsed(&pack);
        let resolved = resolve(&records, Timestamp(0)).unwrap();
        let devices: Vec<_> = resolved.iter().map(|r| Target::of(r).device).collect();
        assert_eq!(
            devices,
            vec![
                Some("2001:db8::2"),
                Some("2001:db8::2"),
                Some("2001:db8::1"),
                Some("2001:db8::1")
            ]
        );
        let pack = read_example("ex9.gen.json");
        let records = parsed(&pack);
        let resolved = resolve(&records, Timestamp(0)).unwrap();
        assert_eq!(resolved.len(), 3);
        assert_eq!(resolved[0].index, 1);
    }

    #[test]
    fn version_and_must_understand_fields_are_checked() {
        let newer = r#"[{"bver":11,"n":"a/spo2","v":1}]"#;
        assert_eq!(
            resolve(&parsed(newer), Timestamp(0)),
            Err(PackError::NewerVersion(11))
        );
        let mixed = r#"[{"bver":5,"n":"a/spo2","v":1},{"bver":6,"n":"a/spo2","v":1}]"#;
        assert_eq!(
            resolve(&parsed(mixed), Timestamp(0)),
            Err(PackError::MixedVersions(5, 6))
        );
        let late = r#"[{"n":"a/spo2","v":1},{"bver":10,"n":"a/spo2","v":1}]"#;
        assert!(resolve(&parsed(late), Timestamp(0)).is_ok());
        let fraction = r#"[{"bver":2.5,"n":"a/spo2","v":1}]"#;
        assert_eq!(
            resolve(&parsed(fraction), Timestamp(0)),
            Err(PackError::BadVersion(2.5))
        );
        let must = r#"[{"n":"a/spo2","v":1,"crit_":1,"other":2}]"#;
        assert_eq!(
            resolve(&parsed(must), Timestamp(0)),
            Err(PackError::MustUnderstand("crit_".into()))
        );

        let decoded = decode_str(must, Some("a"));
        assert!(decoded.readings.is_empty());
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert!(decoded.rejections[0].detail.contains("crit_"));
        assert_eq!(
            decoded.rejections[0].raw.as_ref(),
            must.as_bytes(),
            "whole pack quarantined"
        );
    }

    /// What each RFC example decodes to for a device that sends it on its own topic.
    #[test]
    fn rfc_examples_are_not_vital_signs() {
        use RejectReason::*;
        let cases: [(&str, Option<&str>, Vec<RejectReason>); 13] = [
            // No base name: the name is read as a metric key of the topic device.
            ("ex1", Some("t-1"), vec![UnknownMetric]),
            (
                "ex2",
                Some("urn:dev:ow:10e2073a01080063"),
                vec![UnknownMetric; 2],
            ),
            (
                "ex3",
                Some("urn:dev:ow:10e2073a0108006"),
                vec![UnknownMetric; 7],
            ),
            ("ex4", Some("t-1"), vec![UnknownMetric; 12]),
            ("ex5", Some("t-1"), vec![UnknownMetric; 13]),
            // Two devices in one pack.
            ("ex6", Some("2001:db8::2"), vec![DeviceMismatch]),
            (
                "ex7",
                Some("urn:dev:ow:10e2073a01080063"),
                vec![
                    UnknownMetric,
                    MalformedPayload,
                    MalformedPayload,
                    MalformedPayload,
                ],
            ),
            (
                "ex8",
                Some("urn:dev:ow:10e2073a01080063"),
                vec![UnknownMetric; 2],
            ),
            (
                "ex9",
                Some("urn:dev:ow:10e2073a01080063"),
                vec![UnknownMetric; 3],
            ),
            ("ex10", Some("t-1"), vec![UnknownMetric; 2]),
            ("ex11", Some("t-1"), vec![UnknownMetric; 2]),
            ("ex12", Some("t-1"), vec![UnknownMetric; 2]),
            ("ex13", Some("t-1"), vec![UnknownMetric; 4]),
        ];
        for (example, topic, expected) in cases {
            let decoded = decode_str(&read_example(&format!("{example}.gen.json")), topic);
            assert!(decoded.readings.is_empty(), "{example}");
            assert_eq!(reasons(&decoded), expected, "{example}");
        }
        let decoded = decode_str(
            &read_example("ex2.gen.json"),
            Some("urn:dev:ow:10e2073a01080063"),
        );
        assert_eq!(decoded.rejections[0].detail, "unknown metric \"voltage\"");
        assert_eq!(decoded.rejections[1].detail, "unknown metric \"current\"");
        assert_eq!(
            decoded.rejections[1].device_id.as_deref(),
            Some("urn:dev:ow:10e2073a01080063")
        );
        // The quarantined bytes are the resolved record.
        let raw: serde_json::Value = serde_json::from_slice(&decoded.rejections[1].raw).unwrap();
        assert_eq!(raw["n"], "urn:dev:ow:10e2073a01080063:current");
        assert_eq!(raw["u"], "A");
        assert_eq!(raw["v"], 1.2);

        let decoded = decode_str(
            &read_example("ex7.gen.json"),
            Some("urn:dev:ow:10e2073a01080063"),
        );
        assert!(decoded.rejections[1].detail.contains("non-numeric"));
        // Over HTTP, a pack naming two devices is refused whole.
        let decoded = decode_str(&read_example("ex6.gen.json"), None);
        assert_eq!(reasons(&decoded), vec![MalformedPayload]);
        assert_eq!(
            decoded.rejections[0].detail,
            "pack names several devices: 2001:db8::2, 2001:db8::1"
        );
        // ex2 sent on another device's topic.
        let decoded = decode_str(&read_example("ex2.gen.json"), Some("bpm-0042"));
        assert_eq!(reasons(&decoded), vec![DeviceMismatch]);
    }

    const VITALS: &str = r#"[
        {"bn":"ox-0007/","bt":1.7637e9,"n":"spo2","u":"%","v":96},
        {"n":"heart_rate","u":"beat/min","v":72},
        {"n":"body_temperature","u":"K","v":310.1},
        {"n":"bp_systolic","u":"kPa","v":16.0,"t":5},
        {"n":"8462-4","u":"kPa","v":10.7,"t":5},
        {"n":"respiratory_rate","v":14}
    ]"#;

    #[test]
    fn vital_signs_pack_decodes_with_units_as_sent() {
        for topic in [Some("ox-0007"), None] {
            let decoded = decode_str(VITALS, topic);
            assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
            let got: Vec<_> = decoded
                .readings
                .iter()
                .map(|r| (r.device_id.as_str(), r.metric, r.value, r.unit, r.ts))
                .collect();
            let t0 = seconds(1.7637e9);
            let t5 = t0.plus_micros(5_000_000);
            assert_eq!(
                got,
                vec![
                    ("ox-0007", Metric::Spo2, 96.0, Unit::Percent, t0),
                    ("ox-0007", Metric::HeartRate, 72.0, Unit::PerMinute, t0),
                    ("ox-0007", Metric::BodyTemperature, 310.1, Unit::Kelvin, t0),
                    ("ox-0007", Metric::BpSystolic, 16.0, Unit::Kilopascal, t5),
                    ("ox-0007", Metric::BpDiastolic, 10.7, Unit::Kilopascal, t5),
                    (
                        "ox-0007",
                        Metric::RespiratoryRate,
                        14.0,
                        Unit::PerMinute,
                        t0
                    ),
                ]
            );
        }
        // Through the format sniffer too.
        let topic = DeviceId::parse("ox-0007").unwrap();
        let decoded = super::super::decode(
            &Bytes::from_static(VITALS.as_bytes()),
            &context(Some(&topic)),
        );
        assert_eq!(decoded.format, Some(super::super::PayloadFormat::SenMl));
        assert_eq!(decoded.readings.len(), 6);
    }

    #[test]
    fn names_without_base_name_split_at_the_last_slash() {
        let pack = r#"[{"n":"scale-3/body_weight","u":"kg","v":81.2,"t":1.7637e9},{"n":"scale-3/29463-7","u":"[lb_av]","v":179,"t":1.7637e9}]"#;
        let decoded = decode_str(pack, None);
        assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
        assert_eq!(decoded.readings[0].device_id.as_str(), "scale-3");
        assert_eq!(decoded.readings[1].metric, Metric::BodyWeight);
        assert_eq!(decoded.readings[1].unit, Unit::Pound);
        // bn carrying the whole name, records repeating it with new times.
        let pack = r#"[{"bn":"ox-1/spo2","bt":1.7637e9,"v":97},{"t":60,"v":96}]"#;
        let decoded = decode_str(pack, Some("ox-1"));
        assert_eq!(decoded.readings.len(), 2);
        assert_eq!(decoded.readings[1].ts, seconds(1.7637e9 + 60.0));
        // bn ending in ':' is a device too.
        let decoded = decode_str(r#"[{"bn":"gw:7:","n":"heart_rate","v":60}]"#, None);
        assert_eq!(decoded.readings[0].device_id.as_str(), "gw:7");
    }

    #[test]
    fn pack_without_device_uses_the_topic_or_is_refused() {
        let pack = r#"[{"n":"heart_rate","v":61}]"#;
        let decoded = decode_str(pack, Some("hr-5"));
        assert_eq!(decoded.readings[0].device_id.as_str(), "hr-5");
        assert_eq!(
            decoded.readings[0].unit,
            Unit::PerMinute,
            "no unit: the metric's own"
        );
        assert_eq!(decoded.readings[0].ts, context(None).received_at);
        let decoded = decode_str(pack, None);
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(decoded.rejections[0].detail, "payload names no device");
        // Over HTTP, records before the first base name belong to the one named device.
        let decoded = decode_str(
            r#"[{"n":"heart_rate","v":61},{"bn":"hr-5/","n":"spo2","v":98}]"#,
            None,
        );
        assert!(decoded.rejections.is_empty());
        assert!(decoded
            .readings
            .iter()
            .all(|r| r.device_id.as_str() == "hr-5"));
    }

    #[test]
    fn device_mismatch_rejects_the_whole_pack() {
        let decoded = decode_str(VITALS, Some("ox-0001"));
        assert!(decoded.readings.is_empty());
        assert_eq!(reasons(&decoded), vec![RejectReason::DeviceMismatch]);
        assert!(decoded.rejections[0].detail.contains("ox-0007"));
        // One record of another device poisons a pack that is otherwise the topic's.
        let pack = r#"[{"bn":"ox-1/","n":"spo2","v":97},{"bn":"ox-2/","n":"spo2","v":91}]"#;
        let decoded = decode_str(pack, Some("ox-1"));
        assert!(decoded.readings.is_empty());
        assert_eq!(reasons(&decoded), vec![RejectReason::DeviceMismatch]);
        assert_eq!(decoded.rejections[0].raw.as_ref(), pack.as_bytes());
        // A device name Thuiswacht cannot use.
        let decoded = decode_str(r#"[{"bn":"a/b/","n":"spo2","v":97}]"#, None);
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert!(decoded.rejections[0]
            .detail
            .starts_with("invalid device id"));
    }

    #[test]
    fn bad_records_are_rejected_one_by_one() {
        use RejectReason::*;
        // The base value records come last: `bv` holds for every later record.
        let pack = r#"[
            {"bn":"ox-4/","bt":1.7637e9,"n":"spo2","u":"%","v":97},
            {"n":"mood","v":3},
            {"n":"spo2","u":"furlong","v":97},
            {"n":"spo2","vs":"97"},
            {"n":"spo2","vb":true},
            {"n":"spo2","vd":"aGkgCg"},
            {"n":"heart_rate","s":4000},
            {"n":"heart_rate","v":70,"s":3},
            {"n":"steps","s":4312,"u":"{steps}"},
            {"n":"steps","v":120,"s":4312},
            {"n":"spo2","v":97,"vs":"97"},
            {"n":"spo2"},
            {"n":"spo2","v":"96"},
            {"n":"spo2 %","v":95},
            {"bv":1e308,"n":"spo2","v":1e308},
            {"bv":0,"n":"spo2","v":97,"t":1e300},
            {"n":"heart_rate","v":64}
        ]"#;
        let decoded = decode_str(pack, Some("ox-4"));
        let got: Vec<_> = decoded
            .readings
            .iter()
            .map(|r| (r.metric, r.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (Metric::Spo2, 97.0),
                (Metric::Steps, 4312.0),
                (Metric::Steps, 120.0),
                (Metric::HeartRate, 64.0),
            ]
        );
        let mut expected = vec![UnknownMetric, UnknownUnit];
        expected.extend([MalformedPayload; 11]);
        assert_eq!(reasons(&decoded), expected);
        let details: Vec<_> = decoded
            .rejections
            .iter()
            .map(|r| r.detail.as_str())
            .collect();
        assert_eq!(details[0], "unknown metric \"mood\"");
        assert_eq!(details[1], "unknown unit \"furlong\" for spo2");
        assert!(
            details[2..5].iter().all(|d| d.contains("non-numeric")),
            "{details:?}"
        );
        assert!(
            details[5].contains("only accepted for steps"),
            "{}",
            details[5]
        );
        assert!(
            details[6].contains("only accepted for steps"),
            "{}",
            details[6]
        );
        assert!(details[7].contains("more than one value"), "{}", details[7]);
        assert!(details[8].contains("has no value"), "{}", details[8]);
        assert!(
            details[9].starts_with("invalid SenML record"),
            "{}",
            details[9]
        );
        assert!(
            details[10].contains("not a valid SenML name"),
            "{}",
            details[10]
        );
        assert!(
            details[11].contains("not a finite number"),
            "{}",
            details[11]
        );
        assert!(
            details[12].contains("not a representable instant"),
            "{}",
            details[12]
        );
        // A record that did not parse is quarantined as sent; others resolved.
        assert_eq!(
            decoded.rejections[9].raw.as_ref(),
            br#"{"n":"spo2","v":"96"}"#
        );
        let raw: serde_json::Value = serde_json::from_slice(&decoded.rejections[0].raw).unwrap();
        assert_eq!(
            raw,
            serde_json::json!({"n":"ox-4/mood","t":1.7637e9,"v":3.0})
        );
        assert!(decoded
            .rejections
            .iter()
            .all(|r| r.device_id.as_deref() == Some("ox-4")));
        // Every good reading kept the base time of the first record.
        assert!(decoded.readings.iter().all(|r| r.ts == seconds(1.7637e9)));
    }

    #[test]
    fn a_record_that_does_not_parse_keeps_its_base_fields() {
        let pack = r#"[{"bn":"ox-6/","bt":1.7637e9,"n":"spo2","v":"high"},{"n":"spo2","v":95}]"#;
        let decoded = decode_str(pack, None);
        assert_eq!(reasons(&decoded), vec![RejectReason::MalformedPayload]);
        assert_eq!(decoded.readings.len(), 1);
        assert_eq!(decoded.readings[0].device_id.as_str(), "ox-6");
        assert_eq!(decoded.readings[0].ts, seconds(1.7637e9));
    }

    #[test]
    fn unreadable_packs_are_one_rejection() {
        for pack in [
            r#"[{"n":"a/spo2","v":1},"#,
            r#"[{"n":"a/spo2","v":1}, 42]"#,
            r#"[{"bn":7,"n":"spo2","v":1}]"#,
            r#"[{"n":"a/spo2","v":1,"v":2,"bt":1,"bt":2}]"#,
            r#"{"n":"a/spo2","v":1}"#,
        ] {
            let decoded = decode_str(pack, Some("a"));
            assert!(decoded.readings.is_empty(), "{pack}");
            assert_eq!(
                reasons(&decoded),
                vec![RejectReason::MalformedPayload],
                "{pack}"
            );
            assert_eq!(decoded.rejections[0].raw.as_ref(), pack.as_bytes());
        }
    }

    #[test]
    fn escaped_strings_are_read() {
        let pack = r#"[{"bn":"ox-8\/","n":"sp\u006f2","u":"\u0025","v":93}]"#;
        let decoded = decode_str(pack, Some("ox-8"));
        assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
        assert_eq!(decoded.readings[0].metric, Metric::Spo2);
        assert_eq!(decoded.readings[0].unit, Unit::Percent);
    }
}
