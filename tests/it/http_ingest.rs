//! `POST /api/v1/readings` and `POST /api/v1/devices/{id}/status`: bearer
//! tokens, answers after commit, problem details.

use std::time::Duration;

use thuiswacht::store::TokenScope;

use crate::helpers::*;

async fn app() -> TestApp {
    let database = TestDatabase::create().await;
    let app = TestApp::spawn(test_settings(&database.url, &unique_topic_root())).await;
    register_devices(&app.store, &[("scale-1", "weight-scale")]).await;
    app
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn readings_posted_with_an_ingest_token_are_stored_before_the_answer() {
    // Arrange
    let app = app().await;
    let token = ingest_token(&app.store).await;
    let client = reqwest::Client::new();
    let body = v1_payload("scale-1", "body_weight", "kg", now_seconds() - 100, 4, 80.0);
    // Act
    let response = client
        .post(format!("{}/api/v1/readings", app.http))
        .bearer_auth(&token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    // Assert: the answer comes after the commit, so the rows are already there.
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["stored"], 4);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(app.store.count_readings().await.unwrap(), 4);
    // The same upload again is reported as duplicates and stores nothing.
    let again: serde_json::Value = client
        .post(format!("{}/api/v1/readings", app.http))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["stored"], 0);
    assert_eq!(again["duplicates"], 4);
    assert_eq!(app.store.count_readings().await.unwrap(), 4);
    app.stop().await;
}

#[tokio::test]
async fn missing_wrong_or_read_only_tokens_are_refused_with_problem_details() {
    let app = app().await;
    let read_secret = thuiswacht::commands::new_token_secret();
    app.store
        .add_token(
            "dashboard",
            TokenScope::Read,
            &thuiswacht::api::token_hash(&read_secret),
        )
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/readings", app.http);
    let body = v1_payload("scale-1", "body_weight", "kg", now_seconds() - 100, 1, 80.0);
    let none = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = none.json().await.unwrap();
    assert_eq!(problem["type"], "urn:thuiswacht:problem:unauthorized");
    assert_eq!(problem["status"], 401);
    let wrong = client
        .post(&url)
        .bearer_auth("tw_nonsense")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let read_only = client
        .post(&url)
        .bearer_auth(&read_secret)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(read_only.status(), 403);
    assert_eq!(app.store.count_readings().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn rejected_and_oversized_posts_are_quarantined_and_explained() {
    let app = app().await;
    let token = ingest_token(&app.store).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/readings", app.http);
    // All readings bad: 422 with the reasons.
    let bad = client
        .post(&url)
        .bearer_auth(&token)
        .body(v1_payload(
            "ghost",
            "body_weight",
            "kg",
            now_seconds() - 100,
            2,
            80.0,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(problem["type"], "urn:thuiswacht:problem:payload-rejected");
    assert_eq!(problem["rejected"][0]["reason"], "unknown_device");
    assert_eq!(problem["rejected"].as_array().unwrap().len(), 2);
    // Over 256 KiB: 413, and quarantined too.
    let padding = "x".repeat(300 * 1024);
    let large = client
        .post(&url)
        .bearer_auth(&token)
        .body(format!(
            r#"{{"device_id":"scale-1","readings":[],"pad":"{padding}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);
    wait_for("the quarantine rows", Duration::from_secs(5), || async {
        app.store.list_quarantine(10).await.unwrap().len() == 3
    })
    .await;
    // A mixed batch: 200 with the good one stored and the bad one reported.
    let mixed = format!(
        r#"{{"device_id":"scale-1","readings":[
            {{"metric":"body_weight","value":80,"unit":"kg","ts":"{t}"}},
            {{"metric":"body_weight","value":900,"unit":"kg","ts":"{t2}"}}]}}"#,
        t = chrono::DateTime::from_timestamp(now_seconds() - 10, 0)
            .unwrap()
            .to_rfc3339(),
        t2 = chrono::DateTime::from_timestamp(now_seconds() - 9, 0)
            .unwrap()
            .to_rfc3339(),
    );
    let report: serde_json::Value = client
        .post(&url)
        .bearer_auth(&token)
        .body(mixed)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["stored"], 1);
    assert_eq!(report["rejected"][0]["reason"], "implausible_value");
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_unknown_paths_answer() {
    let app = app().await;
    let health = reqwest::get(format!("{}/healthz", app.http)).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/readyz", app.http)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let missing = reqwest::get(format!("{}/nope", app.http)).await.unwrap();
    assert_eq!(missing.status(), 404);
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(problem["type"], "urn:thuiswacht:problem:no-such-route");
    let metrics = reqwest::get(format!("{}/metrics", app.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "thuiswacht_readings_received_total",
        "thuiswacht_readings_stored_total",
        "thuiswacht_readings_duplicate_total",
        "thuiswacht_store_batch_rows",
        "thuiswacht_store_commit_seconds",
        "thuiswacht_ingest_lag_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_status_posted_with_an_ingest_token_is_stored_before_the_answer() {
    // Arrange
    let app = app().await;
    let token = ingest_token(&app.store).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/devices/scale-1/status", app.http);
    let scale = thuiswacht::domain::DeviceId::parse("scale-1").unwrap();
    // Act
    let response = client
        .post(&url)
        .bearer_auth(&token)
        .body(r#"{"battery_pct": 37, "fault": "E7"}"#)
        .send()
        .await
        .unwrap();
    // Assert: stored when answered.
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["statuses"], 1);
    let stored = app.store.device_status(&scale).await.unwrap().unwrap();
    assert_eq!(stored.battery_pct, Some(37.0));
    assert_eq!(stored.fault.as_deref(), Some("E7"));
    // Without a token, with a bad body, or for an unknown device: refused.
    let anonymous = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let malformed = client
        .post(&url)
        .bearer_auth(&token)
        .body(r#"{"battery_pct": "full"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 422);
    let problem: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(problem["rejected"][0]["reason"], "malformed_payload");
    let unknown = client
        .post(format!("{}/api/v1/devices/scale-404/status", app.http))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    let problem: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(problem["rejected"][0]["reason"], "unknown_device");
    assert_eq!(
        app.store
            .device_status(&scale)
            .await
            .unwrap()
            .unwrap()
            .battery_pct,
        Some(37.0),
        "refused statuses change nothing"
    );
    app.stop().await;
}
