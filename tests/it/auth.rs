//! Sign-in, sessions, CSRF, team scoping, break-glass and the audit trail,
//! over real HTTP against a running Thuiswacht on PostgreSQL.
//!
//! The world: teams Assen and Emmen with one patient each; nurse anouk and
//! coordinator carla in Assen, nurse emma in Emmen, admin beheer.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use thuiswacht::api::AppState;
use thuiswacht::auth::{patient_for, Caller, Identity, LoginThrottle, Purpose, RequestOrigin};
use thuiswacht::settings::Settings;
use thuiswacht::store::{NewPatient, NewUser, Role, TeamScope, TokenScope};
use uuid::Uuid;

use crate::helpers::*;

struct World {
    app: TestApp,
    database: TestDatabase,
    assen_patient: Uuid,
    emmen_patient: Uuid,
    anouk_id: Uuid,
}

fn password(username: &str) -> String {
    format!("geheim-{username}-2026")
}

async fn world(adjust: impl FnOnce(&mut Settings)) -> World {
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    adjust(&mut settings);
    let app = TestApp::spawn(settings).await;
    let mut patients = Vec::new();
    for team in ["Assen", "Emmen"] {
        app.store.add_team(team).await.unwrap();
        let patient = app
            .store
            .add_patient(&NewPatient {
                id: Uuid::new_v4(),
                team: team.to_owned(),
                display_name: format!("Mevrouw {team}"),
                birth_year: Some(1937),
                protocols: vec!["default".to_owned()],
            })
            .await
            .unwrap();
        patients.push(patient);
    }
    let mut anouk_id = Uuid::nil();
    for (username, role, teams) in [
        ("anouk", Role::Nurse, vec!["Assen"]),
        ("carla", Role::Coordinator, vec!["Assen"]),
        ("emma", Role::Nurse, vec!["Emmen"]),
        ("beheer", Role::Admin, vec![]),
    ] {
        let id = app
            .store
            .add_user(&NewUser {
                id: Uuid::new_v4(),
                username: username.to_owned(),
                display_name: username.to_owned(),
                role,
                password_hash: thuiswacht::auth::password::hash_password(&password(username))
                    .unwrap(),
                teams: teams.into_iter().map(str::to_owned).collect(),
            })
            .await
            .unwrap();
        if username == "anouk" {
            anouk_id = id;
        }
    }
    World {
        app,
        database,
        assen_patient: patients[0],
        emmen_patient: patients[1],
        anouk_id,
    }
}

fn client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("thuiswacht-test")
        .build()
        .unwrap()
}

