//! Publish-to-screen latency of the live worklist: from an MQTT publish
//! that raises an alert to the `alert` event on `GET /api/v1/worklist/stream`.
//!
//! The stream is read by an HTTP client that stands in for the browser's
//! `EventSource`: the same request (with the session cookie) and the same
//! bytes on the wire, parsed as `text/event-stream`. Each probe publishes a
//! fever reading (39.4 °C, now) on the thermometer of a different patient of
//! the nurse's team who has no unresolved alert and none resolved within a
//! day, stamps the publish, and waits for the first `alert` event naming
//! that patient. Probes leave at a fixed spacing whatever the answers do;
//! one without an event within [`PROBE_DEADLINE`] counts as missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;
use uuid::Uuid;

use super::open_loop::quantile;
use crate::decode::PayloadFormat;
use crate::domain::{Metric, Timestamp};
use crate::simulate::{encode, SimMessage};

/// A probe without its event by then counts as missed.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// One probe's patient and thermometer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub patient_id: Uuid,
    pub device_id: String,
}

/// What the probes measured.
#[derive(Debug, Clone, Serialize)]
pub struct SseReport {
    pub probes: usize,
    pub received: usize,
    pub missed: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl SseReport {
    /// One human-readable line.
    pub fn summary(&self) -> String {
        format!(
            "MQTT publish → SSE alert event: {} probes, {} received, {} missed; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.probes,
            self.received,
            self.missed,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// Pending probes (patient → publish instant) and measured latencies.
#[derive(Default)]
struct Probes {
    pending: HashMap<Uuid, Instant>,
    latencies_ms: Vec<f64>,
}

/// Runs one probe per target, `spacing` apart, while reading the stream.
///
/// # Errors
/// The stream cannot be opened or the broker refuses the publisher.
pub async fn run(
    client: &reqwest::Client,
    base: &str,
    broker_url: &str,
    topic_root: &str,
    targets: &[ProbeTarget],
    spacing: Duration,
) -> anyhow::Result<SseReport> {
    let probes = Arc::new(Mutex::new(Probes::default()));
    let mut response = client
        .get(format!("{base}/api/v1/worklist/stream"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .context("open the worklist stream")?;
    anyhow::ensure!(
        response.status() == 200,
        "the worklist stream answered {}",
        response.status()
    );
    // Wait for the greeting, so the subscription exists before any probe.
    let mut parser = EventStreamParser::default();
    let greeted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = response.chunk().await? {
            if parser
                .push(&chunk)
                .iter()
                .any(|(event, _)| event == "hello")
            {
                return Ok::<bool, reqwest::Error>(true);
            }
        }
        Ok(false)
    })
    .await;
    anyhow::ensure!(
        matches!(greeted, Ok(Ok(true))),
        "the worklist stream sent no greeting"
    );
    let reader = tokio::spawn({
        let probes = probes.clone();
        async move {
            while let Ok(Some(chunk)) = response.chunk().await {
                let now = Instant::now();
                for (event, data) in parser.push(&chunk) {
                    if event != "alert" {
                        continue;
                    }
                    let Some(patient_id) = serde_json::from_str::<serde_json::Value>(&data)
                        .ok()
                        .and_then(|value| value.get("patient_id")?.as_str()?.parse().ok())
                    else {
                        continue;
                    };
                    let mut probes = probes.lock().expect("probe lock");
                    if let Some(published) = probes.pending.remove(&patient_id) {
                        let latency = now.duration_since(published).as_secs_f64() * 1_000.0;
                        probes.latencies_ms.push(latency);
                    }
                }
            }
        }
    });

    let publisher = ProbePublisher::connect(broker_url).await?;
    let started = tokio::time::Instant::now();
    for (index, target) in targets.iter().enumerate() {
        tokio::time::sleep_until(started + spacing * index as u32).await;
        let message = SimMessage {
            upload_at: Timestamp::now(),
            device_id: target.device_id.clone(),
            format: PayloadFormat::ThuiswachtV1,
            readings: vec![(Metric::BodyTemperature, 39.4, Timestamp::now())],
            faulty: false,
        };
        let topic = format!("{topic_root}/devices/{}/readings", target.device_id);
        let payload = encode(&message, index as u64);
        probes
            .lock()
            .expect("probe lock")
            .pending
            .insert(target.patient_id, Instant::now());
        publisher.publish(topic, payload).await?;
    }
    // Wait for the stragglers, up to the deadline of the last probe.
    let deadline = Instant::now() + PROBE_DEADLINE;
    while Instant::now() < deadline && !probes.lock().expect("probe lock").pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    publisher.disconnect().await;
    let probes = probes.lock().expect("probe lock");
    let mut latencies = probes.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    Ok(SseReport {
        probes: targets.len(),
        received: latencies.len(),
        missed: targets.len() - latencies.len(),
        p50_ms: quantile(&latencies, 0.50),
        p90_ms: quantile(&latencies, 0.90),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
    })
}

/// A QoS 1 MQTT connection for the probe readings.
struct ProbePublisher {
    client: AsyncClient,
    connection: tokio::task::JoinHandle<()>,
}

impl ProbePublisher {
    async fn connect(broker_url: &str) -> anyhow::Result<ProbePublisher> {
        let url = url::Url::parse(broker_url)?;
        let mut options = MqttOptions::new(
            format!("load-probe-{}", Uuid::new_v4().simple()),
            url.host_str().context("broker host")?,
            url.port().unwrap_or(1883),
        );
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let connection = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "probe publisher connection error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .context("the broker did not accept the probe publisher")??;
        Ok(ProbePublisher { client, connection })
    }

    async fn publish(&self, topic: String, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        Ok(())
    }

    async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.connection).await;
    }
}

/// Splits a `text/event-stream` body into (event, data) pairs as chunks arrive.
#[derive(Debug, Default)]
pub struct EventStreamParser {
    buffer: String,
}

impl EventStreamParser {
    /// Adds a chunk; returns the events it completed (event name
    /// `message` when none is given; comments and ids are skipped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut name = "message".to_owned();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim_start().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if !data.is_empty() || name != "message" {
                events.push((name, data.join("\n")));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_parser_joins_events_split_across_chunks() {
        let mut parser = EventStreamParser::default();
        assert_eq!(
            parser.push(b"event: hello\ndata: {}\n\n: keep-alive\n\nevent: al"),
            vec![("hello".to_owned(), "{}".to_owned())]
        );
        assert_eq!(
            parser.push(b"ert\ndata: {\"patient_id\":\"x\"}\n\n"),
            vec![("alert".to_owned(), "{\"patient_id\":\"x\"}".to_owned())]
        );
        assert!(parser.push(b"").is_empty());
    }
}
