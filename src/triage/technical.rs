//! Technical findings: a device's battery running low, a device fault, a
//! value outside the plausible range. These concern the equipment, not the
//! patient's condition.
//!
//! In: a device status (or an implausible value) and the patient's
//! protocols. Out: how to treat the signal ([`SignalPolicy`]) and, for the
//! battery, whether it is low, recovered or in between ([`BatteryState`]).
//! Pure.
//!
//! # Choices
//!
//! - Technical alerts rank below every clinical alert (DESIGN §4): low
//!   priority, NTS U5, and a score ([`TECHNICAL_SCORE`]) below the lowest
//!   clinical score, unless one of the patient's protocols has a
//!   `technical` rule for the signal. Such a rule gives the signal its
//!   priority, scored like a clinical finding of that priority (a protocol
//!   may say that, for this patient, a flat oximeter battery is itself a
//!   risk). With several such rules the most urgent wins.
//! - Battery: low below [`DEFAULT_BATTERY_LOW_PCT`] %, recovered at
//!   [`DEFAULT_BATTERY_RECOVER_PCT`] % or more (hysteresis, so a level
//!   hovering around the threshold does not raise and clear all day); a
//!   `battery_low` rule sets its own `below` and `recover_at` (default: ten
//!   points above `below`), the earliest warning of the patient's protocols
//!   winning.

use crate::protocols::{Priority, Protocol, RuleKind, TechnicalSignal};

/// Ranking score of technical alerts without a protocol rule: below the
/// lowest clinical score (informational findings start at 1,000).
pub const TECHNICAL_SCORE: f64 = 500.0;

/// Below this battery percentage a device's battery is low.
pub const DEFAULT_BATTERY_LOW_PCT: f64 = 20.0;
/// At or above this percentage a low battery has recovered (charged or replaced).
pub const DEFAULT_BATTERY_RECOVER_PCT: f64 = 30.0;

/// Minutes within which a technical alert without a protocol rule should be
/// claimed: the next working day is soon enough for a battery (NTS U5).
pub const TECHNICAL_RESPONSE_MINUTES: i64 = 24 * 60;

/// How a patient's protocols treat one technical signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalPolicy {
    pub priority: Priority,
    /// The protocol whose rule set the priority; `None`: the technical default.
    pub protocol_id: Option<String>,
    /// Battery: low below this percentage.
    pub battery_below: f64,
    /// Battery: recovered at or above this percentage.
    pub battery_recover_at: f64,
}

impl SignalPolicy {
    /// Returns the policy for `signal` of a patient following `protocols`.
    pub fn for_signal<'a>(
        signal: TechnicalSignal,
        protocols: impl IntoIterator<Item = (&'a str, &'a Protocol)>,
    ) -> SignalPolicy {
        let mut policy = SignalPolicy {
            priority: Priority::Low,
            protocol_id: None,
            battery_below: DEFAULT_BATTERY_LOW_PCT,
            battery_recover_at: DEFAULT_BATTERY_RECOVER_PCT,
        };
        let mut battery_rule_seen = false;
        for (protocol_id, protocol) in protocols {
            for rule in protocol
                .rules
                .iter()
                .filter(|rule| rule.kind == RuleKind::Technical && rule.signal == Some(signal))
            {
                if policy.protocol_id.is_none() || rule.priority > policy.priority {
                    policy.priority = rule.priority;
                    policy.protocol_id = Some(protocol_id.to_owned());
                }
                if let Some(below) = rule.below {
                    if !battery_rule_seen || below > policy.battery_below {
                        policy.battery_below = below;
                        policy.battery_recover_at =
                            rule.recover_at.unwrap_or((below + 10.0).min(100.0));
                        battery_rule_seen = true;
                    }
                }
            }
        }
        policy
    }

    /// Returns whether a protocol rule ranks this signal (rather than the
    /// technical default below every clinical alert).
    pub fn is_from_protocol(&self) -> bool {
        self.protocol_id.is_some()
    }

    /// Returns where a battery level stands.
    pub fn battery(&self, battery_pct: f64) -> BatteryState {
        if battery_pct < self.battery_below {
            BatteryState::Low
        } else if battery_pct >= self.battery_recover_at {
            BatteryState::Recovered
        } else {
            BatteryState::Between
        }
    }
}

/// Where a battery level stands against the policy's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatteryState {
    Low,
    /// Between the two thresholds: nothing changes.
    Between,
    Recovered,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(rules: &str) -> Protocol {
        Protocol::parse(&format!(
            "name = \"t\"\n[response_targets]\nhigh = 60\nmedium = 240\nlow = 1440\n{rules}"
        ))
        .expect("test protocol parses")
    }

    #[test]
    fn without_a_rule_technical_signals_rank_low_with_default_thresholds() {
        let plain = protocol("");
        let policy = SignalPolicy::for_signal(TechnicalSignal::BatteryLow, [("default", &plain)]);
        assert_eq!(policy.priority, Priority::Low);
        assert!(!policy.is_from_protocol());
        assert_eq!(policy.battery(19.0), BatteryState::Low);
        assert_eq!(policy.battery(25.0), BatteryState::Between);
        assert_eq!(policy.battery(30.0), BatteryState::Recovered);
    }

    #[test]
    fn a_protocol_rule_sets_priority_and_thresholds_and_the_most_urgent_wins() {
        let copd = protocol(
            "[[rule]]\nid = \"oximeter_battery\"\nkind = \"technical\"\nsignal = \"battery_low\"\nbelow = 40\npriority = \"medium\"\n",
        );
        let other = protocol(
            "[[rule]]\nid = \"battery\"\nkind = \"technical\"\nsignal = \"battery_low\"\nbelow = 25\nrecover_at = 35\npriority = \"high\"\n\
             [[rule]]\nid = \"fault\"\nkind = \"technical\"\nsignal = \"device_fault\"\npriority = \"informational\"\n",
        );
        let battery = SignalPolicy::for_signal(
            TechnicalSignal::BatteryLow,
            [("copd", &copd), ("other", &other)],
        );
        assert_eq!(battery.priority, Priority::High);
        assert_eq!(battery.protocol_id.as_deref(), Some("other"));
        // The earliest warning wins: 40 %, recovering ten points above it.
        assert_eq!(battery.battery(39.0), BatteryState::Low);
        assert_eq!(battery.battery(45.0), BatteryState::Between);
        assert_eq!(battery.battery(50.0), BatteryState::Recovered);
        let fault = SignalPolicy::for_signal(
            TechnicalSignal::DeviceFault,
            [("copd", &copd), ("other", &other)],
        );
        assert_eq!(
            fault.priority,
            Priority::Informational,
            "a rule may also lower it"
        );
        assert!(fault.is_from_protocol());
        let implausible =
            SignalPolicy::for_signal(TechnicalSignal::ImplausibleValue, [("copd", &copd)]);
        assert!(!implausible.is_from_protocol());
    }
}
