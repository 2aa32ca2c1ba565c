//! Triage: turning stored readings into findings with an urgency.
//!
//! Everything here is a synchronous core (STYLE §2): plain functions over
//! borrowed data, no IO and no clock, so the async triage stage only moves
//! data between them and the store.
//!
//! - [`news2`]: the NEWS2 early-warning score (RCP 2017, DESIGN §4) over a set
//!   of vital signs, with missing parameters named rather than assumed normal.

pub mod news2;
