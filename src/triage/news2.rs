//! NEWS2, the National Early Warning Score 2 (Royal College of Physicians,
//! 2017), over one set of vital signs. The chart in DESIGN §4 is the arbiter.
//!
//! In: a [`VitalSet`], where any parameter may be absent because at home not
//! everything is measured. Out: a [`Score`] with the aggregate, the RCP
//! clinical-risk [`Band`], one sub-score per present parameter, and the
//! missing parameters named. A partial score is never presented as complete
//! and a missing value never counts as normal without saying so: it is listed
//! in [`Score::missing`] and [`Score::complete`] is false.
//!
//! [`score`] is pure and allocates nothing (the triage engine calls it per
//! reading); [`score_json_line`] and [`run_jsonl`] adapt it to JSON lines for
//! the command line.
//!
//! # Rounding rule for real-valued input
//!
//! The chart is written in whole numbers (respiration rate, SpO2, systolic
//! pressure, pulse) and in tenths of a degree (temperature), which leaves gaps
//! such as 38.0–38.1 °C. Home devices send decimals, so every value is first
//! rounded half up to the chart's resolution and only then banded:
//!
//! - respiration rate, SpO2, systolic pressure and pulse: to the nearest whole
//!   number, halves up (91.5 % → 92, 91.4 % → 91);
//! - temperature: to the nearest 0.1 °C, halves up (38.05 → 38.1 → 1 point,
//!   38.04 → 38.0 → 0 points).
//!
//! "Halves up" is about the decimal the device wrote: 38.05 is stored as
//! 38.04999… in binary, so a value within [`HALF_STEP_SLACK`] of a half step
//! counts as the half step. Non-finite values (NaN, infinities) are not
//! measurements and count as missing.

use std::io::{BufRead, Write};
use std::iter::FusedIterator;

use serde::ser::{Serialize, Serializer};
use serde::Deserialize;

/// Slack, in units of the rounding step, within which a value counts as lying
/// exactly on a half step. It absorbs the binary representation error of a
/// decimal (about 1e-14 at these magnitudes) and is far below any device's
/// resolution.
pub const HALF_STEP_SLACK: f64 = 1e-9;

/// Level of consciousness on the ACVPU scale; serialized as its letter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum Consciousness {
    #[serde(rename = "A")]
    Alert,
    /// New confusion (delirium); long-standing confusion from dementia is not new.
    #[serde(rename = "C")]
    NewConfusion,
    #[serde(rename = "V")]
    Voice,
    #[serde(rename = "P")]
    Pain,
    #[serde(rename = "U")]
    Unresponsive,
}

impl Consciousness {
    /// Returns the level as stored in a reading of
    /// [`Metric::Consciousness`](crate::domain::Metric::Consciousness):
    /// 0 = A, 1 = C, 2 = V, 3 = P, 4 = U.
    pub const fn level(self) -> u8 {
        match self {
            Consciousness::Alert => 0,
            Consciousness::NewConfusion => 1,
            Consciousness::Voice => 2,
            Consciousness::Pain => 3,
            Consciousness::Unresponsive => 4,
        }
    }

    /// Returns the consciousness of a stored level, `None` when it is no level.
    pub fn from_level(level: f64) -> Option<Consciousness> {
        if level.fract() != 0.0 {
            return None;
        }
        match level as i64 {
            0 => Some(Consciousness::Alert),
            1 => Some(Consciousness::NewConfusion),
            2 => Some(Consciousness::Voice),
            3 => Some(Consciousness::Pain),
            4 => Some(Consciousness::Unresponsive),
            _ => None,
        }
    }
}

/// Which SpO2 row of the chart applies; serialized as 1 or 2.
///
/// Scale 2 is only for patients with a prescribed target of 88–92 %, such as
/// hypercapnic COPD (a protocol's `news2_scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum SpO2Scale {
    #[default]
    One,
    Two,
}

impl TryFrom<u8> for SpO2Scale {
    type Error = News2InputError;

    fn try_from(scale: u8) -> Result<SpO2Scale, News2InputError> {
        match scale {
            1 => Ok(SpO2Scale::One),
            2 => Ok(SpO2Scale::Two),
            other => Err(News2InputError::Scale(other)),
        }
    }
}

impl From<SpO2Scale> for u8 {
    fn from(scale: SpO2Scale) -> u8 {
        match scale {
            SpO2Scale::One => 1,
            SpO2Scale::Two => 2,
        }
    }
}

/// The vital signs NEWS2 is computed from; `None` means not measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VitalSet {
    /// Breaths per minute.
    pub respiration_rate: Option<f64>,
    /// Peripheral oxygen saturation, %.
    pub spo2: Option<f64>,
    /// Whether the patient breathes supplemental oxygen (true) or air (false).
    pub on_oxygen: Option<bool>,
    /// Systolic blood pressure, mmHg.
    pub systolic: Option<f64>,
    /// Pulse, beats per minute.
    pub pulse: Option<f64>,
    pub consciousness: Option<Consciousness>,
    /// Body temperature, °C.
    pub temperature: Option<f64>,
    /// The SpO2 row of the chart that applies to this patient.
    pub scale: SpO2Scale,
}

/// One row of the NEWS2 chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parameter {
    RespirationRate,
    Spo2,
    AirOrOxygen,
    Systolic,
    Pulse,
    Consciousness,
    Temperature,
}

