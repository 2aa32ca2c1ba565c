//! SQLite queries for threshold proposals and review reminders (migration
//! 0012); [`SqliteStore`]'s `Store` methods call these. The approval's
//! transaction writes first, so it takes SQLite's write lock at once (see
//! `SqliteStore::add_patient`).

use chrono::NaiveDate;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::sqlite::{
    date_text, parse_date, parse_uuid, rule_override_from_row, RULE_OVERRIDE_COLUMNS,
};
use super::thresholds::{
    NewThresholdProposal, PendingProposalItem, ProposalStatus, ThresholdDecision,
    ThresholdProposal, ThresholdReviewItem,
};
use super::{on_constraint, RuleOverride, SqliteStore, StoreError};
use crate::domain::Timestamp;

/// See the PostgreSQL store.
const PROPOSAL_COLUMNS: &str = "id, patient_id, rule_key, settings, valid_until, \
     review_by, author, reason, created_at, status, decided_by, decided_at, decision_note, override_id";

fn proposal_from_row(row: &SqliteRow) -> Result<ThresholdProposal, StoreError> {
    let patient_id: &str = row.get(1);
    let settings: &str = row.get(3);
    let review_by: &str = row.get(5);
    let status: &str = row.get(9);
    Ok(ThresholdProposal {
        id: row.get(0),
        patient_id: parse_uuid(patient_id)?,
        rule_key: row.get(2),
        settings: serde_json::from_str(settings)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?,
        valid_until: row.get::<Option<i64>, _>(4).map(Timestamp),
        review_by: parse_date(review_by)?,
        author: row.get(6),
        reason: row.get(7),
        created_at: Timestamp(row.get(8)),
        status: ProposalStatus::from_code(status).ok_or_else(|| {
            StoreError::NotFound(format!("valid proposal status (found {status:?})"))
        })?,
        decided_by: row.get(10),
        decided_at: row.get::<Option<i64>, _>(11).map(Timestamp),
        decision_note: row.get(12),
        override_id: row.get(13),
    })
}

/// The team filter as one bound value: a JSON array of team ids, or null
/// for every team.
fn teams_json(teams: Option<&[Uuid]>) -> Option<String> {
    teams.map(|teams| {
        serde_json::Value::from(
            teams
                .iter()
                .map(|team| serde_json::Value::from(team.to_string()))
                .collect::<Vec<_>>(),
        )
        .to_string()
    })
}

/// Tells a proposal that is no longer pending from one that does not exist.
async fn not_pending<'c, E>(executor: E, id: i64) -> StoreError
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    match sqlx::query_scalar::<_, String>("select status from threshold_proposals where id = ?")
        .bind(id)
        .fetch_optional(executor)
        .await
    {
        Ok(Some(status)) => StoreError::Conflict(format!("a decision on proposal {id} ({status})")),
        Ok(None) => StoreError::NotFound(format!("proposal {id}")),
        Err(error) => StoreError::from(error),
    }
}

