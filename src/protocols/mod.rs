//! Alert protocols from `alerts/`: one TOML file per protocol, its file stem
//! the protocol id. A protocol holds the rules the triage engine evaluates
//! for the patients who follow it, and the response target per priority.
//!
//! This module parses and validates protocol files (`thuiswacht check`); the
//! triage engine evaluates them.

pub mod catalog;
pub mod diff;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::Metric;

/// Alert priority in the sense of IEC 60601-1-8, plus informational.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Informational,
    Low,
    Medium,
    High,
}

/// One protocol file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Human-readable name (Dutch, as nurses see it).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// NEWS2 SpO2 scale: 1, or 2 for a prescribed target of 88–92%.
    #[serde(default = "default_news2_scale")]
    pub news2_scale: u8,
    /// Minutes within which an alert of each priority should be claimed.
    pub response_targets: BTreeMap<Priority, u32>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

const fn default_news2_scale() -> u8 {
    1
}

/// One rule of a protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique within the protocol; alerts are deduplicated per patient and rule.
    pub id: String,
    pub kind: RuleKind,
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Fires when the value is above this…
    #[serde(default)]
    pub above: Option<f64>,
    /// …or below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Hysteresis: an alert raised by `above` ends only below this value
    /// (by `below`: only above it).
    #[serde(default)]
    pub recover_at: Option<f64>,
    /// The condition must hold this long before the rule fires.
    #[serde(default)]
    pub for_minutes: u32,
    /// Fires when `repeat_count` of the last `repeat_of` readings meet the condition.
    #[serde(default = "default_repeat")]
    pub repeat_count: u32,
    #[serde(default = "default_repeat")]
    pub repeat_of: u32,
    /// For trend rules: the change that fires, and over how many hours.
    #[serde(default)]
    pub delta: Option<f64>,
    #[serde(default)]
    pub window_hours: Option<u32>,
    /// For missed-measurement rules: the local time by which the metric is due each day, "HH:MM".
    #[serde(default)]
    pub due_by: Option<String>,
    /// For technical rules: the device signal the rule is about.
    #[serde(default)]
    pub signal: Option<TechnicalSignal>,
    /// For trend rules: a second metric that must change by `with_delta`
    /// over the same window at the same time ("heart rate rising while SpO2
    /// falls").
    #[serde(default)]
    pub with_metric: Option<Metric>,
    #[serde(default)]
    pub with_delta: Option<f64>,
    /// For trend rules: count a change (and that of `with_metric`) only
    /// when it is larger than the person's own variation explains (the
    /// reference change value, from their baseline's spread) and its
    /// newest level lies beyond their usual value (the baseline median) in
    /// the direction of the change. A patient whose pressure swings by 30
    /// mmHg from hour to hour, or a fall back from a high value towards
    /// their usual one, is no rapid deterioration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub beyond_own_variation: bool,
    /// Confirmation on dense data: when the metrics the rule reads were
    /// measured at two or more earlier times within this many minutes (a
    /// stream), a raise or recovery counts only if it still holds at the
    /// next reading of a later time. 0 (the default): at once. A single
    /// earlier reading or spot checks further apart act at once either way.
    #[serde(default)]
    pub confirm_within_minutes: u32,
    pub priority: Priority,
}

const fn default_repeat() -> u32 {
    1
}

/// The kinds of rule the triage engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Threshold,
    News2,
    Trend,
    BaselineDeviation,
    MissedMeasurement,
    Technical,
    /// The patient's vital-sign vector far from their own running mean
    /// (Mahalanobis distance); `above` is the distance.
    Anomaly,
}

/// The device signals a technical rule can name. Without a technical rule for
/// a signal, its alerts rank below every clinical alert (low priority, a
/// technical score); a rule gives the signal the rule's priority instead,
/// and for `battery_low` its own threshold (`below`, `recover_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TechnicalSignal {
    /// The device's battery is below `below` percent.
    BatteryLow,
    /// The device reports a fault code.
    DeviceFault,
    /// The device sent a value outside its profile's plausible range.
    ImplausibleValue,
}

impl TechnicalSignal {
    /// Returns the stable name, as used in rule keys (`technical/{signal}/{device}`).
    pub const fn code(self) -> &'static str {
        match self {
            TechnicalSignal::BatteryLow => "battery_low",
            TechnicalSignal::DeviceFault => "device_fault",
            TechnicalSignal::ImplausibleValue => "implausible_value",
        }
    }
}

