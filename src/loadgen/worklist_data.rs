//! The data behind `thuiswacht-load worklist`: a year of a district's
//! telemonitoring in PostgreSQL, as the worklist finds it.
//!
//! In: a [`WorklistData`] (patients, days, past and open alerts, seed), the
//! simulator's [`Population`] for it, the protocols, a migrated database.
//! Out: the rows, counted in a [`LoadedData`]:
//!
//! - teams, patients with their protocols and devices, registered through
//!   the [`Store`] (as `simulate --register` does);
//! - the spot-check history (about ten readings a patient a day), bulk-loaded
//!   with binary `COPY` by the rebuild benchmark's loader;
//! - past alerts: resolved, each with an outcome and its three events
//!   (raised, claimed, resolved), spread over the whole period, in
//!   multi-row `UNNEST` inserts;
//! - open alerts through [`Store::raise_alert`], the alert book's own path,
//!   spread over the patients (and so over the four teams), raised up to six
//!   hours ago (some overdue), a fifth of them claimed.
//!
//! Alerts are realistic because their rule, priority, suggested NTS level,
//! score and explanation are copied from findings the real
//! [`TriageEngine`] raised on a small simulated population
//! ([`alert_templates`]); only patient and time are drawn.
//!
//! [`add_nurse`] creates a nurse as `thuiswacht admin user add` does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::rebuild::{load_history, register_concurrently};
use crate::alert_book::{nts_code, priority_code, NewAlert, Outcome};
use crate::auth::admin::command_line_record;
use crate::auth::password::{generate_password, hash_password};
use crate::domain::Timestamp;
use crate::protocols::{Priority, Protocol};
use crate::simulate::Population;
use crate::store::{AuditAction, NewUser, Role, Store};
use crate::triage::urgency::{NtsLevel, Transition};
use crate::triage::TriageEngine;

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = 24 * 60 * MICROS_PER_MINUTE;

/// How much data to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorklistData {
    pub patients: usize,
    /// Days of spot-check history, ending now.
    pub days: u32,
    /// Resolved alerts, spread over the days.
    pub past_alerts: usize,
    /// Unresolved alerts, spread over the patients.
    pub open_alerts: usize,
    pub seed: u64,
}

/// What [`load`] stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadedData {
    pub patients: usize,
    pub readings: u64,
    pub past_alerts: u64,
    pub past_alert_events: u64,
    pub open_alerts: usize,
    pub claimed_open_alerts: usize,
}

/// An alert as the engine raised it, without patient and time.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTemplate {
    pub rule_key: String,
    pub priority: Priority,
    pub nts: NtsLevel,
    pub score: f64,
    pub explanation: serde_json::Value,
    pub response_minutes: i64,
}

/// Past alerts per `INSERT`: 13 arrays of this length per statement.
const PAST_ALERTS_PER_STATEMENT: usize = 5_000;
/// The nurses who claimed and resolved past alerts, per team.
const NURSES_PER_TEAM: usize = 8;

/// Returns the simulator's population for `spec`, ending at `now`, with
/// its wearables left out: the benchmark is about spot checks (a wearable's
/// minute readings would be 40 times as many rows, and generating them only
/// to skip them would dominate the load time).
pub fn spot_check_population(spec: &WorklistData, now: Timestamp) -> Population {
    let mut population = Population::generate(spec.seed, spec.patients, spec.days, now);
    for patient in &mut population.patients {
        patient
            .devices
            .retain(|device| device.profile != "wearable");
    }
    population
}

/// Registers the population and stores its history and alerts.
///
/// # Errors
/// Returns what the database refused.
pub async fn load(
    pool: &PgPool,
    store: &Arc<dyn Store>,
    spec: &WorklistData,
    population: &Population,
    protocols: &BTreeMap<String, Protocol>,
    now: Timestamp,
) -> anyhow::Result<LoadedData> {
    register_concurrently(store, population).await?;
    let readings = load_history(pool, population, now, 0).await?;
    let templates = alert_templates(spec.seed, protocols, now)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xA1E7);
    let (past_alerts, past_alert_events) =
        insert_past_alerts(pool, population, &templates, spec, now, &mut rng).await?;
    let (open_alerts, claimed_open_alerts) = raise_open_alerts(
        store,
        population,
        &templates,
        spec.open_alerts,
        now,
        &mut rng,
    )
    .await?;
    Ok(LoadedData {
        patients: population.patients.len(),
        readings,
        past_alerts,
        past_alert_events,
        open_alerts,
        claimed_open_alerts,
    })
}

