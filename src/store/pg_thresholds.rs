//! PostgreSQL queries for threshold proposals and review reminders
//! (migration 0012); [`PgStore`]'s `Store` methods call these.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::postgres::{rule_override_from_row, RULE_OVERRIDE_COLUMNS};
use super::thresholds::{
    NewThresholdProposal, PendingProposalItem, ProposalStatus, ThresholdDecision,
    ThresholdProposal, ThresholdReviewItem,
};
use super::{on_constraint, PgStore, RuleOverride, StoreError};
use crate::domain::Timestamp;

/// The proposal columns, in the order [`proposal_from_row`] reads them.
pub(super) const PROPOSAL_COLUMNS: &str = "id, patient_id, rule_key, settings, valid_until, \
     review_by, author, reason, created_at, status, decided_by, decided_at, decision_note, override_id";

fn proposal_from_row(row: &PgRow) -> Result<ThresholdProposal, StoreError> {
    let settings: serde_json::Value = row.get(3);
    let status: &str = row.get(9);
    Ok(ThresholdProposal {
        id: row.get(0),
        patient_id: row.get(1),
        rule_key: row.get(2),
        settings: serde_json::from_value(settings)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?,
        valid_until: row
            .get::<Option<DateTime<Utc>>, _>(4)
            .map(Timestamp::from_datetime),
        review_by: row.get(5),
        author: row.get(6),
        reason: row.get(7),
        created_at: Timestamp::from_datetime(row.get(8)),
        status: ProposalStatus::from_code(status).ok_or_else(|| {
            StoreError::NotFound(format!("valid proposal status (found {status:?})"))
        })?,
        decided_by: row.get(10),
        decided_at: row
            .get::<Option<DateTime<Utc>>, _>(11)
            .map(Timestamp::from_datetime),
        decision_note: row.get(12),
        override_id: row.get(13),
    })
}

/// Tells a proposal that is no longer pending from one that does not exist.
async fn not_pending<'c, E>(executor: E, id: i64) -> StoreError
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    match sqlx::query_scalar::<_, String>("select status from threshold_proposals where id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await
    {
        Ok(Some(status)) => StoreError::Conflict(format!("a decision on proposal {id} ({status})")),
        Ok(None) => StoreError::NotFound(format!("proposal {id}")),
        Err(error) => StoreError::from(error),
    }
}

impl PgStore {
    pub(super) async fn pg_add_threshold_proposal(
        &self,
        proposal: &NewThresholdProposal,
    ) -> Result<ThresholdProposal, StoreError> {
        let settings = serde_json::to_value(&proposal.settings)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?;
        let row = sqlx::query(&format!(
            "insert into threshold_proposals
                 (patient_id, rule_key, settings, valid_until, review_by, author, reason, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
             returning {PROPOSAL_COLUMNS}"
        ))
        .bind(proposal.patient_id)
        .bind(&proposal.rule_key)
        .bind(&settings)
        .bind(proposal.valid_until.map(Timestamp::to_datetime))
        .bind(proposal.review_by)
        .bind(&proposal.author)
        .bind(&proposal.reason)
        .bind(proposal.created_at.to_datetime())
        .fetch_one(self.pool())
        .await
        .map_err(|error| match on_constraint(error, "this proposal") {
            StoreError::NotFound(_) => {
                StoreError::NotFound(format!("patient {}", proposal.patient_id))
            }
            other => other,
        })?;
        proposal_from_row(&row)
    }

    pub(super) async fn pg_threshold_proposal(
        &self,
        id: i64,
    ) -> Result<Option<ThresholdProposal>, StoreError> {
        let row = sqlx::query(&format!(
            "select {PROPOSAL_COLUMNS} from threshold_proposals where id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(proposal_from_row).transpose()
    }

    pub(super) async fn pg_patient_threshold_proposals(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<ThresholdProposal>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {PROPOSAL_COLUMNS} from threshold_proposals where patient_id = $1 order by id"
        ))
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(proposal_from_row).collect()
    }

    pub(super) async fn pg_approve_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
    ) -> Result<(ThresholdProposal, RuleOverride), StoreError> {
        // Two versions of one rule stored at once may pick the same number;
        // the unique key refuses the second, which then starts over.
        let mut attempts = 0;
        loop {
            match self.pg_approve_once(decision).await {
                Err(StoreError::Conflict(what)) if what == "this version" && attempts < 3 => {
                    attempts += 1;
                }
                result => return result,
            }
        }
    }

