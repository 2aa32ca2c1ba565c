//! The MQTT ingestor: the rumqttc event loop, subscribed at QoS 1 with a
//! persistent session and manual acknowledgements.
//!
//! The poll loop only decodes and sends: each publish becomes an
//! [`IngestedBatch`] with an [`AckToken::Mqtt`]; the store writer acknowledges
//! after the commit with `try_ack`, which never waits on this loop. Awaiting
//! the bounded send here is the back-pressure: when the database is slow this
//! loop stops reading the socket, the broker holds the messages, and a stall
//! longer than the keep-alive costs a reconnect and a redelivery, never a reading.
//!
//! Shutdown: on the token, the loop stops forwarding publishes (dropping its
//! sender lets the writer drain), but keeps polling until the writer reports
//! that it has committed and queued its last acknowledgements, so that those
//! reach the broker before the disconnect.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter, Transport,
};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AckToken, IngestedBatch, Source};
use crate::decode::{decode, decode_status, DecodeContext};
use crate::domain::{DeviceId, RejectReason, Rejection, Timestamp};
use crate::settings::Settings;
use crate::telemetry::Metrics;

/// Requests (acknowledgements, subscribes) that may wait for the event loop.
/// Acknowledgements of a whole committed batch are queued at once, so this
/// covers the largest batch with room to spare; a full queue costs only a
/// redelivery.
pub const REQUEST_CHANNEL_CAPACITY: usize = 65_536;

/// The longest back-off between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Errors building the MQTT client.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    #[error("invalid mqtt url {0}")]
    Url(String),
    #[error("cannot read mqtt_ca_file: {0}")]
    CaFile(#[source] std::io::Error),
    #[error("cannot load the system's trusted certificates: {0}")]
    Roots(String),
}

/// Builds the client options from the settings: stable client id, persistent
/// session, manual acks, credentials and TLS for `mqtts://`.
///
/// # Errors
/// Returns an error for an unusable URL or CA file.
pub fn mqtt_options(settings: &Settings, broker_url: &str) -> Result<MqttOptions, MqttSetupError> {
    let url =
        url::Url::parse(broker_url).map_err(|_| MqttSetupError::Url(broker_url.to_owned()))?;
    let tls = url.scheme() == "mqtts";
    let host = url
        .host_str()
        .ok_or_else(|| MqttSetupError::Url(broker_url.to_owned()))?
        .to_owned();
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut options = MqttOptions::new(settings.mqtt_client_id.clone(), host, port);
    options
        .set_keep_alive(Duration::from_secs(settings.mqtt_keep_alive_s))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_request_channel_capacity(REQUEST_CHANNEL_CAPACITY)
        .set_max_packet_size(
            settings.mqtt_max_packet_bytes,
            settings.mqtt_max_packet_bytes,
        );
    if let Some(username) = &settings.mqtt_username {
        let password = settings
            .mqtt_password
            .as_ref()
            .map(|secret| secret.expose_secret().to_owned())
            .unwrap_or_default();
        options.set_credentials(username.clone(), password);
    }
    if tls {
        let config = match &settings.mqtt_ca_file {
            Some(path) => {
                let ca = std::fs::read(path).map_err(MqttSetupError::CaFile)?;
                rumqttc::TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth: None,
                }
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                let loaded = rustls_native_certs::load_native_certs();
                if loaded.certs.is_empty() {
                    return Err(MqttSetupError::Roots(format!("{:?}", loaded.errors)));
                }
                roots.add_parsable_certificates(loaded.certs);
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                rumqttc::TlsConfiguration::Rustls(Arc::new(config))
            }
        };
        options.set_transport(Transport::tls_with_config(config));
    }
    Ok(options)
}

/// What a device topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicKind {
    /// `{root}/devices/{id}/readings`
    Readings,
    /// `{root}/devices/{id}/status`
    Status,
}

/// Returns the device id and kind of `{root}/devices/{id}/readings|status`.
fn device_of_topic<'a>(topic: &'a str, root: &str) -> Option<(&'a str, TopicKind)> {
    let rest = topic.strip_prefix(root)?.strip_prefix("/devices/")?;
    let (id, kind) = if let Some(id) = rest.strip_suffix("/readings") {
        (id, TopicKind::Readings)
    } else {
        (rest.strip_suffix("/status")?, TopicKind::Status)
    };
    (!id.contains('/')).then_some((id, kind))
}

/// The stage that turns MQTT publishes into [`IngestedBatch`]es.
pub struct MqttIngestor {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub ingested_tx: mpsc::Sender<IngestedBatch>,
}