async fn post_session(client: &Client, world: &World, username: &str, password: &str) -> Response {
    client
        .post(format!("{}/api/v1/session", world.app.http))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Signs in over HTTP; returns the client holding the cookie and the CSRF token.
async fn signed_in(world: &World, username: &str) -> (Client, String) {
    let client = client();
    let response = post_session(&client, world, username, &password(username)).await;
    assert_eq!(response.status(), 200, "sign-in of {username}");
    let body: serde_json::Value = response.json().await.unwrap();
    (client, body["csrf_token"].as_str().unwrap().to_owned())
}

fn observations_url(world: &World, patient: Uuid) -> String {
    format!("{}/api/v1/patients/{patient}/observations", world.app.http)
}

fn access_url(world: &World, patient: Uuid) -> String {
    format!("{}/api/v1/patients/{patient}/access", world.app.http)
}

async fn problem(response: Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    (status, response.json().await.unwrap())
}

/// Every audit row, oldest first, read with SQL.
async fn audit_rows(world: &World) -> Vec<serde_json::Value> {
    let pool = sqlx::PgPool::connect(&world.database.url).await.unwrap();
    sqlx::query_scalar(
        "select json_build_object('action', action, 'actor', actor, 'actor_kind', actor_kind,
                'actor_id', actor_id, 'on_behalf_of', on_behalf_of, 'patient_id', patient_id,
                'team_id', team_id, 'detail', detail, 'source_address', source_address,
                'user_agent', user_agent)
         from audit_log_patients order by id, patient_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

fn actions_of<'a>(rows: &'a [serde_json::Value], actor: &str) -> Vec<&'a str> {
    rows.iter()
        .filter(|row| row["actor"] == actor)
        .map(|row| row["action"].as_str().unwrap())
        .collect()
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session() {
    // Arrange
    let world = world(|_| {}).await;
    let client = client();
    let session_url = format!("{}/api/v1/session", world.app.http);

    // Act
    let signed_in = post_session(&client, &world, " Anouk ", &password("anouk")).await;
    let headers = signed_in.headers().clone();
    let body: serde_json::Value = signed_in.json().await.unwrap();
    let current = client.get(&session_url).send().await.unwrap();
    let current_status = current.status();
    let current: serde_json::Value = current.json().await.unwrap();
    let without_token = client.delete(&session_url).send().await.unwrap();
    let signed_out = client
        .delete(&session_url)
        .header("x-csrf-token", body["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let signed_out_cookies = set_cookies(signed_out.headers());
    let signed_out_status = signed_out.status();
    let after = client.get(&session_url).send().await.unwrap();

    // Assert: the cookie and what the client learns.
    let cookies = set_cookies(&headers);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http without cookie_secure: {cookie}"
    );
    assert_eq!(body["user"]["username"], "anouk");
    assert_eq!(body["user"]["role"], "nurse");
    assert_eq!(body["user"]["teams"][0]["name"], "Assen");
    assert!(body.get("password_hash").is_none() && body["user"].get("password_hash").is_none());
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 64);
    assert_eq!(current_status, 200);
    assert_eq!(current["csrf_token"], body["csrf_token"]);
    // Security headers on every response.
    assert_eq!(
        headers["content-security-policy"],
        thuiswacht::auth::headers::CONTENT_SECURITY_POLICY
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.contains_key("permissions-policy"));
    // Signing out needs the CSRF token, ends the session and drops the cookie.
    assert_eq!(
        problem(without_token).await.1["type"],
        "urn:thuiswacht:problem:csrf"
    );
    assert_eq!(signed_out_status, 204);
    assert!(
        signed_out_cookies[0].contains("Max-Age=0"),
        "{signed_out_cookies:?}"
    );
    assert_eq!(after.status(), 401);
    // Audited with where from.
    let rows = audit_rows(&world).await;
    assert_eq!(actions_of(&rows, "anouk"), ["sign_in", "sign_out"]);
    assert_eq!(rows[0]["actor_kind"], "user");
    assert_eq!(rows[0]["actor_id"], world.anouk_id.to_string());
    assert_eq!(rows[0]["source_address"], "127.0.0.1");
    assert_eq!(rows[0]["user_agent"], "thuiswacht-test");
    world.app.stop().await;
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_disabled_accounts_get_one_answer_and_are_audited() {
    // Arrange
    let world = world(|_| {}).await;
    let client = client();
    // Act
    let wrong = post_session(&client, &world, "anouk", "welkom01").await;
    let wrong_cookies = set_cookies(wrong.headers());
    let unknown = post_session(&client, &world, "mallory", "welkom01").await;
    world
        .app
        .store
        .disable_user("emma", thuiswacht::domain::Timestamp::now())
        .await
        .unwrap();
    let disabled = post_session(&client, &world, "emma", &password("emma")).await;
    let (wrong_status, wrong_problem) = problem(wrong).await;
    let (unknown_status, unknown_problem) = problem(unknown).await;
    let (disabled_status, disabled_problem) = problem(disabled).await;
    // Assert: the same answer, no cookie, both recorded with the reason.
    assert_eq!(wrong_status, 401);
    assert_eq!(unknown_status, 401);
    assert_eq!(disabled_status, 401);
    assert_eq!(wrong_problem, unknown_problem);
    assert_eq!(wrong_problem, disabled_problem);
    assert_eq!(
        wrong_problem["type"],
        "urn:thuiswacht:problem:sign-in-failed"
    );
    assert!(wrong_cookies.is_empty());
    let rows = audit_rows(&world).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(rows[2]["detail"]["reason"], "disabled");
    assert_eq!(rows[0]["action"], "sign_in_failed");
    assert_eq!(rows[0]["actor_kind"], "anonymous");
    assert_eq!(rows[0]["detail"]["reason"], "wrong_password");
    assert_eq!(rows[0]["actor_id"], world.anouk_id.to_string());
    assert_eq!(rows[1]["actor"], "mallory");
    assert_eq!(rows[1]["detail"]["reason"], "unknown_user");
    assert!(rows[1]["actor_id"].is_null());
    world.app.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_refused_with_retry_after_even_with_the_right_password() {
    // Arrange: three failures per username per window.
    let world = world(|settings| settings.login_max_failures = 3).await;
    let client = client();
    for _ in 0..3 {
        let response = post_session(&client, &world, "anouk", "raden").await;
        assert_eq!(response.status(), 401);
    }
    // Act
    let refused = post_session(&client, &world, "anouk", &password("anouk")).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = problem(refused).await;
    let colleague = post_session(&client, &world, "carla", &password("carla")).await;
    // Assert
    assert_eq!(status, 429);
    assert_eq!(body["type"], "urn:thuiswacht:problem:too-many-requests");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(body["retry_after_s"], retry_after);
    assert_eq!(colleague.status(), 200, "the address limit is higher");
    let rows = audit_rows(&world).await;
    assert_eq!(
        actions_of(&rows, "anouk"),
        [
            "sign_in_failed",
            "sign_in_failed",
            "sign_in_failed",
            "sign_in_throttled"
        ]
    );
    let metrics = world.app.metrics.encode();
    for line in [
        "thuiswacht_security_events_total{event=\"sign_in_failed\"} 3",
        "thuiswacht_security_events_total{event=\"sign_in_throttled\"} 1",
        "thuiswacht_security_events_total{event=\"sign_in\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    world.app.stop().await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_busy() {
    // Arrange: sessions of one second.
    let world = world(|settings| settings.session_max_age_s = 1).await;
    let (client, _) = signed_in(&world, "anouk").await;
    let url = format!("{}/api/v1/session", world.app.http);
    let started = tokio::time::Instant::now();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    // Act: keep using it until it is refused.
    wait_for("the session to expire", Duration::from_secs(10), || async {
        client.get(&url).send().await.unwrap().status() == 401
    })
    .await;
    // Assert
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (status, body) = problem(client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:thuiswacht:problem:session-expired");
    world.app.stop().await;
}

#[tokio::test]
async fn an_idle_session_expires() {
    // Arrange: one second of idleness ends a session.
    let world = world(|settings| settings.session_idle_timeout_s = 1).await;
    let (client, _) = signed_in(&world, "anouk").await;
    let url = format!("{}/api/v1/session", world.app.http);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    // Act: stay away longer than the timeout. (Polling would keep the
    // session alive, so this one wait is a plain sleep.)
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, body) = problem(client.get(&url).send().await.unwrap()).await;
    // Assert
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:thuiswacht:problem:session-expired");
    world.app.stop().await;
}

#[tokio::test]
async fn state_changing_requests_by_cookie_need_the_csrf_token() {
    // Arrange
    let world = world(|_| {}).await;
    let (client, csrf) = signed_in(&world, "anouk").await;
    let url = observations_url(&world, world.assen_patient);
    let observation = serde_json::json!({"acvpu": "A", "respiratory_rate": 16});

    // Act
    let missing = client.post(&url).json(&observation).send().await.unwrap();
    let wrong = client
        .post(&url)
        .header("x-csrf-token", "0".repeat(64))
        .json(&observation)
        .send()
        .await
        .unwrap();
    let cross_site = client
        .post(&url)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "cross-site")
        .json(&observation)
        .send()
        .await
        .unwrap();
    let readings_after_refusals = world.app.store.count_readings().await.unwrap();
    let accepted = client
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&observation)
        .send()
        .await
        .unwrap();
    let logout_url = format!("{}/logout", world.app.http);
    let logout_without = client
        .post(&logout_url)
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    let logout_with = client
        .post(&logout_url)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let login_from_elsewhere = client
        .post(format!("{}/login", world.app.http))
        .header("sec-fetch-site", "cross-site")
        .form(&[("username", "anouk"), ("password", &password("anouk"))])
        .send()
        .await
        .unwrap();

    // Assert
    for refused in [missing, wrong, cross_site] {
        let (status, body) = problem(refused).await;
        assert_eq!(status, 403);
        assert_eq!(body["type"], "urn:thuiswacht:problem:csrf");
    }
    assert_eq!(readings_after_refusals, 0);
    assert_eq!(accepted.status(), 201);
    let stored: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(stored["author"], "anouk");
    assert_eq!(world.app.store.count_readings().await.unwrap(), 2);
    assert_eq!(logout_without.status(), 403);
    assert_eq!(logout_with.status(), 303);
    assert_eq!(logout_with.headers()["location"], "/login");
    let after = client
        .get(format!("{}/api/v1/session", world.app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(login_from_elsewhere.status(), 403);
    let rows = audit_rows(&world).await;
    assert_eq!(
        actions_of(&rows, "anouk"),
        ["sign_in", "add_observation", "sign_out"]
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_nurse_reaches_her_own_teams_patients_only() {
    // Arrange
    let world = world(|_| {}).await;
    let (anouk, anouk_csrf) = signed_in(&world, "anouk").await;
    let (emma, emma_csrf) = signed_in(&world, "emma").await;
    let observation = serde_json::json!({"acvpu": "A"});
    let observe = |client: &Client, csrf: &str, patient: Uuid| {
        client
            .post(observations_url(&world, patient))
            .header("x-csrf-token", csrf)
            .json(&observation)
            .send()
    };

    // Act
    let own = observe(&anouk, &anouk_csrf, world.assen_patient)
        .await
        .unwrap();
    let other_team = observe(&anouk, &anouk_csrf, world.emmen_patient)
        .await
        .unwrap();
    let nobody = observe(&anouk, &anouk_csrf, Uuid::new_v4()).await.unwrap();
    let emmas_own = observe(&emma, &emma_csrf, world.emmen_patient)
        .await
        .unwrap();
    let own_overview = anouk
        .get(access_url(&world, world.assen_patient))
        .send()
        .await
        .unwrap();
    let other_overview = anouk
        .get(access_url(&world, world.emmen_patient))
        .send()
        .await
        .unwrap();

    // Assert: another team's patient answers exactly like no patient.
    assert_eq!(own.status(), 201);
    assert_eq!(emmas_own.status(), 201);
    let (other_status, other_body) = problem(other_team).await;
    let (nobody_status, nobody_body) = problem(nobody).await;
    assert_eq!(other_status, 404);
    assert_eq!(nobody_status, 404);
    assert_eq!(other_body, nobody_body);
    assert_eq!(
        own_overview.status(),
        403,
        "nurses do not see the access overview"
    );
    assert_eq!(other_overview.status(), 404);
    let rows = audit_rows(&world).await;
    let refused: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|row| row["action"] == "access_refused")
        .collect();
    assert_eq!(
        refused.len(),
        2,
        "observation and overview of emmen's patient"
    );
    assert!(
        refused
            .iter()
            .all(|row| row["actor"] == "anouk"
                && row["patient_id"] == world.emmen_patient.to_string())
    );
    assert_eq!(refused[1]["detail"]["purpose"], "access_overview");
    world.app.stop().await;
}

#[tokio::test]
async fn a_coordinator_sees_who_reached_her_patients_data() {
    // Arrange: anouk enters an observation; emma reaches for the patient in vain.
    let world = world(|_| {}).await;
    let patient = world.assen_patient;
    let (anouk, anouk_csrf) = signed_in(&world, "anouk").await;
    let response = anouk
        .post(observations_url(&world, patient))
        .header("x-csrf-token", &anouk_csrf)
        .json(&serde_json::json!({"respiratory_rate": 22}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (emma, emma_csrf) = signed_in(&world, "emma").await;
    let response = emma
        .post(observations_url(&world, patient))
        .header("x-csrf-token", &emma_csrf)
        .json(&serde_json::json!({"respiratory_rate": 22}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let (carla, _) = signed_in(&world, "carla").await;

    // Act
    let overview: serde_json::Value = carla
        .get(access_url(&world, patient))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_page: serde_json::Value = carla
        .get(format!("{}?limit=2", access_url(&world, patient)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_page: serde_json::Value = carla
        .get(format!(
            "{}?limit=2&before={}",
            access_url(&world, patient),
            first_page["next_before"]
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_team = carla
        .get(access_url(&world, world.emmen_patient))
        .send()
        .await
        .unwrap();

    // Assert: newest first, with who, what and from where; sign-ins are not patient data.
    let entries = overview["entries"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("carla", "read_access_overview"),
            ("emma", "access_refused"),
            ("anouk", "add_observation"),
        ]
    );
    assert_eq!(entries[2]["source_address"], "127.0.0.1");
    assert_eq!(entries[2]["user_agent"], "thuiswacht-test");
    assert!(entries[2]["detail"]["observation"].is_string());
    assert!(overview.get("next_before").is_none());
    let paged: Vec<&str> = first_page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second_page["entries"].as_array().unwrap())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The second look is itself the newest row of the first page.
    assert_eq!(
        paged,
        [
            "read_access_overview",
            "read_access_overview",
            "access_refused",
            "add_observation"
        ]
    );
    assert_eq!(other_team.status(), 404);
    world.app.stop().await;
}

/// An [`AppState`] over the running app's store, for calling the scoping
/// helpers directly (the patient read endpoints that use them are built
/// elsewhere).
fn state_of(world: &World) -> AppState {
    let (ingested_tx, _) = tokio::sync::mpsc::channel(1);
    AppState {
        store: world.app.store.clone(),
        settings: Arc::new(world.app.settings.clone()),
        metrics: world.app.metrics.clone(),
        ingested_tx,
        stored_tx: None,
        login_throttle: Arc::new(LoginThrottle::from_settings(&world.app.settings)),
        shutdown: tokio_util::sync::CancellationToken::new(),
        protocols: Arc::new(
            thuiswacht::protocols::catalog::Catalog::load(&world.app.settings.alerts_dir).unwrap(),
        ),
        backtests: Arc::default(),
    }
}

#[tokio::test]
async fn an_admin_reads_a_patient_only_through_audited_break_glass() {
    // Arrange: the admin signs in through the same code as the endpoints.
    let world = world(|_| {}).await;
    let state = state_of(&world);
    let patient = world.assen_patient;
    let origin = RequestOrigin::default();
    let admin = thuiswacht::auth::session::sign_in(&state, "beheer", &password("beheer"), &origin)
        .await
        .unwrap();
    let session = thuiswacht::auth::session::active_session(&state, &admin.secret)
        .await
        .unwrap()
        .unwrap();
    let caller = Caller {
        identity: Identity::User(session),
        origin,
    };
    let admin_http = |request: reqwest::RequestBuilder| {
        request
            .header("cookie", format!("thuiswacht_session={}", admin.secret))
            .header("x-csrf-token", &admin.csrf_token)
    };
    let break_glass_url = format!("{}/api/v1/patients/{patient}/break-glass", world.app.http);
    let (nurse, nurse_csrf) = signed_in(&world, "anouk").await;

    // Act
    let before = patient_for(&state, &caller, patient, Purpose::PatientPage).await;
    let overview_before = admin_http(client().get(access_url(&world, patient)))
        .send()
        .await
        .unwrap();
    let without_reason = admin_http(client().post(&break_glass_url))
        .json(&serde_json::json!({"reason": "  "}))
        .send()
        .await
        .unwrap();
    let by_nurse = nurse
        .post(&break_glass_url)
        .header("x-csrf-token", &nurse_csrf)
        .json(&serde_json::json!({"reason": "nieuwsgierig"}))
        .send()
        .await
        .unwrap();
    let unknown = admin_http(client().post(format!(
        "{}/api/v1/patients/{}/break-glass",
        world.app.http,
        Uuid::new_v4()
    )))
    .json(&serde_json::json!({"reason": "112-melding"}))
    .send()
    .await
    .unwrap();
    let granted = admin_http(client().post(&break_glass_url))
        .json(&serde_json::json!({"reason": "112-melding, eigen team onbereikbaar"}))
        .send()
        .await
        .unwrap();
    let granted_status = granted.status();
    let grant: serde_json::Value = granted.json().await.unwrap();
    let after = patient_for(&state, &caller, patient, Purpose::PatientPage).await;
    let change = patient_for(&state, &caller, patient, Purpose::Observe).await;
    let other_patient = patient_for(&state, &caller, world.emmen_patient, Purpose::Readings).await;

    // Assert
    assert!(
        matches!(before, Err(thuiswacht::api::ApiError::NotFound)),
        "{before:?}"
    );
    assert_eq!(overview_before.status(), 404);
    assert_eq!(without_reason.status(), 400);
    assert_eq!(by_nurse.status(), 403);
    assert_eq!(unknown.status(), 404);
    assert_eq!(granted_status, 201);
    let access = after.expect("readable after break-glass");
    assert_eq!(access.patient.id, patient);
    assert_eq!(access.break_glass.unwrap().to_string(), grant["id"]);
    assert!(
        matches!(change, Err(thuiswacht::api::ApiError::Forbidden)),
        "read only"
    );
    assert!(matches!(
        other_patient,
        Err(thuiswacht::api::ApiError::NotFound)
    ));
    let rows = audit_rows(&world).await;
    let admin_rows: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|row| row["actor"] == "beheer" && row["patient_id"] == patient.to_string())
        .collect();
    let actions: Vec<&str> = admin_rows
        .iter()
        .map(|row| row["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "access_refused",
            "access_refused",
            "break_glass",
            "read_patient"
        ]
    );
    assert_eq!(
        admin_rows[2]["detail"]["reason"],
        "112-melding, eigen team onbereikbaar"
    );
    assert_eq!(admin_rows[3]["detail"]["break_glass"], grant["id"]);
    world.app.stop().await;
}

async fn scoped_token(world: &World, scope: TokenScope, teams: TeamScope) -> String {
    let secret = thuiswacht::commands::new_token_secret();
    let id = world
        .app
        .store
        .add_token("ECD Drenthe", scope, &thuiswacht::api::token_hash(&secret))
        .await
        .unwrap();
    world.app.store.set_token_teams(id, &teams).await.unwrap();
    secret
}

#[tokio::test]
async fn bearer_tokens_reach_their_teams_only_need_no_csrf_and_say_for_whom() {
    // Arrange
    let world = world(|_| {}).await;
    let assen = world.app.store.list_teams().await.unwrap()[0].clone();
    assert_eq!(assen.name, "Assen");
    let observe = scoped_token(
        &world,
        TokenScope::Observe,
        TeamScope::Teams(vec![assen.id]),
    )
    .await;
    let read = scoped_token(&world, TokenScope::Read, TeamScope::All).await;
    let client = Client::new();
    let post = |secret: &str, patient: Uuid| {
        client
            .post(observations_url(&world, patient))
            .bearer_auth(secret)
            .header("x-on-behalf-of", "wijkverpleegkundige De Vries")
            .json(&serde_json::json!({"acvpu": "A"}))
            .send()
    };
    // Act
    let own = post(&observe, world.assen_patient).await.unwrap();
    let other = post(&observe, world.emmen_patient).await.unwrap();
    let read_only = post(&read, world.assen_patient).await.unwrap();
    // Assert
    assert_eq!(own.status(), 201);
    assert_eq!(other.status(), 404);
    assert_eq!(read_only.status(), 403);
    let rows = audit_rows(&world).await;
    let observed = rows
        .iter()
        .find(|row| row["action"] == "add_observation")
        .unwrap();
    assert_eq!(observed["actor"], "ECD Drenthe");
    assert_eq!(observed["actor_kind"], "token");
    assert_eq!(observed["on_behalf_of"], "wijkverpleegkundige De Vries");
    assert_eq!(observed["team_id"], assen.id.to_string());
    world.app.stop().await;
}

#[tokio::test]
async fn the_login_form_signs_in_and_sends_the_nurse_on() {
    // Arrange
    let world = world(|_| {}).await;
    let client = client();
    let login = format!("{}/login", world.app.http);
    // Act
    let page = client.get(&login).send().await.unwrap();
    let page_headers = page.headers().clone();
    let page = page.text().await.unwrap();
    let english = client
        .get(format!("{login}?lang=en"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed = client
        .post(&login)
        .form(&[("username", "anouk"), ("password", "fout")])
        .send()
        .await
        .unwrap();
    let failed_status = failed.status();
    let failed_page = failed.text().await.unwrap();
    let signed_in = client
        .post(&login)
        .form(&[
            ("username", "anouk"),
            ("password", &password("anouk")),
            ("next", &format!("/patients/{}", world.assen_patient)),
        ])
        .send()
        .await
        .unwrap();
    let session = client
        .get(format!("{}/api/v1/session", world.app.http))
        .send()
        .await
        .unwrap();
    // Assert
    assert!(page_headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page_headers.contains_key("content-security-policy"));
    assert!(page.contains("Gebruikersnaam") && !page.contains("<script"));
    assert!(english.contains("Username"));
    assert_eq!(failed_status, 401);
    assert!(failed_page.contains("onjuist wachtwoord"), "{failed_page}");
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in.headers()["location"],
        format!("/patients/{}", world.assen_patient).as_str()
    );
    assert!(set_cookies(signed_in.headers())[0].contains("HttpOnly"));
    assert_eq!(session.status(), 200);
    world.app.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_behind_a_trusted_https_proxy() {
    // Arrange: a proxy we trust says the client came over https.
    let world = world(|settings| settings.trust_proxy_headers = true).await;
    // Act
    let response = client()
        .post(format!("{}/api/v1/session", world.app.http))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.50, 198.51.100.7")
        .json(&serde_json::json!({"username": "anouk", "password": password("anouk")}))
        .send()
        .await
        .unwrap();
    // Assert
    assert_eq!(response.status(), 200);
    assert!(set_cookies(response.headers())[0].contains("Secure"));
    let rows = audit_rows(&world).await;
    assert_eq!(rows[0]["source_address"], "198.51.100.7");
    world.app.stop().await;
}
