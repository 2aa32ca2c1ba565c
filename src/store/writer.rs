//! The store writer stage: batches [`IngestedBatch`]es by size and time,
//! validates their readings against the registry and the device profiles,
//! commits readings and quarantine records in one transaction, and only then
//! acknowledges the messages (MQTT `try_ack`, or the HTTP answer) and passes
//! the stored readings on as a [`StoredBatch`].
//!
//! Device statuses in a batch are validated the same way and stored right
//! after the readings' commit (a second, small transaction, only when the
//! batch holds statuses, so the readings' hot path is unchanged); messages
//! are acknowledged only when both are stored. A crash between the two
//! costs a redelivery, which both tolerate.
//!
//! Up to `store_concurrent_commits` commits run while the next batch gathers,
//! so the database is busy while messages arrive. A failed commit is retried with
//! back-off while the database is unreachable; nothing is acknowledged before
//! it is stored, and the bounded input channel makes ingest wait meanwhile.
//! A batch the database refuses outright (not an outage) is retried message by
//! message, and a message that still fails is quarantined as `store_rejected`,
//! so one poison message cannot stall the pipeline.
//!
//! Shutdown: the stage ends when its input closes, after committing and
//! acknowledging what it holds; `abort` ends retries at the shutdown deadline,
//! leaving the rest unacknowledged for the broker to redeliver.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Publish};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{quarantine_record, QuarantineRecord, Store, StoreError};
use crate::domain::{DeviceId, Reading, RejectReason, Rejection, StatusReport, Timestamp};
use crate::ingest::{AckToken, CommitReport, IngestedBatch, RejectedItem};
use crate::profiles::Profiles;
use crate::settings::Settings;
use crate::telemetry::Metrics;
use crate::validate::{validate, validate_status, DeviceRecord, ValidationClock};

/// Capacity of the channel to triage, in batches. Each batch holds up to
/// `batch_max_rows` readings, so a few batches bound memory while triage
/// catches up.
pub const STORED_CHANNEL_CAPACITY: usize = 8;

/// How long a registry entry is trusted before it is looked up again: a
/// device moved to another patient is picked up within this time.
const DEVICE_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long an unknown device stays unknown before it is looked up again, so
/// a flood from an unregistered device costs one query per few seconds.
const UNKNOWN_DEVICE_TTL: Duration = Duration::from_secs(3);
/// The longest wait between commit retries while the database is down.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// Readings after their commit, on their way to triage.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub readings: Vec<Reading>,
    /// Per reading: `false` when it was already stored (a redelivery), which
    /// triage must not evaluate again.
    pub is_new: Vec<bool>,
    /// Implausible values from registered devices, now in the quarantine:
    /// technical findings for the device's patient.
    pub implausible: Vec<ImplausibleReading>,
    /// Device statuses stored as their device's newest (not redeliveries or
    /// older statuses arriving late): evaluated for technical findings.
    pub statuses: Vec<StatusReport>,
}

/// A value outside its profile's plausible range, sent by a registered
/// device: usually a loose cuff, a finger off the sensor, or a failing device.
#[derive(Debug, Clone, PartialEq)]
pub struct ImplausibleReading {
    pub patient_id: uuid::Uuid,
    pub device_id: DeviceId,
    pub metric: crate::domain::Metric,
    pub value: f64,
    pub ts: Timestamp,
    pub detail: String,
}

/// The stage.
pub struct StoreWriter {
    pub store: Arc<dyn Store>,
    pub profiles: Arc<Profiles>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// The MQTT client to acknowledge with; `None` when only HTTP feeds the writer.
    pub acker: Option<AsyncClient>,
    pub stored_tx: Option<mpsc::Sender<StoredBatch>>,
}

/// One message's share of a prepared batch.
struct MessageSpan {
    readings: Range<usize>,
    quarantine: Range<usize>,
    statuses: Range<usize>,
    received_at: Timestamp,
    ack: AckToken,
}