impl SqliteStore {
    pub(super) async fn sqlite_add_threshold_proposal(
        &self,
        proposal: &NewThresholdProposal,
    ) -> Result<ThresholdProposal, StoreError> {
        let settings = serde_json::to_string(&proposal.settings)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?;
        let row = sqlx::query(&format!(
            "insert into threshold_proposals
                 (patient_id, rule_key, settings, valid_until, review_by, author, reason, created_at)
             values (?, ?, ?, ?, ?, ?, ?, ?)
             returning {PROPOSAL_COLUMNS}"
        ))
        .bind(proposal.patient_id.to_string())
        .bind(&proposal.rule_key)
        .bind(settings)
        .bind(proposal.valid_until.map(Timestamp::micros))
        .bind(date_text(proposal.review_by))
        .bind(&proposal.author)
        .bind(&proposal.reason)
        .bind(proposal.created_at.micros())
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

    pub(super) async fn sqlite_threshold_proposal(
        &self,
        id: i64,
    ) -> Result<Option<ThresholdProposal>, StoreError> {
        let row = sqlx::query(&format!(
            "select {PROPOSAL_COLUMNS} from threshold_proposals where id = ?"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(proposal_from_row).transpose()
    }

    pub(super) async fn sqlite_patient_threshold_proposals(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<ThresholdProposal>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {PROPOSAL_COLUMNS} from threshold_proposals where patient_id = ? order by id"
        ))
        .bind(patient_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(proposal_from_row).collect()
    }

    pub(super) async fn sqlite_approve_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
    ) -> Result<(ThresholdProposal, RuleOverride), StoreError> {
        // SQLite serialises writers, so the next version number cannot be
        // taken twice.
        let mut transaction = self.pool().begin().await?;
        let decided = sqlx::query(
            "update threshold_proposals
             set status = 'approved', decided_by = ?2, decided_at = ?3, decision_note = ?4
             where id = ?1 and status = 'pending'
             returning id",
        )
        .bind(decision.proposal_id)
        .bind(&decision.decided_by)
        .bind(decision.at.micros())
        .bind(&decision.note)
        .fetch_optional(&mut *transaction)
        .await?;
        if decided.is_none() {
            return Err(not_pending(&mut *transaction, decision.proposal_id).await);
        }
        let version = sqlx::query(&format!(
            "insert into rule_overrides
                 (patient_id, rule_key, version, settings, valid_from, valid_until, author, reason,
                  created_at, review_by, approved_by)
             select p.patient_id, p.rule_key,
                    coalesce((select max(o.version) from rule_overrides o
                              where o.patient_id = p.patient_id and o.rule_key = p.rule_key), 0) + 1,
                    p.settings, ?2, p.valid_until, p.author, p.reason, ?2, p.review_by, p.decided_by
             from threshold_proposals p where p.id = ?1
             returning {RULE_OVERRIDE_COLUMNS}"
        ))
        .bind(decision.proposal_id)
        .bind(decision.at.micros())
        .fetch_one(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, "this version"))?;
        let version = rule_override_from_row(&version)?;
        let proposal = sqlx::query(&format!(
            "update threshold_proposals set override_id = ?2 where id = ?1
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

    pub(super) async fn sqlite_close_threshold_proposal(
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
             set status = ?2, decided_by = ?3, decided_at = ?4, decision_note = ?5
             where id = ?1 and status = 'pending'
             returning {PROPOSAL_COLUMNS}"
        ))
        .bind(decision.proposal_id)
        .bind(status.code())
        .bind(&decision.decided_by)
        .bind(decision.at.micros())
        .bind(&decision.note)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => proposal_from_row(&row),
            None => Err(not_pending(self.pool(), decision.proposal_id).await),
        }
    }

    pub(super) async fn sqlite_withdraw_threshold_proposals(
        &self,
        patient_id: Uuid,
        rule_key: &str,
        decided_by: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "update threshold_proposals
             set status = 'withdrawn', decided_by = ?3, decided_at = ?4, decision_note = ?5
             where patient_id = ?1 and rule_key = ?2 and status = 'pending'
             returning id",
        )
        .bind(patient_id.to_string())
        .bind(rule_key)
        .bind(decided_by)
        .bind(at.micros())
        .bind(note)
        .fetch_all(self.pool())
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub(super) async fn sqlite_pending_threshold_proposals(
        &self,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<PendingProposalItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "select x.*, pt.display_name, pt.team_id, t.name
             from (select {PROPOSAL_COLUMNS} from threshold_proposals
                   where status = 'pending' and (?2 is null or patient_id = ?2)) x
             join patients pt on pt.id = x.patient_id
             join teams t on t.id = pt.team_id
             where (?1 is null or pt.team_id in (select value from json_each(?1)))
             order by x.id"
        ))
        .bind(teams_json(teams))
        .bind(patient_id.map(|id| id.to_string()))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let team_id: &str = row.get(15);
                Ok(PendingProposalItem {
                    proposal: proposal_from_row(row)?,
                    patient_display_name: row.get(14),
                    team_id: parse_uuid(team_id)?,
                    team: row.get(16),
                })
            })
            .collect()
    }

    pub(super) async fn sqlite_threshold_reviews_due(
        &self,
        at: Timestamp,
        today: NaiveDate,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<ThresholdReviewItem>, StoreError> {
        // The newest version in force of each rule, as the engine picks it.
        let rows = sqlx::query(&format!(
            "select x.*, pt.display_name, pt.team_id, t.name
             from (select {RULE_OVERRIDE_COLUMNS},
                          row_number() over (partition by patient_id, rule_key order by id desc) as newest
                   from rule_overrides
                   where valid_from <= ?1 and (valid_until is null or valid_until > ?1)
                     and (?4 is null or patient_id = ?4)) x
             join patients pt on pt.id = x.patient_id
             join teams t on t.id = pt.team_id
             where x.newest = 1 and x.review_by <= ?2
               and (?3 is null or pt.team_id in (select value from json_each(?3)))
             order by x.review_by, pt.display_name, x.rule_key"
        ))
        .bind(at.micros())
        .bind(date_text(today))
        .bind(teams_json(teams))
        .bind(patient_id.map(|id| id.to_string()))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let team_id: &str = row.get(14);
                Ok(ThresholdReviewItem {
                    version: rule_override_from_row(row)?,
                    patient_display_name: row.get(13),
                    team_id: parse_uuid(team_id)?,
                    team: row.get(15),
                })
            })
            .collect()
    }
}
