//! PostgreSQL queries for users, sessions, the audit trail, break-glass and
//! token teams (migration 0009); [`PgStore`]'s `Store` methods call these.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::auth::{
    ActiveSession, AuditRecord, BreakGlass, NewAuditRecord, NewBreakGlass, NewSession, NewUser,
    Role, TeamScope, User, UserCredentials,
};
use super::{on_constraint, PgStore, StoreError, Team};
use crate::domain::Timestamp;

fn to_datetime(ts: Timestamp) -> DateTime<Utc> {
    ts.to_datetime()
}

fn from_datetime(instant: DateTime<Utc>) -> Timestamp {
    Timestamp::from_datetime(instant)
}

/// Sessions that ended this long ago are deleted at the next sign-in; the
/// audit trail, not this table, is the record of who was signed in.
const SESSION_KEEP_MICROS: i64 = 7 * 86_400 * 1_000_000;

const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.created_at, u.disabled_at,
     coalesce((select json_agg(json_build_object('id', t.id, 'name', t.name) order by t.name)
               from user_teams ut join teams t on t.id = ut.team_id
               where ut.user_id = u.id), '[]'::json)";

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    user_from_columns(row, 0)
}

/// Reads the [`USER_COLUMNS`] that start at column `first`.
fn user_from_columns(row: &PgRow, first: usize) -> Result<User, StoreError> {
    let role: &str = row.get(first + 3);
    let teams: serde_json::Value = row.get(first + 6);
    Ok(User {
        id: row.get(first),
        username: row.get(first + 1),
        display_name: row.get(first + 2),
        role: Role::from_code(role)
            .ok_or_else(|| StoreError::NotFound(format!("valid role (found {role:?})")))?,
        created_at: from_datetime(row.get(first + 4)),
        disabled_at: row
            .get::<Option<DateTime<Utc>>, _>(first + 5)
            .map(from_datetime),
        teams: teams_from_json(teams)?,
    })
}

/// Reads `[{"id": …, "name": …}]` as built by [`USER_COLUMNS`] (both stores).
pub(super) fn teams_from_json(teams: serde_json::Value) -> Result<Vec<Team>, StoreError> {
    #[derive(serde::Deserialize)]
    struct TeamRow {
        id: Uuid,
        name: String,
    }
    let rows: Vec<TeamRow> = serde_json::from_value(teams)
        .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?;
    Ok(rows
        .into_iter()
        .map(|row| Team {
            id: row.id,
            name: row.name,
        })
        .collect())
}

/// Appends audit rows in one statement. A worklist page audits every patient
/// it shows (up to a hundred), and a round trip per row cost more than the
/// worklist query itself; `with ordinality` keeps the rows' ids in the
/// order given.
/// A PostgreSQL array literal of `ids`: `{a,b,…}`.
fn uuid_array<'a>(ids: impl Iterator<Item = &'a Uuid>) -> String {
    let ids: Vec<String> = ids.map(Uuid::to_string).collect();
    format!("{{{}}}", ids.join(","))
}

async fn insert_audit<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    records: &[NewAuditRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut at = Vec::with_capacity(records.len());
    let mut actor = Vec::with_capacity(records.len());
    let mut actor_kind = Vec::with_capacity(records.len());
    let mut actor_id = Vec::with_capacity(records.len());
    let mut on_behalf_of = Vec::with_capacity(records.len());
    let mut action = Vec::with_capacity(records.len());
    let mut patient_id = Vec::with_capacity(records.len());
    let mut team_id = Vec::with_capacity(records.len());
    let mut detail = Vec::with_capacity(records.len());
    let mut source_address = Vec::with_capacity(records.len());
    let mut user_agent = Vec::with_capacity(records.len());
    // Lists as array literals: unnest takes no arrays of arrays of
    // different lengths.
    let mut patient_ids: Vec<Option<String>> = Vec::with_capacity(records.len());
    let mut team_ids: Vec<Option<String>> = Vec::with_capacity(records.len());
    for record in records {
        if record.shown.is_empty() {
            patient_ids.push(None);
            team_ids.push(None);
        } else {
            patient_ids.push(Some(uuid_array(record.shown.iter().map(|(p, _)| p))));
            team_ids.push(Some(uuid_array(record.shown.iter().map(|(_, t)| t))));
        }
        at.push(to_datetime(record.at));
        actor.push(record.actor.as_str());
        actor_kind.push(record.actor_kind.code());
        actor_id.push(record.actor_id);
        on_behalf_of.push(record.on_behalf_of.as_deref());
        action.push(record.action.code());
        patient_id.push(record.patient_id);
        team_id.push(record.team_id);
        detail.push(record.detail.to_string());
        source_address.push(record.source_address.as_deref());
        user_agent.push(record.user_agent.as_deref());
    }
    sqlx::query(
        "insert into audit_log (at, actor, actor_kind, actor_id, on_behalf_of, action,
                                patient_id, team_id, detail, source_address, user_agent,
                                patient_ids, team_ids)
         select at, actor, actor_kind, actor_id, on_behalf_of, action,
                patient_id, team_id, detail::jsonb, source_address, user_agent,
                patient_ids::uuid[], team_ids::uuid[]
         from unnest($1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::text[],
                     $6::text[], $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[],
                     $12::text[], $13::text[])
              with ordinality as x(at, actor, actor_kind, actor_id, on_behalf_of, action,
                                   patient_id, team_id, detail, source_address, user_agent,
                                   patient_ids, team_ids, n)
         order by n",
    )
    .bind(&at)
    .bind(&actor)
    .bind(&actor_kind)
    .bind(&actor_id)
    .bind(&on_behalf_of)
    .bind(&action)
    .bind(&patient_id)
    .bind(&team_id)
    .bind(&detail)
    .bind(&source_address)
    .bind(&user_agent)
    .bind(&patient_ids)
    .bind(&team_ids)
    .execute(executor)
    .await?;
    Ok(())
}

