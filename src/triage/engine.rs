//! The triage engine: the loaded protocols and every registered patient's
//! state; evaluates each new reading against the rules of the patient's
//! protocols and pushes findings into the caller's buffer.
//!
//! In: readings (event time order preferred; late ones are handled, see
//! [`patient_state`](super::patient_state)). Out: [`Finding`]s. Synchronous
//! and clock-free (STYLE §2); the async triage stage owns one engine and has
//! nothing to flush on shutdown.
//!
//! Rule ids are scoped as `"{protocol_id}/{rule_id}"`: a patient following
//! two protocols that share a rule id (`hypotension` in `default` and
//! `heart-failure`) evaluates both. The NEWS2 SpO2 scale is a property of the
//! patient: scale 2 when any of their protocols prescribes it.
//!
//! # Alarm signals (NTS)
//!
//! - Second contact: a rule raised again within
//!   [`SECOND_CONTACT_DAYS`](super::urgency::SECOND_CONTACT_DAYS) of its
//!   previous raise; the whole episode keeps the raised level.
//! - Rapid deterioration: after this evaluation the patient has an active
//!   trend rule *and* an active threshold or NEWS2 rule (a trend and a
//!   threshold seldom fire on the same reading, since each reading has one
//!   metric, so "together" means both active at once).
//!
//! # Covered findings
//!
//! A rule whose condition becomes true while another rule of the patient
//! already has an alert about it is *held* rather than raised: the other
//! rule is shown (raised, not itself held), has at least the same priority,
//! reads a metric this rule reads, and was raised within [`COVER_HOURS`].
//! A NEWS2 alert covers a new fall in SpO2; a hypotension alert covers the
//! fall in systolic pressure that led to it. The nurse working that alert is
//! already looking at this part of the patient, and a second row would only
//! lengthen the list (alert fatigue); one alert per problem, with all its
//! evidence, lets her call once.
//!
//! - The held finding is named, with its evidence, on every finding of the
//!   covering rule ([`Factor::AlsoFound`]).
//! - When the covering rule recovers, or its alert is closed while its
//!   condition holds (a nurse resolved it: the alert book tells the engine,
//!   [`TriageEngine::alert_closed`]), and the held condition still holds,
//!   another covering alert takes it over, or it is raised on its own then.
//! - A held condition that ends before that raises nothing.
//! - A held rule still counts for the patient's urgency and for the
//!   "rapid deterioration" alarm signal; a rule already raised is never
//!   taken back when another alert opens later.
//!
//! The ranking hardly changes: a covered finding never has a higher
//! priority than the alert it is named on, and both carry the same patient
//! evidence (only the few points for a value's excess past its threshold
//! differ).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use uuid::Uuid;

use super::anomaly::AnomalyState;
use super::baseline::{self, MultivariateScore};
use super::patient_state::{
    metric_index, HeldFinding, MaybeTime, PatientRule, PatientState, Recorded, NO_PERSONAL,
    RAISE_HISTORY,
};
use super::rules::{self, CurrentNews2, Trigger};
use super::urgency::{
    self, Evidence, Explanation, Factor, Finding, Transition, SECOND_CONTACT_DAYS,
};
use crate::domain::{Metric, Reading, Timestamp};
use crate::protocols::{Priority, Protocol, Rule, RuleKind, RuleSettings};

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// How recently a covering alert must have been raised to hold back a new
/// raise: within a day it is one episode the nurse is already working on;
/// an alert open for longer does not hide something new.
pub const COVER_HOURS: i64 = 24;

/// Returns whether a raise or recovery of `rule` at `ts` needs confirming:
/// the rule asks for it, and the metrics it reads (`metrics`, a bit per
/// [`metric_index`]) were measured at two or more earlier times within
/// `confirm_within_minutes` before `ts`: a stream of measurements, so the
/// next one comes soon. A single earlier reading (a nurse's observation
/// after a device reading, a repeated home measurement) or spot checks
/// hours apart confirm nothing and delay nothing.
fn awaits_confirmation(rule: &Rule, metrics: u32, patient: &PatientState, ts: Timestamp) -> bool {
    if rule.confirm_within_minutes == 0 {
        return false;
    }
    let from = ts.micros() - i64::from(rule.confirm_within_minutes) * 60_000_000;
    let mut earlier_times = [None; 2];
    for metric in Metric::ALL {
        if metrics & (1 << metric_index(metric)) == 0 {
            continue;
        }
        let history = patient.history(metric);
        for index in (0..history.len()).rev() {
            let time = history.time(index);
            if time >= ts {
                continue;
            }
            if time.micros() < from {
                break;
            }
            if earlier_times[0].is_none_or(|first| first == time) {
                earlier_times[0] = Some(time);
            } else if earlier_times[1].is_none() {
                earlier_times[1] = Some(time);
            }
            if earlier_times[1].is_some_and(|second| Some(second) != earlier_times[0]) {
                return true;
            }
        }
    }
    false
}

/// Returns the rule (an index into `rules`) whose alert covers a raise of
/// rule `index` (reading the metrics `metrics`, with `priority`) at `ts`:
/// active and shown in the alert book, not itself held, of at least that
/// priority, reading a metric the raised rule reads, and raised within
/// [`COVER_HOURS`] before `ts`. The most urgent such rule, the first of
/// equals.
fn covering_rule(
    protocols: &[LoadedProtocol],
    rules: &[PatientRule],
    index: usize,
    metrics: u32,
    priority: Priority,
    ts: Timestamp,
) -> Option<usize> {
    let cover_from = ts.micros() - COVER_HOURS * MICROS_PER_HOUR;
    let mut best: Option<(usize, Priority)> = None;
    for (other, patient_rule) in rules.iter().enumerate() {
        let state = &patient_rule.state;
        let Some(shown) = state.shown else {
            continue;
        };
        if other == index || !state.active || state.held || shown < priority {
            continue;
        }
        if slot_of(protocols, patient_rule).metrics & metrics == 0 {
            continue;
        }
        if state.raised_at[RAISE_HISTORY - 1]
            .get()
            .is_none_or(|raised| raised.micros() < cover_from)
        {
            continue;
        }
        if best.is_none_or(|(_, best_priority)| shown > best_priority) {
            best = Some((other, shown));
        }
    }
    best.map(|(other, _)| other)
}

/// After an alert of `patient` recovered: each raise held by a rule that
/// no longer covers it goes to another covering alert, or, when none
/// covers it, is raised now.
fn release_held(
    protocols: &[LoadedProtocol],
    patient: &mut PatientState,
    ts: Timestamp,
    findings: &mut Vec<Finding>,
) {
    let mut position = 0;
    while position < patient.held.len() {
        let holder = &patient.rules[patient.held[position].holder].state;
        if holder.active && holder.shown.is_some() {
            position += 1;
            continue;
        }
        let rule = patient.held[position].rule;
        let patient_rule = patient.rules[rule];
        let metrics = slot_of(protocols, &patient_rule).metrics;
        let priority = patient.held[position].finding.priority;
        match covering_rule(protocols, &patient.rules, rule, metrics, priority, ts) {
            Some(holder) => {
                patient.held[position].holder = holder;
                position += 1;
            }
            None => {
                let mut held = patient.held.remove(position);
                let state = &mut patient.rules[rule].state;
                state.held = false;
                state.shown = Some(priority);
                // Raised on its own by this reading.
                held.finding.ts = ts;
                patient.note_alert(rule, &held.finding);
                findings.push(held.finding);
            }
        }
    }
}

/// Names on each covering rule's finding (not a recovery) the raises it
/// holds, with their evidence.
fn name_held(patient: &PatientState, protocols: &[LoadedProtocol], findings: &mut [Finding]) {
    for held in &patient.held {
        let holder = patient.rules[held.holder];
        let holder_id = &slot_of(protocols, &holder).scoped_id;
        for finding in findings.iter_mut() {
            if finding.transition != Transition::Recovered && finding.rule_id == *holder_id {
                finding.explanation.factors.push(Factor::AlsoFound {
                    rule_id: held.finding.rule_id.clone(),
                    priority: held.finding.priority,
                    factors: held.finding.explanation.factors.clone(),
                });
            }
        }
    }
}

