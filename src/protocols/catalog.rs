//! The protocols in force: the files in `alerts/` are the defaults, the
//! versions coordinators saved in the database override them.
//!
//! A protocol's *chain* is every version with the time from which it
//! applies, oldest first: the file as loaded at start (from the beginning
//! of time), the file as reloaded (`SIGHUP`) from the moment of the reload
//! while no database version exists, then the database versions from the
//! moment each was saved. The triage engine evaluates a reading with the
//! version in force at its event time ([`TriageEngine::set_protocol_versions`]),
//! so a change applies to readings after it and earlier evaluations stand.
//!
//! A reload reads and validates every file first and changes nothing when
//! one is invalid: the old rules stay in force and the problems are
//! returned (and logged). Rule ids are stable across versions: a rule keeps
//! its kind, metric and signal in every version (a rule about something
//! else needs a new id), so alerts of one rule id always mean one thing.
//!
//! [`TriageEngine::set_protocol_versions`]: crate::triage::engine::TriageEngine::set_protocol_versions

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{load_dir, Protocol, ProtocolError};
use crate::domain::Timestamp;
use crate::store::{ProtocolVersion, Store, StoreError};

/// Where a version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The file in `alerts/` (version 0).
    File,
    /// Saved by a coordinator.
    Database,
}

/// One version of a protocol, without its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// 0 for the file, then 1, 2, … as saved.
    pub version: i32,
    pub source: Source,
    /// When it took effect: readings from this time on are judged by it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Who saved it (`None` for the file).
    pub author: Option<String>,
    pub reason: Option<String>,
    /// The version it restores, if it does.
    pub restored_from: Option<i32>,
}

/// What a reload of the files did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    /// Protocols whose file changed and which now apply it.
    pub applied: Vec<String>,
    /// Protocols whose file changed, but a database version overrides it.
    pub overridden: Vec<String>,
    /// Protocols whose file is unchanged.
    pub unchanged: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct State {
    /// Per protocol, the file as loaded at start and at each reload that
    /// changed it, with the time it took effect.
    files: BTreeMap<String, Vec<(Timestamp, Protocol)>>,
    /// Per protocol, the saved versions, oldest first.
    saved: BTreeMap<String, Vec<ProtocolVersion>>,
    /// The newest stored version id read.
    seen: i64,
    /// The newest version of every protocol.
    current: Arc<BTreeMap<String, Protocol>>,
}

impl State {
    fn chain(&self, id: &str) -> Vec<(Timestamp, Protocol)> {
        let saved = self.saved.get(id).map(Vec::as_slice).unwrap_or_default();
        let first_saved = saved.first().map(|v| v.valid_from);
        let mut chain: Vec<(Timestamp, Protocol)> = self
            .files
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(index, (from, _))| {
                *index == 0 || first_saved.is_none_or(|first| *from < first)
            })
            .map(|(_, version)| version.clone())
            .collect();
        chain.extend(
            saved
                .iter()
                .map(|version| (version.valid_from, version.definition.clone())),
        );
        // Clocks step; the engine needs the starts in order.
        chain.sort_by_key(|(from, _)| *from);
        chain
    }

    fn refresh_current(&mut self) {
        let ids: Vec<String> = self
            .files
            .keys()
            .chain(self.saved.keys())
            .cloned()
            .collect();
        let mut current = BTreeMap::new();
        for id in ids {
            if let Some((_, newest)) = self.chain(&id).pop() {
                current.insert(id, newest);
            }
        }
        self.current = Arc::new(current);
    }

    fn versions(&self, id: &str) -> Vec<(VersionInfo, Protocol)> {
        let mut versions = Vec::new();
        if let Some((from, file)) = self.files.get(id).and_then(|files| files.last()) {
            versions.push((
                VersionInfo {
                    version: 0,
                    source: Source::File,
                    valid_from: (*from != Timestamp::MIN).then(|| from.to_datetime()),
                    author: None,
                    reason: None,
                    restored_from: None,
                },
                file.clone(),
            ));
        }
        for saved in self.saved.get(id).map(Vec::as_slice).unwrap_or_default() {
            versions.push((
                VersionInfo {
                    version: saved.version,
                    source: Source::Database,
                    valid_from: Some(saved.valid_from.to_datetime()),
                    author: Some(saved.author.clone()),
                    reason: Some(saved.reason.clone()),
                    restored_from: saved.restored_from,
                },
                saved.definition.clone(),
            ));
        }
        versions
    }

    /// Problems of `proposed` as a next version of `id`: its own, and rules
    /// that changed kind, metric or signal against any earlier version.
    fn problems(&self, id: &str, proposed: &Protocol) -> Vec<String> {
        let mut problems = proposed.problems();
        let earlier: Vec<(VersionInfo, Protocol)> = self.versions(id);
        for rule in &proposed.rules {
            let clash = earlier.iter().rev().find_map(|(info, protocol)| {
                protocol
                    .rules
                    .iter()
                    .find(|old| {
                        old.id == rule.id
                            && (old.kind != rule.kind
                                || old.metric != rule.metric
                                || old.signal != rule.signal
                                || old.with_metric != rule.with_metric)
                    })
                    .map(|old| (info.version, old))
            });
            if let Some((version, old)) = clash {
                problems.push(format!(
                    "rule {}: in version {version} it is a {} rule{}; a rule of another kind, metric or signal needs a new id",
                    rule.id,
                    serde_json::to_value(old.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    old.metric
                        .map(|metric| format!(" on {}", metric.code()))
                        .unwrap_or_default(),
                ));
            }
        }
        problems
    }
}

