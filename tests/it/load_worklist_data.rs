//! The data builder of `thuiswacht-load worklist` on a tiny population: it
//! stores what it reports, past alerts are resolved with outcomes and their
//! events, open alerts are spread over the teams, and the nurse it creates
//! signs in and sees her own team's worklist only.

use std::collections::HashMap;

use reqwest::Client;
use thuiswacht::domain::Timestamp;
use thuiswacht::loadgen::worklist_data::{self, add_nurse, WorklistData};
use thuiswacht::protocols::load_dir;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worklist_load_data_holds_what_it_reports_and_its_nurse_sees_only_her_team() {
    // Arrange: 20 patients (five per team), three days.
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let protocols = load_dir(&repo_path("alerts")).unwrap();
    let now = Timestamp::now();
    let spec = WorklistData {
        patients: 20,
        days: 3,
        past_alerts: 240,
        open_alerts: 12,
        seed: 5,
    };
    let population = worklist_data::spot_check_population(&spec, now);

    // Act
    let loaded = worklist_data::load(&pool, &store, &spec, &population, &protocols, now)
        .await
        .unwrap();
    let nurse = add_nurse(&store, "Assen").await.unwrap();

    // Assert: readings, about ten a patient a day (the last day ends now).
    let readings: i64 = sqlx::query_scalar("select count(*) from readings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(readings as u64, loaded.readings);
    assert!(
        (20 * 2 * 5..=20 * 3 * 15).contains(&readings),
        "{readings} readings"
    );
    let per_team: Vec<(String, i64)> = sqlx::query_as(
        "select t.name, count(*) from patients p join teams t on t.id = p.team_id
         group by t.name order by t.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_team,
        ["Assen", "Emmen", "Hoogeveen", "Meppel"]
            .map(|team| (team.to_owned(), 5))
            .to_vec()
    );

    // Past alerts: resolved by a nurse with an outcome, each with raised,
    // claimed and resolved events in that order.
    assert_eq!((loaded.past_alerts, loaded.past_alert_events), (240, 720));
    let resolved: (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where outcome is not null and resolved_by like 'vpk-%'
                                           and claimed_at <= resolved_at and opened_at < now())
         from alerts where status = 'resolved'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(resolved, (240, 240));
    let histories: Vec<(String,)> = sqlx::query_as(
        "select string_agg(e.kind, ',' order by e.at, e.id) from alerts a
         join alert_events e on e.alert_id = a.id where a.status = 'resolved' group by a.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(histories.len(), 240);
    assert!(histories
        .iter()
        .all(|(kinds,)| kinds == "raised,claimed,resolved"));

    // Open alerts: as many as reported, with explanations the worklist can
    // read, in more than one team.
    let open: Vec<(Uuid, String, serde_json::Value)> = sqlx::query_as(
        "select a.patient_id, t.name, a.explanation from alerts a
         join patients p on p.id = a.patient_id join teams t on t.id = p.team_id
         where a.status <> 'resolved'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(open.len(), 12);
    assert_eq!(loaded.open_alerts, 12);
    assert!(open
        .iter()
        .all(|(_, _, explanation)| explanation["factors"].is_array()));
    let mut open_per_team: HashMap<&str, usize> = HashMap::new();
    for (_, team, _) in &open {
        *open_per_team.entry(team.as_str()).or_default() += 1;
    }
    assert!(open_per_team.len() >= 2, "{open_per_team:?}");

    // The nurse signs in over HTTP and sees exactly her team's open alerts.
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;
    let client = Client::builder().cookie_store(true).build().unwrap();
    let signed_in = client
        .post(format!("{}/api/v1/session", app.http))
        .json(&serde_json::json!({"username": nurse.username, "password": nurse.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let worklist: serde_json::Value = client
        .get(format!("{}/api/v1/worklist?limit=200", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = worklist["patients"].as_array().unwrap();
    assert!(groups.iter().all(|group| group["team"] == "Assen"));
    let shown: usize = groups
        .iter()
        .map(|group| group["alerts"].as_array().unwrap().len())
        .sum();
    let own = open_per_team.get("Assen").copied().unwrap_or(0);
    assert_eq!(shown, own);
    assert_eq!(worklist["total"], own);
    app.stop().await;
}
