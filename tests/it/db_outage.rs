//! Database outage: PostgreSQL becomes unreachable (a loopback proxy in front
//! of it is cut) while readings are published. Ingest waits, memory stays
//! bounded, and after recovery every reading is stored exactly once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::crash::{register_wearables, service_env, spawn_publishing};
use crate::helpers::*;

/// A TCP proxy on loopback to PostgreSQL that can be cut and restored.
struct CuttableProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        {
            let cut = cut.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            });
        }
        CuttableProxy {
            addr,
            cut,
            connections,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_slows_ingest_without_losing_or_duplicating_readings() {
    // Arrange
    const MESSAGES: usize = 6_000;
    const PER_MESSAGE: usize = 10;
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let devices = register_wearables(&store).await;
    let proxy = CuttableProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied_url = database
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(
        proxied_url, database.url,
        "the database url goes through the proxy"
    );
    let root = unique_topic_root();
    let mut env = service_env(
        &proxied_url,
        &root,
        &format!("tw-outage-{}", Uuid::new_v4().simple()),
    );
    env.push(("THUISWACHT_DB_ACQUIRE_TIMEOUT_MS", "1000".to_owned()));
    let service = ServiceProcess::start(&env).await;
    let publisher = Arc::new(Publisher::connect(&mqtt_url()).await);
    let publishing = spawn_publishing(publisher.clone(), root, devices, MESSAGES, PER_MESSAGE);
    wait_for(
        "ingest to be under way",
        Duration::from_secs(60),
        || async { store.count_readings().await.unwrap_or(0) >= 5_000 },
    )
    .await;
    let rss_before = service.rss_kib().expect("rss readable");
    // Act: cut the database off for four seconds while publishing goes on.
    proxy.cut();
    let stored_at_cut = store.count_readings().await.unwrap();
    let mut rss_peak = rss_before;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss_peak = rss_peak.max(service.rss_kib().unwrap_or(0));
    }
    let stored_during_outage = store.count_readings().await.unwrap() - stored_at_cut;
    proxy.restore();
    publishing.await.unwrap();
    publisher.wait_acked(MESSAGES as u64).await;
    // Assert
    wait_for_readings(
        &store,
        (MESSAGES * PER_MESSAGE) as i64,
        Duration::from_secs(120),
    )
    .await;
    // Commits already under way when the line is cut may still land: at
    // most `store_concurrent_commits` (2) batches of `batch_max_rows` (5,000).
    assert!(
        stored_during_outage <= 10_000,
        "at most the in-flight batches may land after the cut, got {stored_during_outage}"
    );
    assert!(
        rss_peak < rss_before + 64 * 1024,
        "memory stays bounded during the outage: {rss_before} KiB before, {rss_peak} KiB peak"
    );
    let metrics = reqwest::get(format!("{}/metrics", service.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: f64 = metrics
        .lines()
        .find(|line| line.starts_with("thuiswacht_store_commit_errors_total "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    assert!(
        errors > 0.0,
        "commits failed during the outage and were retried:\n{metrics}"
    );
    assert!(service.terminate().success());
    Arc::try_unwrap(publisher)
        .ok()
        .expect("publisher no longer shared")
        .disconnect()
        .await;
}
