//! The triage stage of the pipeline: stored readings in, alerts out.
//!
//! It owns the [`TriageEngine`] (per-patient state in memory), evaluates each
//! newly stored reading — redeliveries are marked duplicate by the store
//! writer and skipped, so a reading is never triaged twice — and records
//! raised and ongoing findings in the alert book. At start it rebuilds the
//! engine's state from the stored readings (findings of the rebuild are not
//! recorded: they were recorded when the readings first arrived), so a restart
//! gives the same alerts as an uninterrupted run. A sweeper escalates alerts
//! whose response target lapsed unclaimed and ends snoozes that ran out;
//! recovered values and more urgent evidence end a snooze too
//! ([`super::snooze`]). Device statuses and implausible
//! values become technical alerts ([`super::technical`]); missed
//! measurements have their own clock-driven sweep ([`super::missed`]).
//! Personal settings are applied before the replay, so each reading is
//! judged by the version valid at its event time.
//!
//! # Rebuild
//!
//! The engine keeps, per patient and metric, the newest
//! [`HISTORY_CAPACITY`] readings, and its rules look back a bounded time
//! ([`rebuild_lookback_hours`]: the baseline window plus the longest rule
//! window, 15 days with the shipped protocols). So the rebuild reads, per
//! device and metric, only the newest [`HISTORY_CAPACITY`] readings within
//! that time ([`Store::newest_readings_per_series`]): a patient's newest
//! readings of a metric are among the newest of each of their devices, so
//! every history ends up holding exactly what an uninterrupted run holds
//! within the lookback, and a wearable sending every minute costs 64 rows
//! instead of 21,600. Each patient's readings are replayed in event-time
//! order (ties: device id, then metric), per metric only the complete run
//! of its most recent readings (see `PatientHistories::replay_into`), off
//! the async runtime.
//!
//! Rule memory (whether a rule is active, since when its condition holds,
//! its recent raises for the second-contact signal) comes from the replay,
//! so it is exact when it lies within the readings replayed for the rule's
//! metrics: for spot-checked metrics the whole lookback, for a metric a
//! wearable sends every minute about the last hour. After a restart a
//! wearer's rule on such a metric may thus miss an earlier raise of the same
//! rule (later findings lack the second-contact signal and suggest an NTS
//! level one step lower; the open alert keeps its higher level) or report a
//! shorter held time. Making that exact means storing rule state, not reading
//! more history (a week of a wearable's minute readings is 10,000 rows per
//! metric).
//!
//! Shutdown: the stage ends when its input closes, after recording what it
//! has; the sweeper ends on the shutdown token.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::technical::TechnicalRecorder;
use super::{AlertStatus, NewAlert};
use crate::domain::{Metric, Timestamp};
use crate::protocols::catalog::Catalog;
use crate::protocols::{Priority, Protocol, RuleKind};
use crate::store::writer::StoredBatch;
use crate::store::{AlertChange, SeriesTail, Store, StoreError};
use crate::triage::baseline::BASELINE_WINDOW_DAYS;
use crate::triage::engine::{PersonalSettings, TriageEngine};
use crate::triage::patient_state::{metric_index, HISTORY_CAPACITY};
use crate::triage::rules::{NEWS2_FRESHNESS_HOURS, TREND_GRACE_HOURS};
use crate::triage::urgency::SECOND_CONTACT_DAYS;
use crate::triage::urgency::{Factor, Finding, Transition};

/// Readings per device and metric read back at start: as many as the
/// engine keeps per patient and metric.
pub const REBUILD_READINGS_PER_SERIES: u32 = HISTORY_CAPACITY as u32;

/// How often the triage stage looks for changed personal settings (while
/// readings arrive; without readings there is nothing to evaluate).
pub const PERSONAL_SETTINGS_POLL: Duration = Duration::from_secs(2);

/// How often the triage stage reads which team each patient belongs to
/// (for the team's response targets; a new patient is picked up at once
/// when its first reading arrives, a patient moved to another team within
/// this time). Reading every patient is too much for every settings poll.
pub const PATIENT_TEAMS_POLL: Duration = Duration::from_secs(60);

/// How often overdue alerts are looked for.
const ESCALATION_SWEEP: Duration = Duration::from_secs(30);

/// Response targets in force: a team's own (set by its coordinators) over
/// the protocol's.
#[derive(Debug, Default, Clone)]
pub struct ResponseTargets {
    team_of_patient: HashMap<Uuid, Uuid>,
    by_team: HashMap<(Uuid, Priority), u32>,
}

impl ResponseTargets {
    /// Returns the minutes within which an alert of `priority` from
    /// `protocol` should be claimed for `patient_id`.
    pub fn minutes(
        &self,
        patient_id: Uuid,
        priority: Priority,
        protocol: Option<&Protocol>,
    ) -> u32 {
        self.team_of_patient
            .get(&patient_id)
            .and_then(|team| self.by_team.get(&(*team, priority)))
            .copied()
            .or_else(|| protocol.and_then(|p| p.response_targets.get(&priority).copied()))
            .unwrap_or(24 * 60)
    }

