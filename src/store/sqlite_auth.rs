//! SQLite queries for users, sessions, the audit trail, break-glass and
//! token teams (migration 0009); [`SqliteStore`]'s `Store` methods call these.
//! Each transaction writes first, so it takes SQLite's write lock at once
//! (see `SqliteStore::add_patient`).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::auth::{
    ActiveSession, AuditRecord, BreakGlass, NewAuditRecord, NewBreakGlass, NewSession, NewUser,
    Role, TeamScope, User, UserCredentials,
};
use super::pg_auth::teams_from_json;
use super::sqlite::parse_uuid;
use super::{on_constraint, SqliteStore, StoreError};
use crate::domain::Timestamp;

/// See the PostgreSQL store.
const SESSION_KEEP_MICROS: i64 = 7 * 86_400 * 1_000_000;

const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.created_at, u.disabled_at,
     (select json_group_array(json_object('id', id, 'name', name)) from
         (select t.id, t.name from user_teams ut join teams t on t.id = ut.team_id
          where ut.user_id = u.id order by t.name))";

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    user_from_columns(row, 0)
}

/// Reads the [`USER_COLUMNS`] that start at column `first`.
fn user_from_columns(row: &SqliteRow, first: usize) -> Result<User, StoreError> {
    let role: &str = row.get(first + 3);
    let teams: String = row.get(first + 6);
    let teams: serde_json::Value = serde_json::from_str(&teams)
        .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?;
    Ok(User {
        id: parse_uuid(row.get(first))?,
        username: row.get(first + 1),
        display_name: row.get(first + 2),
        role: Role::from_code(role)
            .ok_or_else(|| StoreError::NotFound(format!("valid role (found {role:?})")))?,
        created_at: Timestamp(row.get(first + 4)),
        disabled_at: row.get::<Option<i64>, _>(first + 5).map(Timestamp),
        teams: teams_from_json(teams)?,
    })
}

fn optional_uuid(text: Option<String>) -> Result<Option<Uuid>, StoreError> {
    text.as_deref().map(parse_uuid).transpose()
}

/// A JSON array of the patients or teams of a read of several patients;
/// `None` for a row of one patient.
fn shown_list(shown: &[(Uuid, Uuid)], pick: impl Fn(&(Uuid, Uuid)) -> Uuid) -> Option<String> {
    (!shown.is_empty()).then(|| {
        serde_json::Value::from(
            shown
                .iter()
                .map(|pair| pick(pair).to_string())
                .collect::<Vec<_>>(),
        )
        .to_string()
    })
}

async fn insert_audit(
    transaction: &mut Transaction<'_, Sqlite>,
    records: &[NewAuditRecord],
) -> Result<(), StoreError> {
    for record in records {
        sqlx::query(
            "insert into audit_log (at, actor, actor_kind, actor_id, on_behalf_of, action,
                                    patient_id, team_id, detail, source_address, user_agent,
                                    patient_ids, team_ids)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.at.micros())
        .bind(&record.actor)
        .bind(record.actor_kind.code())
        .bind(record.actor_id.map(|id| id.to_string()))
        .bind(record.on_behalf_of.as_deref())
        .bind(record.action.code())
        .bind(record.patient_id.map(|id| id.to_string()))
        .bind(record.team_id.map(|id| id.to_string()))
        .bind(record.detail.to_string())
        .bind(record.source_address.as_deref())
        .bind(record.user_agent.as_deref())
        .bind(shown_list(&record.shown, |(patient, _)| *patient))
        .bind(shown_list(&record.shown, |(_, team)| *team))
        .execute(&mut **transaction)
        .await?;
    }
    Ok(())
}

impl SqliteStore {
    pub(super) async fn sqlite_add_user(&self, user: &NewUser) -> Result<Uuid, StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query(
            "insert into users (id, username, display_name, role, password_hash, created_at)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.role.code())
        .bind(&user.password_hash)
        .bind(Timestamp::now().micros())
        .execute(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, &format!("user {}", user.username)))?;
        for team in &user.teams {
            let known: Option<String> = sqlx::query_scalar("select id from teams where name = ?")
                .bind(team)
                .fetch_optional(&mut *transaction)
                .await?;
            let Some(team_id) = known else {
                return Err(StoreError::NotFound(format!("team {team}")));
            };
            sqlx::query(
                "insert into user_teams (user_id, team_id) values (?, ?) on conflict do nothing",
            )
            .bind(user.id.to_string())
            .bind(team_id)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(user.id)
    }

