//! What coordinators use to keep the worklist useful: the alarm-burden
//! figures ([`burden`]) per protocol, rule, team and patient.
//!
//! Pure computations over what the store returns; the JSON endpoint and the
//! page that show them live in `api` and `web`.

pub mod backtest;
pub mod burden;