    /// Notes which team each of `patients` belongs to.
    pub fn set_patients(&mut self, patients: &[crate::store::Patient]) {
        self.team_of_patient = patients
            .iter()
            .map(|patient| (patient.id, patient.team_id))
            .collect();
    }

    /// Reads the team targets again (a small table; the patient list is
    /// read less often, see [`PATIENT_TEAMS_POLL`]).
    ///
    /// # Errors
    /// Returns a store error when they cannot be read.
    pub async fn load_team_targets(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        self.by_team = store
            .team_response_targets()
            .await?
            .into_iter()
            .map(|target| ((target.team_id, target.priority), target.minutes))
            .collect();
        Ok(())
    }
}

/// The stage.
pub struct TriageStage {
    pub store: Arc<dyn Store>,
    /// The protocols in force, files and saved versions.
    pub protocols: Arc<Catalog>,
    /// After a nurse resolves an alert while its condition still holds, the
    /// condition opens a new alert only once this much time has passed.
    pub reraise_after: Duration,
}

impl TriageStage {
    /// Builds the engine and replays recent history into it; see the
    /// module docs.
    ///
    /// # Errors
    /// Returns a store error when the history cannot be read.
    pub async fn rebuild(
        &self,
        now: Timestamp,
    ) -> Result<(TriageEngine, HashSet<Uuid>), StoreError> {
        let (engine, registered, _report) = self.rebuild_with_report(now).await?;
        Ok((engine, registered))
    }

    /// Does what [`rebuild`](Self::rebuild) does and also says what it read
    /// and where the time went.
    ///
    /// # Errors
    /// Returns a store error when the history cannot be read.
    ///
    /// # Panics
    /// Passes on a panic of the replay.
    pub async fn rebuild_with_report(
        &self,
        now: Timestamp,
    ) -> Result<(TriageEngine, HashSet<Uuid>, RebuildReport), StoreError> {
        let started = Instant::now();
        let mut engine = TriageEngine::new(BTreeMap::new());
        apply_protocols(&mut engine, &self.protocols);
        let registered = self.register_all(&mut engine).await?;
        // Personal settings first, so that the replay uses the version that
        // applied at each reading's event time.
        self.load_personal_settings(&mut engine, 0).await?;
        let since =
            now.plus_micros(-rebuild_lookback_hours(&self.protocols.current()) * MICROS_PER_HOUR);

        let mut history = PatientHistories::default();
        let mut readings_read = 0;
        let mut series = self
            .store
            .newest_readings_per_series(since, REBUILD_READINGS_PER_SERIES);
        while let Some(tail) = series.try_next().await? {
            readings_read += tail.readings.len();
            if registered.contains(&tail.patient_id) {
                history.push(&tail);
            }
        }
        drop(series);
        let read_seconds = started.elapsed().as_secs_f64();

        let replay = tokio::task::spawn_blocking(move || {
            let replayed = history.replay_into(&mut engine);
            (engine, replayed)
        });
        let (engine, readings_replayed) = replay
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let report = RebuildReport {
            since,
            readings_read,
            readings_replayed,
            patients: engine.patient_count(),
            read_seconds,
            replay_seconds: started.elapsed().as_secs_f64() - read_seconds,
        };
        tracing::info!(
            patients = report.patients,
            readings = report.readings_read,
            seconds = report.read_seconds + report.replay_seconds,
            "triage state rebuilt"
        );
        Ok((engine, registered, report))
    }

    /// Applies the personal settings stored after `seen` (a
    /// `RuleOverride::id`) to the engine: every version of each patient
    /// concerned. Returns the newest id seen.
    async fn load_personal_settings(
        &self,
        engine: &mut TriageEngine,
        seen: i64,
    ) -> Result<i64, StoreError> {
        let changed = self.store.rule_overrides_after(seen).await?;
        let Some(newest) = changed.last().map(|version| version.id) else {
            return Ok(seen);
        };
        let mut patients: Vec<Uuid> = changed.iter().map(|version| version.patient_id).collect();
        patients.sort_unstable();
        patients.dedup();
        for patient_id in patients {
            let versions = if seen == 0 {
                changed
                    .iter()
                    .filter(|version| version.patient_id == patient_id)
                    .cloned()
                    .collect()
            } else {
                self.store.patient_rule_overrides(patient_id).await?
            };
            let settings: Vec<PersonalSettings<'_>> = versions
                .iter()
                .map(|version| PersonalSettings {
                    rule_key: &version.rule_key,
                    settings: &version.settings,
                    valid_from: version.valid_from,
                    valid_until: version.valid_until,
                })
                .collect();
            for rule_key in engine.set_personal_settings(patient_id, &settings) {
                tracing::warn!(%patient_id, rule = %rule_key, "personal settings for a rule the patient does not follow");
            }
        }
        Ok(newest)
    }