/// Problems in protocol files, one line each, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("invalid alert protocols:\n  - {}", problems.join("\n  - "))]
pub struct ProtocolError {
    pub problems: Vec<String>,
}

impl Protocol {
    /// Parses and validates one protocol.
    ///
    /// # Errors
    /// Lists every problem.
    pub fn parse(text: &str) -> Result<Protocol, Vec<String>> {
        let protocol: Protocol =
            toml::from_str(text).map_err(|error| vec![error.message().to_owned()])?;
        let problems = protocol.problems();
        if problems.is_empty() {
            Ok(protocol)
        } else {
            Err(problems)
        }
    }

    /// Returns every problem of the protocol.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !matches!(self.news2_scale, 1 | 2) {
            problems.push("news2_scale must be 1 or 2".to_owned());
        }
        for priority in [Priority::High, Priority::Medium, Priority::Low] {
            match self.response_targets.get(&priority) {
                Some(0) | None => problems.push(format!(
                    "response_targets must give a positive number of minutes for {priority:?}"
                )),
                Some(_) => {}
            }
        }
        let mut ids = std::collections::HashSet::new();
        for rule in &self.rules {
            if rule.id.is_empty() || !ids.insert(rule.id.as_str()) {
                problems.push(format!(
                    "rule {}: rule ids must be non-empty and unique",
                    rule.id
                ));
            }
            problems.extend(rule.problems());
        }
        problems
    }
}

impl Rule {
    /// Returns every problem of the rule on its own, each starting with
    /// "rule {id}".
    pub fn problems(&self) -> Vec<String> {
        let rule = self;
        let mut problems = Vec::new();
        let at = format!("rule {}", rule.id);
        let needs_metric = !matches!(
            rule.kind,
            RuleKind::News2 | RuleKind::Anomaly | RuleKind::Technical
        );
        if needs_metric && rule.metric.is_none() {
            problems.push(format!("{at}: a {:?} rule needs a metric", rule.kind));
        }
        if rule.signal.is_some() && rule.kind != RuleKind::Technical {
            problems.push(format!("{at}: only a technical rule takes a signal"));
        }
        if rule.beyond_own_variation && rule.kind != RuleKind::Trend {
            problems.push(format!(
                "{at}: only a trend rule takes beyond_own_variation"
            ));
        }
        match (rule.with_metric, rule.with_delta) {
            (None, None) => {}
            (Some(_), Some(delta)) if rule.kind == RuleKind::Trend && delta != 0.0 => {
                if rule.with_metric == rule.metric {
                    problems.push(format!("{at}: with_metric must differ from metric"));
                }
            }
            _ => problems.push(format!(
                "{at}: with_metric and a non-zero with_delta go together, on a trend rule"
            )),
        }
        if rule.repeat_count == 0 || rule.repeat_count > rule.repeat_of {
            problems.push(format!(
                "{at}: repeat_count must be between 1 and repeat_of"
            ));
        }
        match rule.kind {
            RuleKind::Technical => problems.extend(
                technical_problems(rule)
                    .into_iter()
                    .map(|problem| format!("{at}: {problem}")),
            ),
            RuleKind::Anomaly => {
                if rule.above.is_none_or(|above| above <= 0.0) || rule.below.is_some() {
                    problems.push(format!(
                        "{at}: an anomaly rule needs a positive above (a distance) and no below"
                    ));
                }
                if rule
                    .recover_at
                    .zip(rule.above)
                    .is_some_and(|(recover, above)| recover > above)
                {
                    problems.push(format!("{at}: recover_at must not exceed above"));
                }
            }
            RuleKind::Threshold | RuleKind::News2 => {
                if rule.above.is_none() && rule.below.is_none() {
                    problems.push(format!("{at}: give above or below"));
                }
                if let (Some(recover), Some(above)) = (rule.recover_at, rule.above) {
                    if recover > above {
                        problems.push(format!(
                            "{at}: recover_at {recover} must not exceed above {above}"
                        ));
                    }
                }
                if let (Some(recover), Some(below)) = (rule.recover_at, rule.below) {
                    if recover < below {
                        problems.push(format!(
                            "{at}: recover_at {recover} must not be below below {below}"
                        ));
                    }
                }
            }
            RuleKind::Trend | RuleKind::BaselineDeviation => {
                if rule.delta.is_none_or(|delta| delta == 0.0)
                    || rule.window_hours.unwrap_or(0) == 0
                {
                    problems.push(format!(
                        "{at}: a trend needs a non-zero delta and a positive window_hours"
                    ));
                }
                if let (Some(recover), Some(delta)) = (rule.recover_at, rule.delta) {
                    if recover * delta < 0.0 || recover.abs() > delta.abs() {
                        problems.push(format!(
                            "{at}: recover_at {recover} must lie between 0 and delta {delta}"
                        ));
                    }
                }
            }
            RuleKind::MissedMeasurement => match rule.due_by.as_deref().map(parse_hhmm) {
                Some(Some(_)) => {}
                _ => problems.push(format!("{at}: due_by must be a time of day HH:MM")),
            },
        }
        problems
    }

