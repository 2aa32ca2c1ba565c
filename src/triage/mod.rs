//! Triage: turning stored readings into findings with an urgency.
//!
//! Everything here is a synchronous core (STYLE §2): plain functions over
//! borrowed data, no IO and no clock, so the async triage stage only moves
//! data between them and the store.
//!
//! - [`news2`]: the NEWS2 early-warning score (RCP 2017, DESIGN §4) over a set
//!   of vital signs, with missing parameters named rather than assumed normal.
//! - [`patient_state`]: per-patient ring buffers of recent readings and the
//!   state of each rule.
//! - [`sustained`]: the mean hourly NEWS2 of the last twelve hours, the
//!   continuous evidence that ranks within a priority.
//! - [`baseline`]: robust personal baselines (median, MAD, priors) and a
//!   multivariate Mahalanobis score.
//! - [`anomaly`]: streaming multivariate (Mahalanobis) anomaly detection on
//!   the vital-sign vector, with ndarray, allocation-free per reading.
//! - [`rules`]: evaluation of each protocol rule kind after a reading.
//! - [`urgency`]: [`Finding`], its NTS level, ranking score and explanation.
//! - [`engine`]: [`TriageEngine`], protocols plus patient states.
//! - [`schedule`]: missed measurements against a per-patient schedule in
//!   local time, and their cause (evaluated by a clock-driven sweep, not
//!   per reading).
//! - [`technical`]: how battery, fault and implausible-value signals rank.
//! - [`replay`]: replays the PhysioNet 2019 sepsis data through the engine.
//! - [`evaluation`]: scores the engine against a simulated population's
//!   injected deteriorations (`thuiswacht evaluate`).

pub mod anomaly;
pub mod baseline;
pub mod engine;
pub mod evaluation;
pub mod news2;
pub mod patient_state;
pub mod replay;
pub mod rules;
pub mod schedule;
pub mod sustained;
pub mod technical;
pub mod urgency;

pub use engine::{TriageEngine, TriageError};
pub use urgency::{Explanation, Finding, NtsLevel};
