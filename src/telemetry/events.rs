//! Notable events: each function logs and counts. The counters are served in
//! the Prometheus text format at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::{RejectReason, Rejection};

/// Quarantined inputs logged at `warn` per minute; the rest go to `debug`
/// (all are counted and all are in the quarantine table).
const QUARANTINE_WARNINGS_PER_MINUTE: u64 = 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

/// Security events counted by [`Metrics::security_event`]: a rise in failed
/// or throttled sign-ins, or in CSRF refusals, is worth an alarm.
pub const SECURITY_EVENTS: [&str; 5] = [
    "sign_in",
    "sign_in_failed",
    "sign_in_throttled",
    "csrf_refused",
    "break_glass",
];

/// The process's counters and histograms. One instance per
/// [`crate::app::Application`], so that tests running several apps in one
/// process read their own figures.
pub struct Metrics {
    registry: Registry,
    messages_received: Family<SourceLabel, Counter>,
    readings_received: Counter,
    readings_stored: Counter,
    readings_duplicate: Counter,
    quarantined: Family<ReasonLabel, Counter>,
    batch_rows: Histogram,
    commit_seconds: Histogram,
    ingest_lag_seconds: Histogram,
    commit_errors: Counter,
    mqtt_connection_errors: Counter,
    mqtt_ack_failures: Counter,
    mqtt_connected: Gauge,
    security_events: Family<EventLabel, Counter>,
    /// The minute and count of quarantine warnings logged, for the rate limit.
    quarantine_log_minute: AtomicU64,
    quarantine_logged: AtomicU64,
    /// Plain copies of the counters tests and the status line read.
    stored_plain: AtomicU64,
    duplicate_plain: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("thuiswacht");
        let messages_received = Family::<SourceLabel, Counter>::default();
        let readings_received = Counter::default();
        let readings_stored = Counter::default();
        let readings_duplicate = Counter::default();
        let quarantined = Family::<ReasonLabel, Counter>::default();
        // Batches range from one reading (a quiet night) to batch_max_rows.
        let batch_rows = Histogram::new([
            1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
        ]);
        let commit_seconds = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ]);
        let ingest_lag_seconds =
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0]);
        let commit_errors = Counter::default();
        let mqtt_connection_errors = Counter::default();
        let mqtt_ack_failures = Counter::default();
        let mqtt_connected = Gauge::default();
        let security_events = Family::<EventLabel, Counter>::default();
        registry.register(
            "security_events",
            "Sign-ins, failed and throttled sign-ins, CSRF refusals and break-glass grants",
            security_events.clone(),
        );
        for event in SECURITY_EVENTS {
            let _ = security_events.get_or_create(&EventLabel { event });
        }
        registry.register(
            "messages_received",
            "Messages received, by source (mqtt or http)",
            messages_received.clone(),
        );
        registry.register(
            "readings_received",
            "Readings decoded from received messages",
            readings_received.clone(),
        );
        registry.register(
            "readings_stored",
            "Readings committed to the store for the first time",
            readings_stored.clone(),
        );
        registry.register(
            "readings_duplicate",
            "Readings already stored (a redelivery or a repeated upload)",
            readings_duplicate.clone(),
        );
        registry.register(
            "readings_quarantined",
            "Messages or readings refused and written to the quarantine, by reason",
            quarantined.clone(),
        );
        registry.register(
            "store_batch_rows",
            "Readings per committed batch",
            batch_rows.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Time to commit one batch",
            commit_seconds.clone(),
        );
        registry.register(
            "ingest_lag_seconds",
            "Time from receiving a message to committing its readings",
            ingest_lag_seconds.clone(),
        );
        registry.register(
            "store_commit_errors",
            "Failed batch commits (each is retried)",
            commit_errors.clone(),
        );
        registry.register(
            "mqtt_connection_errors",
            "MQTT connection errors (each is followed by a reconnect)",
            mqtt_connection_errors.clone(),
        );
        registry.register(
            "mqtt_ack_failures",
            "Acknowledgements that could not be queued; the broker redelivers those messages",
            mqtt_ack_failures.clone(),
        );
        registry.register(
            "mqtt_connected",
            "1 while connected to the broker",
            mqtt_connected.clone(),
        );
        for reason in RejectReason::ALL {
            // Expose every reason from the start, so dashboards see zeros, not gaps.
            let _ = quarantined.get_or_create(&ReasonLabel {
                reason: reason.code(),
            });
        }
        Metrics {
            registry,
            messages_received,
            readings_received,
            readings_stored,
            readings_duplicate,
            quarantined,
            batch_rows,
            commit_seconds,
            ingest_lag_seconds,
            commit_errors,
            mqtt_connection_errors,
            mqtt_ack_failures,
            mqtt_connected,
            security_events,
            quarantine_log_minute: AtomicU64::new(0),
            quarantine_logged: AtomicU64::new(0),
            stored_plain: AtomicU64::new(0),
            duplicate_plain: AtomicU64::new(0),
        }
    }

    /// Returns every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// A security event (one of [`SECURITY_EVENTS`]) happened: logged
    /// without names (the audit trail has them) and counted.
    pub fn security_event(&self, event: &'static str) {
        debug_assert!(SECURITY_EVENTS.contains(&event), "unknown event {event}");
        if event == "sign_in" {
            tracing::info!(event, "security event");
        } else {
            tracing::warn!(event, "security event");
        }
        self.security_events
            .get_or_create(&EventLabel { event })
            .inc();
    }

    /// A message arrived; `readings` of it decoded.
    pub fn message_received(&self, source: &'static str, readings: usize) {
        self.messages_received
            .get_or_create(&SourceLabel { source })
            .inc();
        self.readings_received.inc_by(readings as u64);
    }

    /// A rejection was written to the quarantine.
    pub fn quarantined(&self, rejection: &Rejection) {
        // A faulty device can send thousands of bad readings an hour: warn
        // about the first few each minute, and count all of them.
        let minute = (crate::domain::Timestamp::now().micros() / 60_000_000) as u64;
        let logged_this_minute =
            if self.quarantine_log_minute.swap(minute, Ordering::Relaxed) == minute {
                self.quarantine_logged.fetch_add(1, Ordering::Relaxed)
            } else {
                self.quarantine_logged.store(1, Ordering::Relaxed);
                0
            };
        if logged_this_minute < QUARANTINE_WARNINGS_PER_MINUTE {
            tracing::warn!(
                reason = rejection.reason.code(),
                device_id = rejection.device_id.as_deref().unwrap_or("-"),
                detail = %rejection.detail,
                "input quarantined"
            );
        } else {
            tracing::debug!(
                reason = rejection.reason.code(),
                device_id = rejection.device_id.as_deref().unwrap_or("-"),
                detail = %rejection.detail,
                "input quarantined"
            );
        }
        self.quarantined
            .get_or_create(&ReasonLabel {
                reason: rejection.reason.code(),
            })
            .inc();
    }

    /// A batch was committed.
    pub fn batch_committed(&self, stored: usize, duplicates: usize, commit_seconds: f64) {
        tracing::debug!(stored, duplicates, commit_seconds, "batch committed");
        self.readings_stored.inc_by(stored as u64);
        self.readings_duplicate.inc_by(duplicates as u64);
        self.stored_plain
            .fetch_add(stored as u64, Ordering::Relaxed);
        self.duplicate_plain
            .fetch_add(duplicates as u64, Ordering::Relaxed);
        self.batch_rows.observe((stored + duplicates) as f64);
        self.commit_seconds.observe(commit_seconds);
    }

    /// One message's readings were committed `lag_seconds` after it arrived.
    pub fn ingest_lag(&self, lag_seconds: f64) {
        self.ingest_lag_seconds.observe(lag_seconds.max(0.0));
    }

    /// A batch commit failed and will be retried.
    pub fn commit_failed(&self, error: &dyn std::fmt::Display, attempt: u32) {
        tracing::warn!(error = %error, attempt, "failed to commit readings batch, retrying");
        self.commit_errors.inc();
    }

    /// The MQTT connection failed; the event loop reconnects.
    pub fn mqtt_connection_error(&self, error: &dyn std::fmt::Display) {
        tracing::warn!(error = %error, "mqtt connection error");
        self.mqtt_connection_errors.inc();
        self.mqtt_connected.set(0);
    }

    /// The MQTT connection is up.
    pub fn mqtt_connected(&self, session_present: bool) {
        tracing::info!(session_present, "connected to mqtt broker");
        self.mqtt_connected.set(1);
    }

    /// An acknowledgement could not be queued.
    pub fn mqtt_ack_failed(&self, error: &dyn std::fmt::Display) {
        tracing::debug!(error = %error, "failed to queue mqtt acknowledgement");
        self.mqtt_ack_failures.inc();
    }

    /// Returns whether the MQTT connection is up.
    pub fn is_mqtt_connected(&self) -> bool {
        self.mqtt_connected.get() == 1
    }

    /// Returns the readings stored so far.
    pub fn stored_total(&self) -> u64 {
        self.stored_plain.load(Ordering::Relaxed)
    }

    /// Returns the duplicate readings seen so far.
    pub fn duplicate_total(&self) -> u64 {
        self.duplicate_plain.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_names_every_quarantine_reason() {
        let metrics = Metrics::new();
        metrics.quarantined(&Rejection::new(
            RejectReason::UnknownDevice,
            "unknown device x",
            Some("x"),
            bytes::Bytes::new(),
        ));
        metrics.batch_committed(3, 1, 0.002);
        let text = metrics.encode();
        assert!(
            text.contains("thuiswacht_readings_quarantined_total{reason=\"unknown_device\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("thuiswacht_readings_quarantined_total{reason=\"payload_too_large\"} 0")
        );
        assert!(text.contains("thuiswacht_readings_stored_total 3"));
        assert!(text.contains("thuiswacht_readings_duplicate_total 1"));
        assert_eq!(metrics.stored_total(), 3);
    }
}
