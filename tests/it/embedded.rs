//! The embedded default: no database or broker configured. The real binary
//! starts its own MQTT broker and SQLite store in an empty data folder,
//! accepts a publish from a separate MQTT client, stores it, and keeps it
//! across a restart.

use std::process::{Command, Stdio};
use std::time::Duration;

use thuiswacht::domain::DeviceId;
use thuiswacht::settings::Settings;
use thuiswacht::store::{SqliteStore, Store};

use crate::helpers::*;

fn embedded_env(data_dir: &std::path::Path, broker_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("THUISWACHT_DATA_DIR", data_dir.display().to_string()),
        (
            "THUISWACHT_EMBEDDED_BROKER_ADDR",
            format!("127.0.0.1:{broker_port}"),
        ),
    ]
}

/// Runs an admin command against the embedded store while the service runs.
fn admin(data_dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("THUISWACHT_DATABASE_URL")
        .env_remove("THUISWACHT_MQTT_URL")
        .env("THUISWACHT_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn embedded_store(data_dir: &std::path::Path) -> SqliteStore {
    let mut settings = Settings::defaults();
    settings.data_dir = data_dir.to_owned();
    SqliteStore::connect(&settings)
        .await
        .expect("open the embedded store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_stores_a_publish_from_a_separate_client_and_keeps_it_across_restart() {
    // Arrange: an empty data folder and a free port for the embedded broker.
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let broker_port = free_port();
    let env = embedded_env(&data_dir, broker_port);
    let service = ServiceProcess::start(&env).await;
    assert!(
        data_dir.join("thuiswacht.db").exists(),
        "the store was created in the data folder"
    );
    // The demo population registers itself in this mode.
    let store = embedded_store(&data_dir).await;
    wait_for(
        "the demo population to be registered",
        Duration::from_secs(30),
        || async {
            store
                .list_patients()
                .await
                .map(|p| p.len() >= 16)
                .unwrap_or(false)
        },
    )
    .await;
    admin(&data_dir, &["admin", "team", "add", "Wijkteam Zuidwolde"]);
    let patient = admin(
        &data_dir,
        &[
            "admin",
            "patient",
            "add",
            "--team",
            "Wijkteam Zuidwolde",
            "--display-name",
            "Meneer Mulder",
        ],
    );
    admin(
        &data_dir,
        &[
            "admin",
            "device",
            "add",
            "scale-h1",
            "--profile",
            "weight-scale",
            "--patient",
            &patient,
        ],
    );
    // Act: a device publishes to the embedded broker over TCP.
    let broker = format!("mqtt://127.0.0.1:{broker_port}");
    let publisher = Publisher::connect(&broker).await;
    let now = chrono::Utc::now().timestamp();
    publisher
        .publish(
            "thuiswacht/v1/devices/scale-h1/readings",
            v1_payload("scale-h1", "body_weight", "kg", now - 120, 2, 77.4),
        )
        .await;
    publisher.wait_acked(1).await;
    let scale = DeviceId::parse("scale-h1").unwrap();
    wait_for(
        "the published readings to be stored",
        Duration::from_secs(30),
        || async {
            store
                .device_readings(&scale)
                .await
                .map(|r| r.len() == 2)
                .unwrap_or(false)
        },
    )
    .await;
    // The demo population registers and publishes its history beside it.
    wait_for(
        "the demo devices to publish too",
        Duration::from_secs(60),
        || async {
            store
                .count_readings()
                .await
                .map(|count| count > 2)
                .unwrap_or(false)
        },
    )
    .await;
    publisher.disconnect().await;
    // Assert: a graceful stop, then a restart keeps the data.
    assert!(service.terminate().success(), "SIGTERM stops it cleanly");
    let login_file = data_dir.join("demo-login.txt");
    let password = std::fs::read_to_string(&login_file)
        .expect("the demo password is kept in the data folder")
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&login_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads the demo password");
    }
    let service = ServiceProcess::start(&env).await;
    // The demo nurse signs in with the same password after the restart and
    // sees the demo teams' worklist.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{}/api/v1/session", service.http))
        .json(&serde_json::json!({"username": "demo", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200, "the demo sign-in works");
    let worklist = browser
        .get(format!("{}/", service.http))
        .send()
        .await
        .unwrap();
    assert_eq!(worklist.status(), 200);
    let page = worklist.text().await.unwrap();
    assert!(
        page.contains(">Werklijst</h1>") && page.contains("Assen"),
        "{page}"
    );
    let stored = store.device_readings(&scale).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].value, 77.4);
    assert_eq!(stored[0].patient_id.to_string(), patient);
    let publisher = Publisher::connect(&broker).await;
    publisher
        .publish(
            "thuiswacht/v1/devices/scale-h1/readings",
            v1_payload("scale-h1", "body_weight", "kg", now - 30, 1, 77.9),
        )
        .await;
    wait_for(
        "the reading after restart to be stored",
        Duration::from_secs(30),
        || async {
            store
                .device_readings(&scale)
                .await
                .map(|r| r.len() == 3)
                .unwrap_or(false)
        },
    )
    .await;
    publisher.disconnect().await;
    assert!(service.terminate().success());
}
