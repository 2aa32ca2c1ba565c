//! Crash safety: the real binary is killed with SIGKILL in the middle of a
//! 100,000-reading publish and started again; every reading ends up stored
//! exactly once, because nothing is acknowledged before it is committed and
//! every insert is idempotent.

use std::sync::Arc;
use std::time::Duration;

use thuiswacht::store::Store;
use uuid::Uuid;

use crate::helpers::*;

pub const DEVICES: usize = 10;

/// Environment for a service process on `database_url` and the test broker.
pub fn service_env(database_url: &str, root: &str, client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("THUISWACHT_DATABASE_URL", database_url.to_owned()),
        ("THUISWACHT_MQTT_URL", mqtt_url()),
        ("THUISWACHT_MQTT_CLIENT_ID", client_id.to_owned()),
        ("THUISWACHT_MQTT_TOPIC_ROOT", root.to_owned()),
        ("THUISWACHT_DEMO", "false".to_owned()),
    ]
}

/// Registers `DEVICES` wearables and returns their ids.
pub async fn register_wearables(store: &Arc<dyn Store>) -> Vec<String> {
    let ids: Vec<String> = (0..DEVICES).map(|i| format!("wear-{i}")).collect();
    let pairs: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "wearable")).collect();
    register_devices(store, &pairs).await;
    ids
}

/// Publishes `messages` messages of `per_message` heart-rate readings,
/// round-robin over the devices, each reading with its own event time.
pub fn spawn_publishing(
    publisher: Arc<Publisher>,
    root: String,
    devices: Vec<String>,
    messages: usize,
    per_message: usize,
) -> tokio::task::JoinHandle<()> {
    let start = chrono::Utc::now().timestamp() - 30 * 24 * 3_600;
    tokio::spawn(async move {
        for i in 0..messages {
            let device = &devices[i % devices.len()];
            let first = start + (i / devices.len() * per_message) as i64;
            let payload = v1_payload(
                device,
                "heart_rate",
                "/min",
                first,
                per_message,
                60.0 + (i % 30) as f64,
            );
            publisher
                .publish(&readings_topic(&root, device), payload)
                .await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_survive_sigkill_during_publishing_exactly_once() {
    // Arrange
    const MESSAGES: usize = 10_000;
    const PER_MESSAGE: usize = 10;
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let root = unique_topic_root();
    let devices = register_wearables(&store).await;
    let env = service_env(
        &database.url,
        &root,
        &format!("tw-crash-{}", Uuid::new_v4().simple()),
    );
    let service = ServiceProcess::start(&env).await;
    let publisher = Arc::new(Publisher::connect(&mqtt_url()).await);
    // Act: publish, kill hard once a fifth is stored, start again.
    let publishing = spawn_publishing(
        publisher.clone(),
        root.clone(),
        devices.clone(),
        MESSAGES,
        PER_MESSAGE,
    );
    wait_for(
        "a fifth of the readings to be stored",
        Duration::from_secs(120),
        || async { store.count_readings().await.unwrap_or(0) >= 20_000 },
    )
    .await;
    service.kill_hard();
    let stored_at_kill = store.count_readings().await.unwrap();
    let service = ServiceProcess::start(&env).await;
    publishing.await.unwrap();
    publisher.wait_acked(MESSAGES as u64).await;
    // Assert: every reading once; per device, one row per distinct event time.
    wait_for_readings(
        &store,
        (MESSAGES * PER_MESSAGE) as i64,
        Duration::from_secs(180),
    )
    .await;
    assert!(
        stored_at_kill < (MESSAGES * PER_MESSAGE) as i64,
        "the kill happened mid-stream"
    );
    for device in &devices {
        let readings = store
            .device_readings(&thuiswacht::domain::DeviceId::parse(device).unwrap())
            .await
            .unwrap();
        assert_eq!(readings.len(), MESSAGES / DEVICES * PER_MESSAGE, "{device}");
        assert!(readings.windows(2).all(|pair| pair[0].ts < pair[1].ts));
    }
    assert!(service.terminate().success(), "clean exit on SIGTERM");
    Arc::try_unwrap(publisher)
        .ok()
        .expect("publisher no longer shared")
        .disconnect()
        .await;
}