/// Returns the alerts the engine raises on a small simulated population
/// (spot checks only, 30 days), as templates.
///
/// # Errors
/// A protocol the simulated patients follow is missing.
pub fn alert_templates(
    seed: u64,
    protocols: &BTreeMap<String, Protocol>,
    now: Timestamp,
) -> anyhow::Result<Vec<AlertTemplate>> {
    // 300 patients over 30 days raise a few hundred alerts of every kind
    // the simulator's deteriorations provoke, in well under a second.
    let mut sample = Population::generate(seed ^ 0x7E3A_91A7E, 300, 30, now);
    for patient in &mut sample.patients {
        patient
            .devices
            .retain(|device| device.profile != "wearable");
    }
    let mut engine = TriageEngine::new(protocols.clone());
    let mut owner: HashMap<&str, Uuid> = HashMap::new();
    for patient in &sample.patients {
        engine
            .register_patient(patient.id, &patient.protocols)
            .context("register a sample patient")?;
        for device in &patient.devices {
            owner.insert(device.device_id.as_str(), patient.id);
        }
    }
    let mut templates = Vec::new();
    let mut findings = Vec::new();
    for day in 0..sample.days {
        let mut readings = Vec::new();
        for message in sample.day(day) {
            let Some(&patient_id) = owner.get(message.device_id.as_str()) else {
                continue;
            };
            if message.faulty {
                continue;
            }
            for &(metric, value, ts) in &message.readings {
                readings.push((ts, patient_id, metric, value));
            }
        }
        readings.sort_by_key(|reading| reading.0);
        for (ts, patient_id, metric, value) in readings {
            engine.evaluate_measurement(patient_id, metric, value, ts, &mut findings);
            for finding in findings.drain(..) {
                if finding.transition != Transition::Raised {
                    continue;
                }
                let protocol = finding.rule_id.split('/').next().unwrap_or_default();
                let response_minutes = protocols
                    .get(protocol)
                    .and_then(|p| p.response_targets.get(&finding.priority).copied())
                    .unwrap_or(24 * 60);
                templates.push(AlertTemplate {
                    explanation: serde_json::to_value(&finding.explanation)?,
                    rule_key: finding.rule_id,
                    priority: finding.priority,
                    nts: finding.nts_level,
                    score: finding.score,
                    response_minutes: i64::from(response_minutes),
                });
            }
        }
    }
    anyhow::ensure!(
        !templates.is_empty(),
        "the sample population raised no alert"
    );
    Ok(templates)
}

/// Returns the username of nurse `index` of `team`, who handled past alerts.
fn past_nurse(team: &str, index: usize) -> String {
    format!("vpk-{}-{index}", team.to_lowercase())
}

