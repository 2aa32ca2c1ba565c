//! The worklist API over real HTTP on PostgreSQL: team scoping, reasons in
//! Dutch and English, the actions with their conflicts, audit rows, and the
//! live stream.

use std::time::Duration;

use reqwest::Client;
use thuiswacht::alert_book::NewAlert;
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::Priority;
use thuiswacht::store::{NewPatient, NewUser, Role};
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::*;

struct World {
    app: TestApp,
    database: TestDatabase,
    assen_patient: Uuid,
    emmen_patient: Uuid,
}

fn password(username: &str) -> String {
    format!("geheim-{username}-2026")
}

async fn world() -> World {
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;
    let mut patients = Vec::new();
    for team in ["Assen", "Emmen"] {
        app.store.add_team(team).await.unwrap();
        patients.push(
            app.store
                .add_patient(&NewPatient {
                    id: Uuid::new_v4(),
                    team: team.to_owned(),
                    display_name: format!("Mevrouw {team}"),
                    birth_year: Some(1937),
                    protocols: vec!["default".to_owned()],
                })
                .await
                .unwrap(),
        );
    }
    for (username, team) in [("anouk", "Assen"), ("bram", "Assen"), ("emma", "Emmen")] {
        app.store
            .add_user(&NewUser {
                id: Uuid::new_v4(),
                username: username.to_owned(),
                display_name: username.to_owned(),
                role: Role::Nurse,
                password_hash: thuiswacht::auth::password::hash_password(&password(username))
                    .unwrap(),
                teams: vec![team.to_owned()],
            })
            .await
            .unwrap();
    }
    World {
        app,
        database,
        assen_patient: patients[0],
        emmen_patient: patients[1],
    }
}

