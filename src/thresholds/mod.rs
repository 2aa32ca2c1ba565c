//! Personal thresholds set by coordinators, with a review-by date and four
//! eyes for what makes alerts less likely.
//!
//! A coordinator sets a patient's personal settings for one rule with a
//! reason and a date by which it should be looked at again. The change is
//! compared with the rule in force ([`direction`]): a stricter one (alerts
//! more likely, earlier or more urgent) is stored at once as the rule's next
//! version in `rule_overrides`, which the triage stage picks up as it
//! does every version. A looser (or mixed) one becomes a proposal that the
//! engine never sees, until a second coordinator approves it: that stores
//! the version, valid from the approval. Once the review-by date of the
//! newest version in force is reached, the worklist reminds the team.
//!
//! The HTTP side is `crate::api::thresholds`; the pages show the same
//! through `crate::web`.

pub mod direction;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::Timestamp;
use crate::protocols::{Protocol, Rule, RuleSettings};
use crate::settings::Settings;
use crate::store::{Patient, RuleOverride, Store, StoreError};
use crate::worklist::Lang;
use direction::{Classification, Direction};

/// Returns, per rule key, the version the engine applies at `at`: the
/// newest stored whose validity covers it.
pub fn versions_in_force(
    versions: &[RuleOverride],
    at: Timestamp,
) -> BTreeMap<&str, &RuleOverride> {
    let mut in_force: BTreeMap<&str, &RuleOverride> = BTreeMap::new();
    for candidate in versions {
        let valid =
            candidate.valid_from <= at && candidate.valid_until.is_none_or(|until| until > at);
        if !valid {
            continue;
        }
        match in_force.get(candidate.rule_key.as_str()) {
            Some(current) if current.id > candidate.id => {}
            _ => {
                in_force.insert(candidate.rule_key.as_str(), candidate);
            }
        }
    }
    in_force
}

/// Returns the rule the patient has with `version` in force (the protocol's
/// rule with its settings), `None` when the version switches it off.
pub fn rule_with(protocol_rule: &Rule, version: Option<&RuleOverride>) -> Option<Rule> {
    match version {
        None => Some(protocol_rule.clone()),
        Some(version) if !version.settings.enabled => None,
        Some(version) => Some(protocol_rule.with_settings(&version.settings)),
    }
}

/// Returns the protocol's rule for `rule_key` (`"{protocol id}/{rule id}"`).
pub fn protocol_rule<'a>(
    protocols: &'a BTreeMap<String, Protocol>,
    rule_key: &str,
) -> Option<&'a Rule> {
    let (protocol_id, rule_id) = rule_key.split_once('/')?;
    protocols
        .get(protocol_id)?
        .rules
        .iter()
        .find(|rule| rule.id == rule_id)
}

/// Returns today's date in the care team's time zone.
pub fn today(settings: &Settings, now: Timestamp) -> NaiveDate {
    crate::triage::schedule::local_date(now, settings.time_zone())
}

/// Returns whether a version's review is due on `today`: its review-by
/// date has been reached.
pub fn review_due(version: &RuleOverride, today: NaiveDate) -> bool {
    version.review_by.is_some_and(|date| date <= today)
}

/// Longest reason or decision note kept.
pub const MAX_TEXT_CHARS: usize = 1000;

/// A change of a personal threshold as a coordinator asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRequest<'a> {
    /// `"{protocol id}/{rule id}"`.
    pub rule_key: &'a str,
    pub settings: &'a RuleSettings,
    pub reason: Option<&'a str>,
    /// `YYYY-MM-DD`.
    pub review_by: Option<&'a str>,
    /// RFC 3339.
    pub valid_until: Option<&'a str>,
}

/// A change that passed every check, with which way it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedChange {
    pub rule_key: String,
    pub settings: RuleSettings,
    pub reason: String,
    pub review_by: NaiveDate,
    pub valid_until: Option<Timestamp>,
    /// The stored version in force now, if any.
    pub in_force: Option<i64>,
    pub classification: Classification,
}

impl CheckedChange {
    pub fn direction(&self) -> Direction {
        self.classification.direction()
    }
}

