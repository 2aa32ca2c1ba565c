//! Technical alerts from what devices say about themselves: a low battery
//! and a fault code (from device statuses), and values outside the plausible
//! range (from the store writer's implausible readings). One alert per
//! device and signal, keyed `technical/{signal}/{device_id}`, kept open and
//! updated while the device keeps reporting the problem.
//!
//! In: [`StatusReport`]s that are their device's newest, and
//! [`ImplausibleReading`]s, from the triage stage. Out: alerts in the store.
//! How each signal ranks is [`SignalPolicy`]'s choice (below every clinical
//! alert unless a protocol says otherwise).
//!
//! # Choices
//!
//! - A battery back at or above its recovery level resolves the open
//!   battery alert by the system (`battery_recovered`): the problem is gone
//!   and there is nothing left for a nurse to do; the hysteresis keeps a
//!   level hovering around the threshold from opening and closing alerts.
//! - A fault alert is left for the nurse when the fault clears: a fault that
//!   comes and goes is worth a look, and a flapping device then updates one
//!   alert instead of opening a new one each time.
//! - A status message without a battery level or fault, or a gateway's last
//!   will, raises nothing.
//!
//! A store failure here is logged and the finding dropped: the device's next
//! status (heartbeats are minutes to hours apart) raises it again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::{AutoResolution, NewAlert};
use crate::domain::{DeviceId, StatusReport, Timestamp};
use crate::protocols::catalog::Catalog;
use crate::protocols::TechnicalSignal;
use crate::store::writer::ImplausibleReading;
use crate::store::{Store, StoreError};
use crate::triage::technical::{
    BatteryState, SignalPolicy, TECHNICAL_RESPONSE_MINUTES, TECHNICAL_SCORE,
};
use crate::triage::urgency::{self, NtsLevel};

/// Returns the rule key of a device's technical alert for `signal`.
pub fn technical_rule_key(signal: TechnicalSignal, device_id: &DeviceId) -> String {
    format!("technical/{}/{device_id}", signal.code())
}

/// Records technical findings; owned by the triage stage's task.
pub struct TechnicalRecorder {
    store: Arc<dyn Store>,
    protocols: Arc<Catalog>,
    /// Each patient's protocol ids, read again when an unknown patient appears.
    patient_protocols: HashMap<Uuid, Vec<String>>,
    /// Devices known to have no open battery alert, so that the many good
    /// battery levels cost no query.
    battery_settled: HashSet<DeviceId>,
}

impl TechnicalRecorder {
    pub fn new(store: Arc<dyn Store>, protocols: Arc<Catalog>) -> Self {
        TechnicalRecorder {
            store,
            protocols,
            patient_protocols: HashMap::new(),
            battery_settled: HashSet::new(),
        }
    }