impl Parameter {
    /// Every parameter, in chart order.
    pub const ALL: [Parameter; 7] = [
        Parameter::RespirationRate,
        Parameter::Spo2,
        Parameter::AirOrOxygen,
        Parameter::Systolic,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];

    /// Returns the stable snake_case name used in JSON and explanations.
    pub const fn code(self) -> &'static str {
        match self {
            Parameter::RespirationRate => "respiration_rate",
            Parameter::Spo2 => "spo2",
            Parameter::AirOrOxygen => "air_or_oxygen",
            Parameter::Systolic => "systolic_bp",
            Parameter::Pulse => "pulse",
            Parameter::Consciousness => "consciousness",
            Parameter::Temperature => "temperature",
        }
    }

    /// Position in [`Parameter::ALL`].
    const fn index(self) -> usize {
        self as usize
    }

    const fn bit(self) -> u8 {
        1 << self.index()
    }
}

impl std::fmt::Display for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Parameter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// A set of parameters as a bitset, so scoring never allocates; iterates and
/// serializes (as a list of codes) in chart order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ParameterSet(u8);

impl ParameterSet {
    /// The empty set.
    pub const EMPTY: ParameterSet = ParameterSet(0);
    /// All seven parameters.
    pub const ALL: ParameterSet = ParameterSet((1 << Parameter::ALL.len()) - 1);

    /// Adds a parameter to the set.
    pub fn insert(&mut self, parameter: Parameter) {
        self.0 |= parameter.bit();
    }

    /// Returns whether the set holds `parameter`.
    pub const fn contains(self, parameter: Parameter) -> bool {
        self.0 & parameter.bit() != 0
    }

    /// Returns the number of parameters in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Returns whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Returns the parameters not in the set.
    pub const fn complement(self) -> ParameterSet {
        ParameterSet(!self.0 & ParameterSet::ALL.0)
    }

    /// Returns the parameters of the set in chart order.
    pub const fn iter(self) -> ParameterSetIter {
        ParameterSetIter { remaining: self.0 }
    }
}

impl std::fmt::Debug for ParameterSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<Parameter> for ParameterSet {
    fn from_iter<I: IntoIterator<Item = Parameter>>(parameters: I) -> ParameterSet {
        let mut set = ParameterSet::EMPTY;
        for parameter in parameters {
            set.insert(parameter);
        }
        set
    }
}

impl IntoIterator for ParameterSet {
    type Item = Parameter;
    type IntoIter = ParameterSetIter;

    fn into_iter(self) -> ParameterSetIter {
        self.iter()
    }
}

impl Serialize for ParameterSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Iterator over a [`ParameterSet`], in chart order.
#[derive(Debug, Clone)]
pub struct ParameterSetIter {
    remaining: u8,
}

impl Iterator for ParameterSetIter {
    type Item = Parameter;

    fn next(&mut self) -> Option<Parameter> {
        if self.remaining == 0 {
            return None;
        }
        let index = self.remaining.trailing_zeros() as usize;
        // Clears the lowest set bit, the one just yielded.
        self.remaining &= self.remaining - 1;
        Some(Parameter::ALL[index])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.remaining.count_ones() as usize;
        (len, Some(len))
    }
}

impl ExactSizeIterator for ParameterSetIter {}
impl FusedIterator for ParameterSetIter {}

/// One sub-score per parameter, `None` where the parameter was not measured;
/// serializes as an object holding only the present ones, in chart order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Subscores([Option<u8>; 7]);

impl Subscores {
    /// Returns the sub-score of `parameter`, if it was measured.
    pub const fn get(&self, parameter: Parameter) -> Option<u8> {
        self.0[parameter.index()]
    }

    /// Returns the measured parameters.
    pub fn present(&self) -> ParameterSet {
        self.iter().map(|(parameter, _)| parameter).collect()
    }

    /// Returns the present sub-scores with their parameters, in chart order.
    pub fn iter(&self) -> impl Iterator<Item = (Parameter, u8)> + '_ {
        Parameter::ALL
            .into_iter()
            .filter_map(|parameter| Some((parameter, self.get(parameter)?)))
    }

    fn set(&mut self, parameter: Parameter, subscore: u8) {
        debug_assert!(subscore <= 3, "the chart scores 0 to 3");
        self.0[parameter.index()] = Some(subscore);
    }
}

impl Serialize for Subscores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.iter()
                .map(|(parameter, subscore)| (parameter.code(), subscore)),
        )
    }
}

/// The RCP clinical-risk band of a score, in rank order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Band {
    /// Aggregate 0–4 and no single parameter at 3: ward-based response.
    Low,
    /// Aggregate 0–4 with a 3 in some parameter: urgent ward-based review.
    LowMedium,
    /// Aggregate 5–6: key threshold for urgent response.
    Medium,
    /// Aggregate 7 or more: emergency response.
    High,
}

impl Band {
    /// Returns the band for an aggregate and the highest single sub-score.
    ///
    /// A single 3 only matters below 5: from there the aggregate already
    /// places the patient in medium or high, which rank above low-medium.
    pub const fn from_aggregate(total: u8, highest_subscore: u8) -> Band {
        match total {
            7.. => Band::High,
            5..=6 => Band::Medium,
            _ if highest_subscore >= 3 => Band::LowMedium,
            _ => Band::Low,
        }
    }
}