/// A batch ready to commit: validated readings and quarantine records of
/// several messages, with each message's span.
struct PreparedBatch {
    readings: Vec<Reading>,
    quarantine: Vec<QuarantineRecord>,
    implausible: Vec<ImplausibleReading>,
    statuses: Vec<StatusReport>,
    messages: Vec<MessageSpan>,
}

/// Shared by the writer loop and its commit tasks.
struct Committer {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    acker: Option<AsyncClient>,
    stored_tx: Option<mpsc::Sender<StoredBatch>>,
    raw_max_bytes: usize,
    abort: CancellationToken,
}

impl StoreWriter {
    /// Runs until `ingested_rx` closes and everything received is committed
    /// and acknowledged, or until `abort` fires.
    pub async fn run(
        self,
        mut ingested_rx: mpsc::Receiver<IngestedBatch>,
        abort: CancellationToken,
    ) {
        let StoreWriter {
            store,
            profiles,
            settings,
            metrics,
            acker,
            stored_tx,
        } = self;
        let committer = Arc::new(Committer {
            store: store.clone(),
            metrics,
            acker,
            stored_tx,
            raw_max_bytes: settings.quarantine_raw_max_bytes,
            abort: abort.clone(),
        });
        let mut devices = DeviceCache::default();
        let mut in_flight: std::collections::VecDeque<JoinHandle<()>> =
            std::collections::VecDeque::new();
        let max_in_flight = settings.store_concurrent_commits.max(1);
        let max_rows = settings.batch_max_rows;
        let max_wait = settings.batch_max_wait();
        let future_skew_micros = i64::try_from(settings.max_future_skew_s)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000);
        let mut previous_acked: Option<tokio::sync::oneshot::Receiver<()>> = None;
        let mut closed = false;
        while !closed {
            let Some(first) = ingested_rx.recv().await else {
                break;
            };
            let mut rows = first.decoded.len() + first.rejections.len().max(1);
            let mut pending = vec![first];
            let deadline = tokio::time::Instant::now() + max_wait;
            while rows < max_rows {
                match tokio::time::timeout_at(deadline, ingested_rx.recv()).await {
                    Ok(Some(batch)) => {
                        rows += batch.decoded.len() + batch.rejections.len().max(1);
                        pending.push(batch);
                    }
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Err(error) = devices.resolve(&store, &pending, &abort).await {
                tracing::error!(error = %error, "device lookup abandoned at shutdown; messages stay unacknowledged");
                break;
            }
            let prepared = prepare(
                pending,
                &devices,
                &profiles,
                Timestamp::now().plus_micros(future_skew_micros),
                committer.raw_max_bytes,
            );
            while in_flight.len() >= max_in_flight {
                if let Some(oldest) = in_flight.pop_front() {
                    let _ = oldest.await;
                }
            }
            let committer = committer.clone();
            // Commits run side by side, acknowledgements go out in batch
            // order: MQTT 3.1.1 §4.6 wants PUBACKs in the order the
            // PUBLISHes came, and some brokers (rumqttd) drop the
            // connection otherwise.
            let (acked_tx, acked_rx) = tokio::sync::oneshot::channel();
            let order = AckOrder {
                previous: previous_acked.replace(acked_rx),
                done: acked_tx,
            };
            in_flight.push_back(tokio::spawn(async move {
                committer.commit(prepared, order).await
            }));
        }
        for previous in in_flight {
            let _ = previous.await;
        }
        tracing::info!("store writer stopped");
    }
}

/// Validates every reading of every message and lays them out for one commit.
fn prepare(
    messages: Vec<IngestedBatch>,
    devices: &DeviceCache,
    profiles: &Profiles,
    latest_acceptable: Timestamp,
    raw_max_bytes: usize,
) -> PreparedBatch {
    let total: usize = messages.iter().map(|m| m.decoded.len()).sum();
    let mut prepared = PreparedBatch {
        readings: Vec::with_capacity(total),
        quarantine: Vec::new(),
        implausible: Vec::new(),
        statuses: Vec::new(),
        messages: Vec::with_capacity(messages.len()),
    };
    for message in messages {
        let readings_start = prepared.readings.len();
        let quarantine_start = prepared.quarantine.len();
        let statuses_start = prepared.statuses.len();
        let source = message.source.label();
        let clock = ValidationClock {
            received_at: message.received_at,
            latest_acceptable: latest_acceptable.max(message.received_at),
        };
        for rejection in &message.rejections {
            prepared.quarantine.push(quarantine_record(
                rejection,
                &source,
                message.received_at,
                raw_max_bytes,
            ));
        }
        for decoded in &message.decoded {
            let device = devices.get(&decoded.device_id);
            match validate(decoded, device, profiles, clock) {
                Ok(reading) => prepared.readings.push(reading),
                Err(rejection) => {
                    if let (RejectReason::ImplausibleValue, Some(device)) =
                        (rejection.reason, device)
                    {
                        prepared.implausible.push(ImplausibleReading {
                            patient_id: device.patient_id,
                            device_id: decoded.device_id.clone(),
                            metric: decoded.metric,
                            value: decoded.value,
                            ts: decoded.ts,
                            detail: rejection.detail.clone(),
                        });
                    }
                    prepared.quarantine.push(quarantine_record(
                        &rejection,
                        &source,
                        message.received_at,
                        raw_max_bytes,
                    ));
                }
            }
        }
        for status in &message.statuses {
            match validate_status(status, devices.get(&status.device_id), clock) {
                Ok(report) => prepared.statuses.push(report),
                Err(rejection) => prepared.quarantine.push(quarantine_record(
                    &rejection,
                    &source,
                    message.received_at,
                    raw_max_bytes,
                )),
            }
        }
        prepared.messages.push(MessageSpan {
            readings: readings_start..prepared.readings.len(),
            quarantine: quarantine_start..prepared.quarantine.len(),
            statuses: statuses_start..prepared.statuses.len(),
            received_at: message.received_at,
            ack: message.ack,
        });
    }
    prepared
}

/// Keeps acknowledgements in batch order while commits overlap: a batch
/// acknowledges only after the one before it has (or has given up).
struct AckOrder {
    /// Fires (or is dropped) when the previous batch is done acknowledging.
    previous: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Fired when this batch is done; dropped when it gives up, which also
    /// releases the next one.
    done: tokio::sync::oneshot::Sender<()>,
}

impl Committer {
    /// Commits a prepared batch (retrying through outages), then, after the
    /// previous batch, acknowledges it.
    async fn commit(&self, mut batch: PreparedBatch, order: AckOrder) {
        let started = Instant::now();
        let is_new = match self
            .commit_with_retry(&batch.readings, &batch.quarantine)
            .await
        {
            Ok(is_new) => is_new,
            Err(CommitFailure::Aborted) => return,
            Err(CommitFailure::Rejected(error)) => {
                tracing::warn!(error = %error, "database refused a batch; committing its messages one by one");
                match self.commit_one_by_one(&mut batch).await {
                    Some(is_new) => is_new,
                    None => return,
                }
            }
        };
        let newest_statuses = match self.commit_statuses(&mut batch).await {
            Some(newest) => newest,
            None => return,
        };
        let commit_seconds = started.elapsed().as_secs_f64();
        let stored = is_new.iter().filter(|new| **new).count();
        self.metrics
            .batch_committed(stored, is_new.len() - stored, commit_seconds);
        for record in &batch.quarantine {
            self.metrics.quarantined(&Rejection {
                reason: record.reason,
                detail: record.detail.clone(),
                device_id: record.device_id.clone(),
                raw: bytes::Bytes::new(),
            });
        }
        if let Some(previous) = order.previous {
            // An error only means the previous batch gave up (shutdown).
            let _ = previous.await;
        }
        let now = Timestamp::now();
        for message in batch.messages {
            self.metrics
                .ingest_lag(now.seconds_since(message.received_at));
            match message.ack {
                AckToken::Mqtt { pkid, qos } => {
                    if let Some(client) = &self.acker {
                        let mut publish = Publish::new("", qos, Vec::new());
                        publish.pkid = pkid;
                        if let Err(error) = client.try_ack(&publish) {
                            self.metrics.mqtt_ack_failed(&error);
                        }
                    }
                }
                AckToken::Http(reply) => {
                    let new = &is_new[message.readings.clone()];
                    let stored = new.iter().filter(|n| **n).count();
                    let report = CommitReport {
                        stored,
                        duplicates: new.len() - stored,
                        statuses: message.statuses.len(),
                        rejected: batch.quarantine[message.quarantine.clone()]
                            .iter()
                            .map(|q| RejectedItem {
                                reason: q.reason,
                                detail: q.detail.clone(),
                            })
                            .collect(),
                    };
                    let _ = reply.send(report);
                }
                AckToken::None => {}
            }
        }
        if let Some(stored_tx) = &self.stored_tx {
            let statuses = batch
                .statuses
                .into_iter()
                .zip(newest_statuses)
                .filter_map(|(status, newest)| newest.then_some(status))
                .collect();
            let stored = StoredBatch {
                readings: batch.readings,
                is_new,
                implausible: batch.implausible,
                statuses,
            };
            if stored_tx.send(stored).await.is_err() {
                tracing::debug!("triage is gone; stored batch not forwarded");
            }
        }
        // Triage receives the batches in order too.
        let _ = order.done.send(());
    }

