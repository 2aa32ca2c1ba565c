//! Parsed domain types shared by every stage: metrics and their canonical
//! units, device and patient identifiers, readings, device statuses and
//! rejections.
//!
//! Everything here is plain data with parsing constructors; no IO, no clock.

mod metric;
mod reading;
mod status;
mod unit;

pub use metric::Metric;
pub use reading::{
    DecodedReading, DeviceId, DeviceIdError, Reading, RejectReason, Rejection, Timestamp,
};
pub use status::{DecodedStatus, DeviceStatus, StatusReport};
pub use unit::Unit;
