//! The embedded MQTT broker (rumqttd) for the no-configuration mode: devices,
//! the simulator and Thuiswacht's own ingestor connect to it over TCP exactly
//! as to an external broker.
//!
//! Its limits, and why production uses an external broker: rumqttd keeps
//! messages in memory only. A device's QoS 1 publish is acknowledged by the
//! broker when the broker has it, so messages that Thuiswacht has not yet
//! committed are lost if the process is killed (a graceful stop commits what
//! it has received; what devices publish during the last moments of a stop is
//! still lost). A broker with on-disk persistence (Mosquitto with
//! `persistence true`) does not have that window.

use std::net::SocketAddr;

/// Errors starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("this build has no embedded broker (cargo feature embedded-broker); set THUISWACHT_MQTT_URL")]
    NotBuilt,
}

/// Starts the broker on `addr` in its own threads and returns once it accepts
/// connections. It runs until the process exits.
///
/// # Errors
/// Returns an error when the address is taken or the feature is off.
#[cfg(feature = "embedded-broker")]
pub fn start(addr: SocketAddr, max_payload_bytes: usize) -> Result<(), BrokerError> {
    use std::collections::HashMap;

    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

    // Fail early and clearly when the port is taken; rumqttd would only log it.
    std::net::TcpListener::bind(addr).map_err(|error| BrokerError::Listen {
        addr,
        reason: error.to_string(),
    })?;
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: max_payload_bytes,
        // Unacknowledged QoS 1 messages per connection: Thuiswacht
        // acknowledges after each commit, so the window must cover a batch.
        max_inflight_count: 10_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "embedded".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 10_000,
            max_segment_size: 104_857_600,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("embedded-broker".to_owned())
        .spawn(move || {
            if let Err(error) = broker.start() {
                tracing::error!(error = %error, "embedded broker stopped");
            }
        })
        .map_err(|error| BrokerError::Listen {
            addr,
            reason: error.to_string(),
        })?;
    // Wait until it accepts connections.
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            tracing::info!(%addr, "embedded mqtt broker listening");
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(BrokerError::Listen {
        addr,
        reason: "it did not start accepting connections".to_owned(),
    })
}

/// Without the `embedded-broker` feature there is no embedded broker.
///
/// # Errors
/// Always.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(_addr: SocketAddr, _max_payload_bytes: usize) -> Result<(), BrokerError> {
    Err(BrokerError::NotBuilt)
}