impl MqttIngestor {
    /// Runs until `shutdown` fires, then keeps the connection until
    /// `writer_done` fires (or the shutdown deadline passes) so that the last
    /// acknowledgements are sent, and disconnects.
    pub async fn run(self, shutdown: CancellationToken, writer_done: CancellationToken) {
        let MqttIngestor {
            client,
            mut eventloop,
            settings,
            metrics,
            ingested_tx,
        } = self;
        let topic_filters = [
            settings.readings_topic_filter(),
            settings.status_topic_filter(),
        ];
        let mut ingested_tx = Some(ingested_tx);
        let mut backoff = Duration::from_millis(500);
        let drain_deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(drain_deadline);
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled(), if ingested_tx.is_some() => {
                    tracing::info!("mqtt ingest stopping; draining acknowledgements");
                    ingested_tx = None;
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + settings.shutdown_timeout());
                    continue;
                }
                _ = writer_done.cancelled(), if ingested_tx.is_none() => break,
                _ = &mut drain_deadline => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    metrics.mqtt_connected(connack.session_present);
                    backoff = Duration::from_millis(500);
                    // Subscribing again is harmless when the session kept it, and
                    // repairs a session the broker lost.
                    let filters = topic_filters
                        .iter()
                        .map(|filter| SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce));
                    if let Err(error) = client.try_subscribe_many(filters) {
                        tracing::error!(error = %error, "failed to queue mqtt subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    tracing::info!(topics = ?topic_filters, codes = ?suback.return_codes, "subscribed");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let Some(tx) = &ingested_tx else {
                        // Shutting down: leave it unacknowledged; the broker redelivers it.
                        continue;
                    };
                    let batch = ingest_publish(
                        publish.topic,
                        publish.payload,
                        publish.pkid,
                        publish.qos,
                        &settings,
                    );
                    metrics.message_received("mqtt", batch.decoded.len());
                    if tx.send(batch).await.is_err() {
                        tracing::error!("store writer is gone; stopping mqtt ingest");
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    metrics.mqtt_connection_error(&error);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled(), if ingested_tx.is_some() => {}
                        _ = writer_done.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let _ = client.try_disconnect();
        // Give the disconnect a moment to leave.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        metrics.mqtt_connection_error(&"disconnected on shutdown");
    }
}

/// Decodes one publish (readings or a device status) into an [`IngestedBatch`].
pub fn ingest_publish(
    topic: String,
    payload: Bytes,
    pkid: u16,
    qos: QoS,
    settings: &Settings,
) -> IngestedBatch {
    let received_at = Timestamp::now();
    let ack = AckToken::Mqtt { pkid, qos };
    let parsed = device_of_topic(&topic, &settings.mqtt_topic_root)
        .map(|(id, kind)| DeviceId::parse(id).map(|device_id| (device_id, kind)));
    let (topic_device, kind) = match parsed {
        Some(Ok(parsed)) => parsed,
        problem => {
            let detail = match problem {
                Some(Err(error)) => format!("invalid device id in topic: {error}"),
                _ => format!("topic {topic} is not a readings or status topic"),
            };
            let rejection = Rejection::new(RejectReason::MalformedPayload, detail, None, payload);
            return IngestedBatch {
                source: Source::Mqtt { topic },
                received_at,
                decoded: Vec::new(),
                statuses: Vec::new(),
                rejections: vec![rejection],
                ack,
            };
        }
    };
    let context = DecodeContext {
        topic_device: Some(&topic_device),
        received_at,
        max_payload_bytes: settings.max_payload_bytes,
    };
    match kind {
        TopicKind::Readings => {
            let decoded = decode(&payload, &context);
            IngestedBatch {
                source: Source::Mqtt { topic },
                received_at,
                decoded: decoded.readings,
                statuses: Vec::new(),
                rejections: decoded.rejections,
                ack,
            }
        }
        TopicKind::Status => {
            let (statuses, rejections) = match decode_status(&payload, &topic_device, &context) {
                Ok(status) => (vec![status], Vec::new()),
                Err(rejection) => (Vec::new(), vec![rejection]),
            };
            IngestedBatch {
                source: Source::Mqtt { topic },
                received_at,
                decoded: Vec::new(),
                statuses,
                rejections,
                ack,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_and_kind_are_read_from_the_topic() {
        let root = "thuiswacht/v1";
        assert_eq!(
            device_of_topic("thuiswacht/v1/devices/bpm-1/readings", root),
            Some(("bpm-1", TopicKind::Readings))
        );
        assert_eq!(
            device_of_topic("thuiswacht/v1/devices/bpm-1/status", root),
            Some(("bpm-1", TopicKind::Status))
        );
        assert_eq!(
            device_of_topic("thuiswacht/v1/devices/bpm-1/config", root),
            None
        );
        assert_eq!(
            device_of_topic("thuiswacht/v1/devices/a/b/readings", root),
            None
        );
        assert_eq!(device_of_topic("other/devices/bpm-1/status", root), None);
    }

    #[test]
    fn a_status_publish_becomes_a_status_or_a_rejection() {
        let settings = Settings::defaults();
        let topic = "thuiswacht/v1/devices/scale-1/status".to_owned();
        let good = ingest_publish(
            topic.clone(),
            Bytes::from_static(br#"{"battery_pct":12}"#),
            7,
            QoS::AtLeastOnce,
            &settings,
        );
        assert_eq!(good.statuses.len(), 1);
        assert_eq!(good.statuses[0].battery_pct, Some(12.0));
        assert!(good.decoded.is_empty() && good.rejections.is_empty());
        let bad = ingest_publish(
            topic,
            Bytes::from_static(b"battery low"),
            8,
            QoS::AtLeastOnce,
            &settings,
        );
        assert!(bad.statuses.is_empty());
        assert_eq!(bad.rejections[0].reason, RejectReason::MalformedPayload);
        assert!(matches!(bad.ack, AckToken::Mqtt { pkid: 8, .. }));
    }

    #[test]
    fn options_use_a_persistent_session_and_manual_acks() {
        let mut settings = Settings::defaults();
        settings.mqtt_client_id = "ingest-7".to_owned();
        let options = mqtt_options(&settings, "mqtt://127.0.0.1:1883").unwrap();
        assert!(!options.clean_session());
        assert!(options.manual_acks());
        assert_eq!(options.client_id(), "ingest-7");
        assert_eq!(options.broker_address(), ("127.0.0.1".to_owned(), 1883));
        assert!(mqtt_options(&settings, "not a url").is_err());
    }
}