/// A NEWS2 result; serializes as
/// `{"total":…,"band":…,"subscores":{…},"missing":[…],"complete":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Score {
    /// Sum of the present sub-scores; missing parameters add nothing.
    pub total: u8,
    pub band: Band,
    pub subscores: Subscores,
    /// Parameters that were not measured, named so nobody reads them as normal.
    pub missing: ParameterSet,
    /// True only when all seven parameters were measured.
    pub complete: bool,
}

impl Score {
    fn from_subscores(subscores: Subscores) -> Score {
        let mut total = 0;
        let mut highest_subscore = 0;
        for (_, subscore) in subscores.iter() {
            total += subscore;
            highest_subscore = highest_subscore.max(subscore);
        }
        let missing = subscores.present().complement();
        Score {
            total,
            band: Band::from_aggregate(total, highest_subscore),
            subscores,
            missing,
            complete: missing.is_empty(),
        }
    }

    /// Returns the highest present sub-score, 0 when nothing was measured.
    pub fn highest_subscore(&self) -> u8 {
        self.subscores
            .iter()
            .map(|(_, subscore)| subscore)
            .max()
            .unwrap_or(0)
    }
}

/// Scores a set of vital signs on the NEWS2 chart, after the rounding rule of
/// the module docs.
///
/// On scale 2 with SpO2 ≥ 93 % and `on_oxygen` unknown, SpO2 is scored as on
/// air (the chart's 0) and air-or-oxygen is listed as missing, so the result
/// is visibly incomplete rather than silently low.
pub fn score(vitals: &VitalSet) -> Score {
    let measured = |value: Option<f64>| value.filter(|value| value.is_finite());
    let mut subscores = Subscores::default();
    if let Some(rate) = measured(vitals.respiration_rate) {
        subscores.set(Parameter::RespirationRate, respiration_rate_score(rate));
    }
    if let Some(saturation) = measured(vitals.spo2) {
        subscores.set(
            Parameter::Spo2,
            spo2_score(saturation, vitals.scale, vitals.on_oxygen),
        );
    }
    if let Some(on_oxygen) = vitals.on_oxygen {
        subscores.set(Parameter::AirOrOxygen, air_or_oxygen_score(on_oxygen));
    }
    if let Some(systolic) = measured(vitals.systolic) {
        subscores.set(Parameter::Systolic, systolic_score(systolic));
    }
    if let Some(pulse) = measured(vitals.pulse) {
        subscores.set(Parameter::Pulse, pulse_score(pulse));
    }
    if let Some(consciousness) = vitals.consciousness {
        subscores.set(Parameter::Consciousness, consciousness_score(consciousness));
    }
    if let Some(temperature) = measured(vitals.temperature) {
        subscores.set(Parameter::Temperature, temperature_score(temperature));
    }
    Score::from_subscores(subscores)
}

/// Rounds half up to a whole number; `as` saturates, so huge values stay in
/// the chart's outermost band.
fn round_to_whole(value: f64) -> i32 {
    (value + 0.5 + HALF_STEP_SLACK).floor() as i32
}

/// Rounds half up to tenths and returns the number of tenths.
fn round_to_tenths(value: f64) -> i32 {
    (value * 10.0 + 0.5 + HALF_STEP_SLACK).floor() as i32
}

/// Returns the respiration-rate sub-score (breaths per minute, rounded half
/// up to a whole number). Expects a finite value; [`score`] filters others.
pub fn respiration_rate_score(breaths_per_minute: f64) -> u8 {
    match round_to_whole(breaths_per_minute) {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        25.. => 3,
    }
}

/// Returns the SpO2 sub-score (%, rounded half up to a whole number) on the
/// given scale. Oxygen only matters on scale 2 at 93 % or more, where unknown
/// counts as air. Expects a finite value; [`score`] filters others.
pub fn spo2_score(percent: f64, scale: SpO2Scale, on_oxygen: Option<bool>) -> u8 {
    let percent = round_to_whole(percent);
    match scale {
        SpO2Scale::One => match percent {
            ..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            96.. => 0,
        },
        // On scale 2 a saturation above target only scores on oxygen: the
        // patient is then over-oxygenated, a risk of hypercapnia.
        SpO2Scale::Two => match (percent, on_oxygen == Some(true)) {
            (..=83, _) => 3,
            (84..=85, _) => 2,
            (86..=87, _) => 1,
            (88..=92, _) => 0,
            (93.., false) => 0,
            (93..=94, true) => 1,
            (95..=96, true) => 2,
            (97.., true) => 3,
        },
    }
}

/// Returns the air-or-oxygen sub-score: 2 on supplemental oxygen, 0 on air.
pub const fn air_or_oxygen_score(on_oxygen: bool) -> u8 {
    if on_oxygen {
        2
    } else {
        0
    }
}

/// Returns the systolic blood pressure sub-score (mmHg, rounded half up to a
/// whole number). Expects a finite value; [`score`] filters others.
pub fn systolic_score(mmhg: f64) -> u8 {
    match round_to_whole(mmhg) {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        220.. => 3,
    }
}

/// Returns the pulse sub-score (beats per minute, rounded half up to a whole
/// number). Expects a finite value; [`score`] filters others.
pub fn pulse_score(beats_per_minute: f64) -> u8 {
    match round_to_whole(beats_per_minute) {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        131.. => 3,
    }
}