    /// Stores the batch's device statuses (retrying through outages) and
    /// returns, per status, whether it is its device's newest. Should the
    /// database refuse them outright, they are quarantined as
    /// `store_rejected` instead, so that they are acknowledged and not
    /// redelivered forever. `None`: aborted at shutdown, nothing acknowledged.
    async fn commit_statuses(&self, batch: &mut PreparedBatch) -> Option<Vec<bool>> {
        if batch.statuses.is_empty() {
            return Some(Vec::new());
        }
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            match self.store.record_statuses(&batch.statuses).await {
                Ok(newest) => return Some(newest),
                Err(error) if error.is_transient() => {
                    self.metrics.commit_failed(&error, attempt);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.abort.cancelled() => return None,
                    }
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "database refused device statuses; quarantining them");
                    let records: Vec<QuarantineRecord> = batch
                        .statuses
                        .iter()
                        .map(|status| {
                            let raw = serde_json::to_vec(status).unwrap_or_default();
                            let rejection = Rejection::new(
                                RejectReason::StoreRejected,
                                format!("database refused this status: {error}"),
                                Some(status.device_id.as_str()),
                                bytes::Bytes::from(raw),
                            );
                            quarantine_record(
                                &rejection,
                                "store",
                                status.received_at,
                                self.raw_max_bytes,
                            )
                        })
                        .collect();
                    match self.commit_with_retry(&[], &records).await {
                        Ok(_) => {
                            batch.quarantine.extend(records);
                            return Some(vec![false; batch.statuses.len()]);
                        }
                        Err(CommitFailure::Aborted) => return None,
                        Err(CommitFailure::Rejected(error)) => {
                            tracing::error!(error = %error, "cannot even quarantine refused statuses; leaving them unacknowledged");
                            return None;
                        }
                    }
                }
            }
        }
    }

    async fn commit_with_retry(
        &self,
        readings: &[Reading],
        quarantine: &[QuarantineRecord],
    ) -> Result<Vec<bool>, CommitFailure> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            match self.store.commit_batch(readings, quarantine).await {
                Ok(is_new) => return Ok(is_new),
                Err(error) if error.is_transient() => {
                    self.metrics.commit_failed(&error, attempt);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.abort.cancelled() => return Err(CommitFailure::Aborted),
                    }
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                }
                Err(error) => return Err(CommitFailure::Rejected(error)),
            }
        }
    }

    /// Commits each message on its own; a message the database refuses is
    /// quarantined whole as `store_rejected`. Rewrites `batch` so that its
    /// spans and quarantine describe what was stored.
    async fn commit_one_by_one(&self, batch: &mut PreparedBatch) -> Option<Vec<bool>> {
        let mut is_new = vec![false; batch.readings.len()];
        let mut extra_quarantine = Vec::new();
        for message in &batch.messages {
            let readings = &batch.readings[message.readings.clone()];
            let quarantine = &batch.quarantine[message.quarantine.clone()];
            match self.commit_with_retry(readings, quarantine).await {
                Ok(new) => is_new[message.readings.clone()].copy_from_slice(&new),
                Err(CommitFailure::Aborted) => return None,
                Err(CommitFailure::Rejected(error)) => {
                    let raw = serde_json::to_vec(readings).unwrap_or_default();
                    let rejection = Rejection::new(
                        RejectReason::StoreRejected,
                        format!("database refused this message: {error}"),
                        readings.first().map(|r| r.device_id.as_str()),
                        bytes::Bytes::from(raw),
                    );
                    let record = quarantine_record(
                        &rejection,
                        "store",
                        message.received_at,
                        self.raw_max_bytes,
                    );
                    match self
                        .commit_with_retry(&[], std::slice::from_ref(&record))
                        .await
                    {
                        Ok(_) => extra_quarantine.push(record),
                        Err(CommitFailure::Aborted) => return None,
                        Err(CommitFailure::Rejected(error)) => {
                            tracing::error!(error = %error, "cannot even quarantine a refused message; leaving it unacknowledged");
                        }
                    }
                }
            }
        }
        batch.quarantine.extend(extra_quarantine);
        Some(is_new)
    }
}

