//! The authorisation matrix over real HTTP on PostgreSQL: every kind of
//! caller (nurse, coordinator, admin with and without break-glass, tokens of
//! each scope) against a patient of its own team and one of another team,
//! for every endpoint that reaches patient data, reads and changes alike.
//!
//! The expected answers are the table of `src/auth/scope.rs`, written out
//! here independently: out of scope is 404 (never 403, so existence does
//! not leak), in scope but not for this role or token is 403. Personal
//! thresholds are changed and decided by coordinators only.

use reqwest::{Client, Method, StatusCode};
use thuiswacht::alert_book::NewAlert;
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::{Priority, RuleSettings};
use thuiswacht::store::{NewThresholdProposal, ProposalStatus, Role, TeamScope, TokenScope};
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::*;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nurse,
    Coordinator,
    Admin,
    AdminWithBreakGlass,
    ReadToken,
    ObserveToken,
    IngestToken,
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Patient,
    Readings,
    Alert,
    Claim,
    Snooze,
    Escalate,
    Note,
    Resolve,
    Observe,
    AccessOverview,
    PatientPage,
    Thresholds,
    SetThreshold,
    ApproveThreshold,
    RejectThreshold,
}

const ACTIONS: [Action; 15] = [
    Action::Patient,
    Action::Readings,
    Action::Alert,
    Action::Claim,
    Action::Snooze,
    Action::Escalate,
    Action::Note,
    Action::Resolve,
    Action::Observe,
    Action::AccessOverview,
    Action::PatientPage,
    Action::Thresholds,
    Action::SetThreshold,
    Action::ApproveThreshold,
    Action::RejectThreshold,
];

impl Action {
    const fn is_plain_read(self) -> bool {
        matches!(
            self,
            Action::Patient
                | Action::Readings
                | Action::Alert
                | Action::PatientPage
                | Action::Thresholds
        )
    }

    /// Coordinators only.
    const fn is_threshold_change(self) -> bool {
        matches!(
            self,
            Action::SetThreshold | Action::ApproveThreshold | Action::RejectThreshold
        )
    }

    const fn is_alert_change(self) -> bool {
        matches!(
            self,
            Action::Claim | Action::Snooze | Action::Escalate | Action::Note | Action::Resolve
        )
    }

    /// The success status of the action.
    const fn ok(self) -> StatusCode {
        match self {
            Action::Observe => StatusCode::CREATED,
            // A looser threshold: a proposal awaiting a second coordinator.
            Action::SetThreshold => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        }
    }
}

/// The expected answer; `own` tells whether the patient is of the caller's team.
fn expected(who: Who, action: Action, own: bool) -> StatusCode {
    use StatusCode as S;
    match who {
        Who::Nurse | Who::Coordinator => {
            if !own {
                S::NOT_FOUND
            } else if who == Who::Nurse
                && (action == Action::AccessOverview || action.is_threshold_change())
            {
                S::FORBIDDEN
            } else {
                action.ok()
            }
        }
        Who::Admin => S::NOT_FOUND,
        Who::AdminWithBreakGlass => {
            if !own {
                S::NOT_FOUND
            } else if action.is_plain_read() {
                action.ok()
            } else {
                S::FORBIDDEN
            }
        }
        // Tokens are for integrations: the pages are for people.
        Who::ReadToken | Who::ObserveToken | Who::IngestToken if action == Action::PatientPage => {
            S::FORBIDDEN
        }
        Who::ReadToken => {
            if !action.is_plain_read() {
                S::FORBIDDEN
            } else if own {
                action.ok()
            } else {
                S::NOT_FOUND
            }
        }
        Who::ObserveToken => {
            if action != Action::Observe {
                S::FORBIDDEN
            } else if own {
                action.ok()
            } else {
                S::NOT_FOUND
            }
        }
        Who::IngestToken => S::FORBIDDEN,
    }
}

/// A caller's credentials.
enum Credentials {
    Session { client: Client, csrf: String },
    Bearer(String),
}

