//! Registers a simulated population and publishes its messages over MQTT.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::payload::{encode, encode_status};
use super::population::MICROS_PER_DAY;
use super::{Population, SimMessage, SimStatus};
use crate::domain::{DeviceId, Timestamp};
use crate::store::{NewDevice, NewPatient, Store, StoreError};

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub broker_url: String,
    pub topic_root: String,
    pub client_id: String,
    /// Messages per second; `None`: as fast as the broker takes them.
    pub rate: Option<f64>,
    /// After the history, keep publishing in real time until stopped.
    pub follow: bool,
    /// Publish only what was uploaded by this moment (default: now); not
    /// with `follow`.
    pub until: Option<Timestamp>,
    /// Print a progress line on stderr.
    pub progress: bool,
}

/// What was published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReport {
    pub messages: u64,
    pub readings: u64,
    /// Readings a faulty device sent (expected in the quarantine).
    pub faulty_readings: u64,
    /// Device status messages (heartbeats with battery and fault).
    pub statuses: u64,
    pub seconds: f64,
}

/// Registers the population's teams, patients and devices; what exists
/// already is left as it is, so registering again is harmless.
///
/// # Errors
/// Returns the first store error other than "already exists".
pub async fn register(store: &Arc<dyn Store>, population: &Population) -> Result<(), StoreError> {
    let ignore_conflict = |result: Result<(), StoreError>| match result {
        Err(StoreError::Conflict(_)) | Ok(()) => Ok(()),
        Err(error) => Err(error),
    };
    let mut teams: Vec<&str> = population
        .patients
        .iter()
        .map(|p| p.team.as_str())
        .collect();
    teams.sort_unstable();
    teams.dedup();
    for team in teams {
        ignore_conflict(store.add_team(team).await.map(|_| ()))?;
    }
    for patient in &population.patients {
        ignore_conflict(
            store
                .add_patient(&NewPatient {
                    id: patient.id,
                    team: patient.team.clone(),
                    display_name: patient.display_name.clone(),
                    birth_year: Some(patient.birth_year),
                    protocols: patient.protocols.clone(),
                })
                .await
                .map(|_| ()),
        )?;
        for device in &patient.devices {
            ignore_conflict(
                store
                    .add_device(&NewDevice {
                        device_id: DeviceId::parse(&device.device_id)
                            .expect("simulated ids are valid"),
                        profile_id: device.profile.to_owned(),
                        patient_id: patient.id,
                    })
                    .await,
            )?;
        }
    }
    Ok(())
}

/// Writes the injected deteriorations, one JSON object per line.
///
/// # Errors
/// Returns an IO error.
pub fn write_truth(population: &Population, path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for deterioration in &population.deteriorations {
        serde_json::to_writer(&mut file, deterioration)?;
        writeln!(file)?;
    }
    file.flush()
}

/// A message to publish: readings or a device status.
enum Outgoing {
    Readings(SimMessage),
    Status(SimStatus),
}

impl Outgoing {
    fn upload_at(&self) -> Timestamp {
        match self {
            Outgoing::Readings(message) => message.upload_at,
            Outgoing::Status(status) => status.upload_at,
        }
    }
}

/// Publishes the population's history up to now (and, with `follow`, its
/// future in real time) at QoS 1, and waits for the broker's acknowledgements.
///
/// # Errors
/// Returns an error when the broker cannot be reached or stops acknowledging.
pub async fn publish(
    population: &Population,
    options: &PublishOptions,
    stop: CancellationToken,
) -> anyhow::Result<PublishReport> {
    let url = url::Url::parse(&options.broker_url).context("invalid broker url")?;
    let host = url
        .host_str()
        .context("broker url names no host")?
        .to_owned();
    let mut mqtt = MqttOptions::new(options.client_id.clone(), host, url.port().unwrap_or(1883));
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_inflight(1_000)
        .set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 10_000);
    let (acked_tx, acked_rx) = watch::channel(0_u64);
    let (connected_tx, mut connected_rx) = watch::channel(false);
    let connection = tokio::spawn(async move {
        let mut acked = 0_u64;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = connected_tx.send(true);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    let _ = acked_tx.send(acked);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "simulator connection error; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connected_rx.wait_for(|c| *c))
        .await
        .with_context(|| format!("cannot connect to the broker at {}", options.broker_url))??;

    let started = Instant::now();
    let mut report = PublishReport::default();
    let mut sequences: HashMap<String, u64> = HashMap::new();
    let mut carried: Vec<Outgoing> = Vec::new();
    let mut last_progress = Instant::now();
    let mut day = 0_u32;
    'days: loop {
        if day >= population.days && !options.follow {
            break;
        }
        let day_end = population
            .start
            .plus_micros(i64::from(day + 1) * MICROS_PER_DAY);
        let mut messages = std::mem::take(&mut carried);
        messages.extend(population.day(day).into_iter().map(Outgoing::Readings));
        messages.extend(population.statuses(day).into_iter().map(Outgoing::Status));
        messages.sort_by_key(Outgoing::upload_at);
        for message in messages {
            let upload_at = message.upload_at();
            if upload_at >= day_end {
                carried.push(message);
                continue;
            }
            let now = match options.until {
                Some(until) if !options.follow => until,
                _ => Timestamp::now(),
            };
            if upload_at > now {
                if !options.follow {
                    continue;
                }
                let wait = Duration::from_micros((upload_at.micros() - now.micros()) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break 'days,
                }
            }
            if stop.is_cancelled() {
                break 'days;
            }
            let (topic, payload) = match &message {
                Outgoing::Readings(message) => {
                    let seq = sequences.entry(message.device_id.clone()).or_insert(0);
                    *seq += 1;
                    report.readings += message.readings.len() as u64;
                    if message.faulty {
                        report.faulty_readings += 1;
                    }
                    let topic = format!(
                        "{}/devices/{}/readings",
                        options.topic_root, message.device_id
                    );
                    (topic, encode(message, *seq))
                }
                Outgoing::Status(status) => {
                    report.statuses += 1;
                    let topic =
                        format!("{}/devices/{}/status", options.topic_root, status.device_id);
                    (topic, encode_status(status))
                }
            };
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
            report.messages += 1;
            if let Some(rate) = options.rate {
                let due = Duration::from_secs_f64(report.messages as f64 / rate);
                let elapsed = started.elapsed();
                if due > elapsed {
                    tokio::time::sleep(due - elapsed).await;
                }
            }
            if options.progress && last_progress.elapsed() > Duration::from_secs(2) {
                last_progress = Instant::now();
                eprint!(
                    "\rday {}/{} · {} messages · {} readings · {:.0} messages/s   ",
                    day + 1,
                    population.days,
                    report.messages,
                    report.readings,
                    report.messages as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        day += 1;
    }
    let mut acked = acked_rx.clone();
    let sent = report.messages;
    tokio::time::timeout(Duration::from_secs(120), acked.wait_for(|n| *n >= sent))
        .await
        .context("the broker did not acknowledge every message")??;
    report.seconds = started.elapsed().as_secs_f64();
    if options.progress {
        eprintln!(
            "\rpublished {} messages with {} readings in {:.1} s ({:.0} readings/s)   ",
            report.messages,
            report.readings,
            report.seconds,
            report.readings as f64 / report.seconds.max(1e-9)
        );
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
    Ok(report)
}