/// Inserts `spec.past_alerts` resolved alerts with their events; returns
/// the alerts and events stored.
async fn insert_past_alerts(
    pool: &PgPool,
    population: &Population,
    templates: &[AlertTemplate],
    spec: &WorklistData,
    now: Timestamp,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<(u64, u64)> {
    const OUTCOMES: [Outcome; 6] = [
        Outcome::ContactedPatient,
        Outcome::HomeVisitPlanned,
        Outcome::GpOrSpecialistInformed,
        Outcome::MedicationChangedPerProtocol,
        Outcome::NoActionNeeded,
        Outcome::MeasurementError,
    ];
    let period_micros = i64::from(spec.days.max(1)) * MICROS_PER_DAY;
    let mut alerts_stored = 0;
    let mut events_stored = 0;
    let mut remaining = spec.past_alerts;
    while remaining > 0 {
        let chunk = remaining.min(PAST_ALERTS_PER_STATEMENT);
        remaining -= chunk;
        let mut alerts = PastAlertColumns::with_capacity(chunk);
        let mut events = EventColumns::with_capacity(3 * chunk);
        for _ in 0..chunk {
            let patient = &population.patients[rng.gen_range(0..population.patients.len())];
            let template = &templates[rng.gen_range(0..templates.len())];
            let id = Uuid::new_v4();
            // At least a day ago, so nothing past is still within the re-raise wait.
            let opened =
                Timestamp(now.micros() - MICROS_PER_DAY - rng.gen_range(0..period_micros.max(1)));
            let claimed = opened.plus_micros(
                rng.gen_range(1..=template.response_minutes.max(2)) * MICROS_PER_MINUTE,
            );
            let resolved = claimed.plus_micros(rng.gen_range(5..240) * MICROS_PER_MINUTE);
            let nurse = past_nurse(&patient.team, rng.gen_range(0..NURSES_PER_TEAM));
            let outcome = OUTCOMES[rng.gen_range(0..OUTCOMES.len())];
            alerts.id.push(id);
            alerts.patient_id.push(patient.id);
            alerts.rule_key.push(template.rule_key.clone());
            alerts.priority.push(priority_code(template.priority));
            alerts.nts.push(nts_code(template.nts));
            alerts.score.push(template.score);
            alerts.explanation.push(template.explanation.to_string());
            alerts.opened_at.push(opened.to_datetime());
            alerts.respond_by.push(
                opened
                    .plus_micros(template.response_minutes * MICROS_PER_MINUTE)
                    .to_datetime(),
            );
            alerts.claimed_by.push(nurse.clone());
            alerts.claimed_at.push(claimed.to_datetime());
            alerts.resolved_at.push(resolved.to_datetime());
            alerts.outcome.push(outcome.code());
            let raised_detail = serde_json::json!({
                "priority": priority_code(template.priority),
                "score": template.score,
            });
            events.push(id, opened, "system", "raised", raised_detail.to_string());
            events.push(id, claimed, &nurse, "claimed", "{}".to_owned());
            let resolved_detail = serde_json::json!({"outcome": outcome.code()});
            events.push(
                id,
                resolved,
                &nurse,
                "resolved",
                resolved_detail.to_string(),
            );
        }
        let mut transaction = pool.begin().await?;
        alerts_stored += sqlx::query(
            "insert into alerts (id, patient_id, rule_key, status, priority, nts, score, explanation,
                                 opened_at, updated_at, respond_by, claimed_by, claimed_at,
                                 resolved_at, resolved_by, outcome)
             select id, patient_id, rule_key, 'resolved', priority, nts, score, explanation::jsonb,
                    opened_at, resolved_at, respond_by, claimed_by, claimed_at,
                    resolved_at, claimed_by, outcome
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::float8[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                         $10::text[], $11::timestamptz[], $12::timestamptz[], $13::text[])
                  as x(id, patient_id, rule_key, priority, nts, score, explanation, opened_at,
                       respond_by, claimed_by, claimed_at, resolved_at, outcome)",
        )
        .bind(&alerts.id)
        .bind(&alerts.patient_id)
        .bind(&alerts.rule_key)
        .bind(&alerts.priority)
        .bind(&alerts.nts)
        .bind(&alerts.score)
        .bind(&alerts.explanation)
        .bind(&alerts.opened_at)
        .bind(&alerts.respond_by)
        .bind(&alerts.claimed_by)
        .bind(&alerts.claimed_at)
        .bind(&alerts.resolved_at)
        .bind(&alerts.outcome)
        .execute(&mut *transaction)
        .await
        .context("insert past alerts")?
        .rows_affected();
        events_stored += sqlx::query(
            "insert into alert_events (alert_id, at, actor, kind, detail)
             select alert_id, at, actor, kind, detail::jsonb
             from unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
                  as x(alert_id, at, actor, kind, detail)
             order by at",
        )
        .bind(&events.alert_id)
        .bind(&events.at)
        .bind(&events.actor)
        .bind(&events.kind)
        .bind(&events.detail)
        .execute(&mut *transaction)
        .await
        .context("insert past alert events")?
        .rows_affected();
        transaction.commit().await?;
    }
    Ok((alerts_stored, events_stored))
}

/// Columns of a chunk of past alerts, bound as arrays.
struct PastAlertColumns {
    id: Vec<Uuid>,
    patient_id: Vec<Uuid>,
    rule_key: Vec<String>,
    priority: Vec<&'static str>,
    nts: Vec<&'static str>,
    score: Vec<f64>,
    explanation: Vec<String>,
    opened_at: Vec<DateTime<Utc>>,
    respond_by: Vec<DateTime<Utc>>,
    claimed_by: Vec<String>,
    claimed_at: Vec<DateTime<Utc>>,
    resolved_at: Vec<DateTime<Utc>>,
    outcome: Vec<&'static str>,
}

impl PastAlertColumns {
    fn with_capacity(capacity: usize) -> PastAlertColumns {
        PastAlertColumns {
            id: Vec::with_capacity(capacity),
            patient_id: Vec::with_capacity(capacity),
            rule_key: Vec::with_capacity(capacity),
            priority: Vec::with_capacity(capacity),
            nts: Vec::with_capacity(capacity),
            score: Vec::with_capacity(capacity),
            explanation: Vec::with_capacity(capacity),
            opened_at: Vec::with_capacity(capacity),
            respond_by: Vec::with_capacity(capacity),
            claimed_by: Vec::with_capacity(capacity),
            claimed_at: Vec::with_capacity(capacity),
            resolved_at: Vec::with_capacity(capacity),
            outcome: Vec::with_capacity(capacity),
        }
    }
}

