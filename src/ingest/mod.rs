//! Ingest: where readings and device statuses enter. The MQTT event loop
//! ([`mqtt`]) and the HTTP handlers (`POST /api/v1/readings`,
//! `POST /api/v1/devices/{id}/status`) decode inline and send an
//! [`IngestedBatch`] to the store writer, carrying an [`AckToken`] that the
//! writer completes only after the commit.

pub mod mqtt;

use tokio::sync::oneshot;

use crate::domain::{DecodedReading, DecodedStatus, RejectReason, Rejection, Timestamp};

/// Capacity of the channel from ingest to the store writer, in messages.
/// Large enough to cover a commit's worth of single-reading messages at full
/// speed (~30,000/s × 20 ms); small enough that a stalled database stops
/// ingest within a few megabytes instead of buffering without bound.
pub const INGESTED_CHANNEL_CAPACITY: usize = 2_048;

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An MQTT publish on this topic.
    Mqtt { topic: String },
    /// An HTTP `POST /api/v1/readings`.
    Http,
}

impl Source {
    /// Returns the source as the quarantine records it.
    pub fn label(&self) -> String {
        match self {
            Source::Mqtt { topic } => format!("mqtt:{topic}"),
            Source::Http => "http".to_owned(),
        }
    }
}

/// One decoded message on its way to the store writer.
#[derive(Debug)]
pub struct IngestedBatch {
    pub source: Source,
    pub received_at: Timestamp,
    pub decoded: Vec<DecodedReading>,
    /// A status message's decoded status (at most one per message).
    pub statuses: Vec<DecodedStatus>,
    pub rejections: Vec<Rejection>,
    pub ack: AckToken,
}

/// What to do once the batch is committed.
#[derive(Debug)]
pub enum AckToken {
    /// Acknowledge the MQTT publish with this packet id.
    Mqtt { pkid: u16, qos: rumqttc::QoS },
    /// Answer the waiting HTTP request.
    Http(oneshot::Sender<CommitReport>),
    /// Nothing to acknowledge.
    None,
}

/// What happened to one message's readings, for the HTTP answer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CommitReport {
    /// Readings stored for the first time.
    pub stored: usize,
    /// Readings already stored before (a repeated upload).
    pub duplicates: usize,
    /// Device statuses stored (status posts only).
    #[serde(skip_serializing_if = "is_zero")]
    pub statuses: usize,
    /// What was refused and why.
    pub rejected: Vec<RejectedItem>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// One refused message or reading.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RejectedItem {
    pub reason: RejectReason,
    pub detail: String,
}