/// Returns the patient's continuous evidence of deterioration.
fn evidence(patient: &PatientState) -> Evidence {
    Evidence {
        news2_total: patient.news2().score.total,
        sustained_news2: patient.sustained_news2(),
    }
}

/// Why a patient cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriageError {
    #[error("unknown protocol {0}")]
    UnknownProtocol(String),
}

/// Hashes patient ids for the engine's patient table.
///
/// The table is looked up once per reading, and the standard SipHash costs
/// more than the rest of a quiet reading's evaluation. Its protection
/// against chosen keys is not needed here: the keys are ids the store
/// generated (random, version 4) or the simulator derived, never values a
/// sender picks, and unknown ids are only looked up, never inserted. Each
/// 8-byte word is folded in with a multiplication, and the SplitMix64
/// finaliser spreads the result over all bits, so sequential ids (as the
/// PhysioNet replay uses) do not share buckets.
#[derive(Debug, Default, Clone, Copy)]
pub struct PatientIdHasher(u64);

impl Hasher for PatientIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, value: usize) {
        // The length prefix of a byte array: the same for every patient id.
        self.0 ^= value as u64;
    }

    fn finish(&self) -> u64 {
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }
}

// `rule_metrics` holds a bit per metric in a `u32`.
const _: () = assert!(Metric::ALL.len() <= 32);

type PatientTable = HashMap<Uuid, PatientState, BuildHasherDefault<PatientIdHasher>>;

/// Protocols plus per-patient state; see the module docs.
#[derive(Debug, Clone)]
pub struct TriageEngine {
    protocols: Vec<LoadedProtocol>,
    patients: PatientTable,
    /// Personal settings, indexed by [`PatientRule::personal`]: the versions
    /// of one patient's settings for one rule, oldest first.
    personal: Vec<Vec<PersonalVersion>>,
    /// Set by [`count_only`](Self::count_only).
    count_only: bool,
    /// Whether covered raises are held (see the module docs); cleared by
    /// [`independent_rules`](Self::independent_rules).
    hold_covered: bool,
}

/// Returns the slot a patient's rule refers to.
fn slot_of<'a>(protocols: &'a [LoadedProtocol], rule: &PatientRule) -> &'a RuleSlot {
    &protocols[rule.protocol()].slots[rule.rule()]
}

/// One protocol with every version the engine knows of it.
///
/// A rule is a *slot*: the same rule id in every version. Slots are only
/// ever appended (a rule first seen in a newer version gets a new slot), so
/// a patient's [`PatientRule`] indices stay valid when versions change.
#[derive(Debug, Clone)]
struct LoadedProtocol {
    id: String,
    /// When each version took effect, oldest first. A reading is evaluated
    /// with the version in force at its event time; readings before the
    /// first version use the first.
    starts: Vec<Timestamp>,
    /// Whether the newest version prescribes NEWS2 SpO2 scale 2.
    spo2_scale_two: bool,
    slots: Vec<RuleSlot>,
}

#[derive(Debug, Clone)]
struct RuleSlot {
    /// `"{protocol_id}/{rule_id}"`, formatted once rather than per finding.
    scoped_id: String,
    /// A bit per metric ([`metric_index`]) whose readings the rule reads in
    /// any version; personal settings change thresholds, never the metric
    /// or the kind, so this holds for them too.
    metrics: u32,
    kind: RuleKind,
    /// The rule in each version (indices as [`LoadedProtocol::starts`]);
    /// `None` where a version does not have it.
    rules: Vec<Option<Rule>>,
}

impl LoadedProtocol {
    fn new(id: String, versions: &[(Timestamp, &Protocol)]) -> LoadedProtocol {
        let mut loaded = LoadedProtocol {
            id,
            starts: Vec::new(),
            spo2_scale_two: false,
            slots: Vec::new(),
        };
        loaded.set_versions(versions);
        loaded
    }

    /// Replaces the versions, keeping every existing slot at its index.
    fn set_versions(&mut self, versions: &[(Timestamp, &Protocol)]) {
        assert!(!versions.is_empty(), "a protocol has a version");
        self.starts = versions.iter().map(|(start, _)| *start).collect();
        self.spo2_scale_two = versions.last().is_some_and(|(_, p)| p.news2_scale == 2);
        for slot in &mut self.slots {
            slot.rules.clear();
        }
        for (version, (_, protocol)) in versions.iter().enumerate() {
            for rule in &protocol.rules {
                let index = match self
                    .slots
                    .iter()
                    .position(|slot| slot.scoped_id[self.id.len() + 1..] == rule.id)
                {
                    Some(index) => index,
                    None => {
                        self.slots.push(RuleSlot {
                            scoped_id: format!("{}/{}", self.id, rule.id),
                            metrics: 0,
                            kind: rule.kind,
                            rules: Vec::new(),
                        });
                        self.slots.len() - 1
                    }
                };
                let slot = &mut self.slots[index];
                slot.rules.resize(version, None);
                slot.metrics |= Metric::ALL
                    .into_iter()
                    .filter(|metric| rules::concerns(rule, *metric))
                    .fold(0, |mask, metric| mask | 1 << metric_index(metric));
                slot.rules.push(Some(rule.clone()));
            }
        }
        for slot in &mut self.slots {
            slot.rules.resize(versions.len(), None);
        }
    }

    /// Returns the index of the version in force at `ts`.
    fn version_at(&self, ts: Timestamp) -> usize {
        if self.starts.len() == 1 {
            0
        } else {
            self.starts
                .partition_point(|start| *start <= ts)
                .saturating_sub(1)
        }
    }
}

/// One version of a patient's settings for one rule, resolved against the
/// protocol rule of every protocol version.
#[derive(Debug, Clone, PartialEq)]
struct PersonalVersion {
    valid_from: Timestamp,
    valid_until: Option<Timestamp>,
    settings: RuleSettings,
    /// Per protocol version: `None` when the version switches the rule off
    /// for the patient, or the protocol version does not have the rule.
    rules: Vec<Option<Rule>>,
}

impl PersonalVersion {
    fn resolve(&mut self, slot: &RuleSlot) {
        self.rules = slot
            .rules
            .iter()
            .map(|rule| {
                rule.as_ref()
                    .filter(|_| self.settings.enabled)
                    .map(|rule| rule.with_settings(&self.settings))
            })
            .collect();
    }
}

/// One version of a patient's personal settings for one rule, as stored
/// (see `store::RuleOverride`).
#[derive(Debug, Clone, Copy)]
pub struct PersonalSettings<'a> {
    /// `"{protocol id}/{rule id}"`.
    pub rule_key: &'a str,
    pub settings: &'a RuleSettings,
    pub valid_from: Timestamp,
    pub valid_until: Option<Timestamp>,
}

/// Which rule applies to a reading at `ts` under protocol version
/// `version`: the newest personal version valid at `ts`, else the
/// protocol's rule. `None`: switched off, or not in that protocol version.
fn applicable<'a>(
    slot: &'a RuleSlot,
    version: usize,
    personal: Option<&'a [PersonalVersion]>,
    ts: Timestamp,
) -> Option<&'a Rule> {
    let protocol_rule = slot.rules[version].as_ref()?;
    let Some(versions) = personal else {
        return Some(protocol_rule);
    };
    match versions.iter().rev().find(|personal| {
        personal.valid_from <= ts && personal.valid_until.is_none_or(|until| ts < until)
    }) {
        Some(personal) => personal.rules[version].as_ref(),
        None => Some(protocol_rule),
    }
}

impl TriageEngine {
    /// Returns an engine for the protocols `protocols::load_dir` returned,
    /// each in force from the beginning of time.
    pub fn new(protocols: BTreeMap<String, Protocol>) -> TriageEngine {
        TriageEngine {
            protocols: protocols
                .into_iter()
                .map(|(id, protocol)| LoadedProtocol::new(id, &[(Timestamp::MIN, &protocol)]))
                .collect(),
            patients: PatientTable::default(),
            personal: Vec::new(),
            count_only: false,
            hold_covered: true,
        }
    }

