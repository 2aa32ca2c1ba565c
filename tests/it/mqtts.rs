//! `mqtts://` with a private CA and username/password: a real Mosquitto with
//! a TLS listener (certificates made for the test by openssl), Thuiswacht
//! subscribing over TLS, a device publishing over TLS.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

use crate::helpers::*;

fn run(command: &mut Command) {
    let output = command.output().expect("run helper command");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

struct TlsBroker {
    child: Child,
    port: u16,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Mosquitto with a TLS listener on loopback, a fresh CA and a password file.
fn start_tls_broker() -> TlsBroker {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=thuiswacht test CA",
        ])
        .arg("-keyout")
        .arg(path("ca.key"))
        .arg("-out")
        .arg(path("ca.crt")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(path("server.key"))
        .arg("-out")
        .arg(path("server.csr")));
    std::fs::write(
        path("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(path("server.csr"))
        .arg("-CA")
        .arg(path("ca.crt"))
        .arg("-CAkey")
        .arg(path("ca.key"))
        .arg("-extfile")
        .arg(path("san.ext"))
        .arg("-out")
        .arg(path("server.crt")));
    run(Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(path("passwords"))
        .args(["ingest", "s3cret-test-only"]));
    let port = free_port();
    std::fs::write(
        path("mosquitto.conf"),
        format!(
            "listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous false\npassword_file {pw}\nmax_inflight_messages 0\npersistence false\n",
            ca = path("ca.crt").display(),
            cert = path("server.crt").display(),
            key = path("server.key").display(),
            pw = path("passwords").display(),
        ),
    )
    .unwrap();
    // Mosquitto drops root privileges to its own user, which must read the files.
    run(Command::new("chmod").arg("-R").arg("a+rX").arg(dir.path()));
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(path("mosquitto.conf"))
        .spawn()
        .expect("start mosquitto");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsBroker {
        child,
        port,
        ca: path("ca.crt"),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_over_mqtts_with_a_private_ca_and_credentials() {
    // Arrange
    let broker = start_tls_broker();
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, "thuiswacht/v1");
    settings.mqtt_url = Some(format!("mqtts://localhost:{}", broker.port));
    settings.mqtt_ca_file = Some(broker.ca.clone());
    settings.mqtt_username = Some("ingest".to_owned());
    settings.mqtt_password = Some("s3cret-test-only".to_owned().into());
    let app = TestApp::spawn(settings).await;
    register_devices(&app.store, &[("scale-tls", "weight-scale")]).await;
    // Act: a gateway publishes over TLS with the same credentials.
    let mut options = MqttOptions::new("tls-gateway", "localhost", broker.port);
    options.set_credentials("ingest", "s3cret-test-only");
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(&broker.ca).unwrap(),
        alpn: None,
        client_auth: None,
    }));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let acked = Arc::new(tokio::sync::Notify::new());
    let connection = {
        let acked = acked.clone();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Incoming(Packet::PubAck(_))) {
                    acked.notify_one();
                }
            }
        })
    };
    let now = chrono::Utc::now().timestamp();
    client
        .publish(
            "thuiswacht/v1/devices/scale-tls/readings",
            QoS::AtLeastOnce,
            false,
            v1_payload("scale-tls", "body_weight", "kg", now - 60, 1, 74.2),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), acked.notified())
        .await
        .expect("the TLS broker acknowledges");
    // Assert
    wait_for_readings(&app.store, 1, Duration::from_secs(20)).await;
    connection.abort();
    app.stop().await;
}
