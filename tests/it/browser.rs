//! The web pages in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `tests/browser/`), against the service on the real
//! PostgreSQL and Mosquitto: sign in, a reading published over MQTT appears
//! on the worklist without a reload, claim (and a colleague's claim seen),
//! resolve with an outcome, the patient page, the language switch, and an
//! axe-core accessibility check of both pages; and a coordinator who
//! changes a threshold, previews it on history and saves it. Screenshots are saved in
//! `target/browser-screenshots/`.
//!
//! `scripts/test` installs Chromium and the npm packages when they are
//! missing; without them this test fails, it is never skipped.

use std::process::Stdio;
use std::time::Duration;

use thuiswacht::alert_book::{Alert, AlertStatus, Outcome};
use thuiswacht::domain::DeviceId;
use thuiswacht::store::{AlertOrder, AlertQuery, NewDevice, NewPatient, Role};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use uuid::Uuid;

use crate::helpers::*;

/// The newest alert of a patient for a rule, in any status.
async fn alert_by_rule(app: &TestApp, patient: Uuid, rule_key: &str) -> Alert {
    let page = app
        .store
        .query_alerts(&AlertQuery {
            patient_id: Some(patient),
            statuses: vec![
                AlertStatus::Open,
                AlertStatus::Claimed,
                AlertStatus::Snoozed,
                AlertStatus::Escalated,
                AlertStatus::Resolved,
            ],
            order: AlertOrder::Newest,
            limit: 100,
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|item| item.alert)
        .find(|alert| alert.rule_key == rule_key)
        .unwrap_or_else(|| panic!("an alert of {rule_key}"))
}

/// Starts a browser script of `tests/browser/` with `env` and the
/// screenshot folder; returns it with its stdin and its stdout's lines,
/// for the STEP/DONE handshake (see `tests/browser/harness.mjs`).
fn browser_script(
    script: &str,
    env: &[(&str, String)],
    screenshots: &std::path::Path,
) -> (
    tokio::process::Child,
    tokio::process::ChildStdin,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = Command::new("node")
        .arg(repo_path(script))
        .current_dir(repo_path("tests/browser"))
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .env("SCREENSHOT_DIR", screenshots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/test installs it when missing)");
    let stdin = child.stdin.take().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, stdin, lines)
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_works_the_live_worklist_in_chromium() {
    // Arrange: the service with triage on, a patient in Assen with a
    // thermometer and an oximeter, two nurses of Assen.
    let node_modules = repo_path("tests/browser/node_modules/playwright-core");
    assert!(
        node_modules.exists(),
        "the browser test needs `npm ci --prefix tests/browser` (scripts/test runs it)"
    );
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    app.store.add_team("Assen").await.unwrap();
    let patient = app
        .store
        .add_patient(&NewPatient {
            id: Uuid::new_v4(),
            team: "Assen".to_owned(),
            display_name: "Mevrouw de Jong".to_owned(),
            birth_year: Some(1936),
            protocols: vec!["default".to_owned()],
        })
        .await
        .unwrap();
    let thermometer = format!("thermo-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let oximeter = format!("ox-{}", &Uuid::new_v4().simple().to_string()[..8]);
    for (device, profile) in [(&thermometer, "thermometer"), (&oximeter, "pulse-oximeter")] {
        app.store
            .add_device(&NewDevice {
                device_id: DeviceId::parse(device).unwrap(),
                profile_id: profile.to_owned(),
                patient_id: patient,
            })
            .await
            .unwrap();
    }
    for username in ["anouk", "bram"] {
        add_test_user(&app.store, username, Role::Nurse, &["Assen"]).await;
    }
    // Three days of normal temperatures (for the chart and the baseline),
    // then SpO2 below 92 twice: a high-priority alert before sign-in.
    let publisher = Publisher::connect(&mqtt_url()).await;
    let start = now_seconds() - 3 * 86_400;
    let mut published = 0;
    for (index, value) in [36.7, 36.9, 36.8, 37.0, 36.6, 36.9].iter().enumerate() {
        publisher
            .publish(
                &readings_topic(&root, &thermometer),
                v1_payload(
                    &thermometer,
                    "body_temperature",
                    "Cel",
                    start + index as i64 * 43_200,
                    1,
                    *value,
                ),
            )
            .await;
        published += 1;
    }
    for offset in [-1_800, -1_200] {
        publisher
            .publish(
                &readings_topic(&root, &oximeter),
                v1_payload(&oximeter, "spo2", "%", now_seconds() + offset, 1, 89.0),
            )
            .await;
        published += 1;
    }
    wait_for_readings(&app.store, published, Duration::from_secs(20)).await;
    wait_for("the SpO2 alert", Duration::from_secs(20), || async {
        app.store
            .unresolved_alerts()
            .await
            .map(|alerts| alerts.iter().any(|a| a.rule_key == "default/spo2_low"))
            .unwrap_or(false)
    })
    .await;

    // Act: the browser script, which asks for each step it needs.
    let screenshots = repo_path("target/browser-screenshots");
    let (mut child, mut stdin, mut lines) = browser_script(
        "tests/browser/worklist.mjs",
        &[
            ("THUISWACHT_URL", app.http.clone()),
            ("THUISWACHT_USER", "anouk".to_string()),
            ("THUISWACHT_PASSWORD", test_password("anouk")),
            ("THUISWACHT_PATIENT", patient.to_string()),
        ],
        &screenshots,
    );
    let mut passed = false;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            match line.trim() {
                "STEP publish-fever" => {
                    publisher
                        .publish(
                            &readings_topic(&root, &thermometer),
                            v1_payload(
                                &thermometer,
                                "body_temperature",
                                "Cel",
                                now_seconds() - 60,
                                1,
                                39.6,
                            ),
                        )
                        .await;
                    stdin.write_all(b"DONE publish-fever\n").await.unwrap();
                }
                "STEP colleague-claims-first" => {
                    // Bram claims the SpO2 alert through the API.
                    let client = reqwest::Client::builder()
                        .cookie_store(true)
                        .build()
                        .unwrap();
                    let session: serde_json::Value = client
                        .post(format!("{}/api/v1/session", app.http))
                        .json(
                            &serde_json::json!({"username": "bram", "password": test_password("bram")}),
                        )
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let alert = app
                        .store
                        .unresolved_alerts()
                        .await
                        .unwrap()
                        .into_iter()
                        .find(|alert| alert.rule_key == "default/spo2_low")
                        .unwrap();
                    let response = client
                        .post(format!("{}/api/v1/alerts/{}/claim", app.http, alert.id))
                        .header("X-CSRF-Token", session["csrf_token"].as_str().unwrap())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200, "bram claims the SpO2 alert");
                    stdin
                        .write_all(b"DONE colleague-claims-first\n")
                        .await
                        .unwrap();
                }
                "STEP check-resolved" => {
                    // The page's resolve reached the alert book as anouk's.
                    let fever = alert_by_rule(&app, patient, "default/fever").await;
                    assert_eq!(fever.status, AlertStatus::Resolved);
                    assert_eq!(fever.outcome, Some(Outcome::ContactedPatient));
                    assert_eq!(fever.resolved_by.as_deref(), Some("anouk"));
                    assert_eq!(fever.claimed_by.as_deref(), Some("anouk"));
                    stdin.write_all(b"DONE check-resolved\n").await.unwrap();
                }
                "PASSED" => {
                    passed = true;
                    break;
                }
                other => eprintln!("browser: {other}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser test finishes within three minutes");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("node exits")
        .unwrap();

    // Assert
    assert!(
        status.success() && passed,
        "the browser checks passed: {status}"
    );
    for file in ["worklist.png", "patient.png", "worklist-en.png"] {
        let size = std::fs::metadata(screenshots.join(file))
            .map(|meta| meta.len())
            .unwrap_or(0);
        assert!(size > 10_000, "screenshot {file} saved ({size} bytes)");
    }
    // Every page view left its audit rows: the worklist and the patient page.
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_log_patients where actor = 'anouk' and patient_id = $1",
    )
    .bind(patient)
    .fetch_all(&pool)
    .await
    .unwrap();
    for expected in [
        "read_worklist",
        "read_patient",
        "read_readings",
        "change_alert",
    ] {
        assert!(
            actions.iter().any(|action| action == expected),
            "audit has {expected}: {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_previews_and_saves_a_threshold_in_chromium() {
    // Arrange: a patient in Assen with two fever episodes in the last two
    // days, 38.2 and 38.9 °C: the threshold at 38.5 would have kept one.
    let node_modules = repo_path("tests/browser/node_modules/playwright-core");
    assert!(
        node_modules.exists(),
        "the browser test needs `npm ci --prefix tests/browser` (scripts/test runs it)"
    );
    let database = TestDatabase::create().await;
    let root = unique_topic_root();
    let app = TestApp::spawn(test_settings(&database.url, &root)).await;
    let patient = add_test_patient(&app.store, "Assen", "Meneer Mulder").await;
    let thermometer = format!("thermo-{}", &Uuid::new_v4().simple().to_string()[..8]);
    app.store
        .add_device(&NewDevice {
            device_id: DeviceId::parse(&thermometer).unwrap(),
            profile_id: "thermometer".to_owned(),
            patient_id: patient,
        })
        .await
        .unwrap();
    add_test_user(&app.store, "carla", Role::Coordinator, &["Assen"]).await;
    let publisher = Publisher::connect(&mqtt_url()).await;
    let start = now_seconds() - 2 * 86_400;
    let temperatures = [
        (0, 36.9),
        (4, 38.2),
        (5, 37.0),
        (14, 38.9),
        (15, 37.0),
        (24, 36.8),
    ];
    for (hour, value) in temperatures {
        publisher
            .publish(
                &readings_topic(&root, &thermometer),
                v1_payload(
                    &thermometer,
                    "body_temperature",
                    "Cel",
                    start + hour * 3_600,
                    1,
                    value,
                ),
            )
            .await;
    }
    wait_for_readings(
        &app.store,
        temperatures.len() as i64,
        Duration::from_secs(20),
    )
    .await;
    wait_for("the fever alert", Duration::from_secs(20), || async {
        app.store
            .unresolved_alert(patient, "default/fever")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    // Triage follows the store within milliseconds; the rules the change
    // leaves alone count as they raised.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let unchanged: i64 = sqlx::query_scalar(
        "select count(*) from alerts where rule_key like 'default/%' and rule_key <> 'default/fever'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    // Act
    let screenshots = repo_path("target/browser-screenshots");
    let (mut child, mut stdin, mut lines) = browser_script(
        "tests/browser/protocols.mjs",
        &[
            ("THUISWACHT_URL", app.http.clone()),
            ("THUISWACHT_USER", "carla".to_string()),
            ("THUISWACHT_PASSWORD", test_password("carla")),
            ("EXPECT_CURRENT", (2 + unchanged).to_string()),
            ("EXPECT_PROPOSED", (1 + unchanged).to_string()),
        ],
        &screenshots,
    );
    let mut passed = false;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            match line.trim() {
                "STEP check-saved" => {
                    // The page's save is version 1, by carla, with the new threshold.
                    let versions: Vec<i32> =
                        sqlx::query_scalar("select version from protocol_versions where protocol_id = 'default' and author = 'carla'")
                            .fetch_all(&pool)
                            .await
                            .unwrap();
                    assert_eq!(versions, vec![1]);
                    let definition: serde_json::Value = sqlx::query_scalar(
                        "select definition from protocol_versions where protocol_id = 'default' and version = 1",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    let fever = definition["rule"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|rule| rule["id"] == "fever")
                        .unwrap()
                        .clone();
                    assert_eq!(fever["above"], 38.5);
                    stdin.write_all(b"DONE check-saved\n").await.unwrap();
                }
                "PASSED" => {
                    passed = true;
                    break;
                }
                other => eprintln!("browser: {other}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finishes within two minutes");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("node exits")
        .unwrap();

    // Assert
    assert!(
        status.success() && passed,
        "the browser checks passed: {status}"
    );
    for file in ["protocol-preview.png", "protocol-saved.png"] {
        let size = std::fs::metadata(screenshots.join(file))
            .map(|meta| meta.len())
            .unwrap_or(0);
        assert!(size > 10_000, "screenshot {file} saved ({size} bytes)");
    }
    let audited: Vec<String> = sqlx::query_scalar(
        "select action from audit_log where actor = 'carla' and action in ('run_backtest', 'change_protocol')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(audited.iter().any(|a| a == "run_backtest"), "{audited:?}");
    assert!(
        audited.iter().any(|a| a == "change_protocol"),
        "{audited:?}"
    );
}