    /// Raises, updates or resolves the alerts a device's newest status calls for.
    pub async fn record_status(&mut self, status: &StatusReport) {
        if !status.online {
            return;
        }
        if let Some(battery_pct) = status.battery_pct {
            let policy = self
                .policy(status.patient_id, TechnicalSignal::BatteryLow)
                .await;
            let rule_key = technical_rule_key(TechnicalSignal::BatteryLow, &status.device_id);
            match policy.battery(battery_pct) {
                BatteryState::Low => {
                    self.battery_settled.remove(&status.device_id);
                    let explanation = serde_json::json!({"factors": [{
                        "factor": "device",
                        "flag": "battery_low",
                        "device_id": status.device_id,
                        "battery_pct": battery_pct,
                        "below": policy.battery_below,
                        "recover_at": policy.battery_recover_at,
                        "ts": status.ts,
                    }]});
                    self.raise(&policy, status.patient_id, rule_key, explanation, status.ts)
                        .await;
                }
                BatteryState::Recovered if !self.battery_settled.contains(&status.device_id) => {
                    match self
                        .resolve_battery(status, &rule_key, battery_pct, Timestamp::now())
                        .await
                    {
                        Ok(()) => {
                            self.battery_settled.insert(status.device_id.clone());
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, device_id = %status.device_id, "failed to resolve a battery alert")
                        }
                    }
                }
                BatteryState::Recovered | BatteryState::Between => {}
            }
        }
        if let Some(fault) = &status.fault {
            let policy = self
                .policy(status.patient_id, TechnicalSignal::DeviceFault)
                .await;
            let explanation = serde_json::json!({"factors": [{
                "factor": "device",
                "flag": "device_fault",
                "device_id": status.device_id,
                "fault": fault,
                "ts": status.ts,
            }]});
            let rule_key = technical_rule_key(TechnicalSignal::DeviceFault, &status.device_id);
            self.raise(&policy, status.patient_id, rule_key, explanation, status.ts)
                .await;
        }
    }

    /// Records an implausible value as a technical alert of the patient: one
    /// per device, kept open and updated while the device keeps sending them.
    pub async fn record_implausible(&mut self, implausible: &ImplausibleReading) {
        let policy = self
            .policy(implausible.patient_id, TechnicalSignal::ImplausibleValue)
            .await;
        let explanation = serde_json::json!({"factors": [{
            "factor": "data_quality",
            "flag": "implausible_value",
            "device_id": implausible.device_id,
            "metric": implausible.metric,
            "value": implausible.value,
            "ts": implausible.ts,
            "detail": implausible.detail,
        }]});
        let rule_key =
            technical_rule_key(TechnicalSignal::ImplausibleValue, &implausible.device_id);
        self.raise(
            &policy,
            implausible.patient_id,
            rule_key,
            explanation,
            implausible.ts,
        )
        .await;
    }

    /// Resolves the device's open battery alert, if there is one.
    async fn resolve_battery(
        &self,
        status: &StatusReport,
        rule_key: &str,
        battery_pct: f64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(mut alert) = self
            .store
            .unresolved_alert(status.patient_id, rule_key)
            .await?
        else {
            return Ok(());
        };
        let from = alert.status;
        let detail = serde_json::json!({"battery_pct": battery_pct, "ts": status.ts});
        let Ok(event) = alert.resolve_by_system(AutoResolution::BatteryRecovered, detail, now)
        else {
            return Ok(());
        };
        match self.store.save_transition(&alert, from, &event).await {
            // Changed meanwhile (a nurse resolved it): nothing left to do.
            Ok(()) | Err(StoreError::Conflict(_)) => {
                tracing::info!(alert_id = %alert.id, device_id = %status.device_id, "battery alert resolved: battery recovered");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn raise(
        &self,
        policy: &SignalPolicy,
        patient_id: Uuid,
        rule_key: String,
        explanation: serde_json::Value,
        at: Timestamp,
    ) {
        let (nts, score, response_minutes) = match &policy.protocol_id {
            Some(protocol_id) => (
                NtsLevel::for_priority(policy.priority),
                urgency::score(policy.priority, urgency::Evidence::default(), 0.0),
                self.protocols
                    .current()
                    .get(protocol_id)
                    .and_then(|protocol| protocol.response_targets.get(&policy.priority))
                    .map_or(TECHNICAL_RESPONSE_MINUTES, |minutes| i64::from(*minutes)),
            ),
            None => (NtsLevel::U5, TECHNICAL_SCORE, TECHNICAL_RESPONSE_MINUTES),
        };
        let alert = NewAlert {
            patient_id,
            rule_key,
            priority: policy.priority,
            nts,
            score,
            explanation,
            at,
            raised_at: Timestamp::now(),
            response_minutes,
        };
        match self.store.raise_alert(&alert).await {
            Ok((stored, true)) => {
                tracing::info!(alert_id = %stored.id, patient_id = %patient_id, rule = %stored.rule_key, "technical alert raised")
            }
            Ok((_, false)) => {}
            Err(error) => {
                tracing::warn!(error = %error, rule = %alert.rule_key, "failed to record a technical alert")
            }
        }
    }

    /// Returns how the patient's protocols treat `signal`.
    async fn policy(&mut self, patient_id: Uuid, signal: TechnicalSignal) -> SignalPolicy {
        if !self.patient_protocols.contains_key(&patient_id) {
            match self.store.list_patients().await {
                Ok(patients) => {
                    self.patient_protocols = patients
                        .into_iter()
                        .map(|patient| (patient.id, patient.protocols))
                        .collect();
                }
                Err(error) => {
                    tracing::warn!(error = %error, "patient registry unavailable; technical defaults apply")
                }
            }
        }
        let ids = self
            .patient_protocols
            .get(&patient_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let protocols = self.protocols.current();
        SignalPolicy::for_signal(
            signal,
            ids.iter()
                .filter_map(|id| protocols.get(id).map(|protocol| (id.as_str(), protocol))),
        )
    }
}