/// Columns of a chunk of alert events, bound as arrays.
struct EventColumns {
    alert_id: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
    actor: Vec<String>,
    kind: Vec<&'static str>,
    detail: Vec<String>,
}

impl EventColumns {
    fn with_capacity(capacity: usize) -> EventColumns {
        EventColumns {
            alert_id: Vec::with_capacity(capacity),
            at: Vec::with_capacity(capacity),
            actor: Vec::with_capacity(capacity),
            kind: Vec::with_capacity(capacity),
            detail: Vec::with_capacity(capacity),
        }
    }

    fn push(
        &mut self,
        alert_id: Uuid,
        at: Timestamp,
        actor: &str,
        kind: &'static str,
        detail: String,
    ) {
        self.alert_id.push(alert_id);
        self.at.push(at.to_datetime());
        self.actor.push(actor.to_owned());
        self.kind.push(kind);
        self.detail.push(detail);
    }
}

/// Raises `count` open alerts through the alert book, on distinct
/// (patient, rule) pairs, and claims a fifth of them; returns how many were
/// raised and claimed.
async fn raise_open_alerts(
    store: &Arc<dyn Store>,
    population: &Population,
    templates: &[AlertTemplate],
    count: usize,
    now: Timestamp,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<(usize, usize)> {
    let mut taken: HashSet<(Uuid, String)> = HashSet::new();
    let mut raised = 0;
    let mut claimed = 0;
    // Distinct pairs run out only when count nears patients × rules.
    let mut attempts = 0;
    while raised < count && attempts < count * 20 {
        attempts += 1;
        let patient = &population.patients[rng.gen_range(0..population.patients.len())];
        let template = &templates[rng.gen_range(0..templates.len())];
        if !taken.insert((patient.id, template.rule_key.clone())) {
            continue;
        }
        let raised_at = Timestamp(now.micros() - rng.gen_range(1..360) * MICROS_PER_MINUTE);
        let (mut alert, created) = store
            .raise_alert(&NewAlert {
                patient_id: patient.id,
                rule_key: template.rule_key.clone(),
                priority: template.priority,
                nts: template.nts,
                score: template.score,
                explanation: template.explanation.clone(),
                at: raised_at,
                raised_at,
                response_minutes: template.response_minutes,
            })
            .await
            .context("raise an open alert")?;
        if !created {
            continue;
        }
        raised += 1;
        if rng.gen_bool(0.2) {
            let from = alert.status;
            let by = past_nurse(&patient.team, rng.gen_range(0..NURSES_PER_TEAM));
            let claimed_at = raised_at.plus_micros(MICROS_PER_MINUTE).min(now);
            let event = alert.claim(&by, claimed_at)?;
            store.save_transition(&alert, from, &event).await?;
            claimed += 1;
        }
    }
    Ok((raised, claimed))
}

/// A nurse made for the benchmark, with the password to sign in with.
#[derive(Debug, Clone)]
pub struct BenchNurse {
    pub username: String,
    pub password: String,
    pub team: String,
}

/// Creates a nurse of `team` with a generated password, as
/// `thuiswacht admin user add NAME --role nurse --team TEAM` does (audited
/// as a command-line change).
///
/// # Errors
/// An unknown team or a store failure.
pub async fn add_nurse(store: &Arc<dyn Store>, team: &str) -> anyhow::Result<BenchNurse> {
    let username = format!(
        "load-{}-{}",
        team.to_lowercase(),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let password = generate_password();
    let password_hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || hash_password(&password)
    })
    .await??;
    let id = store
        .add_user(&NewUser {
            id: Uuid::new_v4(),
            username: username.clone(),
            display_name: username.clone(),
            role: Role::Nurse,
            password_hash,
            teams: vec![team.to_owned()],
        })
        .await
        .with_context(|| format!("add nurse {username}"))?;
    store
        .append_audit(&[command_line_record(
            AuditAction::UserAdded,
            serde_json::json!({"user_id": id, "username": username, "role": "nurse", "teams": [team]}),
        )])
        .await?;
    Ok(BenchNurse {
        username,
        password,
        team: team.to_owned(),
    })
}