    /// Registers the patients not yet registered (a patient's state, once
    /// built, is never thrown away here) and applies their personal settings.
    async fn register_new(
        &self,
        engine: &mut TriageEngine,
        registered: &mut HashSet<Uuid>,
        refused: &mut HashSet<Uuid>,
    ) -> Result<Vec<crate::store::Patient>, StoreError> {
        let patients = self.store.list_patients().await?;
        for patient in &patients {
            if registered.contains(&patient.id) {
                continue;
            }
            match engine.register_patient(patient.id, &patient.protocols) {
                Ok(()) => {
                    registered.insert(patient.id);
                    let versions = self.store.patient_rule_overrides(patient.id).await?;
                    let settings: Vec<PersonalSettings<'_>> = versions
                        .iter()
                        .map(|version| PersonalSettings {
                            rule_key: &version.rule_key,
                            settings: &version.settings,
                            valid_from: version.valid_from,
                            valid_until: version.valid_until,
                        })
                        .collect();
                    engine.set_personal_settings(patient.id, &settings);
                }
                Err(error) => {
                    // Not asked again for every batch of this patient's
                    // readings; a protocol change tries again.
                    if refused.insert(patient.id) {
                        tracing::warn!(patient_id = %patient.id, error = %error, "patient not triaged");
                    }
                }
            }
        }
        Ok(patients)
    }

    async fn register_all(&self, engine: &mut TriageEngine) -> Result<HashSet<Uuid>, StoreError> {
        let mut registered = HashSet::new();
        for patient in self.store.list_patients().await? {
            match engine.register_patient(patient.id, &patient.protocols) {
                Ok(()) => {
                    registered.insert(patient.id);
                }
                Err(error) => {
                    tracing::warn!(patient_id = %patient.id, error = %error, "patient not triaged")
                }
            }
        }
        Ok(registered)
    }