/// The catalog; cheap to share (`Arc`), safe to read from any task.
#[derive(Debug)]
pub struct Catalog {
    dir: Option<PathBuf>,
    state: RwLock<State>,
    changed: watch::Sender<u64>,
}

impl Catalog {
    /// Loads the files of `dir`.
    ///
    /// # Errors
    /// Lists every problem of every file.
    pub fn load(dir: &Path) -> Result<Catalog, ProtocolError> {
        let mut catalog = Catalog::fixed(load_dir(dir)?);
        catalog.dir = Some(dir.to_owned());
        Ok(catalog)
    }

    /// Returns a catalog of `protocols` in force from the beginning, with
    /// no folder to reload (tests, benchmarks, offline tools).
    pub fn fixed(protocols: BTreeMap<String, Protocol>) -> Catalog {
        let mut state = State {
            files: protocols
                .into_iter()
                .map(|(id, protocol)| (id, vec![(Timestamp::MIN, protocol)]))
                .collect(),
            ..State::default()
        };
        state.refresh_current();
        Catalog {
            dir: None,
            state: RwLock::new(state),
            changed: watch::Sender::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Returns the newest version of every protocol.
    pub fn current(&self) -> Arc<BTreeMap<String, Protocol>> {
        self.read().current.clone()
    }

    /// Returns the newest version of `id` with its version info.
    pub fn get(&self, id: &str) -> Option<(VersionInfo, Protocol)> {
        self.read().versions(id).pop()
    }

    /// Returns every version of `id`, oldest first (the file is version 0).
    pub fn versions(&self, id: &str) -> Vec<(VersionInfo, Protocol)> {
        self.read().versions(id)
    }

    /// Returns the chain of every protocol (see the module docs).
    pub fn chains(&self) -> BTreeMap<String, Vec<(Timestamp, Protocol)>> {
        let state = self.read();
        state
            .current
            .keys()
            .map(|id| (id.clone(), state.chain(id)))
            .collect()
    }

    /// Returns the problems of `proposed` as the next version of `id`.
    pub fn problems(&self, id: &str, proposed: &Protocol) -> Vec<String> {
        self.read().problems(id, proposed)
    }

    /// Returns a receiver that sees a new number after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads the versions saved since the last look. Returns whether any
    /// were new.
    ///
    /// # Errors
    /// Returns a store error when they cannot be read; nothing changes.
    pub async fn refresh(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let seen = self.read().seen;
        let new = store.protocol_versions_after(seen).await?;
        if new.is_empty() {
            return Ok(false);
        }
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            for version in new {
                if version.id <= state.seen {
                    continue; // another refresh took it meanwhile
                }
                state.seen = version.id;
                let saved = state.saved.entry(version.protocol_id.clone()).or_default();
                saved.push(version);
            }
            state.refresh_current();
        }
        self.changed();
        Ok(true)
    }

    /// Reads and validates every file again; applies the changed ones from
    /// `now`. An invalid file changes nothing.
    ///
    /// # Errors
    /// Lists every problem; the rules in force stay.
    pub fn reload(&self, now: Timestamp) -> Result<ReloadReport, ProtocolError> {
        let Some(dir) = &self.dir else {
            return Ok(ReloadReport::default());
        };
        let loaded = load_dir(dir)?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut problems = Vec::new();
        for id in state.files.keys() {
            if !loaded.contains_key(id) {
                problems.push(format!(
                    "{id}: its file is gone; patients may follow it, so a protocol cannot be removed while running"
                ));
            }
        }
        for (id, protocol) in &loaded {
            let unchanged = state
                .files
                .get(id)
                .and_then(|files| files.last())
                .is_some_and(|(_, file)| file == protocol);
            if !unchanged {
                problems.extend(state.problems(id, protocol).into_iter().map(|problem| {
                    format!("{}: {problem}", dir.join(format!("{id}.toml")).display())
                }));
            }
        }
        if !problems.is_empty() {
            return Err(ProtocolError { problems });
        }
        let mut report = ReloadReport::default();
        for (id, protocol) in loaded {
            let files = state.files.entry(id.clone()).or_default();
            if files.last().is_some_and(|(_, file)| *file == protocol) {
                report.unchanged.push(id);
                continue;
            }
            files.push((
                if files.is_empty() {
                    Timestamp::MIN
                } else {
                    now
                },
                protocol,
            ));
            if state.saved.get(&id).is_some_and(|saved| !saved.is_empty()) {
                report.overridden.push(id);
            } else {
                report.applied.push(id);
            }
        }
        state.refresh_current();
        drop(state);
        if !report.applied.is_empty() || !report.overridden.is_empty() {
            self.changed();
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_alerts(to: &Path) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }

    #[test]
    fn an_invalid_file_is_refused_and_the_old_rules_stay() {
        let dir = tempfile::tempdir().unwrap();
        copy_alerts(dir.path());
        let catalog = Catalog::load(dir.path()).unwrap();
        let changes = catalog.subscribe();
        let fever_above = |catalog: &Catalog| {
            catalog.current()["default"]
                .rules
                .iter()
                .find(|r| r.id == "fever")
                .unwrap()
                .above
        };
        let path = dir.path().join("default.toml");
        let original = std::fs::read_to_string(&path).unwrap();

        // An invalid edit: hysteresis the wrong way round.
        std::fs::write(
            &path,
            original.replace("recover_at = 37.8", "recover_at = 39.5"),
        )
        .unwrap();
        let error = catalog.reload(Timestamp(1_000)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("default.toml: rule fever: recover_at 39.5 must not exceed above 38"),
            "{error}"
        );
        assert_eq!(fever_above(&catalog), Some(38.0));
        assert!(!changes.has_changed().unwrap());

        // A rule that changes its metric under the same id is refused too.
        std::fs::write(
            &path,
            original.replace(
                "metric = \"body_temperature\"\nabove = 38.0",
                "metric = \"heart_rate\"\nabove = 38.0",
            ),
        )
        .unwrap();
        let error = catalog.reload(Timestamp(1_000)).unwrap_err();
        assert!(error.to_string().contains("needs a new id"), "{error}");

        // A valid edit applies from the reload on; earlier readings keep 38.0.
        std::fs::write(&path, original.replace("above = 38.0", "above = 38.4")).unwrap();
        let report = catalog.reload(Timestamp(2_000)).unwrap();
        assert_eq!(report.applied, vec!["default".to_owned()]);
        assert_eq!(fever_above(&catalog), Some(38.4));
        assert!(changes.has_changed().unwrap());
        let chain = &catalog.chains()["default"];
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1].0, Timestamp(2_000));

        // A removed file is refused.
        std::fs::remove_file(dir.path().join("copd.toml")).unwrap();
        assert!(catalog
            .reload(Timestamp(3_000))
            .unwrap_err()
            .to_string()
            .contains("copd: its file is gone"));
        assert!(catalog.current().contains_key("copd"));
    }
}