/// Returns the consciousness sub-score: 0 when alert, 3 for new confusion,
/// voice, pain or unresponsive.
pub const fn consciousness_score(consciousness: Consciousness) -> u8 {
    match consciousness {
        Consciousness::Alert => 0,
        Consciousness::NewConfusion
        | Consciousness::Voice
        | Consciousness::Pain
        | Consciousness::Unresponsive => 3,
    }
}

/// Returns the temperature sub-score (°C, rounded half up to 0.1 °C, so
/// 38.05 scores as 38.1). Expects a finite value; [`score`] filters others.
pub fn temperature_score(celsius: f64) -> u8 {
    match round_to_tenths(celsius) {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        391.. => 2,
    }
}

/// Why a JSON line could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum News2InputError {
    #[error("invalid vital set: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{field} must be a finite, non-negative number, got {value}")]
    Value { field: &'static str, value: f64 },
    #[error("scale must be 1 or 2, got {0}")]
    Scale(u8),
}

/// The command line's input shape: short field names, any of them absent or
/// null, nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VitalLine {
    rr: Option<f64>,
    spo2: Option<f64>,
    on_oxygen: Option<bool>,
    sbp: Option<f64>,
    pulse: Option<f64>,
    acvpu: Option<Consciousness>,
    temp: Option<f64>,
    scale: Option<SpO2Scale>,
}

impl TryFrom<VitalLine> for VitalSet {
    type Error = News2InputError;

    fn try_from(line: VitalLine) -> Result<VitalSet, News2InputError> {
        Ok(VitalSet {
            respiration_rate: checked("rr", line.rr)?,
            spo2: checked("spo2", line.spo2)?,
            on_oxygen: line.on_oxygen,
            systolic: checked("sbp", line.sbp)?,
            pulse: checked("pulse", line.pulse)?,
            consciousness: line.acvpu,
            temperature: checked("temp", line.temp)?,
            scale: line.scale.unwrap_or_default(),
        })
    }
}

fn checked(field: &'static str, value: Option<f64>) -> Result<Option<f64>, News2InputError> {
    match value {
        Some(number) if !number.is_finite() || number < 0.0 => Err(News2InputError::Value {
            field,
            value: number,
        }),
        _ => Ok(value),
    }
}

/// Scores one JSON line such as
/// `{"rr":18,"spo2":96,"on_oxygen":false,"sbp":125,"pulse":72,"acvpu":"A","temp":36.8,"scale":1}`
/// and returns the [`Score`] as one line of JSON.
///
/// # Errors
/// Returns an error when the line is not such an object: unknown fields,
/// wrong types, negative or non-finite values, an ACVPU other than A, C, V,
/// P or U, or a scale other than 1 or 2.
///
/// # Panics
/// Never: a [`Score`] holds only numbers, strings and booleans, which always
/// serialize.
pub fn score_json_line(line: &str) -> Result<String, News2InputError> {
    let vitals = VitalSet::try_from(serde_json::from_str::<VitalLine>(line)?)?;
    Ok(serde_json::to_string(&score(&vitals)).expect("a score always serializes"))
}

/// Scores JSON lines from `input` (see [`score_json_line`]) and writes one
/// line per non-blank input line to `output`: the score, or
/// `{"error":"…"}` when the line cannot be scored, so output and input stay
/// aligned. Blank lines are skipped without output. Returns the number of
/// lines scored or answered with an error.
///
/// # Errors
/// Returns the first read or write error. A line that is not UTF-8 is a bad
/// line, not a read error.
pub fn run_jsonl(mut input: impl BufRead, mut output: impl Write) -> std::io::Result<usize> {
    let mut buffer = Vec::new();
    let mut processed = 0;
    loop {
        buffer.clear();
        if input.read_until(b'\n', &mut buffer)? == 0 {
            break;
        }
        let answer = match std::str::from_utf8(&buffer) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => score_json_line(line.trim()).unwrap_or_else(error_line),
            Err(_) => error_line("line is not valid UTF-8"),
        };
        output.write_all(answer.as_bytes())?;
        output.write_all(b"\n")?;
        processed += 1;
    }
    output.flush()?;
    Ok(processed)
}