    /// Runs until `stored_rx` closes.
    pub async fn run(
        self,
        mut engine: TriageEngine,
        mut registered: HashSet<Uuid>,
        mut stored_rx: mpsc::Receiver<StoredBatch>,
    ) {
        let mut findings = Vec::new();
        let mut closed: Vec<(Finding, Metric)> = Vec::new();
        let mut personal_seen = 0;
        let mut personal_checked: Option<Instant> = None;
        let mut targets = ResponseTargets::default();
        let mut patient_teams_read: Option<Instant> = None;
        let mut refused: HashSet<Uuid> = HashSet::new();
        let mut memo = EvidenceMemo::default();
        let mut resolutions = ResolutionMemo::new(self.store.alert_changes());
        // The metric of the reading behind each finding.
        let mut finding_metrics: Vec<Metric> = Vec::new();
        let mut technical = TechnicalRecorder::new(self.store.clone(), self.protocols.clone());
        let mut protocol_changes = self.protocols.subscribe();
        protocol_changes.mark_unchanged();
        while let Some(batch) = stored_rx.recv().await {
            // Patients registered since the last look are picked up here.
            if batch
                .readings
                .iter()
                .any(|r| !registered.contains(&r.patient_id) && !refused.contains(&r.patient_id))
            {
                match self
                    .register_new(&mut engine, &mut registered, &mut refused)
                    .await
                {
                    Ok(patients) => {
                        targets.set_patients(&patients);
                        patient_teams_read = Some(Instant::now());
                    }
                    Err(error) => tracing::warn!(error = %error, "patient registry unavailable"),
                }
            }
            // Personal settings changed by coordinators or nurses, at most
            // PERSONAL_SETTINGS_POLL old.
            if personal_checked.is_none_or(|at| at.elapsed() >= PERSONAL_SETTINGS_POLL) {
                match self
                    .load_personal_settings(&mut engine, personal_seen)
                    .await
                {
                    Ok(newest) => {
                        personal_seen = newest;
                        personal_checked = Some(Instant::now());
                    }
                    Err(error) => tracing::warn!(error = %error, "personal settings unavailable"),
                }
                if let Err(error) = self.protocols.refresh(self.store.as_ref()).await {
                    tracing::warn!(error = %error, "protocol versions unavailable");
                }
                if patient_teams_read.is_none_or(|at| at.elapsed() >= PATIENT_TEAMS_POLL) {
                    match self.store.list_patients().await {
                        Ok(patients) => {
                            targets.set_patients(&patients);
                            patient_teams_read = Some(Instant::now());
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "patient registry unavailable")
                        }
                    }
                }
                if let Err(error) = targets.load_team_targets(self.store.as_ref()).await {
                    tracing::warn!(error = %error, "response targets unavailable");
                }
            }
            // Protocol versions saved or files reloaded: each applies to
            // readings from its time on.
            if protocol_changes.has_changed().unwrap_or(false) {
                protocol_changes.mark_unchanged();
                apply_protocols(&mut engine, &self.protocols);
                refused.clear();
                tracing::info!("protocol versions applied");
            }
            for (reading, is_new) in batch.readings.iter().zip(&batch.is_new) {
                if *is_new {
                    engine.evaluate(reading, &mut findings);
                    finding_metrics.resize(findings.len(), reading.metric);
                }
            }
            for (finding, metric) in findings.drain(..).zip(finding_metrics.drain(..)) {
                if self
                    .record(&finding, metric, &targets, &mut memo, &mut resolutions)
                    .await
                {
                    closed.push((finding, metric));
                }
            }
            // Alerts nurses resolved while their condition holds cover
            // nothing: what they held is raised now (see the engine's
            // "Covered findings").
            for (finding, metric) in closed.drain(..) {
                engine.alert_closed(
                    finding.patient_id,
                    &finding.rule_id,
                    finding.ts,
                    &mut findings,
                );
                for released in findings.drain(..) {
                    self.record(&released, metric, &targets, &mut memo, &mut resolutions)
                        .await;
                }
            }
            for implausible in &batch.implausible {
                technical.record_implausible(implausible).await;
            }
            for status in &batch.statuses {
                technical.record_status(status).await;
            }
        }
        tracing::info!("triage stopped");
    }

    /// Records a finding in the alert book. Returns true for ongoing
    /// evidence of an alert that a nurse resolved and that is not due to be
    /// raised again: for the alert book it is closed.
    async fn record(
        &self,
        finding: &Finding,
        metric: Metric,
        targets: &ResponseTargets,
        memo: &mut EvidenceMemo,
        resolutions: &mut ResolutionMemo,
    ) -> bool {
        if finding.transition == Transition::Recovered {
            memo.forget(finding.patient_id, &finding.rule_id);
            // A snooze ends when the values recover: the system resolves
            // the alert. An alert in a nurse's hands stays hers.
            if let Err(error) = super::snooze::resolve_recovered(
                self.store.as_ref(),
                finding.patient_id,
                &finding.rule_id,
                finding.ts,
                Timestamp::now(),
            )
            .await
            {
                tracing::warn!(error = %error, rule = %finding.rule_id, "cannot resolve a recovered snoozed alert");
            }
            return false;
        }
        // Ongoing evidence after a resolution: the nurse has seen this; raise
        // it again only when the re-raise interval has passed. Ongoing
        // evidence for an open alert is written only when it is news.
        if finding.transition == Transition::Ongoing {
            let reraise_due = |resolved_at: Timestamp| {
                resolved_at
                    .plus_micros(i64::try_from(self.reraise_after.as_micros()).unwrap_or(i64::MAX))
            };
            resolutions.forget_changed();
            match resolutions.get(finding.patient_id, &finding.rule_id, Instant::now()) {
                Some(Some(resolved_at)) if Timestamp::now() < reraise_due(resolved_at) => {
                    return true;
                }
                Some(None) if !memo.is_news(finding, metric) => return false,
                // A write is due, or nothing is known: ask the alert book.
                _ => {}
            }
            let answer = self
                .store
                .last_resolution(finding.patient_id, &finding.rule_id)
                .await;
            if let Ok(answer) = answer {
                resolutions.note(finding.patient_id, &finding.rule_id, answer, Instant::now());
            }
            match answer {
                Ok(Some(resolved_at)) => {
                    if Timestamp::now() < reraise_due(resolved_at) {
                        return true;
                    }
                }
                Ok(None) => {
                    if !memo.is_news(finding, metric) {
                        return false;
                    }
                }
                Err(error) => tracing::warn!(error = %error, "cannot check the last resolution"),
            }
        }
        let protocol_id = finding.rule_id.split('/').next().unwrap_or_default();
        let response_minutes = targets.minutes(
            finding.patient_id,
            finding.priority,
            self.protocols.current().get(protocol_id),
        );
        let alert = NewAlert {
            patient_id: finding.patient_id,
            rule_key: finding.rule_id.clone(),
            priority: finding.priority,
            nts: finding.nts_level,
            score: finding.score,
            explanation: serde_json::to_value(&finding.explanation).unwrap_or_default(),
            at: finding.ts,
            raised_at: Timestamp::now(),
            response_minutes: i64::from(response_minutes),
        };
        let mut backoff = Duration::from_millis(100);
        for _attempt in 0..8 {
            match self.store.raise_alert(&alert).await {
                Ok((alert, created)) => {
                    memo.note_written(finding, metric);
                    if created {
                        tracing::info!(alert_id = %alert.id, patient_id = %alert.patient_id, rule = %alert.rule_key, "alert raised");
                    } else if alert.status == AlertStatus::Snoozed {
                        // A worsening patient must not stay hidden.
                        let alert_id = alert.id;
                        if let Err(error) = super::snooze::wake_if_more_urgent(
                            self.store.as_ref(),
                            alert,
                            Timestamp::now(),
                        )
                        .await
                        {
                            tracing::warn!(error = %error, %alert_id, "cannot end the snooze of a more urgent alert");
                        }
                    }
                    return false;
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(error = %error, "failed to record alert, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::error!(error = %error, rule = %alert.rule_key, "alert book refused a finding");
                    return false;
                }
            }
        }
        false
    }
}