    /// Returns this rule with a patient's personal settings applied: every
    /// field the settings give replaces the protocol's.
    pub fn with_settings(&self, settings: &RuleSettings) -> Rule {
        let mut rule = self.clone();
        if let Some(above) = settings.above {
            rule.above = above;
        }
        if let Some(below) = settings.below {
            rule.below = below;
        }
        if let Some(recover_at) = settings.recover_at {
            rule.recover_at = recover_at;
        }
        if let Some(for_minutes) = settings.for_minutes {
            rule.for_minutes = for_minutes;
        }
        if let Some(repeat_count) = settings.repeat_count {
            rule.repeat_count = repeat_count;
        }
        if let Some(repeat_of) = settings.repeat_of {
            rule.repeat_of = repeat_of;
        }
        if let Some(delta) = settings.delta {
            rule.delta = Some(delta);
        }
        if let Some(window_hours) = settings.window_hours {
            rule.window_hours = Some(window_hours);
        }
        if let Some(due_by) = &settings.due_by {
            rule.due_by = Some(due_by.clone());
        }
        if let Some(priority) = settings.priority {
            rule.priority = priority;
        }
        rule
    }
}

/// A patient's personal settings for one rule: each given field replaces the
/// protocol's value; `above`, `below` and `recover_at` may be set to `null`
/// to remove that bound. `enabled = false` switches the rule off for the
/// patient. An empty set means "as the protocol says".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub above: Option<Option<f64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub below: Option<Option<f64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub recover_at: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_of: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
}

const fn enabled() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
const fn is_enabled(enabled: &bool) -> bool {
    *enabled
}

/// Serde for `Option<Option<T>>`: an absent field is `None`, an explicit
/// `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

impl Default for RuleSettings {
    fn default() -> RuleSettings {
        RuleSettings {
            above: None,
            below: None,
            recover_at: None,
            for_minutes: None,
            repeat_count: None,
            repeat_of: None,
            delta: None,
            window_hours: None,
            due_by: None,
            priority: None,
            enabled: true,
        }
    }
}

impl RuleSettings {
    /// Returns whether the settings change nothing.
    pub fn is_empty(&self) -> bool {
        *self == RuleSettings::default()
    }
}

/// Checks a patient's personal settings for `rule_key`
/// (`"{protocol id}/{rule id}"`): the rule must belong to one of the
/// patient's protocols, and the rule with the settings applied must be
/// valid. Returns that rule.
///
/// # Errors
/// Lists every problem.
pub fn personal_rule(
    protocols: &BTreeMap<String, Protocol>,
    patient_protocols: &[String],
    rule_key: &str,
    settings: &RuleSettings,
) -> Result<Rule, Vec<String>> {
    let Some((protocol_id, rule_id)) = rule_key.split_once('/') else {
        return Err(vec![format!(
            "{rule_key}: a rule is named as protocol/rule, e.g. default/fever"
        )]);
    };
    if !patient_protocols.iter().any(|id| id == protocol_id) {
        return Err(vec![format!(
            "{rule_key}: the patient does not follow protocol {protocol_id} (follows: {})",
            patient_protocols.join(", ")
        )]);
    }
    let Some(rule) = protocols
        .get(protocol_id)
        .and_then(|protocol| protocol.rules.iter().find(|rule| rule.id == rule_id))
    else {
        return Err(vec![format!(
            "{rule_key}: protocol {protocol_id} has no rule {rule_id}"
        )]);
    };
    let personal = rule.with_settings(settings);
    let problems = personal.problems();
    if problems.is_empty() {
        Ok(personal)
    } else {
        Err(problems)
    }
}