    /// Makes the engine serve only counting raises and recoveries (a
    /// backtest): it reports no ongoing findings (and works out no evidence
    /// for them), and patients registered from now on keep NEWS2 up to date
    /// only when one of their rules is a NEWS2 rule. Raises and recoveries
    /// are the same; their scores then leave NEWS2 out (no rule but a NEWS2
    /// rule decides on it). Both save work at each of a wearable's
    /// minute-by-minute readings.
    pub fn count_only(&mut self) {
        self.count_only = true;
    }

    /// Makes every rule raise on its own, never held by a covering alert: a
    /// backtest compares one rule set with another in the same engine (the
    /// same rule twice) and counts each rule's episodes.
    pub fn independent_rules(&mut self) {
        self.hold_covered = false;
    }

    /// Replaces the versions of protocol `protocol_id` (oldest first, each
    /// with the time from which it applies), or adds the protocol. Every
    /// patient keeps their history and the state of every rule; rules new
    /// in these versions start fresh for the patients who follow the
    /// protocol. Readings are evaluated with the version in force at their
    /// event time, so a change applies to readings after it and never
    /// rewrites earlier evaluations.
    ///
    /// # Panics
    /// When `versions` is empty.
    pub fn set_protocol_versions(
        &mut self,
        protocol_id: &str,
        versions: &[(Timestamp, &Protocol)],
    ) {
        let index = match self.protocols.iter().position(|p| p.id == protocol_id) {
            Some(index) => {
                self.protocols[index].set_versions(versions);
                index
            }
            None => {
                self.protocols
                    .push(LoadedProtocol::new(protocol_id.to_owned(), versions));
                return;
            }
        };
        let protocol = &self.protocols[index];
        let supported: Vec<usize> = (0..protocol.slots.len())
            .filter(|slot| rules::is_supported(protocol.slots[*slot].kind))
            .collect();
        for patient in self.patients.values_mut() {
            if !patient.rules.iter().any(|rule| rule.protocol() == index) {
                continue;
            }
            for slot in &supported {
                if !patient
                    .rules
                    .iter()
                    .any(|rule| rule.protocol() == index && rule.rule() == *slot)
                {
                    patient.rules.push(PatientRule::new(index, *slot));
                }
            }
            for patient_rule in &patient.rules {
                if patient_rule.protocol() == index && patient_rule.personal != NO_PERSONAL {
                    for version in &mut self.personal[patient_rule.personal as usize] {
                        version.resolve(&protocol.slots[patient_rule.rule()]);
                    }
                }
            }
            let protocols = &self.protocols;
            patient.spo2_scale_two = patient
                .rules
                .iter()
                .any(|rule| protocols[rule.protocol()].spo2_scale_two);
            patient.wants_anomaly = patient
                .rules
                .iter()
                .any(|rule| slot_of(protocols, rule).kind == RuleKind::Anomaly);
            // A counting engine may have left levels out that new rules read.
            patient.smooth_all();
        }
    }

    /// Registers (or re-registers, with fresh state) a patient following
    /// `protocol_ids`.
    ///
    /// # Errors
    /// Names the first protocol id that is not loaded.
    pub fn register_patient(
        &mut self,
        patient_id: Uuid,
        protocol_ids: &[String],
    ) -> Result<(), TriageError> {
        let mut rules = Vec::new();
        let mut spo2_scale_two = false;
        for protocol_id in protocol_ids {
            let Some(protocol_index) = self.protocols.iter().position(|p| p.id == *protocol_id)
            else {
                return Err(TriageError::UnknownProtocol(protocol_id.clone()));
            };
            let protocol = &self.protocols[protocol_index];
            spo2_scale_two |= protocol.spo2_scale_two;
            for (rule_index, slot) in protocol.slots.iter().enumerate() {
                if rules::is_supported(slot.kind) {
                    rules.push(PatientRule::new(protocol_index, rule_index));
                }
            }
        }
        rules.shrink_to_fit();
        let wants_anomaly = rules
            .iter()
            .any(|patient_rule| slot_of(&self.protocols, patient_rule).kind == RuleKind::Anomaly);
        let wants_news2 = rules
            .iter()
            .any(|patient_rule| slot_of(&self.protocols, patient_rule).kind == RuleKind::News2);
        let smoothed = if self.count_only && !wants_anomaly {
            self.smoothed_metrics(&rules)
        } else {
            u32::MAX
        };
        let mut state = PatientState::new(rules, spo2_scale_two);
        state.wants_anomaly = wants_anomaly;
        state.tracks_news2 = !self.count_only || wants_news2;
        state.smoothed = smoothed;
        self.patients.insert(patient_id, state);
        Ok(())
    }

    /// Sets whether a registered patient's NEWS2 SpO2 scale is scale 2,
    /// for a patient registered with only some of their protocols (a
    /// backtest of one protocol keeps the scale the others prescribe).
    pub fn set_spo2_scale_two(&mut self, patient_id: &Uuid, scale_two: bool) {
        if let Some(patient) = self.patients.get_mut(patient_id) {
            patient.spo2_scale_two = scale_two;
        }
    }

    /// Returns a bit per metric ([`metric_index`]) that any version of any
    /// rule of `protocol_id` reads.
    pub fn protocol_metrics(&self, protocol_id: &str) -> u32 {
        self.protocols
            .iter()
            .filter(|protocol| protocol.id == protocol_id)
            .flat_map(|protocol| &protocol.slots)
            .fold(0, |mask, slot| mask | slot.metrics)
    }

    /// Returns the metrics whose trend levels `rules` read: those of trend
    /// and baseline-deviation rules.
    fn smoothed_metrics(&self, rules: &[PatientRule]) -> u32 {
        rules
            .iter()
            .map(|rule| slot_of(&self.protocols, rule))
            .filter(|slot| matches!(slot.kind, RuleKind::Trend | RuleKind::BaselineDeviation))
            .fold(0, |mask, slot| mask | slot.metrics)
    }