fn error_line(error: impl std::fmt::Display) -> String {
    serde_json::json!({ "error": error.to_string() }).to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Asserts a sub-score function against `(value, expected)` rows.
    fn assert_table(name: &str, subscore: impl Fn(f64) -> u8, table: &[(f64, u8)]) {
        for &(value, expected) in table {
            assert_eq!(subscore(value), expected, "{name} {value}");
        }
    }

    #[test]
    fn respiration_rate_band_edges_follow_the_chart() {
        let table = [
            (0.0, 3),
            (8.0, 3),
            (9.0, 1),
            (11.0, 1),
            (12.0, 0),
            (20.0, 0),
            (21.0, 2),
            (24.0, 2),
            (25.0, 3),
            (60.0, 3),
        ];
        assert_table("rr", respiration_rate_score, &table);
    }

    #[test]
    fn spo2_scale_1_band_edges_follow_the_chart_whatever_the_oxygen() {
        let table = [
            (70.0, 3),
            (91.0, 3),
            (92.0, 2),
            (93.0, 2),
            (94.0, 1),
            (95.0, 1),
            (96.0, 0),
            (100.0, 0),
        ];
        for on_oxygen in [None, Some(false), Some(true)] {
            let subscore = |percent| spo2_score(percent, SpO2Scale::One, on_oxygen);
            assert_table(&format!("spo2 scale 1 {on_oxygen:?}"), subscore, &table);
        }
    }

    #[test]
    fn spo2_scale_2_band_edges_on_air_follow_the_chart() {
        let table = [
            (70.0, 3),
            (83.0, 3),
            (84.0, 2),
            (85.0, 2),
            (86.0, 1),
            (87.0, 1),
            (88.0, 0),
            (92.0, 0),
            (93.0, 0),
            (96.0, 0),
            (97.0, 0),
            (100.0, 0),
        ];
        let subscore = |percent| spo2_score(percent, SpO2Scale::Two, Some(false));
        assert_table("spo2 scale 2 on air", subscore, &table);
    }

    #[test]
    fn spo2_scale_2_band_edges_on_oxygen_follow_the_chart() {
        let table = [
            (70.0, 3),
            (83.0, 3),
            (84.0, 2),
            (85.0, 2),
            (86.0, 1),
            (87.0, 1),
            (88.0, 0),
            (92.0, 0),
            (93.0, 1),
            (94.0, 1),
            (95.0, 2),
            (96.0, 2),
            (97.0, 3),
            (100.0, 3),
        ];
        let subscore = |percent| spo2_score(percent, SpO2Scale::Two, Some(true));
        assert_table("spo2 scale 2 on oxygen", subscore, &table);
    }

    #[test]
    fn spo2_scale_2_with_unknown_oxygen_scores_as_air_but_reports_oxygen_missing() {
        // Arrange: everything measured except air or oxygen.
        let vitals = VitalSet {
            respiration_rate: Some(16.0),
            spo2: Some(97.0),
            on_oxygen: None,
            systolic: Some(130.0),
            pulse: Some(70.0),
            consciousness: Some(Consciousness::Alert),
            temperature: Some(37.0),
            scale: SpO2Scale::Two,
        };

        // Act
        let result = score(&vitals);

        // Assert
        assert_eq!(result.subscores.get(Parameter::Spo2), Some(0));
        assert_eq!(result.subscores.get(Parameter::AirOrOxygen), None);
        assert_eq!(
            result.missing.iter().collect::<Vec<_>>(),
            [Parameter::AirOrOxygen]
        );
        assert!(!result.complete);
    }

    #[test]
    fn air_or_oxygen_scores_two_on_oxygen_and_zero_on_air() {
        assert_eq!(air_or_oxygen_score(true), 2);
        assert_eq!(air_or_oxygen_score(false), 0);
    }

    #[test]
    fn systolic_band_edges_follow_the_chart() {
        let table = [
            (50.0, 3),
            (90.0, 3),
            (91.0, 2),
            (100.0, 2),
            (101.0, 1),
            (110.0, 1),
            (111.0, 0),
            (219.0, 0),
            (220.0, 3),
            (280.0, 3),
        ];
        assert_table("systolic", systolic_score, &table);
    }

    #[test]
    fn pulse_band_edges_follow_the_chart() {
        let table = [
            (20.0, 3),
            (40.0, 3),
            (41.0, 1),
            (50.0, 1),
            (51.0, 0),
            (90.0, 0),
            (91.0, 1),
            (110.0, 1),
            (111.0, 2),
            (130.0, 2),
            (131.0, 3),
            (220.0, 3),
        ];
        assert_table("pulse", pulse_score, &table);
    }

    #[test]
    fn consciousness_scores_zero_only_when_alert() {
        assert_eq!(consciousness_score(Consciousness::Alert), 0);
        for level in [
            Consciousness::NewConfusion,
            Consciousness::Voice,
            Consciousness::Pain,
            Consciousness::Unresponsive,
        ] {
            assert_eq!(consciousness_score(level), 3, "{level:?}");
        }
    }

    #[test]
    fn temperature_band_edges_follow_the_chart() {
        let table = [
            (30.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (42.0, 2),
        ];
        assert_table("temperature", temperature_score, &table);
    }

    #[test]
    fn temperature_rounds_half_up_to_one_decimal_before_banding() {
        let table = [
            (35.04, 3),
            (35.05, 1),
            (36.04, 1),
            (36.05, 0),
            (38.04, 0),
            (38.05, 1),
            (38.049, 0),
            (39.04, 1),
            (39.05, 2),
        ];
        assert_table("temperature", temperature_score, &table);
    }

    #[test]
    fn whole_number_parameters_round_half_up_before_banding() {
        assert_table(
            "rr",
            respiration_rate_score,
            &[(8.49, 3), (8.5, 1), (20.49, 0), (20.5, 2)],
        );
        let scale_1 = |percent| spo2_score(percent, SpO2Scale::One, None);
        assert_table(
            "spo2",
            scale_1,
            &[(91.4, 3), (91.5, 2), (91.6, 2), (95.5, 0)],
        );
        let scale_2_on_oxygen = |percent| spo2_score(percent, SpO2Scale::Two, Some(true));
        assert_table(
            "spo2 scale 2",
            scale_2_on_oxygen,
            &[(92.49, 0), (92.5, 1), (96.5, 3)],
        );
        assert_table(
            "systolic",
            systolic_score,
            &[(90.49, 3), (90.5, 2), (219.5, 3)],
        );
        assert_table("pulse", pulse_score, &[(40.4, 3), (40.5, 1), (130.5, 3)]);
    }

    /// A set with every parameter normal, to change one or two at a time.
    fn normal_vitals() -> VitalSet {
        VitalSet {
            respiration_rate: Some(16.0),
            spo2: Some(97.0),
            on_oxygen: Some(false),
            systolic: Some(130.0),
            pulse: Some(70.0),
            consciousness: Some(Consciousness::Alert),
            temperature: Some(37.0),
            scale: SpO2Scale::One,
        }
    }

    #[test]
    fn aggregate_bands_follow_the_rcp_thresholds() {
        let cases = [
            // Total 4 from two 2s: low.
            (
                VitalSet {
                    respiration_rate: Some(21.0),
                    pulse: Some(111.0),
                    ..normal_vitals()
                },
                4,
                Band::Low,
            ),
            // A single 3 and nothing else: low-medium.
            (
                VitalSet {
                    consciousness: Some(Consciousness::Voice),
                    ..normal_vitals()
                },
                3,
                Band::LowMedium,
            ),
            // A single 3 with total 4: still low-medium.
            (
                VitalSet {
                    systolic: Some(90.0),
                    pulse: Some(95.0),
                    ..normal_vitals()
                },
                4,
                Band::LowMedium,
            ),
            // Total 5 without any 3: medium.
            (
                VitalSet {
                    respiration_rate: Some(21.0),
                    pulse: Some(111.0),
                    temperature: Some(38.5),
                    ..normal_vitals()
                },
                5,
                Band::Medium,
            ),
            // Total 6: medium.
            (
                VitalSet {
                    respiration_rate: Some(21.0),
                    pulse: Some(111.0),
                    temperature: Some(39.5),
                    ..normal_vitals()
                },
                6,
                Band::Medium,
            ),
            // A single 3 with total 5 stays medium.
            (
                VitalSet {
                    consciousness: Some(Consciousness::NewConfusion),
                    respiration_rate: Some(22.0),
                    ..normal_vitals()
                },
                5,
                Band::Medium,
            ),
            // Total 7: high.
            (
                VitalSet {
                    respiration_rate: Some(21.0),
                    pulse: Some(111.0),
                    on_oxygen: Some(true),
                    temperature: Some(38.5),
                    ..normal_vitals()
                },
                7,
                Band::High,
            ),
            // A single 3 with total 7 stays high.
            (
                VitalSet {
                    consciousness: Some(Consciousness::Pain),
                    respiration_rate: Some(22.0),
                    pulse: Some(115.0),
                    ..normal_vitals()
                },
                7,
                Band::High,
            ),
        ];
        for (vitals, total, band) in cases {
            let result = score(&vitals);
            assert_eq!((result.total, result.band), (total, band), "{vitals:?}");
            assert!(result.complete);
        }
    }

    #[test]
    fn band_ranks_from_low_to_high() {
        assert!(Band::Low < Band::LowMedium);
        assert!(Band::LowMedium < Band::Medium);
        assert!(Band::Medium < Band::High);
        assert_eq!(Band::from_aggregate(0, 0), Band::Low);
        assert_eq!(Band::from_aggregate(3, 3), Band::LowMedium);
        assert_eq!(Band::from_aggregate(4, 2), Band::Low);
    }

    #[test]
    fn empty_vital_set_is_incomplete_with_every_parameter_missing() {
        let result = score(&VitalSet::default());

        assert_eq!(result.total, 0);
        assert_eq!(result.band, Band::Low);
        assert_eq!(result.subscores.iter().count(), 0);
        assert_eq!(result.missing, ParameterSet::ALL);
        assert!(!result.complete);
    }

    #[test]
    fn partial_vital_set_names_every_missing_parameter() {
        // Arrange: a pulse oximeter alone.
        let vitals = VitalSet {
            spo2: Some(95.0),
            pulse: Some(72.0),
            ..VitalSet::default()
        };

        // Act
        let result = score(&vitals);

        // Assert
        assert_eq!(result.total, 1);
        assert!(!result.complete);
        assert_eq!(
            result.missing.iter().collect::<Vec<_>>(),
            [
                Parameter::RespirationRate,
                Parameter::AirOrOxygen,
                Parameter::Systolic,
                Parameter::Consciousness,
                Parameter::Temperature,
            ]
        );
        assert_eq!(
            serde_json::to_value(result).unwrap(),
            json!({
                "total": 1,
                "band": "low",
                "subscores": {"spo2": 1, "pulse": 0},
                "missing": ["respiration_rate", "air_or_oxygen", "systolic_bp", "consciousness", "temperature"],
                "complete": false,
            })
        );
    }

    #[test]
    fn non_finite_values_count_as_missing_not_as_scores() {
        let vitals = VitalSet {
            respiration_rate: Some(f64::NAN),
            temperature: Some(f64::INFINITY),
            ..normal_vitals()
        };

        let result = score(&vitals);

        assert_eq!(result.subscores.get(Parameter::RespirationRate), None);
        assert!(result.missing.contains(Parameter::RespirationRate));
        assert!(result.missing.contains(Parameter::Temperature));
        assert_eq!(result.missing.len(), 2);
        assert!(!result.complete);
    }

    #[test]
    fn parameter_codes_are_stable_and_sets_iterate_in_chart_order() {
        let codes: Vec<_> = Parameter::ALL
            .iter()
            .map(|parameter| parameter.code())
            .collect();
        assert_eq!(
            codes,
            [
                "respiration_rate",
                "spo2",
                "air_or_oxygen",
                "systolic_bp",
                "pulse",
                "consciousness",
                "temperature"
            ]
        );
        let set: ParameterSet = [Parameter::Temperature, Parameter::RespirationRate]
            .into_iter()
            .collect();
        assert_eq!(set.iter().len(), 2);
        assert_eq!(
            serde_json::to_value(set).unwrap(),
            json!(["respiration_rate", "temperature"])
        );
        assert_eq!(set.complement().len(), 5);
        assert!(ParameterSet::EMPTY.is_empty());
        assert_eq!(format!("{set:?}"), "{RespirationRate, Temperature}");
    }

    #[test]
    fn consciousness_and_scale_use_the_chart_notation_in_json() {
        assert_eq!(
            serde_json::to_value(Consciousness::NewConfusion).unwrap(),
            json!("C")
        );
        assert_eq!(
            serde_json::from_value::<Consciousness>(json!("U")).unwrap(),
            Consciousness::Unresponsive
        );
        assert_eq!(serde_json::to_value(SpO2Scale::Two).unwrap(), json!(2));
        assert!(serde_json::from_value::<SpO2Scale>(json!(3)).is_err());
        assert_eq!(
            serde_json::to_value(Band::LowMedium).unwrap(),
            json!("low-medium")
        );
    }

    #[test]
    fn json_line_with_a_full_vital_set_gives_the_score_object() {
        let line = r#"{"rr":22,"spo2":95,"on_oxygen":false,"sbp":105,"pulse":95,"acvpu":"A","temp":38.3,"scale":1}"#;

        let answer = score_json_line(line).unwrap();

        // The exact text, since scripts read it: field order is part of the shape.
        assert_eq!(
            answer,
            r#"{"total":6,"band":"medium","subscores":{"respiration_rate":2,"spo2":1,"air_or_oxygen":0,"systolic_bp":1,"pulse":1,"consciousness":0,"temperature":1},"missing":[],"complete":true}"#
        );
    }

    #[test]
    fn json_line_on_scale_2_and_oxygen_scores_high_saturation() {
        let line = r#"{"rr":18,"spo2":97,"on_oxygen":true,"sbp":130,"pulse":80,"acvpu":"A","temp":37.0,"scale":2}"#;

        let answer: serde_json::Value =
            serde_json::from_str(&score_json_line(line).unwrap()).unwrap();

        assert_eq!(answer["total"], json!(5));
        assert_eq!(answer["band"], json!("medium"));
        assert_eq!(answer["subscores"]["spo2"], json!(3));
    }

    #[test]
    fn empty_json_object_scores_zero_with_all_seven_missing() {
        let answer: serde_json::Value =
            serde_json::from_str(&score_json_line("{}").unwrap()).unwrap();

        assert_eq!(
            answer,
            json!({
                "total": 0,
                "band": "low",
                "subscores": {},
                "missing": ["respiration_rate", "spo2", "air_or_oxygen", "systolic_bp", "pulse", "consciousness", "temperature"],
                "complete": false,
            })
        );
    }

    #[test]
    fn null_fields_in_a_json_line_count_as_absent() {
        let with_nulls = r#"{"rr":null,"spo2":96,"on_oxygen":null,"sbp":null,"pulse":null,"acvpu":null,"temp":null,"scale":null}"#;

        assert_eq!(
            score_json_line(with_nulls).unwrap(),
            score_json_line(r#"{"spo2":96}"#).unwrap()
        );
    }

    #[test]
    fn bad_json_lines_are_errors() {
        let bad_lines = [
            r#"{"rr":18,"heart_rate":70}"#,
            r#"{"acvpu":"X"}"#,
            r#"{"acvpu":"a"}"#,
            r#"{"scale":3}"#,
            r#"{"scale":0}"#,
            r#"{"temp":-1}"#,
            r#"{"spo2":"96"}"#,
            r#"{"on_oxygen":1}"#,
            r#"{"pulse":1e400}"#,
            r#"[]"#,
            "not json",
        ];
        for line in bad_lines {
            assert!(score_json_line(line).is_err(), "{line}");
        }
        let error = score_json_line(r#"{"sbp":-5}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "sbp must be a finite, non-negative number, got -5"
        );
    }

    #[test]
    fn jsonl_run_answers_every_non_blank_line_in_order() {
        // Arrange: a good line, a blank line, a bad line, invalid UTF-8, a good line with CRLF.
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"rr\":25}\n\n   \n{\"acvpu\":\"X\"}\n");
        input.extend_from_slice(b"\xff\xfe\n");
        input.extend_from_slice(b"{}\r\n");
        let mut output = Vec::new();

        // Act
        let processed = run_jsonl(input.as_slice(), &mut output).unwrap();

        // Assert
        assert_eq!(processed, 4);
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&output)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["total"], json!(3));
        assert_eq!(lines[0]["band"], json!("low-medium"));
        assert!(lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant"));
        assert_eq!(lines[2], json!({"error": "line is not valid UTF-8"}));
        assert_eq!(lines[3]["complete"], json!(false));
    }

    #[test]
    fn jsonl_run_on_empty_input_writes_nothing() {
        let mut output = Vec::new();

        assert_eq!(run_jsonl(&b""[..], &mut output).unwrap(), 0);
        assert!(output.is_empty());
    }

    fn any_consciousness() -> impl Strategy<Value = Consciousness> {
        prop_oneof![
            Just(Consciousness::Alert),
            Just(Consciousness::NewConfusion),
            Just(Consciousness::Voice),
            Just(Consciousness::Pain),
            Just(Consciousness::Unresponsive),
        ]
    }

    /// Vital sets with realistic (and some alarming) values, each parameter
    /// present or not.
    fn any_vitals() -> impl Strategy<Value = VitalSet> {
        (
            proptest::option::of(0.0..60.0),
            proptest::option::of(60.0..100.0),
            proptest::option::of(any::<bool>()),
            proptest::option::of(50.0..260.0),
            proptest::option::of(20.0..220.0),
            proptest::option::of(any_consciousness()),
            proptest::option::of(30.0..43.0),
            prop_oneof![Just(SpO2Scale::One), Just(SpO2Scale::Two)],
        )
            .prop_map(
                |(
                    respiration_rate,
                    spo2,
                    on_oxygen,
                    systolic,
                    pulse,
                    consciousness,
                    temperature,
                    scale,
                )| {
                    VitalSet {
                        respiration_rate,
                        spo2,
                        on_oxygen,
                        systolic,
                        pulse,
                        consciousness,
                        temperature,
                        scale,
                    }
                },
            )
    }

    /// A sub-score function of one real-valued parameter.
    type SubscoreFn<'a> = &'a dyn Fn(f64) -> u8;

    /// True when `further` lies on the same side of `normal` as `value`, at
    /// least as far away: the chart never scores such a value lower.
    fn further_from(normal: f64, value: f64, further: f64) -> bool {
        (value - normal) * (further - normal) >= 0.0
            && (further - normal).abs() >= (value - normal).abs()
    }

    proptest! {
        #[test]
        fn score_invariants_hold_for_any_vital_set(vitals in any_vitals()) {
            let result = score(&vitals);

            let present: Vec<(Parameter, u8)> = result.subscores.iter().collect();
            let sum: u32 = present.iter().map(|&(_, subscore)| u32::from(subscore)).sum();
            prop_assert_eq!(u32::from(result.total), sum);
            prop_assert!(present.iter().all(|&(_, subscore)| subscore <= 3));

            // The band rule restated from the RCP text, independently of Band::from_aggregate.
            let highest = present.iter().map(|&(_, subscore)| subscore).max().unwrap_or(0);
            let expected_band = if result.total >= 7 {
                Band::High
            } else if result.total >= 5 {
                Band::Medium
            } else if highest == 3 {
                Band::LowMedium
            } else {
                Band::Low
            };
            prop_assert_eq!(result.band, expected_band);
            prop_assert_eq!(result.highest_subscore(), highest);

            for parameter in Parameter::ALL {
                let is_present = result.subscores.get(parameter).is_some();
                prop_assert!(is_present != result.missing.contains(parameter), "{}", parameter);
            }
            prop_assert_eq!(result.missing.len() + present.len(), 7);
            prop_assert_eq!(result.complete, result.missing.is_empty());
            prop_assert_eq!(result.subscores.present(), result.missing.complement());
        }

        #[test]
        fn scores_never_fall_as_values_move_away_from_normal(
            position in 0.0..1.0f64,
            further_position in 0.0..1.0f64,
            on_oxygen in proptest::option::of(any::<bool>()),
        ) {
            let spo2_1 = |percent| spo2_score(percent, SpO2Scale::One, on_oxygen);
            let spo2_2 = |percent| spo2_score(percent, SpO2Scale::Two, on_oxygen);
            // On oxygen, scale 2 is U-shaped around 88–92 %; on air it only rises downwards.
            let spo2_2_normal = if on_oxygen == Some(true) { 90.0 } else { 100.0 };
            // (name, centre of the normal band, realistic range, sub-score)
            let checks: [(&str, f64, (f64, f64), SubscoreFn); 6] = [
                ("rr", 16.0, (0.0, 60.0), &respiration_rate_score),
                ("spo2 scale 1", 100.0, (60.0, 100.0), &spo2_1),
                ("spo2 scale 2", spo2_2_normal, (60.0, 100.0), &spo2_2),
                ("systolic", 160.0, (40.0, 300.0), &systolic_score),
                ("pulse", 70.0, (20.0, 250.0), &pulse_score),
                ("temperature", 37.0, (28.0, 44.0), &temperature_score),
            ];
            for (name, normal, (low, high), subscore) in checks {
                let value = low + position * (high - low);
                let further = low + further_position * (high - low);
                if further_from(normal, value, further) {
                    prop_assert!(
                        subscore(further) >= subscore(value),
                        "{} {} -> {}", name, value, further
                    );
                }
            }
        }

        #[test]
        fn lowering_spo2_on_scale_1_never_lowers_its_subscore(
            vitals in any_vitals(),
            saturation in 60.0..100.0f64,
            drop in 0.0..20.0f64,
        ) {
            let higher = score(&VitalSet { spo2: Some(saturation), scale: SpO2Scale::One, ..vitals });
            let lower = score(&VitalSet { spo2: Some(saturation - drop), scale: SpO2Scale::One, ..vitals });

            prop_assert!(lower.subscores.get(Parameter::Spo2) >= higher.subscores.get(Parameter::Spo2));
            prop_assert!(lower.total >= higher.total);
        }

        #[test]
        fn json_lines_never_panic_and_always_answer_one_line(line in "\\PC{0,80}") {
            let mut output = Vec::new();
            let processed = run_jsonl(line.as_bytes(), &mut output).unwrap();
            let written = std::str::from_utf8(&output).unwrap().lines().count();
            prop_assert_eq!(processed, written);
        }
    }
}