/// Returns the problems of a technical rule: it names a signal and no
/// metric; `battery_low` needs `below` (a percentage) and allows a
/// `recover_at` at or above it; the other signals take no bounds.
fn technical_problems(rule: &Rule) -> Vec<String> {
    let mut problems = Vec::new();
    if rule.metric.is_some() {
        problems.push("a technical rule takes no metric (it concerns a device)".to_owned());
    }
    match rule.signal {
        None => problems.push(
            "a technical rule needs a signal: battery_low, device_fault or implausible_value"
                .to_owned(),
        ),
        Some(TechnicalSignal::BatteryLow) => {
            match rule.below {
                Some(below) if below > 0.0 && below <= 100.0 => {
                    if let Some(recover) = rule.recover_at {
                        if !(below..=100.0).contains(&recover) {
                            problems.push(format!(
                                "recover_at {recover} must lie between below {below} and 100"
                            ));
                        }
                    }
                }
                _ => problems.push("battery_low needs below, a percentage above 0".to_owned()),
            }
            if rule.above.is_some() {
                problems.push("battery_low takes below, not above".to_owned());
            }
        }
        Some(signal @ (TechnicalSignal::DeviceFault | TechnicalSignal::ImplausibleValue)) => {
            if rule.above.is_some() || rule.below.is_some() || rule.recover_at.is_some() {
                problems.push(format!(
                    "{} takes no above, below or recover_at",
                    signal.code()
                ));
            }
        }
    }
    problems
}

/// Parses "HH:MM" into minutes after midnight.
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60 && text.len() == 5).then_some(hours * 60 + minutes)
}

/// Loads every protocol of `dir`, by id.
///
/// # Errors
/// Lists every problem in every file.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Protocol>, ProtocolError> {
    let mut problems = Vec::new();
    let mut protocols = BTreeMap::new();
    let files = crate::config_files::toml_files(dir).map_err(|problem| ProtocolError {
        problems: vec![problem],
    })?;
    for (id, path) in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => match Protocol::parse(&text) {
                Ok(protocol) => {
                    protocols.insert(id, protocol);
                }
                Err(file_problems) => problems.extend(
                    file_problems
                        .into_iter()
                        .map(|problem| format!("{}: {problem}", path.display())),
                ),
            },
            Err(error) => problems.push(format!("{}: {error}", path.display())),
        }
    }
    if protocols.is_empty() && problems.is_empty() {
        problems.push(format!("{} holds no protocols", dir.display()));
    }
    if problems.is_empty() {
        Ok(protocols)
    } else {
        Err(ProtocolError { problems })
    }
}