    /// Replaces a registered patient's personal settings with `versions`
    /// (every stored version, oldest first), keeping the patient's history
    /// and the state of every rule. Versions for rules the patient does not
    /// follow are ignored; returns their keys.
    pub fn set_personal_settings(
        &mut self,
        patient_id: Uuid,
        versions: &[PersonalSettings<'_>],
    ) -> Vec<String> {
        let Some(patient) = self.patients.get_mut(&patient_id) else {
            return versions.iter().map(|v| v.rule_key.to_owned()).collect();
        };
        let mut unmatched: Vec<String> = Vec::new();
        for version in versions {
            let followed = patient.rules.iter().any(|patient_rule| {
                slot_of(&self.protocols, patient_rule).scoped_id == version.rule_key
            });
            if !followed && !unmatched.iter().any(|key| key == version.rule_key) {
                unmatched.push(version.rule_key.to_owned());
            }
        }
        for patient_rule in &mut patient.rules {
            let slot = slot_of(&self.protocols, patient_rule);
            let resolved: Vec<PersonalVersion> = versions
                .iter()
                .filter(|version| version.rule_key == slot.scoped_id)
                .map(|version| {
                    let mut personal = PersonalVersion {
                        valid_from: version.valid_from,
                        valid_until: version.valid_until,
                        settings: version.settings.clone(),
                        rules: Vec::new(),
                    };
                    personal.resolve(slot);
                    personal
                })
                .collect();
            match (patient_rule.personal, resolved.is_empty()) {
                (NO_PERSONAL, true) => {}
                (NO_PERSONAL, false) => {
                    patient_rule.personal =
                        u32::try_from(self.personal.len()).expect("fewer than 4e9 personal rules");
                    self.personal.push(resolved);
                }
                (index, _) => self.personal[index as usize] = resolved,
            }
        }
        unmatched
    }

    /// Returns the rule that applies to the patient's `rule_key` at `ts`
    /// (personal settings over the protocol), `None` when the patient does
    /// not follow it or has switched it off.
    pub fn applicable_rule(
        &self,
        patient_id: &Uuid,
        rule_key: &str,
        ts: Timestamp,
    ) -> Option<&Rule> {
        let patient = self.patients.get(patient_id)?;
        patient.rules.iter().find_map(|patient_rule| {
            let protocol = &self.protocols[patient_rule.protocol()];
            let slot = &protocol.slots[patient_rule.rule()];
            if slot.scoped_id != rule_key {
                return None;
            }
            applicable(
                slot,
                protocol.version_at(ts),
                self.personal_versions(patient_rule.personal),
                ts,
            )
        })
    }

    fn personal_versions(&self, index: u32) -> Option<&[PersonalVersion]> {
        (index != NO_PERSONAL).then(|| self.personal[index as usize].as_slice())
    }

    /// Returns the number of registered patients.
    pub fn patient_count(&self) -> usize {
        self.patients.len()
    }

    /// Returns an approximate size of all patient state in bytes.
    pub fn state_bytes(&self) -> usize {
        let table = self.patients.capacity() * std::mem::size_of::<(Uuid, PatientState)>();
        let owned: usize = self
            .patients
            .values()
            .map(|patient| patient.approximate_bytes() - std::mem::size_of::<PatientState>())
            .sum();
        table + owned
    }

    /// Returns a patient's state.
    pub fn patient(&self, patient_id: &Uuid) -> Option<&PatientState> {
        self.patients.get(patient_id)
    }

    /// Evaluates one reading; pushes any findings into `findings`.
    pub fn evaluate(&mut self, reading: &Reading, findings: &mut Vec<Finding>) {
        self.evaluate_measurement(
            reading.patient_id,
            reading.metric,
            reading.value,
            reading.ts,
            findings,
        );
    }

    /// Evaluates one measurement of a registered patient; unknown patients,
    /// non-finite values and redeliveries (same metric and event time) are
    /// ignored. Allocates nothing unless a rule fires, recovers or is ongoing.
    pub fn evaluate_measurement(
        &mut self,
        patient_id: Uuid,
        metric: Metric,
        value: f64,
        ts: Timestamp,
        findings: &mut Vec<Finding>,
    ) {
        if !value.is_finite() {
            return;
        }
        let Some(patient) = self.patients.get_mut(&patient_id) else {
            return;
        };
        let late = match patient.record(metric, ts, value) {
            Recorded::Newest => false,
            Recorded::Late => true,
            Recorded::Duplicate | Recorded::TooOld => return,
        };
        if !late && patient.wants_anomaly {
            if let Some(dimension) = super::anomaly::dimension_of(metric) {
                // The hour's median, as for trends: a wearable's minute-by-
                // minute noise is no anomaly; a spot measurement is itself.
                let history = patient.history(metric);
                let smoothed = rules::level(history, history.len() - 1);
                let spo2_scale_two = patient.spo2_scale_two;
                patient
                    .anomaly
                    .get_or_insert_with(|| Box::new(AnomalyState::new(spo2_scale_two)))
                    .update(dimension, smoothed, ts);
            }
        }
        let trigger = Trigger { metric, ts, late };
        let first = findings.len();
        let mut released = false;
        // Rules whose covered findings changed at this reading (allocated
        // only then).
        let mut covering: Vec<usize> = Vec::new();
        let metric_bit = 1 << metric_index(metric);
        for index in 0..patient.rules.len() {
            let patient_rule = &patient.rules[index];
            // Most rules read one metric: skip the others without touching
            // their state (a wearable's minute-by-minute steps concern none).
            let protocol = &self.protocols[patient_rule.protocol()];
            let slot = &protocol.slots[patient_rule.rule()];
            if slot.metrics & metric_bit == 0 {
                continue;
            }
            let version = protocol.version_at(ts);
            let personal = (patient_rule.personal != NO_PERSONAL)
                .then(|| self.personal[patient_rule.personal as usize].as_slice());
            let Some(rule) = applicable(slot, version, personal, ts) else {
                continue;
            };
            if protocol.starts.len() > 1 && !rules::concerns(rule, metric) {
                // Another version of the rule reads this metric; this one does not.
                continue;
            }
            let scoped_id = &slot.scoped_id;
            let mut state = patient_rule.state;
            let Some(hit) =
                rules::evaluate_transition(rule, patient, trigger, &mut state, self.count_only)
            else {
                if !late {
                    state.unconfirmed_since = MaybeTime::NONE;
                }
                patient.rules[index].state = state;
                continue;
            };
            let rule_metrics = slot.metrics;
            if hit.transition != Transition::Ongoing
                && awaits_confirmation(rule, rule_metrics, patient, ts)
            {
                let since = state.unconfirmed_since.get_or_insert(ts);
                if since >= ts {
                    // Neither a raise nor a recovery counts until a reading
                    // of a later time confirms it.
                    state.active = hit.transition == Transition::Recovered;
                    patient.rules[index].state = state;
                    continue;
                }
            }
            state.unconfirmed_since = MaybeTime::NONE;
            if self.count_only && hit.transition == Transition::Ongoing {
                // Counting raises and recoveries: an ongoing rule has nothing to say.
                patient.rules[index].state = state;
                continue;
            }
            if hit.transition == Transition::Raised {
                state.second_contact = state.record_raise(ts, SECOND_CONTACT_DAYS * MICROS_PER_DAY);
            }
            let score = urgency::score(rule.priority, evidence(patient), hit.excess_in_spreads);
            state.last_score = if state.active { score } else { 0.0 };
            let mut explanation = Explanation {
                factors: hit.factors,
            };
            if late {
                explanation.factors.push(Factor::DataQuality {
                    flag: "late_reading",
                });
            }
            if state.second_contact && hit.transition != Transition::Recovered {
                explanation.factors.push(Factor::AlarmSignal {
                    signal: "second_contact",
                });
            }
            let finding = Finding {
                patient_id,
                rule_id: scoped_id.clone(),
                kind: rule.kind,
                transition: hit.transition,
                ts,
                priority: rule.priority,
                nts_level: urgency::suggested_level(
                    rule.priority,
                    false,
                    state.second_contact && hit.transition != Transition::Recovered,
                ),
                score,
                explanation,
            };
            match (hit.transition, state.held) {
                (Transition::Raised, _) => {
                    let holder = if self.hold_covered {
                        covering_rule(
                            &self.protocols,
                            &patient.rules,
                            index,
                            rule_metrics,
                            rule.priority,
                            ts,
                        )
                    } else {
                        None
                    };
                    if let Some(holder) = holder {
                        state.held = true;
                        patient.held.push(HeldFinding {
                            rule: index,
                            holder,
                            finding,
                        });
                        covering.push(holder);
                    } else {
                        state.shown = Some(rule.priority);
                        patient.note_alert(index, &finding);
                        findings.push(finding);
                    }
                    patient.rules[index].state = state;
                }
                (Transition::Ongoing, true) => {
                    if let Some(held) = patient.held.iter_mut().find(|held| held.rule == index) {
                        held.finding = Finding {
                            transition: Transition::Raised,
                            ..finding
                        };
                        covering.push(held.holder);
                    }
                    patient.rules[index].state = state;
                }
                (Transition::Recovered, true) => {
                    // Held, never raised: nothing to recover in the alert
                    // book; the covering alert stops naming it.
                    if let Some(position) = patient.held.iter().position(|held| held.rule == index)
                    {
                        covering.push(patient.held.remove(position).holder);
                    }
                    state.held = false;
                    state.shown = None;
                    patient.rules[index].state = state;
                }
                (Transition::Ongoing, false) => {
                    // Shown or not stays as it was: an alert a nurse closed
                    // (see `alert_closed`) covers nothing until raised again.
                    if state.shown.is_some() {
                        patient.note_alert(index, &finding);
                    }
                    findings.push(finding);
                    patient.rules[index].state = state;
                }
                (Transition::Recovered, false) => {
                    state.shown = None;
                    patient.forget_alert(index);
                    findings.push(finding);
                    patient.rules[index].state = state;
                    released = true;
                }
            }
        }
        if released && !patient.held.is_empty() {
            // After every rule saw this reading, so a held finding raised
            // now carries its newest evidence.
            release_held(&self.protocols, patient, ts, findings);
        }
        // A covering alert not evaluated at this reading whose covered
        // findings changed says so with its newest evidence (an engine that
        // only counts raises and recoveries has none to refresh).
        if self.count_only {
            covering.clear();
        }
        for holder in covering {
            let patient_rule = patient.rules[holder];
            let holder_id = &slot_of(&self.protocols, &patient_rule).scoped_id;
            if findings[first..].iter().any(|f| f.rule_id == *holder_id) {
                continue;
            }
            if let Some((_, newest)) = patient.alerts.iter().find(|(index, _)| *index == holder) {
                findings.push(Finding {
                    transition: Transition::Ongoing,
                    ts,
                    ..newest.clone()
                });
            }
        }
        if !patient.held.is_empty() && findings.len() > first {
            name_held(patient, &self.protocols, &mut findings[first..]);
        }
        if findings.len() > first && self.rapid_deterioration(patient_id) {
            for finding in &mut findings[first..] {
                if finding.transition != Transition::Recovered {
                    finding.nts_level = finding.nts_level.raised();
                    finding.explanation.factors.push(Factor::AlarmSignal {
                        signal: "rapid_deterioration",
                    });
                }
            }
        }
    }

    /// Tells the engine that the alert of rule `rule_id` (scoped) of the
    /// patient is no longer open in the alert book while its condition
    /// still holds (a nurse resolved it): it covers nothing from now on, and
    /// each raise it held goes to another covering alert or is raised now,
    /// at `ts`, into `findings`.
    pub fn alert_closed(
        &mut self,
        patient_id: Uuid,
        rule_id: &str,
        ts: Timestamp,
        findings: &mut Vec<Finding>,
    ) {
        let Some(patient) = self.patients.get_mut(&patient_id) else {
            return;
        };
        let protocols = &self.protocols;
        let Some(index) = patient
            .rules
            .iter()
            .position(|patient_rule| slot_of(protocols, patient_rule).scoped_id == rule_id)
        else {
            return;
        };
        if patient.rules[index].state.shown.take().is_some() {
            patient.forget_alert(index);
            if !patient.held.is_empty() {
                release_held(protocols, patient, ts, findings);
            }
        }
    }

    /// Returns whether the patient has an active trend rule together with an
    /// active threshold or NEWS2 rule.
    fn rapid_deterioration(&self, patient_id: Uuid) -> bool {
        let Some(patient) = self.patients.get(&patient_id) else {
            return false;
        };
        let active_kind = |wanted: &dyn Fn(RuleKind) -> bool| {
            patient.rules.iter().any(|patient_rule| {
                patient_rule.state.active && wanted(slot_of(&self.protocols, patient_rule).kind)
            })
        };
        active_kind(&|kind| kind == RuleKind::Trend)
            && active_kind(&|kind| matches!(kind, RuleKind::Threshold | RuleKind::News2))
    }

    /// Returns the NEWS2 score from the patient's newest values.
    pub fn current_news2(&self, patient_id: &Uuid) -> Option<CurrentNews2> {
        self.patients.get(patient_id).map(rules::current_news2)
    }

    /// Returns the patient's urgency, what the worklist ranks them by: the
    /// score of their most urgent active finding, or without one their
    /// continuous evidence alone; see [`urgency::patient_urgency`].
    pub fn patient_urgency(&self, patient_id: &Uuid) -> Option<f64> {
        let patient = self.patients.get(patient_id)?;
        let active = patient
            .rules
            .iter()
            .filter(|patient_rule| patient_rule.state.active)
            .map(|patient_rule| patient_rule.state.last_score);
        Some(urgency::patient_urgency(active, evidence(patient)))
    }

    /// Returns the scoped ids and last scores of the patient's active rules
    /// that have an alert, leaving out raises held by a covering alert (see
    /// the module docs) unless `with_held`.
    pub fn active_rules(&self, patient_id: &Uuid, with_held: bool) -> Vec<(String, f64)> {
        let Some(patient) = self.patients.get(patient_id) else {
            return Vec::new();
        };
        patient
            .rules
            .iter()
            .filter(|patient_rule| {
                patient_rule.state.active && (with_held || !patient_rule.state.held)
            })
            .map(|patient_rule| {
                (
                    slot_of(&self.protocols, patient_rule).scoped_id.clone(),
                    patient_rule.state.last_score,
                )
            })
            .collect()
    }

    /// Returns the Mahalanobis score of the patient's newest vital vector
    /// against vectors formed at each earlier heart-rate reading; see
    /// [`baseline::multivariate`].
    pub fn multivariate(&self, patient_id: &Uuid) -> Option<MultivariateScore> {
        baseline::multivariate(self.patients.get(patient_id)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::protocols::{load_dir, Priority};
    use crate::triage::urgency::NtsLevel;

    const HOUR: i64 = 3_600_000_000;

    fn engine() -> TriageEngine {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        TriageEngine::new(load_dir(&dir).expect("alerts/ loads"))
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn shared_rule_ids_are_evaluated_per_protocol() {
        // Arrange
        let mut engine = engine();
        let patient = Uuid::from_u128(1);
        engine
            .register_patient(patient, &ids(&["default", "heart-failure"]))
            .unwrap();
        let mut findings = Vec::new();

        // Act
        engine.evaluate_measurement(
            patient,
            Metric::BpSystolic,
            85.0,
            Timestamp(0),
            &mut findings,
        );
        engine.evaluate_measurement(
            patient,
            Metric::BpSystolic,
            86.0,
            Timestamp(HOUR),
            &mut findings,
        );

        // Assert: both fire; the second is the same problem, so it is named
        // on the first's alert rather than raised beside it.
        let raised: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.transition == Transition::Raised && f.rule_id.ends_with("hypotension"))
            .collect();
        assert_eq!(raised.len(), 1, "{findings:#?}");
        assert_eq!(raised[0].rule_id, "default/hypotension");
        assert_eq!(raised[0].priority, Priority::High);
        assert_eq!(also_found(raised[0]), vec!["heart-failure/hypotension"]);
        let ids = |with_held| -> Vec<String> {
            engine
                .active_rules(&patient, with_held)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(ids(false), vec!["default/hypotension"]);
        assert_eq!(
            ids(true),
            vec!["default/hypotension", "heart-failure/hypotension"]
        );
    }

    /// The rule ids a finding names as covered.
    fn also_found(finding: &Finding) -> Vec<&str> {
        finding
            .explanation
            .factors
            .iter()
            .filter_map(|factor| match factor {
                Factor::AlsoFound { rule_id, .. } => Some(rule_id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Registers a patient following `default` and `heart-failure` (both
    /// with a hypotension rule), with personal `settings` (JSON) for the
    /// heart-failure one until `until`.
    fn two_hypotension_rules(
        engine: &mut TriageEngine,
        patient: Uuid,
        settings: &str,
        until: Option<Timestamp>,
    ) {
        engine
            .register_patient(patient, &ids(&["default", "heart-failure"]))
            .unwrap();
        let settings: RuleSettings = serde_json::from_str(settings).unwrap();
        let unmatched = engine.set_personal_settings(
            patient,
            &[PersonalSettings {
                rule_key: "heart-failure/hypotension",
                settings: &settings,
                valid_from: Timestamp::MIN,
                valid_until: until,
            }],
        );
        assert!(unmatched.is_empty());
    }

    fn transitions(findings: &[Finding]) -> Vec<(&str, Transition)> {
        findings
            .iter()
            .map(|f| (f.rule_id.as_str(), f.transition))
            .collect()
    }

    fn systolic(engine: &mut TriageEngine, patient: Uuid, readings: &[(i64, f64)]) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (hour, value) in readings {
            engine.evaluate_measurement(
                patient,
                Metric::BpSystolic,
                *value,
                Timestamp(hour * HOUR),
                &mut findings,
            );
        }
        findings.retain(|f| f.rule_id.ends_with("/hypotension"));
        findings
    }

    #[test]
    fn a_covered_raise_is_named_on_the_covering_alert_and_raised_when_that_recovers() {
        // Arrange
        let mut engine = engine();
        let patient = Uuid::from_u128(11);
        // The heart-failure rule recovers only from 110 mmHg for this patient.
        two_hypotension_rules(&mut engine, patient, r#"{"recover_at": 110}"#, None);
        let opened = systolic(&mut engine, patient, &[(0, 85.0), (1, 86.0)]);
        assert_eq!(opened.len(), 1, "{opened:#?}");

        // Act: still low (ongoing evidence names the covered rule); then 104
        // mmHg ends the default rule's alert (recovers at 100) while the
        // heart-failure rule still holds (recovers at 110 for this patient).
        let ongoing = systolic(&mut engine, patient, &[(2, 87.0)]);
        let recovery = systolic(&mut engine, patient, &[(3, 104.0)]);
        let later = systolic(&mut engine, patient, &[(4, 112.0)]);

        // Assert
        assert_eq!(ongoing.len(), 1);
        assert_eq!(ongoing[0].transition, Transition::Ongoing);
        assert_eq!(also_found(&ongoing[0]), vec!["heart-failure/hypotension"]);
        assert_eq!(
            transitions(&recovery),
            vec![
                ("default/hypotension", Transition::Recovered),
                ("heart-failure/hypotension", Transition::Raised),
            ]
        );
        let surfaced = &recovery[1];
        assert_eq!(surfaced.priority, Priority::High);
        assert!(
            surfaced
                .explanation
                .factors
                .iter()
                .any(|factor| matches!(factor, Factor::Threshold { value, .. } if *value == 104.0)),
            "raised with the newest evidence: {surfaced:#?}"
        );
        assert_eq!(
            transitions(&later),
            vec![("heart-failure/hypotension", Transition::Recovered)]
        );
    }

    #[test]
    fn a_covered_condition_that_ends_first_raises_nothing() {
        // Arrange: the default protocol recovers at 100, the heart-failure
        // one (personal) at 95, so the covered one ends first.
        let mut engine = engine();
        let patient = Uuid::from_u128(12);
        two_hypotension_rules(&mut engine, patient, r#"{"recover_at": 95}"#, None);

        // Act
        let findings = systolic(
            &mut engine,
            patient,
            &[(0, 85.0), (1, 86.0), (2, 97.0), (3, 98.0), (4, 104.0)],
        );

        // Assert: one alert raised and recovered; the covered rule never
        // appears, and is no longer named once it ended.
        assert_eq!(
            transitions(&findings),
            vec![
                ("default/hypotension", Transition::Raised),
                ("default/hypotension", Transition::Ongoing),
                ("default/hypotension", Transition::Ongoing),
                ("default/hypotension", Transition::Recovered),
            ]
        );
        assert_eq!(also_found(&findings[1]), Vec::<&str>::new());
        assert!(engine.active_rules(&patient, true).is_empty());
    }

    #[test]
    fn an_alert_raised_more_than_a_day_earlier_covers_nothing_new() {
        // Arrange: the default rule raised at hour 0 and still active 30
        // hours later, when the heart-failure rule's own episode starts
        // (it was switched off until then).
        let mut engine = engine();
        let patient = Uuid::from_u128(13);
        two_hypotension_rules(
            &mut engine,
            patient,
            r#"{"enabled": false}"#,
            Some(Timestamp(29 * HOUR)),
        );
        let early = systolic(&mut engine, patient, &[(0, 85.0), (1, 86.0), (20, 88.0)]);
        assert_eq!(early[0].rule_id, "default/hypotension");

        // Act
        let findings = systolic(&mut engine, patient, &[(30, 86.0), (31, 85.0)]);

        // Assert
        assert!(
            findings
                .iter()
                .any(|f| f.rule_id == "heart-failure/hypotension"
                    && f.transition == Transition::Raised),
            "{findings:#?}"
        );
        const { assert!(COVER_HOURS < 29) };
    }

    fn fever_findings(
        engine: &mut TriageEngine,
        patient: Uuid,
        temps: &[(i64, f64)],
    ) -> Vec<Transition> {
        let mut findings = Vec::new();
        for (hour, value) in temps {
            engine.evaluate_measurement(
                patient,
                Metric::BodyTemperature,
                *value,
                Timestamp(hour * HOUR),
                &mut findings,
            );
        }
        findings
            .iter()
            .filter(|f| f.rule_id == "default/fever")
            .map(|f| f.transition)
            .collect()
    }

    #[test]
    fn a_protocol_version_applies_to_readings_after_it_and_the_old_one_before() {
        // Arrange: version 2 of `default` raises fever from 38.5 from hour
        // 10 and adds a rule; a personal setting on the rule stays on top.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let protocols = load_dir(&dir).unwrap();
        let mut engine = TriageEngine::new(protocols.clone());
        let patient = Uuid::from_u128(15);
        let other = Uuid::from_u128(16);
        engine
            .register_patient(patient, &ids(&["default"]))
            .unwrap();
        engine.register_patient(other, &ids(&["default"])).unwrap();
        let personal: RuleSettings = serde_json::from_str(r#"{"recover_at": 37.9}"#).unwrap();
        engine.set_personal_settings(
            other,
            &[PersonalSettings {
                rule_key: "default/fever",
                settings: &personal,
                valid_from: Timestamp(0),
                valid_until: None,
            }],
        );
        let mut v2 = protocols["default"].clone();
        let fever = v2.rules.iter_mut().find(|rule| rule.id == "fever").unwrap();
        fever.above = Some(38.5);
        fever.recover_at = Some(38.2);
        let mut cold = fever.clone();
        cold.id = "hypothermia_new".to_owned();
        cold.above = None;
        cold.below = Some(35.0);
        cold.recover_at = Some(35.5);
        v2.rules.push(cold);
        engine.set_protocol_versions(
            "default",
            &[
                (Timestamp::MIN, &protocols["default"]),
                (Timestamp(10 * HOUR), &v2),
            ],
        );

        // Act: 38.2 at hour 1 fires under version 1 and 38.1 recovers;
        // 38.4 at hour 11 does not fire under version 2, 38.6 does.
        let before = fever_findings(&mut engine, patient, &[(1, 38.2), (2, 37.5)]);
        let after = fever_findings(&mut engine, patient, &[(11, 38.4), (12, 38.6)]);
        let mut findings = Vec::new();
        engine.evaluate_measurement(
            patient,
            Metric::BodyTemperature,
            34.5,
            Timestamp(20 * HOUR),
            &mut findings,
        );

        // Assert
        assert_eq!(before, vec![Transition::Raised, Transition::Recovered]);
        assert_eq!(after, vec![Transition::Raised]);
        // (The new rule's raise is named on the hypothermia alert, which
        // covers it.)
        assert!(
            engine
                .active_rules(&patient, true)
                .iter()
                .any(|(id, _)| id == "default/hypothermia_new"),
            "a rule new in version 2 is evaluated for registered patients: {findings:?}"
        );
        assert!(findings
            .iter()
            .any(|f| f.rule_id == "default/hypothermia"
                && also_found(f) == ["default/hypothermia_new"]));
        let above = |engine: &TriageEngine, who, hour| {
            engine
                .applicable_rule(&who, "default/fever", Timestamp(hour * HOUR))
                .and_then(|rule| rule.above)
        };
        assert_eq!(above(&engine, patient, 9), Some(38.0));
        assert_eq!(above(&engine, patient, 10), Some(38.5));
        // The personal recovery level applies over each version's threshold.
        let rule = engine
            .applicable_rule(&other, "default/fever", Timestamp(11 * HOUR))
            .unwrap();
        assert_eq!((rule.above, rule.recover_at), (Some(38.5), Some(37.9)));
        assert_eq!(
            engine
                .applicable_rule(&other, "default/fever", Timestamp(HOUR))
                .and_then(|rule| rule.above),
            Some(38.0)
        );
        // A rule absent from version 1 does not apply before version 2.
        assert!(engine
            .applicable_rule(&patient, "default/hypothermia_new", Timestamp(HOUR))
            .is_none());
    }

    #[test]
    fn a_counting_engine_raises_and_recovers_exactly_as_the_full_one() {
        // Arrange: the same patient in a full and a counting engine; a
        // minute-by-minute heart rate and SpO2 with episodes, and spot
        // temperatures.
        let mut full = engine();
        let mut counting = engine();
        counting.count_only();
        let patient = Uuid::from_u128(77);
        // Without an anomaly rule (only `default` has one), the counting
        // engine keeps levels only for the metrics trends read.
        let lean = Uuid::from_u128(78);
        for engine in [&mut full, &mut counting] {
            engine
                .register_patient(patient, &ids(&["default", "copd", "heart-failure"]))
                .unwrap();
            engine
                .register_patient(lean, &ids(&["copd", "hypertension"]))
                .unwrap();
        }
        let mut seed = 7_u64;
        let mut noise = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((seed >> 33) as f64 / f64::from(u32::MAX)) - 0.5
        };
        let mut readings = Vec::new();
        for minute in 0..3_000_i64 {
            let ts = Timestamp(minute * 60_000_000);
            let episode = (minute / 400) % 2 == 1;
            let heart_rate = if episode { 118.0 } else { 78.0 } + 6.0 * noise();
            let spo2 = if episode { 89.0 } else { 95.0 } + 2.0 * noise();
            readings.push((Metric::HeartRate, heart_rate, ts));
            readings.push((Metric::Spo2, spo2, ts));
            if minute % 240 == 0 {
                readings.push((
                    Metric::BodyTemperature,
                    if episode { 38.6 } else { 36.9 },
                    ts,
                ));
            }
        }

        // Act
        let mut transitions = [Vec::new(), Vec::new()];
        for (engine, out) in [&mut full, &mut counting].into_iter().zip(&mut transitions) {
            let mut findings = Vec::new();
            for (metric, value, ts) in &readings {
                engine.evaluate_measurement(patient, *metric, *value, *ts, &mut findings);
                engine.evaluate_measurement(lean, *metric, *value, *ts, &mut findings);
            }
            out.extend(
                findings
                    .into_iter()
                    .filter(|f| f.transition != Transition::Ongoing)
                    .map(|f| (f.patient_id, f.rule_id, f.transition, f.ts)),
            );
        }

        // Assert
        assert!(transitions[0].len() >= 6, "{:?}", transitions[0]);
        assert!(
            transitions[0]
                .iter()
                .any(|(who, rule, ..)| *who == lean && rule.starts_with("copd/")),
            "{:?}",
            transitions[0]
        );
        assert_eq!(
            counting.patient(&lean).unwrap().smoothed & (1 << metric_index(Metric::Spo2)),
            1 << metric_index(Metric::Spo2)
        );
        assert_eq!(
            counting.patient(&lean).unwrap().smoothed
                & (1 << metric_index(Metric::BodyTemperature)),
            0
        );
        assert_eq!(transitions[0], transitions[1]);
    }

    #[test]
    fn personal_threshold_wins_over_the_protocol_from_its_valid_time() {
        // Arrange: fever from 38.5 instead of 38.0, from hour 10 on.
        let mut engine = engine();
        let patient = Uuid::from_u128(5);
        engine
            .register_patient(patient, &ids(&["default"]))
            .unwrap();
        let settings: RuleSettings =
            serde_json::from_str(r#"{"above": 38.5, "recover_at": 38.3}"#).unwrap();
        let unmatched = engine.set_personal_settings(
            patient,
            &[PersonalSettings {
                rule_key: "default/fever",
                settings: &settings,
                valid_from: Timestamp(10 * HOUR),
                valid_until: None,
            }],
        );
        assert!(unmatched.is_empty());

        // Act: 38.2 before the change fires by the protocol; after it, 38.2
        // recovers and 38.4 does not fire; 38.6 does.
        let before = fever_findings(&mut engine, patient, &[(1, 38.2)]);
        let after = fever_findings(&mut engine, patient, &[(11, 38.2), (12, 38.4), (13, 38.6)]);

        // Assert
        assert_eq!(before, vec![Transition::Raised]);
        assert_eq!(after, vec![Transition::Recovered, Transition::Raised]);
        assert_eq!(
            engine
                .applicable_rule(&patient, "default/fever", Timestamp(HOUR))
                .and_then(|rule| rule.above),
            Some(38.0)
        );
        assert_eq!(
            engine
                .applicable_rule(&patient, "default/fever", Timestamp(11 * HOUR))
                .and_then(|rule| rule.above),
            Some(38.5)
        );
    }

    #[test]
    fn temporary_and_switched_off_settings_end_and_newer_versions_win() {
        // Arrange: v1 switches fever off for hours 0–10; v2 (newer) sets 39.0
        // for hours 5–8 only.
        let mut engine = engine();
        let patient = Uuid::from_u128(6);
        engine
            .register_patient(patient, &ids(&["default"]))
            .unwrap();
        let off: RuleSettings = serde_json::from_str(r#"{"enabled": false}"#).unwrap();
        let high: RuleSettings = serde_json::from_str(r#"{"above": 39.0}"#).unwrap();
        engine.set_personal_settings(
            patient,
            &[
                PersonalSettings {
                    rule_key: "default/fever",
                    settings: &off,
                    valid_from: Timestamp(0),
                    valid_until: Some(Timestamp(10 * HOUR)),
                },
                PersonalSettings {
                    rule_key: "default/fever",
                    settings: &high,
                    valid_from: Timestamp(5 * HOUR),
                    valid_until: Some(Timestamp(8 * HOUR)),
                },
            ],
        );

        // Act and assert: off at hour 1, 39.0 at hour 6, off again at hour
        // 9, the protocol's 38.0 from hour 10.
        assert!(fever_findings(&mut engine, patient, &[(1, 38.8)]).is_empty());
        assert!(fever_findings(&mut engine, patient, &[(6, 38.8)]).is_empty());
        assert_eq!(
            fever_findings(&mut engine, patient, &[(7, 39.2)]),
            vec![Transition::Raised]
        );
        assert!(engine
            .applicable_rule(&patient, "default/fever", Timestamp(9 * HOUR))
            .is_none());
        assert_eq!(
            fever_findings(&mut engine, patient, &[(10, 38.4)]),
            vec![Transition::Ongoing]
        );
    }

    #[test]
    fn settings_for_rules_the_patient_does_not_follow_are_reported() {
        let mut engine = engine();
        let patient = Uuid::from_u128(8);
        engine
            .register_patient(patient, &ids(&["default"]))
            .unwrap();
        let settings = RuleSettings::default();
        let unmatched = engine.set_personal_settings(
            patient,
            &[PersonalSettings {
                rule_key: "heart-failure/weight_gain_1d",
                settings: &settings,
                valid_from: Timestamp(0),
                valid_until: None,
            }],
        );
        assert_eq!(unmatched, vec!["heart-failure/weight_gain_1d".to_owned()]);
    }

    #[test]
    fn several_signs_unusual_for_this_patient_raise_an_explained_anomaly() {
        // Arrange: two weeks of morning and evening rounds around this
        // patient's own normal (pulse 64, SpO2 97, systolic 150).
        let mut engine = engine();
        let patient = Uuid::from_u128(9);
        engine
            .register_patient(patient, &ids(&["default"]))
            .unwrap();
        let mut findings = Vec::new();
        let round = |engine: &mut TriageEngine,
                     findings: &mut Vec<Finding>,
                     hour: i64,
                     values: [f64; 3]| {
            for (offset, (metric, value)) in [Metric::HeartRate, Metric::Spo2, Metric::BpSystolic]
                .into_iter()
                .zip(values)
                .enumerate()
            {
                let ts = Timestamp(hour * HOUR + offset as i64 * 60_000_000);
                engine.evaluate_measurement(patient, metric, value, ts, findings);
            }
        };
        for day in 0..14 {
            for (round_index, hour) in [8, 20].into_iter().enumerate() {
                let wiggle = ((day * 5 + round_index as i64 * 3) % 5) as f64 - 2.0;
                round(
                    &mut engine,
                    &mut findings,
                    day * 24 + hour,
                    [64.0 + wiggle, 97.0 + wiggle / 4.0, 150.0 + 2.0 * wiggle],
                );
            }
        }
        let anomalies = |findings: &[Finding]| -> Vec<Finding> {
            findings
                .iter()
                .filter(|f| f.rule_id == "default/vital_signs_unusual")
                .cloned()
                .collect()
        };
        assert!(anomalies(&findings).is_empty(), "{findings:#?}");

        // Act: pulse 84, SpO2 94, systolic 128 — no threshold of the
        // protocol is crossed, but together they are far from this person.
        round(&mut engine, &mut findings, 14 * 24 + 8, [84.0, 94.0, 128.0]);
        let raised = anomalies(&findings);
        // Back to normal in the evening; the rule confirms recoveries on
        // dense data (a round's readings are a minute apart), so the
        // recovery seen at the round's last reading counts at the next one.
        round(
            &mut engine,
            &mut findings,
            14 * 24 + 20,
            [65.0, 97.0, 149.0],
        );
        round(&mut engine, &mut findings, 15 * 24 + 8, [64.0, 97.0, 151.0]);
        let recovered = anomalies(&findings);

        // Assert
        assert_eq!(raised[0].transition, Transition::Raised, "{raised:#?}");
        assert!(raised[1..]
            .iter()
            .all(|f| f.transition == Transition::Ongoing));
        assert!(
            findings
                .iter()
                .all(|f| !matches!(f.kind, RuleKind::Threshold | RuleKind::News2)),
            "no threshold fired: {findings:#?}"
        );
        let Factor::Anomaly {
            distance,
            contributions,
            since,
            ..
        } = &raised[0].explanation.factors[0]
        else {
            panic!("an anomaly factor: {:?}", raised[0].explanation);
        };
        assert!(*distance > 5.0);
        assert_eq!(contributions.len(), 3);
        assert!(contributions
            .iter()
            .any(|c| c.metric == Metric::HeartRate && c.z > 3.0));
        assert!(since.is_some());
        assert_eq!(
            recovered.last().map(|f| f.transition),
            Some(Transition::Recovered),
            "{recovered:#?}"
        );
    }

    #[test]
    fn unknown_protocol_is_refused() {
        let mut engine = engine();
        let error = engine
            .register_patient(Uuid::nil(), &ids(&["nope"]))
            .unwrap_err();
        assert_eq!(error, TriageError::UnknownProtocol("nope".to_owned()));
    }

    #[test]
    fn second_contact_raises_the_nts_level_of_a_finding() {
        // Arrange
        let mut engine = engine();
        let patient = Uuid::from_u128(2);
        engine
            .register_patient(patient, &ids(&["default"]))
            .unwrap();
        let mut findings = Vec::new();
        let fever = |findings: &Vec<Finding>| {
            findings
                .iter()
                .rfind(|f| f.rule_id == "default/fever" && f.transition == Transition::Raised)
                .map(|f| f.nts_level)
        };

        // Act: fever, recovery, fever again two days later.
        engine.evaluate_measurement(
            patient,
            Metric::BodyTemperature,
            38.6,
            Timestamp(0),
            &mut findings,
        );
        let first = fever(&findings);
        engine.evaluate_measurement(
            patient,
            Metric::BodyTemperature,
            37.0,
            Timestamp(12 * HOUR),
            &mut findings,
        );
        engine.evaluate_measurement(
            patient,
            Metric::BodyTemperature,
            38.7,
            Timestamp(48 * HOUR),
            &mut findings,
        );
        let second = fever(&findings);

        // Assert
        assert_eq!(first, Some(NtsLevel::U3));
        assert_eq!(second, Some(NtsLevel::U2));
    }

    #[test]
    fn threshold_alert_during_a_weight_trend_is_a_rapid_deterioration() {
        // Arrange: weight up 2.4 kg in 3 days keeps the trend rule active.
        let mut engine = engine();
        let patient = Uuid::from_u128(4);
        engine
            .register_patient(patient, &ids(&["default", "heart-failure"]))
            .unwrap();
        let mut findings = Vec::new();
        for (day, weight) in [80.0, 80.8, 81.6, 82.4].into_iter().enumerate() {
            let ts = Timestamp(day as i64 * 24 * HOUR);
            engine.evaluate_measurement(patient, Metric::BodyWeight, weight, ts, &mut findings);
        }
        assert!(findings
            .iter()
            .any(|f| f.rule_id == "heart-failure/weight_gain_3d"));
        findings.clear();

        // Act: a fever the same day.
        engine.evaluate_measurement(
            patient,
            Metric::BodyTemperature,
            38.6,
            Timestamp(73 * HOUR),
            &mut findings,
        );

        // Assert: medium (U3) raised one level for rapid deterioration.
        let fever = findings
            .iter()
            .find(|f| f.rule_id == "default/fever")
            .unwrap();
        assert_eq!(fever.nts_level, NtsLevel::U2);
        assert!(fever.explanation.factors.contains(&Factor::AlarmSignal {
            signal: "rapid_deterioration"
        }));
    }

    #[test]
    fn nothing_fires_and_nothing_is_pushed_for_normal_readings() {
        // Arrange
        let mut engine = engine();
        let patient = Uuid::from_u128(3);
        engine
            .register_patient(patient, &ids(&["default", "heart-failure"]))
            .unwrap();
        let mut findings = Vec::with_capacity(0);

        // Act
        for hour in 0..10 {
            engine.evaluate_measurement(
                patient,
                Metric::HeartRate,
                72.0,
                Timestamp(hour * HOUR),
                &mut findings,
            );
            engine.evaluate_measurement(
                patient,
                Metric::Spo2,
                96.0,
                Timestamp(hour * HOUR),
                &mut findings,
            );
        }

        // Assert
        assert!(findings.is_empty());
        assert_eq!(findings.capacity(), 0);
        assert!(engine.state_bytes() > 0);
    }

    /// Counts the allocations of the current thread while switched on.
    mod allocations {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        pub struct Counting;

        thread_local! {
            static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
        }

        // SAFETY: every call is passed on to the system allocator unchanged;
        // counting touches only a thread-local cell that never allocates.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = COUNT.try_with(|count| count.set(count.get().map(|n| n + 1)));
                // SAFETY: the caller's contract for `alloc` is passed on.
                unsafe { System.alloc(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: the caller's contract for `dealloc` is passed on.
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        #[global_allocator]
        static COUNTING: Counting = Counting;

        /// Returns how many allocations `work` made on this thread.
        pub fn during(work: impl FnOnce()) -> usize {
            COUNT.with(|count| count.set(Some(0)));
            work();
            COUNT.with(|count| count.replace(None)).unwrap_or(0)
        }
    }

    #[test]
    fn quiet_readings_allocate_nothing() {
        // Arrange: a patient with three protocols, a wearable and spot
        // devices, every metric already seen once (a metric's history is
        // allocated on its first reading).
        let mut engine = engine();
        let patient = Uuid::from_u128(9);
        engine
            .register_patient(patient, &ids(&["default", "copd", "heart-failure"]))
            .unwrap();
        let mut findings = Vec::new();
        let spot = [
            (Metric::Spo2, 95.0),
            (Metric::BpSystolic, 128.0),
            (Metric::BpDiastolic, 76.0),
            (Metric::BodyTemperature, 36.8),
            (Metric::BodyWeight, 81.0),
            (Metric::Steps, 20.0),
        ];
        let feed = |engine: &mut TriageEngine, findings: &mut Vec<Finding>, day: i64| {
            for minute in 0..24 * 60 {
                let ts = Timestamp(day * 24 * HOUR + minute * 60_000_000);
                let pulse = 70.0 + (minute % 7) as f64;
                engine.evaluate_measurement(patient, Metric::HeartRate, pulse, ts, findings);
                engine.evaluate_measurement(patient, Metric::Steps, 12.0, ts, findings);
                if minute % 480 == 0 {
                    for (metric, value) in spot {
                        engine.evaluate_measurement(patient, metric, value, ts, findings);
                    }
                }
            }
        };
        for day in 0..3 {
            feed(&mut engine, &mut findings, day);
        }
        assert!(findings.is_empty(), "{findings:?}");

        // Act
        let allocations = allocations::during(|| feed(&mut engine, &mut findings, 3));

        // Assert
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(allocations, 0);
        let first_glucose = allocations::during(|| {
            let ts = Timestamp(4 * 24 * HOUR);
            engine.evaluate_measurement(patient, Metric::BloodGlucose, 6.0, ts, &mut findings);
        });
        assert_eq!(
            first_glucose, 1,
            "a metric's history is allocated on its first reading"
        );
    }
}