/// How long ongoing evidence for an open alert may go unwritten when
/// nothing a nurse acts on changed (priority, NTS level), in event time.
pub const EVIDENCE_REFRESH_MICROS: i64 = 5 * 60 * 1_000_000;

/// Which ongoing evidence is news for the alert book.
///
/// A wearable in alarm sends a reading a minute or more often, and each
/// would otherwise rewrite the open alert, add an `updated` event and make
/// every connected worklist reload, while the nurse's picture stays the
/// same. Evidence is written when the alert's priority or NTS level
/// changes, when it names a different number of covered findings (see
/// [`TriageEngine`](crate::triage::engine::TriageEngine), "Covered
/// findings"), when it comes from a metric not yet written since the last
/// refresh (a nurse's observation completing a NEWS2, a blood pressure
/// beside the wearable's pulse), and otherwise at most every
/// [`EVIDENCE_REFRESH_MICROS`] of event time; raises, recoveries and
/// re-raises after a resolution are never held back. Kept in memory:
/// after a restart the first evidence is written.
#[derive(Debug, Default)]
pub struct EvidenceMemo {
    /// Per patient, per rule key (looked up without allocating).
    written: HashMap<Uuid, HashMap<String, Written>>,
}

#[derive(Debug, Clone, Copy)]
struct Written {
    priority: Priority,
    nts: crate::triage::urgency::NtsLevel,
    /// When the refresh window began (event time).
    ts: Timestamp,
    /// The metrics written since then, one bit each.
    metrics: u32,
    /// How many covered findings the written evidence named.
    also_found: usize,
}

/// Returns how many covered findings `finding` names.
fn also_found(finding: &Finding) -> usize {
    finding
        .explanation
        .factors
        .iter()
        .filter(|factor| matches!(factor, Factor::AlsoFound { .. }))
        .count()
}

/// The alert book's last answer, per patient and rule, to "is nothing open
/// and when was it last resolved?" ([`Store::last_resolution`]), which
/// every ongoing finding asks. A wearable in alarm gives one a minute or
/// more often, and a thousand of them at once would keep PostgreSQL
/// answering a query per reading while the answer stays the same.
///
/// An answer is trusted only to hold back what is no news (ongoing
/// evidence for an open alert that [`EvidenceMemo`] would not write, or
/// for a resolved alert not yet due to be raised again); whenever it would
/// lead to a write, the alert book is asked again. It is forgotten when an
/// alert of the patient changes (any instance's, heard through
/// [`Store::alert_changes`]; everything on a lost connection or a lagging
/// subscription) and after [`RESOLUTION_TRUSTED`], so a change missed
/// while the listener reconnects shows within that time.
pub struct ResolutionMemo {
    changes: tokio::sync::broadcast::Receiver<AlertChange>,
    /// Per patient, per rule key: the answer and when it was read.
    known: HashMap<Uuid, HashMap<String, (Option<Timestamp>, Instant)>>,
    /// The subscription ended: nothing is kept.
    closed: bool,
}

/// The longest an answer of the alert book is used.
pub const RESOLUTION_TRUSTED: Duration = Duration::from_secs(10);

impl ResolutionMemo {
    /// Starts with nothing known, forgetting what `changes` reports.
    pub fn new(changes: tokio::sync::broadcast::Receiver<AlertChange>) -> ResolutionMemo {
        ResolutionMemo {
            changes,
            known: HashMap::new(),
            closed: false,
        }
    }