/// Validates `dir` and returns a one-line summary.
///
/// # Errors
/// Lists every problem.
pub fn check_dir(dir: &Path) -> Result<String, ProtocolError> {
    let protocols = load_dir(dir)?;
    let rules: usize = protocols.values().map(|p| p.rules.len()).sum();
    Ok(format!(
        "{} protocols with {rules} rules OK ({})",
        protocols.len(),
        protocols.keys().cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// Returns the ids of the protocols in `dir`.
///
/// # Errors
/// Lists every problem.
pub fn protocol_ids(dir: &Path) -> Result<Vec<String>, ProtocolError> {
    Ok(load_dir(dir)?.into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_in_alerts_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let protocols = load_dir(&dir).unwrap();
        for id in [
            "default",
            "heart-failure",
            "copd",
            "hypertension",
            "diabetes",
        ] {
            assert!(protocols.contains_key(id), "missing protocol {id}");
        }
        assert_eq!(protocols["copd"].news2_scale, 2);
    }

    #[test]
    fn invalid_protocol_lists_every_problem() {
        let text = r#"
            name = "x"
            news2_scale = 3
            [response_targets]
            high = 60
            [[rule]]
            id = "a"
            kind = "threshold"
            priority = "high"
            [[rule]]
            id = "a"
            kind = "missed_measurement"
            metric = "body_weight"
            due_by = "25:00"
            priority = "low"
        "#;
        let problems = Protocol::parse(text).unwrap_err();
        // scale, medium and low targets, rule a: metric + bounds, duplicate id, due_by.
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }

    #[test]
    fn personal_settings_replace_protocol_values_and_are_validated() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let protocols = load_dir(&dir).unwrap();
        let follows = vec!["default".to_owned()];
        let settings: RuleSettings =
            serde_json::from_str(r#"{"above": 38.5, "recover_at": 38.2, "priority": "high"}"#)
                .unwrap();

        let rule = personal_rule(&protocols, &follows, "default/fever", &settings).unwrap();

        assert_eq!(rule.above, Some(38.5));
        assert_eq!(rule.recover_at, Some(38.2));
        assert_eq!(rule.priority, Priority::High);
        // Hysteresis the wrong way round is refused like in a protocol file.
        let wrong: RuleSettings = serde_json::from_str(r#"{"recover_at": 39.0}"#).unwrap();
        let problems = personal_rule(&protocols, &follows, "default/fever", &wrong).unwrap_err();
        assert!(
            problems[0].contains("recover_at 39 must not exceed above 38"),
            "{problems:?}"
        );
        // A rule of a protocol the patient does not follow, or none at all.
        assert!(personal_rule(
            &protocols,
            &follows,
            "heart-failure/weight_gain_1d",
            &settings
        )
        .is_err());
        assert!(personal_rule(&protocols, &follows, "default/nope", &settings).is_err());
        assert!(personal_rule(&protocols, &follows, "fever", &settings).is_err());
    }

    #[test]
    fn personal_settings_distinguish_absent_from_null() {
        let removed: RuleSettings = serde_json::from_str(r#"{"below": null}"#).unwrap();
        assert_eq!(removed.below, Some(None));
        assert_eq!(removed.above, None);
        assert!(!removed.is_empty());
        assert!(serde_json::from_str::<RuleSettings>("{}")
            .unwrap()
            .is_empty());
        assert!(serde_json::from_str::<RuleSettings>(r#"{"abve": 1}"#).is_err());
        let round_trip: RuleSettings =
            serde_json::from_str(&serde_json::to_string(&removed).unwrap()).unwrap();
        assert_eq!(round_trip, removed);
    }

    #[test]
    fn technical_rules_name_a_signal_and_battery_rules_a_percentage() {
        let protocol = |rules: &str| {
            format!(
                "name = \"x\"\n[response_targets]\nhigh = 60\nmedium = 240\nlow = 1440\n{rules}"
            )
        };
        let good = protocol(
            "[[rule]]\nid = \"battery\"\nkind = \"technical\"\nsignal = \"battery_low\"\nbelow = 25\nrecover_at = 40\npriority = \"medium\"\n\
             [[rule]]\nid = \"fault\"\nkind = \"technical\"\nsignal = \"device_fault\"\npriority = \"high\"\n",
        );
        let parsed = Protocol::parse(&good).unwrap();
        assert_eq!(parsed.rules[0].signal, Some(TechnicalSignal::BatteryLow));
        assert_eq!(parsed.rules[1].signal, Some(TechnicalSignal::DeviceFault));

        let bad = protocol(
            // No signal; battery without below and with a metric; a fault
            // with a bound; a signal on a threshold rule (which also lacks bounds).
            "[[rule]]\nid = \"a\"\nkind = \"technical\"\npriority = \"low\"\n\
             [[rule]]\nid = \"b\"\nkind = \"technical\"\nsignal = \"battery_low\"\nmetric = \"spo2\"\npriority = \"low\"\n\
             [[rule]]\nid = \"c\"\nkind = \"technical\"\nsignal = \"device_fault\"\nbelow = 3\npriority = \"low\"\n\
             [[rule]]\nid = \"d\"\nkind = \"threshold\"\nmetric = \"spo2\"\nsignal = \"device_fault\"\npriority = \"low\"\n\
             [[rule]]\nid = \"e\"\nkind = \"technical\"\nsignal = \"battery_low\"\nbelow = 30\nrecover_at = 20\npriority = \"low\"\n",
        );
        let problems = Protocol::parse(&bad).unwrap_err();
        let expected = [
            "rule a: a technical rule needs a signal",
            "rule b: a technical rule takes no metric",
            "rule b: battery_low needs below",
            "rule c: device_fault takes no above, below or recover_at",
            "rule d: only a technical rule takes a signal",
            "rule d: give above or below",
            "rule e: recover_at 20 must lie between below 30 and 100",
        ];
        for problem in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(problem)),
                "missing {problem:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn time_of_day_parses() {
        assert_eq!(parse_hhmm("10:00"), Some(600));
        assert_eq!(parse_hhmm("7:00"), None);
        assert_eq!(parse_hhmm("24:00"), None);
    }
}