/// Checks a change for `patient` (who has `versions` stored) at `now`:
/// a reason, a review-by date after `today`, an end (if any) in the future,
/// and settings that give a valid rule of one of the patient's protocols
/// ([`crate::protocols::personal_rule`]). Classifies it against the rule in
/// force.
///
/// # Errors
/// Every problem, one line each.
pub fn check_change(
    protocols: &BTreeMap<String, Protocol>,
    patient: &Patient,
    versions: &[RuleOverride],
    request: &ChangeRequest<'_>,
    now: Timestamp,
    today: NaiveDate,
) -> Result<CheckedChange, Vec<String>> {
    let mut problems = Vec::new();
    let reason = request.reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        problems.push("reason: give the reason for the change".to_owned());
    } else if reason.chars().count() > MAX_TEXT_CHARS {
        problems.push(format!("reason: at most {MAX_TEXT_CHARS} characters"));
    }
    let review_by = match request.review_by.map(str::trim) {
        None | Some("") => {
            problems.push(
                "review_by: give the date by which the threshold is to be reviewed (YYYY-MM-DD)"
                    .to_owned(),
            );
            None
        }
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) if date > today => Some(date),
            Ok(date) => {
                problems.push(format!("review_by: {date} must be after today ({today})"));
                None
            }
            Err(_) => {
                problems.push(format!("review_by: {text:?} is not a date YYYY-MM-DD"));
                None
            }
        },
    };
    let valid_until = match request.valid_until.map(str::trim) {
        None | Some("") => None,
        Some(text) => match Timestamp::parse_rfc3339(text) {
            Some(until) if until > now => Some(until),
            Some(_) => {
                problems.push(format!("valid_until: {text} is not in the future"));
                None
            }
            None => {
                problems.push(format!("valid_until: {text:?} is not an RFC 3339 time"));
                None
            }
        },
    };
    let proposed = match crate::protocols::personal_rule(
        protocols,
        &patient.protocols,
        request.rule_key,
        request.settings,
    ) {
        Ok(rule) => Some(rule),
        Err(rule_problems) => {
            problems.extend(rule_problems);
            None
        }
    };
    let (Some(proposed), Some(review_by), true) = (proposed, review_by, problems.is_empty()) else {
        return Err(problems);
    };
    let protocol_rule = protocol_rule(protocols, request.rule_key)
        .expect("personal_rule found the protocol's rule");
    let in_force = versions_in_force(versions, now)
        .get(request.rule_key)
        .copied();
    let current = rule_with(protocol_rule, in_force);
    let proposed = request.settings.enabled.then_some(proposed);
    Ok(CheckedChange {
        rule_key: request.rule_key.to_owned(),
        settings: request.settings.clone(),
        reason: reason.to_owned(),
        review_by,
        valid_until,
        in_force: in_force.map(|version| version.id),
        classification: direction::classify(current.as_ref(), proposed.as_ref()),
    })
}

/// A personal threshold whose review-by date has been reached, for the
/// worklist.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewReminder {
    /// "Drempel herbeoordelen" / "Review threshold".
    pub title: String,
    pub patient_id: Uuid,
    pub patient_display_name: String,
    pub team_id: Uuid,
    pub team: String,
    /// `"{protocol id}/{rule id}"`.
    pub rule_key: String,
    /// The version in force.
    pub version: i32,
    pub override_id: i64,
    #[schema(value_type = String, format = Date, example = "2026-12-01")]
    pub review_by: NaiveDate,
    /// Who set the version.
    pub author: String,
}

/// A proposal awaiting a second coordinator, for coordinators' worklists.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProposalReminder {
    /// "Drempelvoorstel wacht op een tweede coördinator" / "Threshold
    /// proposal awaiting a second coordinator".
    pub title: String,
    pub proposal_id: i64,
    pub patient_id: Uuid,
    pub patient_display_name: String,
    pub team_id: Uuid,
    pub team: String,
    pub rule_key: String,
    /// Who proposed it (who may not approve it).
    pub author: String,
    pub reason: String,
    pub created_at: Timestamp,
}

/// What the worklist reminds of besides alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reminders {
    pub reviews: Vec<ReviewReminder>,
    pub proposals: Vec<ProposalReminder>,
}