    /// Forgets the answers the alert changes since the last call concern.
    pub fn forget_changed(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        if self.closed {
            return;
        }
        loop {
            match self.changes.try_recv() {
                Ok(change) if change.kind != "resync" => {
                    self.known.remove(&change.patient_id);
                }
                Ok(_) | Err(TryRecvError::Lagged(_)) => self.known.clear(),
                Err(TryRecvError::Closed) => {
                    // No more news of changes: nothing is trusted from now on.
                    self.known.clear();
                    self.closed = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// Returns the known answer for `rule_id` of `patient_id`, if trusted at `now`.
    pub fn get(&self, patient_id: Uuid, rule_id: &str, now: Instant) -> Option<Option<Timestamp>> {
        self.known
            .get(&patient_id)
            .and_then(|rules| rules.get(rule_id))
            .filter(|(_, read_at)| now.saturating_duration_since(*read_at) < RESOLUTION_TRUSTED)
            .map(|(answer, _)| *answer)
    }

    /// Keeps the alert book's answer for `rule_id` of `patient_id`, read at `now`.
    pub fn note(
        &mut self,
        patient_id: Uuid,
        rule_id: &str,
        answer: Option<Timestamp>,
        now: Instant,
    ) {
        if self.closed {
            return;
        }
        let rules = self.known.entry(patient_id).or_default();
        match rules.get_mut(rule_id) {
            Some(known) => *known = (answer, now),
            None => {
                rules.insert(rule_id.to_owned(), (answer, now));
            }
        }
    }
}

fn metric_bit(metric: Metric) -> u32 {
    1 << (metric_index(metric) % 32)
}

impl EvidenceMemo {
    /// Whether ongoing `finding` from a reading of `metric`, for an open
    /// alert, is worth writing.
    pub fn is_news(&self, finding: &Finding, metric: Metric) -> bool {
        match self
            .written
            .get(&finding.patient_id)
            .and_then(|rules| rules.get(finding.rule_id.as_str()))
        {
            None => true,
            Some(written) => {
                written.priority != finding.priority
                    || written.nts != finding.nts_level
                    || written.metrics & metric_bit(metric) == 0
                    || written.also_found != also_found(finding)
                    || finding.ts.micros() >= written.ts.micros() + EVIDENCE_REFRESH_MICROS
            }
        }
    }

    /// Notes that `finding`, from a reading of `metric`, was written to the
    /// alert book.
    pub fn note_written(&mut self, finding: &Finding, metric: Metric) {
        let rules = self.written.entry(finding.patient_id).or_default();
        let fresh = Written {
            priority: finding.priority,
            nts: finding.nts_level,
            ts: finding.ts,
            metrics: metric_bit(metric),
            also_found: also_found(finding),
        };
        match rules.get_mut(finding.rule_id.as_str()) {
            Some(written)
                if written.priority == finding.priority
                    && written.nts == finding.nts_level
                    && finding.ts.micros() < written.ts.micros() + EVIDENCE_REFRESH_MICROS =>
            {
                written.metrics |= metric_bit(metric);
                written.also_found = fresh.also_found;
            }
            _ => {
                rules.insert(finding.rule_id.clone(), fresh);
            }
        }
    }

    /// Forgets a rule whose condition ended.
    pub fn forget(&mut self, patient_id: Uuid, rule_id: &str) {
        if let Some(rules) = self.written.get_mut(&patient_id) {
            rules.remove(rule_id);
            if rules.is_empty() {
                self.written.remove(&patient_id);
            }
        }
    }
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// What a rebuild read and where its time went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildReport {
    /// The oldest event time read.
    pub since: Timestamp,
    /// Readings the store returned.
    pub readings_read: usize,
    /// Readings of registered patients replayed into the engine.
    pub readings_replayed: usize,
    pub patients: usize,
    /// Registering patients and reading the history.
    pub read_seconds: f64,
    /// Sorting and replaying it.
    pub replay_seconds: f64,
}

/// Gives the engine every version of every protocol of `catalog`.
pub fn apply_protocols(engine: &mut TriageEngine, catalog: &Catalog) {
    for (id, chain) in catalog.chains() {
        let versions: Vec<(Timestamp, &Protocol)> = chain
            .iter()
            .map(|(from, protocol)| (*from, protocol))
            .collect();
        engine.set_protocol_versions(&id, &versions);
    }
}

/// Returns how many hours before a reading the rules of `protocols` can
/// look: the baseline window (threshold rules explain and rank against it),
/// a baseline-deviation rule's excluded recent hours before that window, a
/// trend window with its grace, the NEWS2 freshness, and the raise history
/// of the second-contact alarm signal. Older readings cannot change what
/// the engine concludes from now on, so the rebuild does not read them.
pub fn rebuild_lookback_hours(protocols: &BTreeMap<String, Protocol>) -> i64 {
    let baseline_hours = BASELINE_WINDOW_DAYS * 24;
    let mut hours = baseline_hours
        .max(SECOND_CONTACT_DAYS * 24)
        .max(NEWS2_FRESHNESS_HOURS);
    for rule in protocols.values().flat_map(|protocol| &protocol.rules) {
        let window_hours = i64::from(rule.window_hours.unwrap_or(0));
        let rule_hours = match rule.kind {
            RuleKind::Trend => window_hours + TREND_GRACE_HOURS,
            RuleKind::BaselineDeviation => window_hours + baseline_hours,
            _ => 0,
        };
        hours = hours.max(rule_hours);
    }
    hours
}

/// One reading held for the replay; the device is an index into
/// [`PatientHistories::device_ids`].
#[derive(Debug, Clone, Copy)]
struct HeldReading {
    ts: Timestamp,
    value: f64,
    device: u32,
    metric: Metric,
}

/// What the rebuild read of one patient.
#[derive(Debug)]
struct PatientHistory {
    readings: Vec<HeldReading>,
    /// Per metric (in [`Metric::ALL`] order), the event time from which the
    /// patient's readings of it are complete; see
    /// [`PatientHistories::replay_into`].
    complete_from: [Timestamp; Metric::ALL.len()],
}

/// The history read for the rebuild, grouped by patient, compactly: the
/// store returns it series by series, and the replay needs each patient's
/// readings in event-time order.
#[derive(Debug, Default)]
struct PatientHistories {
    patients: HashMap<Uuid, PatientHistory>,
    device_ids: Vec<String>,
    device_index: HashMap<String, u32>,
}

impl PatientHistories {
    fn push(&mut self, tail: &SeriesTail) {
        let device = match self.device_index.get(&tail.device_id) {
            Some(&index) => index,
            None => {
                let index = self.device_ids.len() as u32;
                self.device_ids.push(tail.device_id.clone());
                self.device_index.insert(tail.device_id.clone(), index);
                index
            }
        };
        let patient = self
            .patients
            .entry(tail.patient_id)
            .or_insert_with(|| PatientHistory {
                readings: Vec::new(),
                complete_from: [Timestamp(i64::MIN); Metric::ALL.len()],
            });
        if !tail.complete {
            let from = &mut patient.complete_from[metric_index(tail.metric)];
            *from = (*from).max(tail.oldest);
        }
        patient
            .readings
            .extend(tail.readings.iter().map(|&(ts, value)| HeldReading {
                ts,
                value,
                device,
                metric: tail.metric,
            }));
    }

    /// Replays each patient's readings in event-time order (ties: device id,
    /// then metric); returns how many were replayed.
    ///
    /// A series that was not read completely may have older readings that
    /// were not read; the patient's other readings of that metric from before
    /// its oldest one read are left out too. They cannot be among the newest
    /// readings the engine keeps, and replaying them without the unread ones
    /// between them would evaluate a history that never was (a spot-checked
    /// pulse among hours of missing wearable readings "holding" a
    /// tachycardia). So each metric is replayed as a complete run of its
    /// most recent readings.
    fn replay_into(self, engine: &mut TriageEngine) -> usize {
        let mut device_rank = vec![0_u32; self.device_ids.len()];
        let mut by_name: Vec<u32> = (0..self.device_ids.len() as u32).collect();
        by_name.sort_unstable_by(|a, b| {
            self.device_ids[*a as usize].cmp(&self.device_ids[*b as usize])
        });
        for (rank, index) in by_name.into_iter().enumerate() {
            device_rank[index as usize] = rank as u32;
        }
        let mut findings = Vec::new();
        let mut replayed = 0;
        for (patient_id, patient) in self.patients {
            let PatientHistory {
                mut readings,
                complete_from,
            } = patient;
            readings.retain(|reading| reading.ts >= complete_from[metric_index(reading.metric)]);
            readings.sort_unstable_by(|a, b| {
                (a.ts, device_rank[a.device as usize], a.metric.code()).cmp(&(
                    b.ts,
                    device_rank[b.device as usize],
                    b.metric.code(),
                ))
            });
            for reading in &readings {
                engine.evaluate_measurement(
                    patient_id,
                    reading.metric,
                    reading.value,
                    reading.ts,
                    &mut findings,
                );
                findings.clear();
            }
            replayed += readings.len();
        }
        replayed
    }
}

/// Every sweep, returns alerts whose snooze ran out to the worklist and
/// escalates the alerts whose response target lapsed unclaimed.
pub async fn run_escalation_sweeper(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ESCALATION_SWEEP) => {}
            _ = shutdown.cancelled() => return,
        }
        // Snoozes that ran out first: an alert back in a nurse's hands is
        // not overdue, an unclaimed one is escalated below as before.
        if let Err(error) = super::snooze::end_expired_snoozes(&store, Timestamp::now()).await {
            tracing::warn!(error = %error, "snooze sweep failed");
        }
        if let Err(error) = escalate_overdue(&store, Timestamp::now()).await {
            tracing::warn!(error = %error, "escalation sweep failed");
        }
    }
}

/// Escalates every overdue unclaimed alert; returns how many.
///
/// # Errors
/// Returns a store error when the alerts cannot be read.
pub async fn escalate_overdue(store: &Arc<dyn Store>, now: Timestamp) -> Result<usize, StoreError> {
    let mut escalated = 0;
    for mut alert in store.unresolved_alerts().await? {
        let from = alert.status;
        if let Some(event) = alert.escalate_if_overdue(now) {
            match store.save_transition(&alert, from, &event).await {
                Ok(()) => escalated += 1,
                // Claimed or changed meanwhile: nothing to escalate.
                Err(StoreError::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(escalated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::urgency::{Explanation, NtsLevel};

    const MINUTE: i64 = 60_000_000;

    fn change(patient: u128, kind: &str) -> AlertChange {
        AlertChange {
            alert_id: Uuid::from_u128(99),
            patient_id: Uuid::from_u128(patient),
            kind: kind.to_owned(),
        }
    }

    #[test]
    fn a_known_resolution_is_forgotten_when_an_alert_of_the_patient_changes() {
        // Arrange: answers for two patients.
        let (sender, receiver) = tokio::sync::broadcast::channel(4);
        let mut resolutions = ResolutionMemo::new(receiver);
        let now = Instant::now();
        let (one, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        resolutions.note(one, "default/news2", Some(Timestamp(5)), now);
        resolutions.note(other, "default/news2", None, now);

        // Act: a nurse resolves an alert of the other patient.
        sender.send(change(2, "resolved")).unwrap();
        resolutions.forget_changed();

        // Assert
        assert_eq!(
            resolutions.get(one, "default/news2", now),
            Some(Some(Timestamp(5)))
        );
        assert_eq!(resolutions.get(other, "default/news2", now), None);
        assert_eq!(resolutions.get(one, "default/spo2_low", now), None);
    }

    #[test]
    fn everything_is_forgotten_on_a_lost_listener_a_lagging_subscription_or_time() {
        // Arrange
        let (sender, receiver) = tokio::sync::broadcast::channel(2);
        let mut resolutions = ResolutionMemo::new(receiver);
        let now = Instant::now();
        let patient = Uuid::from_u128(1);
        let known = |resolutions: &mut ResolutionMemo| {
            resolutions.note(patient, "default/news2", None, now);
        };

        // Act and assert: the listener lost its connection.
        known(&mut resolutions);
        sender.send(change(7, "resync")).unwrap();
        resolutions.forget_changed();
        assert_eq!(resolutions.get(patient, "default/news2", now), None);

        // More changes than the subscription holds.
        known(&mut resolutions);
        for _ in 0..3 {
            sender.send(change(7, "updated")).unwrap();
        }
        resolutions.forget_changed();
        assert_eq!(resolutions.get(patient, "default/news2", now), None);

        // Trusted for a while only.
        known(&mut resolutions);
        assert_eq!(resolutions.get(patient, "default/news2", now), Some(None));
        assert_eq!(
            resolutions.get(patient, "default/news2", now + RESOLUTION_TRUSTED),
            None
        );

        // No more news of changes at all: nothing is kept.
        drop(sender);
        resolutions.forget_changed();
        known(&mut resolutions);
        assert_eq!(resolutions.get(patient, "default/news2", now), None);
    }

    fn ongoing(minute: i64, priority: Priority, nts: NtsLevel) -> Finding {
        Finding {
            patient_id: Uuid::from_u128(1),
            rule_id: "default/vital_signs_unusual".to_owned(),
            kind: RuleKind::Anomaly,
            transition: Transition::Ongoing,
            ts: Timestamp(minute * MINUTE),
            priority,
            nts_level: nts,
            score: 2000.0 + minute as f64,
            explanation: Explanation::default(),
        }
    }

    #[test]
    fn ongoing_evidence_is_written_when_it_changes_the_picture_or_is_due() {
        let hr = Metric::HeartRate;
        let mut memo = EvidenceMemo::default();
        let first = ongoing(0, Priority::Medium, NtsLevel::U3);
        assert!(memo.is_news(&first, hr), "nothing written yet");
        memo.note_written(&first, hr);
        // A minute later, same priority and NTS level, same metric: held back.
        assert!(!memo.is_news(&ongoing(1, Priority::Medium, NtsLevel::U3), hr));
        assert!(!memo.is_news(&ongoing(4, Priority::Medium, NtsLevel::U3), hr));
        // Worse: written at once.
        assert!(memo.is_news(&ongoing(2, Priority::High, NtsLevel::U3), hr));
        assert!(memo.is_news(&ongoing(2, Priority::Medium, NtsLevel::U2), hr));
        // Another metric completes the picture: written, then held back too.
        let oxygen = Metric::SupplementalOxygen;
        assert!(memo.is_news(&ongoing(2, Priority::Medium, NtsLevel::U3), oxygen));
        memo.note_written(&ongoing(2, Priority::Medium, NtsLevel::U3), oxygen);
        assert!(!memo.is_news(&ongoing(3, Priority::Medium, NtsLevel::U3), oxygen));
        assert!(!memo.is_news(&ongoing(3, Priority::Medium, NtsLevel::U3), hr));
        // Refreshed after five minutes of event time from the first write.
        assert!(memo.is_news(&ongoing(5, Priority::Medium, NtsLevel::U3), hr));
        // Another patient or rule has its own memory.
        let mut other = ongoing(1, Priority::Medium, NtsLevel::U3);
        other.patient_id = Uuid::from_u128(2);
        assert!(memo.is_news(&other, hr));
        // After a recovery the next evidence is written.
        memo.forget(first.patient_id, &first.rule_id);
        assert!(memo.is_news(&ongoing(1, Priority::Medium, NtsLevel::U3), hr));
    }
}
