//! Batch insert throughput of the store, in rows per second, into the local
//! PostgreSQL (`DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres)
//! and into an embedded SQLite file.
//!
//! Batch sizes: 500 rows is what the writer commits at ~25,000 readings/s
//! with a 20 ms window; 5,000 is `batch_max_rows`, reached under back-log.
//! Every iteration writes new keys, so the numbers are inserts, not conflicts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sqlx::Connection;
use thuiswacht::domain::{DeviceId, Metric, Reading, Timestamp};
use thuiswacht::settings::Settings;
use thuiswacht::store::{NewDevice, NewPatient, PgStore, SqliteStore, Store};
use uuid::Uuid;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn postgres_store() -> Arc<dyn Store> {
    let name = format!("tw_test_bench_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&database_url())
        .await
        .expect("PostgreSQL running");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = database_url()
        .rsplit_once('/')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let pool = sqlx::PgPool::connect(&format!("{prefix}/{name}"))
        .await
        .unwrap();
    let store = PgStore::from_pool(pool);
    store.migrate().await.unwrap();
    Arc::new(store)
}

async fn sqlite_store(dir: &std::path::Path) -> Arc<dyn Store> {
    let mut settings = Settings::defaults();
    settings.data_dir = dir.to_owned();
    let store = SqliteStore::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

async fn patient(store: &Arc<dyn Store>) -> Uuid {
    store.add_team("Meppel").await.unwrap();
    let patient = store
        .add_patient(&NewPatient {
            id: uuid::Uuid::new_v4(),
            team: "Meppel".to_owned(),
            display_name: "bench".to_owned(),
            birth_year: None,
            protocols: vec![],
        })
        .await
        .unwrap();
    for device in 0..100 {
        store
            .add_device(&NewDevice {
                device_id: DeviceId::parse(&format!("wear-{device}")).unwrap(),
                profile_id: "wearable".to_owned(),
                patient_id: patient,
            })
            .await
            .unwrap();
    }
    patient
}

fn batch(patient: Uuid, size: usize, clock: &AtomicI64) -> Vec<Reading> {
    let devices: Vec<DeviceId> = (0..100)
        .map(|d| DeviceId::parse(&format!("wear-{d}")).unwrap())
        .collect();
    (0..size)
        .map(|i| Reading {
            device_id: devices[i % 100].clone(),
            patient_id: patient,
            metric: Metric::HeartRate,
            value: 70.0,
            ts: Timestamp(clock.fetch_add(1, Ordering::Relaxed)),
            received_at: Timestamp::now(),
        })
        .collect()
}

fn bench_store(c: &mut Criterion) {
    thuiswacht::app::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn Store>)> = runtime.block_on(async {
        vec![
            ("postgres", postgres_store().await),
            ("sqlite", sqlite_store(dir.path()).await),
        ]
    });
    let mut group = c.benchmark_group("store_writer");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(20);
    for (name, store) in &stores {
        let patient = runtime.block_on(patient(store));
        let clock = AtomicI64::new(Timestamp::now().micros());
        for size in [500_usize, 5_000] {
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(format!("{name}_commit_batch_{size}"), |b| {
                b.iter_custom(|iterations| {
                    let batches: Vec<Vec<Reading>> = (0..iterations)
                        .map(|_| batch(patient, size, &clock))
                        .collect();
                    runtime.block_on(async {
                        let started = Instant::now();
                        for readings in &batches {
                            let is_new = store.commit_batch(readings, &[]).await.unwrap();
                            debug_assert!(is_new.iter().all(|n| *n));
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
