//! Alarm-burden figures over real HTTP on PostgreSQL: a coordinator sees
//! her teams' figures (JSON and page), a nurse does not, another team's
//! alerts never count, and the patients named are audited.

use thuiswacht::alert_book::NewAlert;
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::Priority;
use thuiswacht::store::Role;
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::*;

fn fever(patient: Uuid, rule_key: &str) -> NewAlert {
    NewAlert {
        patient_id: patient,
        rule_key: rule_key.to_owned(),
        priority: Priority::Medium,
        nts: NtsLevel::U3,
        score: 3_000.0,
        explanation: serde_json::json!({"factors": []}),
        at: Timestamp::now(),
        raised_at: Timestamp::now(),
        response_minutes: 240,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_sees_her_teams_alarm_burden_and_a_nurse_does_not() {
    // Arrange: Assen has a fever judged a false alarm and an open SpO2
    // alert; Emmen has a fever.
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;
    let http = app.http.clone();
    let patients = [
        add_test_patient(&app.store, "Assen", "Cliënt Assen").await,
        add_test_patient(&app.store, "Emmen", "Cliënt Emmen").await,
    ];
    add_test_user(&app.store, "carla", Role::Coordinator, &["Assen"]).await;
    add_test_user(&app.store, "anouk", Role::Nurse, &["Assen"]).await;
    let (judged, _) = app
        .store
        .raise_alert(&fever(patients[0], "default/fever"))
        .await
        .unwrap();
    app.store
        .raise_alert(&fever(patients[0], "default/spo2_low"))
        .await
        .unwrap();
    app.store
        .raise_alert(&fever(patients[1], "default/fever"))
        .await
        .unwrap();
    let (nurse, nurse_csrf) = sign_in(&http, "anouk").await;
    for (action, body) in [
        ("claim", serde_json::json!({})),
        (
            "resolve",
            serde_json::json!({"outcome": "no_action_needed"}),
        ),
    ] {
        let response = nurse
            .post(format!("{http}/api/v1/alerts/{}/{action}", judged.id))
            .header("X-CSRF-Token", &nurse_csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{action}");
    }
    let (coordinator, _) = sign_in(&http, "carla").await;

    // Act
    let figures: serde_json::Value = coordinator
        .get(format!("{http}/api/v1/alarm-burden?days=7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = nurse
        .get(format!("{http}/api/v1/alarm-burden"))
        .send()
        .await
        .unwrap()
        .status();
    let emmen_team = app
        .store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .find(|team| team.name == "Emmen")
        .unwrap()
        .id;
    let other_team: serde_json::Value = coordinator
        .get(format!("{http}/api/v1/alarm-burden?team={emmen_team}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let out_of_range = coordinator
        .get(format!("{http}/api/v1/alarm-burden?days=0"))
        .send()
        .await
        .unwrap()
        .status();
    let page = coordinator
        .get(format!("{http}/alarm-burden?days=7"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert: Assen only; the judged fever is a false alarm, claimed in time.
    assert_eq!(figures["total"]["alerts"], 2, "{figures:#}");
    assert_eq!(figures["patients"], 1);
    assert!((figures["total"]["patient_days"].as_f64().unwrap() - 7.0).abs() < 0.01);
    let fever_row = figures["by_rule"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["key"] == "default/fever")
        .unwrap();
    assert_eq!(fever_row["judged"], 1);
    assert_eq!(fever_row["false_alarms"], 1);
    assert_eq!(fever_row["false_alarm_share"], 1.0);
    assert_eq!(fever_row["claimed_within_target_share"], 1.0);
    assert_eq!(figures["by_team"].as_array().unwrap().len(), 1);
    assert_eq!(figures["by_team"][0]["key"], "Assen");
    assert_eq!(
        figures["by_patient"][0]["patient_id"],
        patients[0].to_string()
    );
    assert_eq!(
        figures["noisiest_rules_this_week"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(refused, 403);
    assert_eq!(
        other_team["total"]["alerts"], 0,
        "another team never counts"
    );
    assert_eq!(out_of_range, 400);
    assert!(page.contains(">Alarmlast</h1>") && page.contains("default/fever"));
    assert!(page.contains("100 %"), "the false-alarm share: {page}");
    assert!(page.contains(&format!("/patients/{}", patients[0])));
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let audited: Vec<Uuid> = sqlx::query_scalar(
        "select patient_id from audit_log_patients where actor = 'carla' and action = 'read_worklist'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(audited.contains(&patients[0]));
    assert!(!audited.contains(&patients[1]));
}