    pub(super) async fn sqlite_list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {USER_COLUMNS} from users u order by u.username"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub(super) async fn sqlite_user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(&format!(
            "select {USER_COLUMNS}, u.password_hash from users u where u.username = ?"
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

    pub(super) async fn sqlite_disable_user(
        &self,
        username: &str,
        at: Timestamp,
    ) -> Result<User, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let id: Option<String> = sqlx::query_scalar(
            "update users set disabled_at = coalesce(disabled_at, ?2) where username = ?1 returning id",
        )
        .bind(username)
        .bind(at.micros())
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!("user {username}")));
        };
        sqlx::query("update sessions set revoked_at = ? where user_id = ? and revoked_at is null")
            .bind(at.micros())
            .bind(&id)
            .execute(&mut *transaction)
            .await?;
        let row = sqlx::query(&format!(
            "select {USER_COLUMNS} from users u where u.id = ?"
        ))
        .bind(&id)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        user_from_row(&row)
    }

    pub(super) async fn sqlite_add_session(
        &self,
        session: &NewSession,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query("delete from sessions where expires_at < ?")
            .bind(
                session
                    .created_at
                    .plus_micros(-SESSION_KEEP_MICROS)
                    .micros(),
            )
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "insert into sessions (id, secret_sha256, user_id, csrf_token, created_at, expires_at, last_seen_at)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
        )
        .bind(session.id.to_string())
        .bind(&session.secret_sha256)
        .bind(session.user_id.to_string())
        .bind(&session.csrf_token)
        .bind(session.created_at.micros())
        .bind(session.expires_at.micros())
        .execute(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, "session"))?;
        insert_audit(&mut transaction, std::slice::from_ref(audit)).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn sqlite_active_session(
        &self,
        secret_sha256: &[u8],
        now: Timestamp,
        idle_timeout_micros: i64,
    ) -> Result<Option<ActiveSession>, StoreError> {
        // A read first; the touch writes only when the last use is older
        // than the touch interval (see `session_touch_micros`).
        let row = sqlx::query(&format!(
            "select s.id, s.csrf_token, s.created_at, s.expires_at, s.last_seen_at, {USER_COLUMNS}
             from sessions s join users u on u.id = s.user_id
             where s.secret_sha256 = ?1 and s.revoked_at is null and s.expires_at > ?2
               and s.last_seen_at > ?3 and u.disabled_at is null"
        ))
        .bind(secret_sha256)
        .bind(now.micros())
        .bind(now.plus_micros(-idle_timeout_micros).micros())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = row.get(0);
        let last_seen_at: i64 = row.get(4);
        if last_seen_at
            < now
                .plus_micros(-super::session_touch_micros(idle_timeout_micros))
                .micros()
        {
            sqlx::query(
                "update sessions set last_seen_at = ?1 where id = ?2 and revoked_at is null",
            )
            .bind(now.micros())
            .bind(&id)
            .execute(self.pool())
            .await?;
        }
        Ok(Some(ActiveSession {
            id: parse_uuid(&id)?,
            csrf_token: row.get(1),
            created_at: Timestamp(row.get(2)),
            expires_at: Timestamp(row.get(3)),
            user: user_from_columns(&row, 5)?,
        }))
    }

    pub(super) async fn sqlite_revoke_session(
        &self,
        secret_sha256: &[u8],
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "update sessions set revoked_at = ? where secret_sha256 = ? and revoked_at is null",
        )
        .bind(at.micros())
        .bind(secret_sha256)
        .execute(self.pool())
        .await?;
        Ok(revoked.rows_affected() == 1)
    }

    pub(super) async fn sqlite_append_audit(
        &self,
        records: &[NewAuditRecord],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool().begin().await?;
        insert_audit(&mut transaction, records).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn sqlite_patient_audit(
        &self,
        patient_id: Uuid,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "select id, at, actor, actor_kind, actor_id, on_behalf_of, action, patient_id, team_id,
                    detail, source_address, user_agent
             from audit_log_patients
             where patient_id = ?1 and (?2 is null or id < ?2)
             order by id desc limit ?3",
        )
        .bind(patient_id.to_string())
        .bind(before_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let detail: String = row.get(9);
                Ok(AuditRecord {
                    id: row.get(0),
                    at: Timestamp(row.get(1)),
                    actor: row.get(2),
                    actor_kind: row.get(3),
                    actor_id: optional_uuid(row.get(4))?,
                    on_behalf_of: row.get(5),
                    action: row.get(6),
                    patient_id: optional_uuid(row.get(7))?,
                    team_id: optional_uuid(row.get(8))?,
                    detail: serde_json::from_str(&detail).unwrap_or_default(),
                    source_address: row.get(10),
                    user_agent: row.get(11),
                })
            })
            .collect()
    }

    pub(super) async fn sqlite_add_break_glass(
        &self,
        grant: &NewBreakGlass,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query(
            "insert into break_glass (id, user_id, patient_id, reason, at, expires_at)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(grant.id.to_string())
        .bind(grant.user_id.to_string())
        .bind(grant.patient_id.to_string())
        .bind(&grant.reason)
        .bind(grant.at.micros())
        .bind(grant.expires_at.micros())
        .execute(&mut *transaction)
        .await
        .map_err(|error| match on_constraint(error, "break-glass grant") {
            StoreError::NotFound(_) => {
                StoreError::NotFound(format!("patient {}", grant.patient_id))
            }
            other => other,
        })?;
        insert_audit(&mut transaction, std::slice::from_ref(audit)).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn sqlite_active_break_glass(
        &self,
        user_id: Uuid,
        patient_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<BreakGlass>, StoreError> {
        let row = sqlx::query(
            "select id, user_id, patient_id, reason, at, expires_at from break_glass
             where user_id = ?1 and patient_id = ?2 and at <= ?3 and expires_at > ?3
             order by expires_at desc limit 1",
        )
        .bind(user_id.to_string())
        .bind(patient_id.to_string())
        .bind(now.micros())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(BreakGlass {
                id: parse_uuid(row.get(0))?,
                user_id: parse_uuid(row.get(1))?,
                patient_id: parse_uuid(row.get(2))?,
                reason: row.get(3),
                at: Timestamp(row.get(4)),
                expires_at: Timestamp(row.get(5)),
            })
        })
        .transpose()
    }

    pub(super) async fn sqlite_set_token_teams(
        &self,
        token_id: Uuid,
        scope: &TeamScope,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        let (all, teams): (bool, &[Uuid]) = match scope {
            TeamScope::All => (true, &[]),
            TeamScope::Teams(teams) => (false, teams),
        };
        let updated = sqlx::query("update api_tokens set all_teams = ? where id = ?")
            .bind(all)
            .bind(token_id.to_string())
            .execute(&mut *transaction)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("token {token_id}")));
        }
        sqlx::query("delete from api_token_teams where token_id = ?")
            .bind(token_id.to_string())
            .execute(&mut *transaction)
            .await?;
        for team in teams {
            sqlx::query("insert into api_token_teams (token_id, team_id) values (?, ?)")
                .bind(token_id.to_string())
                .bind(team.to_string())
                .execute(&mut *transaction)
                .await
                .map_err(|error| on_constraint(error, "team"))?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Returns the team scope of a token.
    pub(super) async fn sqlite_token_scope(&self, token_id: &str) -> Result<TeamScope, StoreError> {
        let all: bool = sqlx::query_scalar("select all_teams from api_tokens where id = ?")
            .bind(token_id)
            .fetch_one(self.pool())
            .await?;
        if all {
            return Ok(TeamScope::All);
        }
        let teams: Vec<String> =
            sqlx::query_scalar("select team_id from api_token_teams where token_id = ?")
                .bind(token_id)
                .fetch_all(self.pool())
                .await?;
        Ok(TeamScope::Teams(
            teams
                .iter()
                .map(|team| parse_uuid(team))
                .collect::<Result<_, _>>()?,
        ))
    }
}