async fn signed_in(world: &World, username: &str) -> (Client, String) {
    let client = Client::builder().cookie_store(true).build().unwrap();
    let response = client
        .post(format!("{}/api/v1/session", world.app.http))
        .json(&serde_json::json!({"username": username, "password": password(username)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    (client, body["csrf_token"].as_str().unwrap().to_owned())
}

fn fever(patient: Uuid, value: f64) -> NewAlert {
    NewAlert {
        patient_id: patient,
        rule_key: "default/fever".to_owned(),
        priority: Priority::Medium,
        nts: NtsLevel::U3,
        score: 2_000.0,
        explanation: serde_json::json!({"factors": [{"factor": "threshold",
            "metric": "body_temperature", "value": value, "threshold": 38.0,
            "direction": "above", "recover_at": 37.8, "repeat": null, "held_minutes": null}]}),
        at: Timestamp::now(),
        raised_at: Timestamp::now(),
        response_minutes: 240,
    }
}

async fn audit_actions(world: &World, actor: &str) -> Vec<(String, Option<Uuid>)> {
    let pool = sqlx::PgPool::connect(&world.database.url).await.unwrap();
    sqlx::query_as("select action, patient_id from audit_log_patients where actor = $1 order by id, patient_id")
        .bind(actor)
        .fetch_all(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_sees_and_works_her_own_teams_alerts_only() {
    // Arrange
    let world = world().await;
    let (own, _) = world
        .app
        .store
        .raise_alert(&fever(world.assen_patient, 38.9))
        .await
        .unwrap();
    let (other, _) = world
        .app
        .store
        .raise_alert(&fever(world.emmen_patient, 39.1))
        .await
        .unwrap();
    let (anouk, csrf) = signed_in(&world, "anouk").await;
    let (bram, bram_csrf) = signed_in(&world, "bram").await;
    let http = &world.app.http;

    // Act: the worklist in Dutch and in English.
    let dutch: serde_json::Value = anouk
        .get(format!("{http}/api/v1/worklist"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let english: serde_json::Value = anouk
        .get(format!("{http}/api/v1/worklist?lang=en&priority=medium"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad_filter = anouk
        .get(format!("{http}/api/v1/worklist?status=sleeping"))
        .send()
        .await
        .unwrap();
    let foreign = anouk
        .get(format!("{http}/api/v1/alerts/{}", other.id))
        .send()
        .await
        .unwrap();
    let foreign_claim = anouk
        .post(format!("{http}/api/v1/alerts/{}/claim", other.id))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    let without_csrf = anouk
        .post(format!("{http}/api/v1/alerts/{}/claim", own.id))
        .send()
        .await
        .unwrap();
    let claimed = anouk
        .post(format!("{http}/api/v1/alerts/{}/claim", own.id))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    let second = bram
        .post(format!("{http}/api/v1/alerts/{}/claim", own.id))
        .header("x-csrf-token", &bram_csrf)
        .send()
        .await
        .unwrap();
    let second_status = second.status();
    let second_body: serde_json::Value = second.json().await.unwrap();
    let noted = anouk
        .post(format!("{http}/api/v1/alerts/{}/notes", own.id))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"text": "gebeld, paracetamol gegeven"}))
        .send()
        .await
        .unwrap();
    let resolved = anouk
        .post(format!("{http}/api/v1/alerts/{}/resolve", own.id))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"outcome": "contacted_patient"}))
        .send()
        .await
        .unwrap();
    let after: serde_json::Value = anouk
        .get(format!("{http}/api/v1/worklist"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let detail: serde_json::Value = anouk
        .get(format!("{http}/api/v1/alerts/{}", own.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Assert: only her team's patient, with the reason in plain words.
    assert_eq!(dutch["total"], 1, "{dutch}");
    let group = &dutch["patients"][0];
    assert_eq!(group["patient_id"], world.assen_patient.to_string());
    assert_eq!(
        group["alerts"][0]["reason"],
        "Temperatuur 38,9 °C (boven 38 °C)"
    );
    assert_eq!(group["alerts"][0]["overdue"], false);
    assert_eq!(
        english["patients"][0]["alerts"][0]["reason"],
        "Temperature 38.9 °C (above 38 °C)"
    );
    assert_eq!(bad_filter.status(), 400);
    assert_eq!(
        foreign.status(),
        404,
        "another team's alert does not exist for her"
    );
    assert_eq!(foreign_claim.status(), 404);
    assert_eq!(without_csrf.status(), 403);
    assert_eq!(claimed.status(), 200);
    // The second nurse learns who has it.
    assert_eq!(second_status, 409);
    assert_eq!(second_body["alert"]["claimed_by"], "anouk", "{second_body}");
    assert_eq!(noted.status(), 200);
    assert_eq!(resolved.status(), 200);
    assert_eq!(after["total"], 0);
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["raised", "claimed", "note", "resolved"]);
    assert_eq!(detail["outcome"], "contacted_patient");
    // Every read and change is in the audit trail, the refused ones too.
    let actions = audit_actions(&world, "anouk").await;
    let of = |action: &str| actions.iter().filter(|(a, _)| a == action).count();
    assert!(of("read_worklist") >= 2, "{actions:?}");
    assert_eq!(of("change_alert"), 3, "{actions:?}");
    assert!(of("access_refused") >= 2, "{actions:?}");
    assert!(actions
        .iter()
        .filter(|(action, _)| action == "read_worklist")
        .all(|(_, patient)| *patient == Some(world.assen_patient)));
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_announces_changes_of_her_teams_only() {
    // Arrange: anouk follows the stream.
    let world = world().await;
    let (anouk, _) = signed_in(&world, "anouk").await;
    let response = anouk
        .get(format!("{}/api/v1/worklist/stream", world.app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut response = response;
    let mut text = String::new();
    async fn read_until(response: &mut reqwest::Response, text: &mut String, needle: &str) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !text.contains(needle) {
                let chunk = response.chunk().await.unwrap().expect("stream open");
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"));
    }
    read_until(&mut response, &mut text, "event: hello").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Act: an alert of another team, then one of hers.
    let (other, _) = world
        .app
        .store
        .raise_alert(&fever(world.emmen_patient, 39.0))
        .await
        .unwrap();
    let (own, _) = world
        .app
        .store
        .raise_alert(&fever(world.assen_patient, 38.7))
        .await
        .unwrap();
    read_until(&mut response, &mut text, &own.id.to_string()).await;
    let seen = text;

    // Assert
    assert!(seen.contains("event: alert"), "{seen}");
    assert!(seen.contains("\"kind\":\"raised\""), "{seen}");
    assert!(
        !seen.contains(&other.id.to_string()),
        "another team's alert leaked: {seen}"
    );
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_record_and_readings_are_scoped_and_audited() {
    // Arrange: a fever alert and two readings of the Assen patient.
    let world = world().await;
    world
        .app
        .store
        .raise_alert(&fever(world.assen_patient, 38.9))
        .await
        .unwrap();
    let device = thuiswacht::store::observation_device(world.assen_patient);
    let now = Timestamp::now();
    let reading = |metric, value, ago_minutes: i64| thuiswacht::domain::Reading {
        device_id: device.clone(),
        patient_id: world.assen_patient,
        metric,
        value,
        ts: now.plus_micros(-ago_minutes * 60_000_000),
        received_at: now,
    };
    world
        .app
        .store
        .commit_batch(
            &[
                reading(thuiswacht::domain::Metric::BodyTemperature, 38.9, 30),
                reading(thuiswacht::domain::Metric::RespiratoryRate, 22.0, 20),
            ],
            &[],
        )
        .await
        .unwrap();
    let (anouk, _) = signed_in(&world, "anouk").await;
    let http = &world.app.http;

    // Act
    let record: serde_json::Value = anouk
        .get(format!("{http}/api/v1/patients/{}", world.assen_patient))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let temperatures: serde_json::Value = anouk
        .get(format!(
            "{http}/api/v1/patients/{}/readings?metric=body_temperature",
            world.assen_patient
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let foreign = anouk
        .get(format!("{http}/api/v1/patients/{}", world.emmen_patient))
        .send()
        .await
        .unwrap();
    let foreign_readings = anouk
        .get(format!(
            "{http}/api/v1/patients/{}/readings",
            world.emmen_patient
        ))
        .send()
        .await
        .unwrap();
    let bad_metric = anouk
        .get(format!(
            "{http}/api/v1/patients/{}/readings?metric=mood",
            world.assen_patient
        ))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(record["display_name"], "Mevrouw Assen");
    assert_eq!(record["alerts"][0]["rule_key"], "default/fever");
    assert_eq!(
        record["alerts"][0]["reason"],
        "Temperatuur 38,9 °C (boven 38 °C)"
    );
    let values: Vec<f64> = temperatures["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![38.9], "only the metric asked for");
    assert_eq!(temperatures["truncated"], false);
    assert_eq!(foreign.status(), 404);
    assert_eq!(foreign_readings.status(), 404);
    assert_eq!(bad_metric.status(), 400);
    let actions = audit_actions(&world, "anouk").await;
    assert!(actions.contains(&("read_patient".to_owned(), Some(world.assen_patient))));
    assert!(actions.contains(&("read_readings".to_owned(), Some(world.assen_patient))));
    assert!(actions.contains(&("access_refused".to_owned(), Some(world.emmen_patient))));
    world.app.stop().await;
}
