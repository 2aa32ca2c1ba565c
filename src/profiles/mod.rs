//! Device profiles loaded from `devices/`: one TOML file per device model,
//! its file stem the profile id (DESIGN §3).
//!
//! A profile names the metrics a device may send, the units it may send them
//! in (converted to the metric's canonical unit on validation), the plausible
//! physical range of each metric, and how often the device reports.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::domain::{Metric, Unit};

/// One device model.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    pub id: String,
    pub name: String,
    /// How often the device normally reports, in seconds.
    pub expected_interval_s: u64,
    pub metrics: BTreeMap<Metric, MetricSpec>,
}

/// What a profile allows for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Units the device may send; the metric's canonical unit is always accepted.
    pub units: Vec<Unit>,
    /// Plausible physical range in the canonical unit; outside it a reading is
    /// a technical problem (a loose cuff, a finger off the sensor), not a clinical one.
    pub min: f64,
    pub max: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    expected_interval_s: u64,
    metrics: BTreeMap<String, MetricFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricFile {
    #[serde(default)]
    units: Vec<String>,
    min: f64,
    max: f64,
}

/// All profiles, by id.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    by_id: HashMap<String, Arc<DeviceProfile>>,
}

/// Problems found while loading profiles, one line each, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("invalid device profiles:\n  - {}", problems.join("\n  - "))]
pub struct ProfileError {
    pub problems: Vec<String>,
}

impl Profiles {
    /// Loads and checks every `*.toml` file of `dir`.
    ///
    /// # Errors
    /// Lists every problem in every file.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let mut problems = Vec::new();
        let mut by_id = HashMap::new();
        let files = crate::config_files::toml_files(dir).map_err(|problem| ProfileError {
            problems: vec![problem],
        })?;
        for (id, path) in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    problems.push(format!("{}: {error}", path.display()));
                    continue;
                }
            };
            match parse_profile(&id, &text) {
                Ok(profile) => {
                    by_id.insert(id, Arc::new(profile));
                }
                Err(file_problems) => problems.extend(
                    file_problems
                        .into_iter()
                        .map(|problem| format!("{}: {problem}", path.display())),
                ),
            }
        }
        if by_id.is_empty() && problems.is_empty() {
            problems.push(format!("{} holds no device profiles", dir.display()));
        }
        if problems.is_empty() {
            Ok(Profiles { by_id })
        } else {
            Err(ProfileError { problems })
        }
    }

    /// Returns the profile with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<DeviceProfile>> {
        self.by_id.get(id)
    }

    /// Returns the profile ids, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// Returns how many profiles there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Returns whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Parses and checks one profile file.
fn parse_profile(id: &str, text: &str) -> Result<DeviceProfile, Vec<String>> {
    let file: ProfileFile =
        toml::from_str(text).map_err(|error| vec![error.message().to_owned()])?;
    let mut problems = Vec::new();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!(
            "profile id {id:?} (the file stem) must be letters, digits, - or _"
        ));
    }
    if file.expected_interval_s == 0 {
        problems.push("expected_interval_s must be positive".to_owned());
    }
    if file.metrics.is_empty() {
        problems.push("a profile must allow at least one metric".to_owned());
    }
    let mut metrics = BTreeMap::new();
    for (name, spec) in file.metrics {
        let Some(metric) = Metric::from_code(&name) else {
            problems.push(format!("unknown metric {name:?}"));
            continue;
        };
        let mut units = vec![metric.unit()];
        for text in &spec.units {
            match Unit::parse(text) {
                Some(unit) if unit.convert(1.0, metric.unit()).is_some() => {
                    if !units.contains(&unit) {
                        units.push(unit);
                    }
                }
                Some(unit) => problems.push(format!(
                    "metric {name}: unit {unit} cannot be converted to {}",
                    metric.unit()
                )),
                None => problems.push(format!("metric {name}: unknown unit {text:?}")),
            }
        }
        if !(spec.min.is_finite() && spec.max.is_finite() && spec.min < spec.max) {
            problems.push(format!("metric {name}: min must be below max"));
        }
        metrics.insert(
            metric,
            MetricSpec {
                units,
                min: spec.min,
                max: spec.max,
            },
        );
    }
    if problems.is_empty() {
        Ok(DeviceProfile {
            id: id.to_owned(),
            name: file.name,
            expected_interval_s: file.expected_interval_s,
            metrics,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_in_devices_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("devices");
        let profiles = Profiles::load_dir(&dir).unwrap();
        for id in [
            "bp-monitor",
            "pulse-oximeter",
            "weight-scale",
            "thermometer",
            "glucose-meter",
            "wearable",
        ] {
            assert!(profiles.get(id).is_some(), "missing generic profile {id}");
        }
        let wearable = profiles.get("wearable").unwrap();
        for metric in [
            Metric::HeartRate,
            Metric::Spo2,
            Metric::Steps,
            Metric::SkinTemperature,
        ] {
            assert!(
                wearable.metrics.contains_key(&metric),
                "wearable lacks {metric}"
            );
        }
    }

    #[test]
    fn bad_profile_lists_every_problem() {
        let text = r#"
            name = "broken"
            expected_interval_s = 0
            [metrics.mood]
            min = 0
            max = 1
            [metrics.heart_rate]
            units = ["kg", "parsec"]
            min = 300
            max = 20
        "#;
        let problems = parse_profile("broken", text).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let text = "name = \"x\"\nexpected_interval_s = 60\ncolour = \"red\"\n[metrics.spo2]\nmin = 50\nmax = 100\n";
        let problems = parse_profile("x", text).unwrap_err();
        assert!(problems[0].contains("colour"), "{problems:?}");
    }
}
