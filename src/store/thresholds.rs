//! Proposals of looser personal thresholds awaiting a second coordinator,
//! and the lists the worklist reminds from (migration 0012). The rules that
//! use them are in `crate::thresholds`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RuleOverride;
use crate::domain::Timestamp;
use crate::protocols::RuleSettings;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Awaiting a second coordinator; the engine does not see it.
    Pending,
    /// Approved by a second coordinator: a version was stored.
    Approved,
    Rejected,
    /// Withdrawn by its author, or replaced by a newer change of the rule.
    Withdrawn,
}

impl ProposalStatus {
    pub const fn code(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Approved => "approved",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn from_code(code: &str) -> Option<ProposalStatus> {
        match code {
            "pending" => Some(ProposalStatus::Pending),
            "approved" => Some(ProposalStatus::Approved),
            "rejected" => Some(ProposalStatus::Rejected),
            "withdrawn" => Some(ProposalStatus::Withdrawn),
            _ => None,
        }
    }
}

/// A proposal to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewThresholdProposal {
    pub patient_id: Uuid,
    /// `"{protocol id}/{rule id}"`.
    pub rule_key: String,
    pub settings: RuleSettings,
    pub valid_until: Option<Timestamp>,
    pub review_by: NaiveDate,
    pub author: String,
    pub reason: String,
    pub created_at: Timestamp,
}

/// A stored proposal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdProposal {
    /// Increases with every proposal stored.
    pub id: i64,
    pub patient_id: Uuid,
    pub rule_key: String,
    pub settings: RuleSettings,
    pub valid_until: Option<Timestamp>,
    pub review_by: NaiveDate,
    pub author: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub status: ProposalStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub decision_note: Option<String>,
    /// The version stored on approval.
    pub override_id: Option<i64>,
}

/// A decision on one proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdDecision {
    pub proposal_id: i64,
    pub decided_by: String,
    pub at: Timestamp,
    pub note: Option<String>,
}

/// A pending proposal with the patient and team it concerns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingProposalItem {
    pub proposal: ThresholdProposal,
    pub patient_display_name: String,
    pub team_id: Uuid,
    pub team: String,
}

/// A version in force whose review-by date has been reached, with the
/// patient and team it concerns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdReviewItem {
    pub version: RuleOverride,
    pub patient_display_name: String,
    pub team_id: Uuid,
    pub team: String,
}
