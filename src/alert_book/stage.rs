//! The triage stage of the pipeline: stored readings in, alerts out.
//!
//! It owns the [`TriageEngine`] (per-patient state in memory), evaluates each
//! newly stored reading — redeliveries are marked duplicate by the store
//! writer and skipped, so a reading is never triaged twice — and records
//! raised and ongoing findings in the alert book. At start it rebuilds the
//! engine's state from the stored readings of the last
//! [`REBUILD_DAYS`] days (findings from the rebuild only update alerts that are
//! already open; they do not open new ones), so a restart gives the same
//! alerts as an uninterrupted run. A sweeper escalates alerts whose response
//! target lapsed unclaimed. Device statuses and implausible values become
//! technical alerts ([`super::technical`]); missed measurements have their
//! own clock-driven sweep ([`super::missed`]).
//!
//! Shutdown: the stage ends when its input closes, after recording what it
//! has; the sweeper ends on the shutdown token.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::technical::TechnicalRecorder;
use super::NewAlert;
use crate::domain::{DeviceId, Reading, Timestamp};
use crate::protocols::{Priority, Protocol};
use crate::store::writer::StoredBatch;
use crate::store::{Store, StoreError};
use crate::triage::engine::{PersonalSettings, TriageEngine};
use crate::triage::urgency::{Finding, Transition};

/// Days of history replayed into the engine at start: the longest trend
/// window (72 h) and the baseline window (14 days) fit in it.
pub const REBUILD_DAYS: i64 = 14;

/// How often the triage stage looks for changed personal settings (while
/// readings arrive; without readings there is nothing to evaluate).
pub const PERSONAL_SETTINGS_POLL: Duration = Duration::from_secs(2);

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

    /// Reads the team targets and which team each patient belongs to.
    ///
    /// # Errors
    /// Returns a store error when they cannot be read.
    pub async fn load(store: &dyn Store) -> Result<ResponseTargets, StoreError> {
        let team_of_patient = store
            .list_patients()
            .await?
            .into_iter()
            .map(|patient| (patient.id, patient.team_id))
            .collect();
        let by_team = store
            .team_response_targets()
            .await?
            .into_iter()
            .map(|target| ((target.team_id, target.priority), target.minutes))
            .collect();
        Ok(ResponseTargets {
            team_of_patient,
            by_team,
        })
    }
}

/// The stage.
pub struct TriageStage {
    pub store: Arc<dyn Store>,
    pub protocols: Arc<BTreeMap<String, Protocol>>,
    /// After a nurse resolves an alert while its condition still holds, the
    /// condition opens a new alert only once this much time has passed.
    pub reraise_after: Duration,
}

impl TriageStage {
    /// Builds the engine and replays recent history into it.
    ///
    /// # Errors
    /// Returns a store error when the history cannot be read.
    pub async fn rebuild(
        &self,
        now: Timestamp,
    ) -> Result<(TriageEngine, HashSet<Uuid>), StoreError> {
        let mut engine = TriageEngine::new((*self.protocols).clone());
        let registered = self.register_all(&mut engine).await?;
        // Personal settings first, so that the replay uses the version that
        // applied at each reading's event time.
        self.load_personal_settings(&mut engine, 0).await?;
        let since = now.plus_micros(-REBUILD_DAYS * 86_400_000_000);
        let readings = self.store.readings_since(since).await?;
        let mut findings = Vec::new();
        for stored in &readings {
            let reading = Reading {
                device_id: DeviceId::parse(&stored.device_id)
                    .unwrap_or_else(|_| DeviceId::parse("unknown").expect("valid")),
                patient_id: stored.patient_id,
                metric: stored.metric,
                value: stored.value,
                ts: stored.ts,
                received_at: stored.ts,
            };
            engine.evaluate(&reading, &mut findings);
            findings.clear();
        }
        tracing::info!(
            patients = engine.patient_count(),
            readings = readings.len(),
            "triage state rebuilt"
        );
        Ok((engine, registered))
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
    ) -> Result<(), StoreError> {
        for patient in self.store.list_patients().await? {
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
                    tracing::warn!(patient_id = %patient.id, error = %error, "patient not triaged")
                }
            }
        }
        Ok(())
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
        let mut personal_seen = 0;
        let mut personal_checked: Option<Instant> = None;
        let mut targets = ResponseTargets::default();
        let mut technical = TechnicalRecorder::new(self.store.clone(), self.protocols.clone());
        while let Some(batch) = stored_rx.recv().await {
            // Patients registered since the last look are picked up here.
            if batch
                .readings
                .iter()
                .any(|r| !registered.contains(&r.patient_id))
            {
                if let Err(error) = self.register_new(&mut engine, &mut registered).await {
                    tracing::warn!(error = %error, "patient registry unavailable");
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
                match ResponseTargets::load(self.store.as_ref()).await {
                    Ok(loaded) => targets = loaded,
                    Err(error) => tracing::warn!(error = %error, "response targets unavailable"),
                }
            }
            for (reading, is_new) in batch.readings.iter().zip(&batch.is_new) {
                if *is_new {
                    engine.evaluate(reading, &mut findings);
                }
            }
            for finding in findings.drain(..) {
                self.record(&finding, &targets).await;
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

    /// Records a raised or ongoing finding in the alert book.
    async fn record(&self, finding: &Finding, targets: &ResponseTargets) {
        if finding.transition == Transition::Recovered {
            return;
        }
        // Ongoing evidence after a resolution: the nurse has seen this; raise
        // it again only when the re-raise interval has passed.
        if finding.transition == Transition::Ongoing {
            match self
                .store
                .last_resolution(finding.patient_id, &finding.rule_id)
                .await
            {
                Ok(Some(resolved_at)) => {
                    let due = resolved_at.plus_micros(
                        i64::try_from(self.reraise_after.as_micros()).unwrap_or(i64::MAX),
                    );
                    if Timestamp::now() < due {
                        return;
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(error = %error, "cannot check the last resolution"),
            }
        }
        let protocol_id = finding.rule_id.split('/').next().unwrap_or_default();
        let response_minutes = targets.minutes(
            finding.patient_id,
            finding.priority,
            self.protocols.get(protocol_id),
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
                    if created {
                        tracing::info!(alert_id = %alert.id, patient_id = %alert.patient_id, rule = %alert.rule_key, "alert raised");
                    }
                    return;
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(error = %error, "failed to record alert, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::error!(error = %error, rule = %alert.rule_key, "alert book refused a finding");
                    return;
                }
            }
        }
    }
}

/// Escalates, every sweep, the alerts whose response target lapsed unclaimed.
pub async fn run_escalation_sweeper(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ESCALATION_SWEEP) => {}
            _ = shutdown.cancelled() => return,
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