enum CommitFailure {
    Aborted,
    Rejected(StoreError),
}

/// The registry entries the writer has looked up, with their age.
#[derive(Default)]
struct DeviceCache {
    entries: HashMap<DeviceId, (Option<DeviceRecord>, Instant)>,
}

impl DeviceCache {
    fn get(&self, device_id: &DeviceId) -> Option<&DeviceRecord> {
        self.entries
            .get(device_id)
            .and_then(|(record, _)| record.as_ref())
    }

    /// Looks up, in one query, every device of `messages` not cached or
    /// cached too long ago. Retries while the database is unreachable.
    async fn resolve(
        &mut self,
        store: &Arc<dyn Store>,
        messages: &[IngestedBatch],
        abort: &CancellationToken,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut missing: Vec<DeviceId> = Vec::new();
        let mut seen: std::collections::HashSet<&DeviceId> = std::collections::HashSet::new();
        for message in messages {
            let device_ids = message
                .decoded
                .iter()
                .map(|reading| &reading.device_id)
                .chain(message.statuses.iter().map(|status| &status.device_id));
            for device_id in device_ids {
                let stale = match self.entries.get(device_id) {
                    None => true,
                    Some((Some(_), fetched)) => now.duration_since(*fetched) > DEVICE_CACHE_TTL,
                    Some((None, fetched)) => now.duration_since(*fetched) > UNKNOWN_DEVICE_TTL,
                };
                if stale && seen.insert(device_id) {
                    missing.push(device_id.clone());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut backoff = Duration::from_millis(100);
        let found = loop {
            match store.find_devices(&missing).await {
                Ok(found) => break found,
                Err(error) if error.is_transient() => {
                    tracing::warn!(error = %error, "device lookup failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = abort.cancelled() => return Err(error),
                    }
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                }
                Err(error) => {
                    // Not an outage: the readings of these devices go to the
                    // quarantine as unknown (with their bytes) instead of
                    // stopping the pipeline.
                    tracing::error!(error = %error, "device lookup refused");
                    break Vec::new();
                }
            }
        };
        let fetched = Instant::now();
        for device_id in missing {
            self.entries.insert(device_id, (None, fetched));
        }
        for record in found {
            self.entries
                .insert(record.device_id.clone(), (Some(record), fetched));
        }
        Ok(())
    }
}