impl Reminders {
    /// Returns every `(patient id, team id)` shown, once (for the audit).
    pub fn patients(&self) -> Vec<(Uuid, Uuid)> {
        let mut shown: Vec<(Uuid, Uuid)> = self
            .reviews
            .iter()
            .map(|review| (review.patient_id, review.team_id))
            .chain(
                self.proposals
                    .iter()
                    .map(|proposal| (proposal.patient_id, proposal.team_id)),
            )
            .collect();
        shown.sort_unstable();
        shown.dedup();
        shown
    }
}

/// Reads the reminders for patients of `teams` (`None`: all; `patient`:
/// that one only): reviews due today, and, for a coordinator, pending
/// proposals.
///
/// # Errors
/// A store failure.
pub async fn reminders(
    store: &dyn Store,
    settings: &Settings,
    teams: Option<&[Uuid]>,
    patient: Option<Uuid>,
    coordinator: bool,
    lang: Lang,
) -> Result<Reminders, StoreError> {
    let texts = crate::web::i18n::texts(lang);
    let now = Timestamp::now();
    let reviews = store
        .threshold_reviews_due(now, today(settings, now), teams, patient)
        .await?
        .into_iter()
        .map(|item| ReviewReminder {
            title: texts.review_threshold.to_owned(),
            patient_id: item.version.patient_id,
            patient_display_name: item.patient_display_name,
            team_id: item.team_id,
            team: item.team,
            rule_key: item.version.rule_key,
            version: item.version.version,
            override_id: item.version.id,
            review_by: item.version.review_by.unwrap_or_default(),
            author: item.version.author,
        })
        .collect();
    let proposals = if coordinator {
        store
            .pending_threshold_proposals(teams, patient)
            .await?
            .into_iter()
            .map(|item| ProposalReminder {
                title: texts.proposal_awaits.to_owned(),
                proposal_id: item.proposal.id,
                patient_id: item.proposal.patient_id,
                patient_display_name: item.patient_display_name,
                team_id: item.team_id,
                team: item.team,
                rule_key: item.proposal.rule_key,
                author: item.proposal.author,
                reason: item.proposal.reason,
                created_at: item.proposal.created_at,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Reminders { reviews, proposals })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(
        id: i64,
        rule_key: &str,
        from: i64,
        until: Option<i64>,
        settings: &str,
    ) -> RuleOverride {
        RuleOverride {
            id,
            patient_id: Uuid::nil(),
            rule_key: rule_key.to_owned(),
            version: 1,
            settings: serde_json::from_str::<RuleSettings>(settings).unwrap(),
            valid_from: Timestamp(from),
            valid_until: until.map(Timestamp),
            author: "carla".to_owned(),
            reason: "r".to_owned(),
            created_at: Timestamp(from),
            review_by: NaiveDate::from_ymd_opt(2026, 12, 1),
            approved_by: None,
        }
    }

    #[test]
    fn the_newest_version_covering_the_moment_is_in_force() {
        let versions = [
            version(1, "default/fever", 0, None, r#"{"above": 38.5}"#),
            version(2, "default/fever", 0, Some(100), r#"{"above": 39}"#),
            version(3, "default/fever", 500, None, r#"{"above": 38.2}"#),
        ];
        assert_eq!(
            versions_in_force(&versions, Timestamp(50))["default/fever"].id,
            2
        );
        assert_eq!(
            versions_in_force(&versions, Timestamp(200))["default/fever"].id,
            1
        );
        assert_eq!(
            versions_in_force(&versions, Timestamp(600))["default/fever"].id,
            3
        );
    }

    #[test]
    fn a_version_switching_the_rule_off_leaves_no_rule() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let protocols = crate::protocols::load_dir(&dir).unwrap();
        let fever = protocol_rule(&protocols, "default/fever").unwrap();
        let off = version(1, "default/fever", 0, None, r#"{"enabled": false}"#);
        let raised = version(2, "default/fever", 0, None, r#"{"above": 38.6}"#);
        assert_eq!(rule_with(fever, None).as_ref(), Some(fever));
        assert_eq!(rule_with(fever, Some(&off)), None);
        assert_eq!(rule_with(fever, Some(&raised)).unwrap().above, Some(38.6));
        assert!(protocol_rule(&protocols, "default/nope").is_none());
        assert!(protocol_rule(&protocols, "fever").is_none());
    }

    fn patient() -> Patient {
        Patient {
            id: Uuid::nil(),
            team_id: Uuid::nil(),
            team: "Assen".to_owned(),
            display_name: "Mevrouw Bakker".to_owned(),
            birth_year: None,
            protocols: vec!["default".to_owned()],
        }
    }

    fn settings(json: &str) -> RuleSettings {
        serde_json::from_str(json).unwrap()
    }

    fn request<'a>(settings: &'a RuleSettings, review_by: &'a str) -> ChangeRequest<'a> {
        ChangeRequest {
            rule_key: "default/fever",
            settings,
            reason: Some("loopt warm"),
            review_by: Some(review_by),
            valid_until: None,
        }
    }

    #[test]
    fn a_change_is_judged_against_the_rule_in_force_not_the_protocol() {
        let protocols = crate::protocols::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts"),
        )
        .unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let now = Timestamp(1_000);
        let raised = settings(r#"{"above": 38.5, "recover_at": 38.2}"#);
        let lower = settings(r#"{"above": 38.2, "recover_at": 38.0}"#);

        // Against the protocol (38.0), 38.5 loosens.
        let loose = check_change(
            &protocols,
            &patient(),
            &[],
            &request(&raised, "2027-03-01"),
            now,
            today,
        )
        .unwrap();
        assert_eq!(loose.direction(), Direction::Loosening);
        assert_eq!(
            loose.review_by,
            NaiveDate::from_ymd_opt(2027, 3, 1).unwrap()
        );
        assert_eq!(loose.in_force, None);
        // With 38.5 in force, 38.2 tightens, though looser than the protocol.
        let in_force = [version(
            7,
            "default/fever",
            0,
            None,
            r#"{"above": 38.5, "recover_at": 38.2}"#,
        )];
        let tighter = check_change(
            &protocols,
            &patient(),
            &in_force,
            &request(&lower, "2027-03-01"),
            now,
            today,
        )
        .unwrap();
        assert_eq!(tighter.direction(), Direction::Tightening);
        assert_eq!(tighter.in_force, Some(7));
        // Restoring the protocol from there tightens too.
        let restore = settings("{}");
        let restored = check_change(
            &protocols,
            &patient(),
            &in_force,
            &request(&restore, "2027-03-01"),
            now,
            today,
        )
        .unwrap();
        assert_eq!(restored.direction(), Direction::Tightening);
    }

    #[test]
    fn every_problem_of_a_change_is_listed() {
        let protocols = crate::protocols::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts"),
        )
        .unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let wrong = settings(r#"{"recover_at": 39.0}"#);
        let problems = check_change(
            &protocols,
            &patient(),
            &[],
            &ChangeRequest {
                rule_key: "default/fever",
                settings: &wrong,
                reason: Some("  "),
                review_by: Some("2026-12-07"),
                valid_until: Some("yesterday"),
            },
            Timestamp(1_000),
            today,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("reason:"));
        assert!(problems[1].contains("must be after today (2026-12-07)"));
        assert!(problems[2].starts_with("valid_until:"));
        assert!(problems[3].contains("recover_at 39 must not exceed above 38"));
        let fine = settings("{}");
        let missing = check_change(
            &protocols,
            &patient(),
            &[],
            &ChangeRequest {
                rule_key: "heart-failure/weight_gain_1d",
                settings: &fine,
                reason: None,
                review_by: None,
                valid_until: None,
            },
            Timestamp(1_000),
            today,
        )
        .unwrap_err();
        assert_eq!(missing.len(), 3, "{missing:#?}");
        assert!(missing[1].starts_with("review_by: give the date"));
        assert!(missing[2].contains("does not follow protocol heart-failure"));
    }

    #[test]
    fn a_review_is_due_from_its_date_on() {
        let due = version(1, "default/fever", 0, None, "{}");
        assert!(!review_due(
            &due,
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
        ));
        assert!(review_due(
            &due,
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        ));
        let mut none = due.clone();
        none.review_by = None;
        assert!(!review_due(
            &none,
            NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()
        ));
    }
}