    async fn pg_approve_once(
        &self,
        decision: &ThresholdDecision,
    ) -> Result<(ThresholdProposal, RuleOverride), StoreError> {
        let mut transaction = self.pool().begin().await?;
        let decided = sqlx::query(
            "update threshold_proposals
             set status = 'approved', decided_by = $2, decided_at = $3, decision_note = $4
             where id = $1 and status = 'pending'
             returning id",
        )
        .bind(decision.proposal_id)
        .bind(&decision.decided_by)
        .bind(decision.at.to_datetime())
        .bind(&decision.note)
        .fetch_optional(&mut *transaction)
        .await?;
        if decided.is_none() {
            return Err(not_pending(&mut *transaction, decision.proposal_id).await);
        }
        let version = sqlx::query(&format!(
            "insert into rule_overrides
                 (patient_id, rule_key, version, settings, valid_from, valid_until, author, reason,
                  review_by, approved_by)
             select p.patient_id, p.rule_key,
                    coalesce((select max(o.version) from rule_overrides o
                              where o.patient_id = p.patient_id and o.rule_key = p.rule_key), 0) + 1,
                    p.settings, $2, p.valid_until, p.author, p.reason, p.review_by, p.decided_by
             from threshold_proposals p where p.id = $1
             returning {RULE_OVERRIDE_COLUMNS}"
        ))
        .bind(decision.proposal_id)
        .bind(decision.at.to_datetime())
        .fetch_one(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, "this version"))?;
        let version = rule_override_from_row(&version)?;
        let proposal = sqlx::query(&format!(
            "update threshold_proposals set override_id = $2 where id = $1
             returning {PROPOSAL_COLUMNS}"
        ))
        .bind(decision.proposal_id)
        .bind(version.id)
        .fetch_one(&mut *transaction)
        .await?;
        let proposal = proposal_from_row(&proposal)?;
        transaction.commit().await?;
        Ok((proposal, version))
    }

    pub(super) async fn pg_close_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
        status: ProposalStatus,
    ) -> Result<ThresholdProposal, StoreError> {
        if !matches!(status, ProposalStatus::Rejected | ProposalStatus::Withdrawn) {
            return Err(StoreError::Conflict(format!(
                "closing a proposal as {}",
                status.code()
            )));
        }
        let row = sqlx::query(&format!(
            "update threshold_proposals
             set status = $2, decided_by = $3, decided_at = $4, decision_note = $5
             where id = $1 and status = 'pending'
             returning {PROPOSAL_COLUMNS}"
        ))
        .bind(decision.proposal_id)
        .bind(status.code())
        .bind(&decision.decided_by)
        .bind(decision.at.to_datetime())
        .bind(&decision.note)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => proposal_from_row(&row),
            None => Err(not_pending(self.pool(), decision.proposal_id).await),
        }
    }

    pub(super) async fn pg_withdraw_threshold_proposals(
        &self,
        patient_id: Uuid,
        rule_key: &str,
        decided_by: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "update threshold_proposals
             set status = 'withdrawn', decided_by = $3, decided_at = $4, decision_note = $5
             where patient_id = $1 and rule_key = $2 and status = 'pending'
             returning id",
        )
        .bind(patient_id)
        .bind(rule_key)
        .bind(decided_by)
        .bind(at.to_datetime())
        .bind(note)
        .fetch_all(self.pool())
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub(super) async fn pg_pending_threshold_proposals(
        &self,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<PendingProposalItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "select x.*, pt.display_name, pt.team_id, t.name
             from (select {PROPOSAL_COLUMNS} from threshold_proposals
                   where status = 'pending' and ($2::uuid is null or patient_id = $2)) x
             join patients pt on pt.id = x.patient_id
             join teams t on t.id = pt.team_id
             where ($1::uuid[] is null or pt.team_id = any($1))
             order by x.id"
        ))
        .bind(teams)
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingProposalItem {
                    proposal: proposal_from_row(row)?,
                    patient_display_name: row.get(14),
                    team_id: row.get(15),
                    team: row.get(16),
                })
            })
            .collect()
    }

    pub(super) async fn pg_threshold_reviews_due(
        &self,
        at: Timestamp,
        today: NaiveDate,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<ThresholdReviewItem>, StoreError> {
        // The newest version in force of each rule, as the engine picks it
        // (the last stored whose validity covers the moment).
        let rows = sqlx::query(&format!(
            "select x.*, pt.display_name, pt.team_id, t.name
             from (select distinct on (patient_id, rule_key) {RULE_OVERRIDE_COLUMNS}
                   from rule_overrides
                   where valid_from <= $1 and (valid_until is null or valid_until > $1)
                     and ($4::uuid is null or patient_id = $4)
                   order by patient_id, rule_key, id desc) x
             join patients pt on pt.id = x.patient_id
             join teams t on t.id = pt.team_id
             where x.review_by <= $2 and ($3::uuid[] is null or pt.team_id = any($3))
             order by x.review_by, pt.display_name, x.rule_key"
        ))
        .bind(at.to_datetime())
        .bind(today)
        .bind(teams)
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ThresholdReviewItem {
                    version: rule_override_from_row(row)?,
                    patient_display_name: row.get(12),
                    team_id: row.get(13),
                    team: row.get(14),
                })
            })
            .collect()
    }
}