impl PgStore {
    pub(super) async fn pg_add_user(&self, user: &NewUser) -> Result<Uuid, StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query(
            "insert into users (id, username, display_name, role, password_hash)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(user.id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.role.code())
        .bind(&user.password_hash)
        .execute(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, &format!("user {}", user.username)))?;
        for team in &user.teams {
            let inserted = sqlx::query(
                "insert into user_teams (user_id, team_id) select $1, id from teams where name = $2
                 on conflict do nothing",
            )
            .bind(user.id)
            .bind(team)
            .execute(&mut *transaction)
            .await?;
            if inserted.rows_affected() == 0
                && !sqlx::query_scalar::<_, bool>(
                    "select exists (select 1 from teams where name = $1)",
                )
                .bind(team)
                .fetch_one(&mut *transaction)
                .await?
            {
                return Err(StoreError::NotFound(format!("team {team}")));
            }
        }
        transaction.commit().await?;
        Ok(user.id)
    }

    pub(super) async fn pg_list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {USER_COLUMNS} from users u order by u.username"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub(super) async fn pg_user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(&format!(
            "select {USER_COLUMNS}, u.password_hash from users u where u.username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from_row(&row)?,
                password_hash: row.get(7),
            })
        })
        .transpose()
    }

    pub(super) async fn pg_disable_user(
        &self,
        username: &str,
        at: Timestamp,
    ) -> Result<User, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let id: Option<Uuid> = sqlx::query_scalar(
            "update users set disabled_at = coalesce(disabled_at, $2) where username = $1 returning id",
        )
        .bind(username)
        .bind(to_datetime(at))
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!("user {username}")));
        };
        sqlx::query(
            "update sessions set revoked_at = $2 where user_id = $1 and revoked_at is null",
        )
        .bind(id)
        .bind(to_datetime(at))
        .execute(&mut *transaction)
        .await?;
        let row = sqlx::query(&format!(
            "select {USER_COLUMNS} from users u where u.id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        user_from_row(&row)
    }

    pub(super) async fn pg_add_session(
        &self,
        session: &NewSession,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query("delete from sessions where expires_at < $1")
            .bind(to_datetime(
                session.created_at.plus_micros(-SESSION_KEEP_MICROS),
            ))
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "insert into sessions (id, secret_sha256, user_id, csrf_token, created_at, expires_at, last_seen_at)
             values ($1, $2, $3, $4, $5, $6, $5)",
        )
        .bind(session.id)
        .bind(&session.secret_sha256)
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(to_datetime(session.created_at))
        .bind(to_datetime(session.expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, "session"))?;
        insert_audit(&mut *transaction, std::slice::from_ref(audit)).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn pg_active_session(
        &self,
        secret_sha256: &[u8],
        now: Timestamp,
        idle_timeout_micros: i64,
    ) -> Result<Option<ActiveSession>, StoreError> {
        // Checking and touching in one statement: a session cannot be
        // revoked between the check and the touch. The touch only writes
        // when the last use is older than the touch interval, so most
        // requests run a read-only statement without a commit to wait for.
        let row = sqlx::query(&format!(
            "with s as (
                 select s.id, s.user_id, s.csrf_token, s.created_at, s.expires_at, s.last_seen_at
                 from sessions s join users u on u.id = s.user_id
                 where s.secret_sha256 = $1 and s.revoked_at is null and s.expires_at > $2
                   and s.last_seen_at > $3 and u.disabled_at is null),
             touched as (
                 update sessions set last_seen_at = $2
                 where id in (select id from s where last_seen_at < $4) and revoked_at is null)
             select s.id, s.csrf_token, s.created_at, s.expires_at, {USER_COLUMNS}
             from s join users u on u.id = s.user_id"
        ))
        .bind(secret_sha256)
        .bind(to_datetime(now))
        .bind(to_datetime(now.plus_micros(-idle_timeout_micros)))
        .bind(to_datetime(now.plus_micros(-super::session_touch_micros(
            idle_timeout_micros,
        ))))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(ActiveSession {
            id: row.get(0),
            csrf_token: row.get(1),
            created_at: from_datetime(row.get(2)),
            expires_at: from_datetime(row.get(3)),
            user: user_from_columns(&row, 4)?,
        }))
    }

    pub(super) async fn pg_revoke_session(
        &self,
        secret_sha256: &[u8],
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "update sessions set revoked_at = $2 where secret_sha256 = $1 and revoked_at is null",
        )
        .bind(secret_sha256)
        .bind(to_datetime(at))
        .execute(self.pool())
        .await?;
        Ok(revoked.rows_affected() == 1)
    }

    pub(super) async fn pg_append_audit(
        &self,
        records: &[NewAuditRecord],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // One statement is atomic by itself; no transaction round trips.
        insert_audit(self.audit_pool(records), records).await
    }

    pub(super) async fn pg_patient_audit(
        &self,
        patient_id: Uuid,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "(select id, at, actor, actor_kind, actor_id, on_behalf_of, action, patient_id, team_id,
                     detail, source_address, user_agent
              from audit_log
              where patient_id = $1 and ($2::bigint is null or id < $2)
              order by id desc limit $3)
             union all
             (select id, at, actor, actor_kind, actor_id, on_behalf_of, action, $1,
                     team_ids[array_position(patient_ids, $1)],
                     detail, source_address, user_agent
              from audit_log
              where patient_ids @> array[$1] and patient_ids is not null
                and ($2::bigint is null or id < $2)
              order by id desc limit $3)
             order by id desc limit $3",
        )
        .bind(patient_id)
        .bind(before_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|row| AuditRecord {
                id: row.get(0),
                at: from_datetime(row.get(1)),
                actor: row.get(2),
                actor_kind: row.get(3),
                actor_id: row.get(4),
                on_behalf_of: row.get(5),
                action: row.get(6),
                patient_id: row.get(7),
                team_id: row.get(8),
                detail: row.get(9),
                source_address: row.get(10),
                user_agent: row.get(11),
            })
            .collect())
    }

    pub(super) async fn pg_add_break_glass(
        &self,
        grant: &NewBreakGlass,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query(
            "insert into break_glass (id, user_id, patient_id, reason, at, expires_at)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(grant.id)
        .bind(grant.user_id)
        .bind(grant.patient_id)
        .bind(&grant.reason)
        .bind(to_datetime(grant.at))
        .bind(to_datetime(grant.expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(|error| match on_constraint(error, "break-glass grant") {
            StoreError::NotFound(_) => {
                StoreError::NotFound(format!("patient {}", grant.patient_id))
            }
            other => other,
        })?;
        insert_audit(&mut *transaction, std::slice::from_ref(audit)).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn pg_active_break_glass(
        &self,
        user_id: Uuid,
        patient_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<BreakGlass>, StoreError> {
        let row = sqlx::query(
            "select id, user_id, patient_id, reason, at, expires_at from break_glass
             where user_id = $1 and patient_id = $2 and at <= $3 and expires_at > $3
             order by expires_at desc limit 1",
        )
        .bind(user_id)
        .bind(patient_id)
        .bind(to_datetime(now))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|row| BreakGlass {
            id: row.get(0),
            user_id: row.get(1),
            patient_id: row.get(2),
            reason: row.get(3),
            at: from_datetime(row.get(4)),
            expires_at: from_datetime(row.get(5)),
        }))
    }

    pub(super) async fn pg_set_token_teams(
        &self,
        token_id: Uuid,
        scope: &TeamScope,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        let (all, teams): (bool, &[Uuid]) = match scope {
            TeamScope::All => (true, &[]),
            TeamScope::Teams(teams) => (false, teams),
        };
        let updated = sqlx::query("update api_tokens set all_teams = $2 where id = $1")
            .bind(token_id)
            .bind(all)
            .execute(&mut *transaction)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("token {token_id}")));
        }
        sqlx::query("delete from api_token_teams where token_id = $1")
            .bind(token_id)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "insert into api_token_teams (token_id, team_id) select $1, unnest($2::uuid[])",
        )
        .bind(token_id)
        .bind(teams)
        .execute(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, "team"))?;
        transaction.commit().await?;
        Ok(())
    }

    /// Returns the team scope of a token.
    pub(super) async fn pg_token_scope(&self, token_id: Uuid) -> Result<TeamScope, StoreError> {
        let row = sqlx::query(
            "select all_teams,
                    coalesce((select array_agg(team_id) from api_token_teams where token_id = $1), '{}')
             from api_tokens where id = $1",
        )
        .bind(token_id)
        .fetch_one(self.pool())
        .await?;
        Ok(if row.get::<bool, _>(0) {
            TeamScope::All
        } else {
            TeamScope::Teams(row.get(1))
        })
    }
}