async fn session(http: &str, username: &str) -> Credentials {
    let client = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{http}/api/v1/session"))
        .json(&serde_json::json!({"username": username, "password": test_password(username)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "sign-in of {username}");
    let body: serde_json::Value = response.json().await.unwrap();
    Credentials::Session {
        client,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

impl Credentials {
    async fn call(&self, method: Method, url: &str, body: Option<serde_json::Value>) -> StatusCode {
        let request = match self {
            Credentials::Session { client, csrf } => {
                client.request(method, url).header("X-CSRF-Token", csrf)
            }
            Credentials::Bearer(secret) => Client::new().request(method, url).bearer_auth(secret),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap().status()
    }
}

/// A pending proposal by a coordinator who is none of the callers, so that
/// four eyes never decide the cell.
fn new_proposal(patient: Uuid) -> NewThresholdProposal {
    NewThresholdProposal {
        patient_id: patient,
        rule_key: "default/tachycardia".to_owned(),
        settings: serde_json::from_str::<RuleSettings>(r#"{"above": 120}"#).unwrap(),
        valid_until: None,
        review_by: chrono::Utc::now().date_naive() + chrono::Days::new(90),
        author: "dirk".to_owned(),
        reason: "sporter, rustpols hoog".to_owned(),
        created_at: Timestamp::now(),
    }
}

fn new_alert(patient: Uuid, rule_key: String) -> NewAlert {
    NewAlert {
        patient_id: patient,
        rule_key,
        priority: Priority::Low,
        nts: NtsLevel::U4,
        score: 2_000.0,
        explanation: serde_json::json!({"factors": []}),
        at: Timestamp::now(),
        raised_at: Timestamp::now(),
        response_minutes: 24 * 60,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_reaches_exactly_what_its_role_and_teams_allow() {
    // Arrange: a patient in Assen and one in Emmen; people of Assen and an
    // admin; tokens for Assen.
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;
    let store = &app.store;
    let http = app.http.clone();
    let patients = [
        add_test_patient(store, "Assen", "Cliënt Assen").await,
        add_test_patient(store, "Emmen", "Cliënt Emmen").await,
    ];
    let (assen_patient, emmen_patient) = (patients[0], patients[1]);
    let assen_team = store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .find(|team| team.name == "Assen")
        .unwrap()
        .id;
    for (username, role, teams) in [
        ("anouk", Role::Nurse, &["Assen"][..]),
        ("carla", Role::Coordinator, &["Assen"][..]),
        ("beheer", Role::Admin, &[][..]),
        ("noodbeheer", Role::Admin, &[][..]),
    ] {
        add_test_user(store, username, role, teams).await;
    }
    let token = |scope: TokenScope| {
        let store = store.clone();
        async move {
            let secret = thuiswacht::commands::new_token_secret();
            let id = store
                .add_token("ECD", scope, &thuiswacht::api::token_hash(&secret))
                .await
                .unwrap();
            store
                .set_token_teams(id, &TeamScope::Teams(vec![assen_team]))
                .await
                .unwrap();
            Credentials::Bearer(secret)
        }
    };
    let glass = session(&http, "noodbeheer").await;
    let granted = glass
        .call(
            Method::POST,
            &format!("{http}/api/v1/patients/{assen_patient}/break-glass"),
            Some(serde_json::json!({"reason": "112-melding, eigen team onbereikbaar"})),
        )
        .await;
    assert!(granted.is_success(), "break-glass granted: {granted}");
    let callers = [
        (Who::Nurse, session(&http, "anouk").await),
        (Who::Coordinator, session(&http, "carla").await),
        (Who::Admin, session(&http, "beheer").await),
        (Who::AdminWithBreakGlass, glass),
        (Who::ReadToken, token(TokenScope::Read).await),
        (Who::ObserveToken, token(TokenScope::Observe).await),
        (Who::IngestToken, token(TokenScope::Ingest).await),
    ];

    // Act: every caller, every action, both patients; each alert action on
    // an alert of its own, so earlier cells cannot change later ones.
    let mut mismatches = Vec::new();
    let mut cells = 0;
    let mut decided = Vec::new();
    for (who, credentials) in &callers {
        for (patient, own) in [(assen_patient, true), (emmen_patient, false)] {
            for action in ACTIONS {
                let (alert, _) = store
                    .raise_alert(&new_alert(patient, format!("matrix/{who:?}-{action:?}")))
                    .await
                    .unwrap();
                let alert_url = format!("{http}/api/v1/alerts/{}", alert.id);
                let proposal = store
                    .add_threshold_proposal(&new_proposal(patient))
                    .await
                    .unwrap();
                let proposal_url = format!("{http}/api/v1/threshold-proposals/{}", proposal.id);
                if matches!(action, Action::ApproveThreshold | Action::RejectThreshold) {
                    decided.push((*who, action, own, proposal.id));
                }
                let until = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
                let (method, url, body) = match action {
                    Action::Patient => (
                        Method::GET,
                        format!("{http}/api/v1/patients/{patient}"),
                        None,
                    ),
                    Action::Readings => (
                        Method::GET,
                        format!("{http}/api/v1/patients/{patient}/readings"),
                        None,
                    ),
                    Action::Alert => (Method::GET, alert_url, None),
                    Action::Claim => (
                        Method::POST,
                        format!("{alert_url}/claim"),
                        Some(serde_json::json!({})),
                    ),
                    Action::Snooze => (
                        Method::POST,
                        format!("{alert_url}/snooze"),
                        Some(serde_json::json!({"until": until})),
                    ),
                    Action::Escalate => (
                        Method::POST,
                        format!("{alert_url}/escalate"),
                        Some(serde_json::json!({"to": "general_practitioner"})),
                    ),
                    Action::Note => (
                        Method::POST,
                        format!("{alert_url}/notes"),
                        Some(serde_json::json!({"text": "gebeld"})),
                    ),
                    Action::Resolve => (
                        Method::POST,
                        format!("{alert_url}/resolve"),
                        Some(serde_json::json!({"outcome": "contacted_patient"})),
                    ),
                    Action::Observe => (
                        Method::POST,
                        format!("{http}/api/v1/patients/{patient}/observations"),
                        Some(serde_json::json!({"respiratory_rate": 18})),
                    ),
                    Action::AccessOverview => (
                        Method::GET,
                        format!("{http}/api/v1/patients/{patient}/access"),
                        None,
                    ),
                    Action::PatientPage => {
                        (Method::GET, format!("{http}/patients/{patient}"), None)
                    }
                    Action::Thresholds => (
                        Method::GET,
                        format!("{http}/api/v1/patients/{patient}/thresholds"),
                        None,
                    ),
                    Action::SetThreshold => (
                        Method::POST,
                        format!("{http}/api/v1/patients/{patient}/thresholds"),
                        Some(serde_json::json!({
                            "rule": "default/fever",
                            "settings": {"above": 38.5},
                            "reason": "loopt 's avonds warm",
                            "review_by": (chrono::Utc::now().date_naive() + chrono::Days::new(90)).to_string(),
                        })),
                    ),
                    Action::ApproveThreshold => (
                        Method::POST,
                        format!("{proposal_url}/approve"),
                        Some(serde_json::json!({})),
                    ),
                    Action::RejectThreshold => (
                        Method::POST,
                        format!("{proposal_url}/reject"),
                        Some(serde_json::json!({"note": "niet nodig"})),
                    ),
                };
                let status = credentials.call(method, &url, body).await;
                let expected = expected(*who, action, own);
                cells += 1;
                if status != expected {
                    mismatches.push(format!(
                        "{who:?} {action:?} {} patient: {status}, expected {expected}",
                        if own { "own" } else { "other team's" }
                    ));
                }
            }
        }
    }

    // Assert: every cell as the table says; every change by someone allowed
    // changed the alert, and nothing else did.
    assert_eq!(cells, 7 * 2 * ACTIONS.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    for (who, _) in &callers {
        for (patient, own) in [(assen_patient, true), (emmen_patient, false)] {
            for action in ACTIONS
                .into_iter()
                .filter(|action| action.is_alert_change())
            {
                let rule_key = format!("matrix/{who:?}-{action:?}");
                let alert = store.unresolved_alert(patient, &rule_key).await.unwrap();
                let changed = match action {
                    // A resolved alert is no longer unresolved.
                    Action::Resolve => alert.is_none(),
                    _ => alert.is_some_and(|alert| alert.updated_at > alert.opened_at),
                };
                let allowed = expected(*who, action, own).is_success();
                assert_eq!(
                    changed, allowed,
                    "{who:?} {action:?} own={own}: changed={changed}"
                );
            }
        }
    }
    // Every decision by someone allowed decided its proposal, and nothing
    // else did; one threshold proposal was made, by the coordinator.
    for (who, action, own, proposal_id) in decided {
        let status = store
            .threshold_proposal(proposal_id)
            .await
            .unwrap()
            .unwrap()
            .status;
        let wanted = if !expected(who, action, own).is_success() {
            ProposalStatus::Pending
        } else if action == Action::ApproveThreshold {
            ProposalStatus::Approved
        } else {
            ProposalStatus::Rejected
        };
        assert_eq!(status, wanted, "{who:?} {action:?} own={own}");
    }
    for (patient, made) in [(assen_patient, 1), (emmen_patient, 0)] {
        let fever: Vec<_> = store
            .patient_threshold_proposals(patient)
            .await
            .unwrap()
            .into_iter()
            .filter(|proposal| proposal.rule_key == "default/fever")
            .collect();
        assert_eq!(fever.len(), made, "{fever:#?}");
        assert!(fever.iter().all(|proposal| proposal.author == "carla"));
    }
    app.stop().await;
}
