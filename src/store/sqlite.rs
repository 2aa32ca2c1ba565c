//! The embedded SQLite store: one file in the data folder, for a first run, a
//! demo or a single small practice. WAL journal with `synchronous = FULL`, so
//! a committed batch survives a crash or power loss before it is acknowledged.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use secrecy::ExposeSecret;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;

use super::thresholds::{
    NewThresholdProposal, PendingProposalItem, ProposalStatus, ThresholdDecision,
    ThresholdProposal, ThresholdReviewItem,
};
use super::{
    alert_from_parts, on_constraint, postgres::mark_new, raw_preview, ActiveSession, AlertChange,
    AlertListItem, AlertOrder, AlertPage, AlertQuery, AuditRecord, BreakGlass, NewAuditRecord,
    NewBreakGlass, NewDevice, NewObservation, NewPatient, NewProtocolVersion, NewRuleOverride,
    NewSession, NewUser, Patient, ProtocolVersion, QuarantineEntry, QuarantineRecord, RuleOverride,
    SeriesTail, Store, StoreError, StoredReading, Team, TeamResponseTarget, TeamScope, TokenRecord,
    TokenScope, User, UserCredentials, ALERT_CHANGES_CAPACITY, ALERT_COLUMNS, RAISE_ALERT_SQL,
    URGENCY_ORDER,
};
use crate::alert_book::{nts_code, priority_code, Alert, AlertEvent, AlertStatus, NewAlert};
use crate::domain::{
    DeviceId, DeviceStatus, Metric, Reading, RejectReason, StatusReport, Timestamp,
};
use crate::settings::{DatabaseKind, Settings};
use crate::validate::DeviceRecord;

/// Embedded SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite allows 32,766 bound variables per statement; a reading takes six.
const READINGS_PER_STATEMENT: usize = 5_000;

/// A SQLite connection pool with Thuiswacht's queries.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    changes: tokio::sync::broadcast::Sender<AlertChange>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file of the settings.
    ///
    /// # Errors
    /// Returns an error when the file cannot be opened or created.
    pub async fn connect(settings: &Settings) -> Result<SqliteStore, StoreError> {
        let url = settings.database_url();
        if settings.database_url.is_none() {
            std::fs::create_dir_all(&settings.data_dir)
                .map_err(|error| StoreError::Unavailable(sqlx::Error::Io(error)))?;
        }
        let options = SqliteConnectOptions::from_str(url.expose_secret())
            .map_err(StoreError::Unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Readers and the writer share the file; a writer waits instead of failing.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.db_max_connections.min(8))
            .acquire_timeout(Duration::from_millis(settings.db_acquire_timeout_ms))
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            pool,
            changes: tokio::sync::broadcast::channel(ALERT_CHANGES_CAPACITY).0,
        })
    }

    /// Returns the pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn device_from_row(row: sqlx::sqlite::SqliteRow) -> Result<DeviceRecord, StoreError> {
    let device_id: &str = row.get(0);
    let patient: &str = row.get(2);
    let team: &str = row.get(3);
    Ok(DeviceRecord {
        device_id: DeviceId::parse(device_id)
            .map_err(|error| StoreError::NotFound(format!("valid device id ({error})")))?,
        profile_id: row.get(1),
        patient_id: parse_uuid(patient)?,
        team_id: parse_uuid(team)?,
        active: row.get(4),
    })
}

pub(super) fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::NotFound(format!("valid uuid {text}")))
}

const DEVICE_COLUMNS: &str = "select d.device_id, d.profile_id, d.patient_id, p.team_id,
        d.active_from <= ?1 and (d.active_until is null or d.active_until > ?1)
     from devices d join patients p on p.id = d.patient_id";

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> DatabaseKind {
        DatabaseKind::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(readings = readings.len(), quarantine = quarantine.len()))]
    async fn commit_batch(
        &self,
        readings: &[Reading],
        quarantine: &[QuarantineRecord],
    ) -> Result<Vec<bool>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let mut is_new = vec![false; readings.len()];
        let mut inserted_keys = Vec::new();
        for chunk in readings.chunks(READINGS_PER_STATEMENT) {
            let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "insert into readings (device_id, metric, ts, patient_id, value, received_at) ",
            );
            builder.push_values(chunk, |mut row, reading| {
                row.push_bind(reading.device_id.as_str())
                    .push_bind(reading.metric.code())
                    .push_bind(reading.ts.micros())
                    .push_bind(reading.patient_id.to_string())
                    .push_bind(reading.value)
                    .push_bind(reading.received_at.micros());
            });
            builder.push(
                " on conflict (device_id, metric, ts) do nothing returning device_id, metric, ts",
            );
            let rows = builder.build().fetch_all(&mut *transaction).await?;
            for row in rows {
                let device: String = row.get(0);
                let metric: String = row.get(1);
                let ts: i64 = row.get(2);
                inserted_keys.push((device, metric, Timestamp(ts)));
            }
        }
        mark_new(readings, &mut is_new, inserted_keys.into_iter());
        for record in quarantine {
            sqlx::query(
                "insert into quarantine (received_at, source, device_id, reason, detail, raw, raw_size)
                 values (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(record.received_at.micros())
            .bind(&record.source)
            .bind(record.device_id.as_deref())
            .bind(record.reason.code())
            .bind(&record.detail)
            .bind(record.raw.as_slice())
            .bind(record.raw_size)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(is_new)
    }

    async fn find_devices(&self, ids: &[DeviceId]) -> Result<Vec<DeviceRecord>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(DeviceId::as_str).collect();
        let ids_json = serde_json::to_string(&ids).expect("strings serialize");
        let rows = sqlx::query(&format!(
            "{DEVICE_COLUMNS} where d.device_id in (select value from json_each(?2))"
        ))
        .bind(Timestamp::now().micros())
        .bind(ids_json)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(device_from_row).collect()
    }

    async fn add_team(&self, name: &str) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query("insert into teams (id, name, created_at) values (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(Timestamp::now().micros())
            .execute(&self.pool)
            .await
            .map_err(|error| on_constraint(error, &format!("team {name}")))?;
        Ok(id)
    }

    async fn list_teams(&self) -> Result<Vec<Team>, StoreError> {
        let rows = sqlx::query("select id, name from teams order by name")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                let id: &str = row.get(0);
                Ok(Team {
                    id: parse_uuid(id)?,
                    name: row.get(1),
                })
            })
            .collect()
    }

    async fn add_patient(&self, patient: &NewPatient) -> Result<Uuid, StoreError> {
        // The first statement writes, so the transaction takes SQLite's write
        // lock at once (waiting on the busy timeout) instead of upgrading a
        // read snapshot later, which fails with "database is locked" when
        // another process wrote in between.
        let mut transaction = self.pool.begin().await?;
        let id = patient.id;
        let inserted = sqlx::query(
            "insert into patients (id, team_id, display_name, birth_year, created_at)
             select ?, id, ?, ?, ? from teams where name = ?",
        )
        .bind(id.to_string())
        .bind(&patient.display_name)
        .bind(patient.birth_year)
        .bind(Timestamp::now().micros())
        .bind(&patient.team)
        .execute(&mut *transaction)
        .await
        .map_err(|error| on_constraint(error, &format!("patient {id}")))?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("team {}", patient.team)));
        }
        for protocol in &patient.protocols {
            sqlx::query("insert into patient_protocols (patient_id, protocol_id) values (?, ?)")
                .bind(id.to_string())
                .bind(protocol)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(id)
    }

    async fn list_patients(&self) -> Result<Vec<Patient>, StoreError> {
        let rows = sqlx::query(
            "select p.id, p.team_id, t.name, p.display_name, p.birth_year,
                    (select json_group_array(protocol_id) from
                        (select protocol_id from patient_protocols where patient_id = p.id order by protocol_id))
             from patients p join teams t on t.id = p.team_id
             order by t.name, p.display_name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let id: &str = row.get(0);
                let team_id: &str = row.get(1);
                let protocols: String = row.get(5);
                Ok(Patient {
                    id: parse_uuid(id)?,
                    team_id: parse_uuid(team_id)?,
                    team: row.get(2),
                    display_name: row.get(3),
                    birth_year: row.get(4),
                    protocols: serde_json::from_str(&protocols).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn add_device(&self, device: &NewDevice) -> Result<(), StoreError> {
        let now = Timestamp::now().micros();
        sqlx::query(
            "insert into devices (device_id, profile_id, patient_id, active_from, created_at) values (?, ?, ?, ?, ?)",
        )
        .bind(device.device_id.as_str())
        .bind(&device.profile_id)
        .bind(device.patient_id.to_string())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| match on_constraint(error, &format!("device {}", device.device_id)) {
            StoreError::NotFound(_) => StoreError::NotFound(format!("patient {}", device.patient_id)),
            other => other,
        })?;
        Ok(())
    }

    async fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows = sqlx::query(&format!("{DEVICE_COLUMNS} order by d.device_id"))
            .bind(Timestamp::now().micros())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(device_from_row).collect()
    }

    async fn alerts_opened_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        teams: Option<&[Uuid]>,
    ) -> Result<Vec<AlertListItem>, StoreError> {
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "select x.*, p.display_name, p.team_id, t.name
             from (select {ALERT_COLUMNS} from alerts where opened_at >= "
        ));
        builder
            .push_bind(from.micros())
            .push(" and opened_at < ")
            .push_bind(to.micros())
            .push(") x join patients p on p.id = x.patient_id join teams t on t.id = p.team_id");
        if let Some(teams) = teams {
            if teams.is_empty() {
                builder.push(" where 0");
            } else {
                builder.push(" where p.team_id in (");
                let mut list = builder.separated(", ");
                for team in teams {
                    list.push_bind(team.to_string());
                }
                builder.push(")");
            }
        }
        builder.push(" order by x.opened_at, x.id");
        let rows = builder.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let team_id: &str = row.get(19);
                Ok(AlertListItem {
                    alert: sqlite_alert(row)?,
                    patient_display_name: row.get(18),
                    team_id: parse_uuid(team_id)?,
                    team: row.get(20),
                })
            })
            .collect()
    }

    async fn patient_devices(&self, patient_id: Uuid) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{DEVICE_COLUMNS} where d.patient_id = ?2 order by d.device_id"
        ))
        .bind(Timestamp::now().micros())
        .bind(patient_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(device_from_row).collect()
    }

    async fn add_token(
        &self,
        name: &str,
        scope: TokenScope,
        secret_sha256: &[u8],
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into api_tokens (id, name, scope, secret_sha256, created_at) values (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(scope.code())
        .bind(secret_sha256)
        .bind(Timestamp::now().micros())
        .execute(&self.pool)
        .await
        .map_err(|error| on_constraint(error, "token"))?;
        Ok(id)
    }

    async fn find_token(&self, secret_sha256: &[u8]) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "select id, name, scope, revoked_at is not null from api_tokens where secret_sha256 = ?",
        )
        .bind(secret_sha256)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: &str = row.get(0);
        let scope: &str = row.get(2);
        let Some(scope) = TokenScope::from_code(scope) else {
            return Ok(None);
        };
        Ok(Some(TokenRecord {
            id: parse_uuid(id)?,
            name: row.get(1),
            scope,
            revoked: row.get(3),
            teams: self.sqlite_token_scope(id).await?,
        }))
    }

    async fn list_quarantine(&self, limit: i64) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = sqlx::query(
            "select id, received_at, source, device_id, reason, detail, raw_size, raw
             from quarantine order by received_at desc, id desc limit ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let raw: Vec<u8> = row.get(7);
                QuarantineEntry {
                    id: row.get(0),
                    received_at: Timestamp(row.get(1)),
                    source: row.get(2),
                    device_id: row.get(3),
                    reason: row.get(4),
                    detail: row.get(5),
                    raw_size: row.get(6),
                    raw_preview: raw_preview(&raw),
                }
            })
            .collect())
    }

    async fn count_quarantine(&self, reason: RejectReason) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("select count(*) from quarantine where reason = ?")
                .bind(reason.code())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn device_readings_after(
        &self,
        device_id: &DeviceId,
        after: Option<Timestamp>,
    ) -> Result<Vec<StoredReading>, StoreError> {
        let rows = sqlx::query(
            "select device_id, patient_id, metric, value, ts from readings
             where device_id = ?1 and (?2 is null or ts > ?2) order by ts, metric",
        )
        .bind(device_id.as_str())
        .bind(after.map(Timestamp::micros))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored_reading_from_row).collect()
    }

    async fn readings_since(&self, since: Timestamp) -> Result<Vec<StoredReading>, StoreError> {
        let rows = sqlx::query(
            "select device_id, patient_id, metric, value, ts from readings where ts >= ? order by ts, device_id, metric",
        )
        .bind(since.micros())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored_reading_from_row).collect()
    }

    async fn raise_alert(&self, alert: &NewAlert) -> Result<(Alert, bool), StoreError> {
        let mut transaction = self.pool.begin().await?;
        let new_id = Uuid::now_v7();
        let opened = alert.open(new_id);
        let id: String = sqlx::query_scalar(RAISE_ALERT_SQL)
            .bind(new_id.to_string())
            .bind(alert.patient_id.to_string())
            .bind(&alert.rule_key)
            .bind(priority_code(alert.priority))
            .bind(nts_code(alert.nts))
            .bind(alert.score)
            .bind(alert.explanation.to_string())
            .bind(opened.opened_at.micros())
            .bind(opened.respond_by.micros())
            .bind(alert.at.micros())
            .fetch_one(&mut *transaction)
            .await
            .map_err(|error| on_constraint(error, "alert"))?;
        let created = id == new_id.to_string();
        let kind = if created { "raised" } else { "updated" };
        sqlx::query("insert into alert_events (alert_id, at, actor, kind, detail) values (?, ?, 'system', ?, ?)")
            .bind(&id)
            .bind(alert.at.micros())
            .bind(kind)
            .bind(serde_json::json!({"priority": priority_code(alert.priority), "score": alert.score}).to_string())
            .execute(&mut *transaction)
            .await?;
        let row = sqlx::query(&format!("select {ALERT_COLUMNS} from alerts where id = ?"))
            .bind(&id)
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        let stored = sqlite_alert(&row)?;
        // No subscriber is no error.
        let _ = self.changes.send(AlertChange {
            alert_id: stored.id,
            patient_id: stored.patient_id,
            kind: kind.to_owned(),
        });
        Ok((stored, created))
    }

    async fn last_resolution(
        &self,
        patient_id: Uuid,
        rule_key: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let resolved: Option<Option<i64>> = sqlx::query_scalar(
            "select max(resolved_at) from alerts
             where patient_id = ?1 and rule_key = ?2
               and not exists (select 1 from alerts open
                               where open.patient_id = ?1 and open.rule_key = ?2 and open.status <> 'resolved')",
        )
        .bind(patient_id.to_string())
        .bind(rule_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(resolved.flatten().map(Timestamp))
    }

    async fn alert(&self, id: Uuid) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query(&format!("select {ALERT_COLUMNS} from alerts where id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sqlite_alert).transpose()
    }

    async fn save_transition(
        &self,
        alert: &Alert,
        from: AlertStatus,
        event: &AlertEvent,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        let updated = sqlx::query(
            "update alerts set status = ?3, priority = ?4, nts = ?5, updated_at = ?6, claimed_by = ?7,
                    claimed_at = ?8, snoozed_until = ?9, escalated_to = ?10, resolved_at = ?11,
                    resolved_by = ?12, outcome = ?13
             where id = ?1 and status = ?2",
        )
        .bind(alert.id.to_string())
        .bind(from.code())
        .bind(alert.status.code())
        .bind(priority_code(alert.priority))
        .bind(nts_code(alert.nts))
        .bind(alert.updated_at.micros())
        .bind(alert.claimed_by.as_deref())
        .bind(alert.claimed_at.map(Timestamp::micros))
        .bind(alert.snoozed_until.map(Timestamp::micros))
        .bind(alert.escalated_to.as_deref())
        .bind(alert.resolved_at.map(Timestamp::micros))
        .bind(alert.resolved_by.as_deref())
        .bind(alert.outcome.map(|o| o.code()))
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "a change to alert {} made meanwhile",
                alert.id
            )));
        }
        sqlx::query(
            "insert into alert_events (alert_id, at, actor, kind, detail) values (?, ?, ?, ?, ?)",
        )
        .bind(alert.id.to_string())
        .bind(event.at.micros())
        .bind(&event.actor)
        .bind(&event.kind)
        .bind(event.detail.to_string())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let _ = self.changes.send(AlertChange {
            alert_id: alert.id,
            patient_id: alert.patient_id,
            kind: event.kind.clone(),
        });
        Ok(())
    }

    async fn alert_events(&self, id: Uuid) -> Result<Vec<AlertEvent>, StoreError> {
        let rows = sqlx::query(
            "select at, actor, kind, detail from alert_events where alert_id = ? order by id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let detail: String = row.get(3);
                AlertEvent {
                    at: Timestamp(row.get(0)),
                    actor: row.get(1),
                    kind: row.get(2),
                    detail: serde_json::from_str(&detail).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn unresolved_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {ALERT_COLUMNS} from alerts where status <> 'resolved' order by score desc, opened_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sqlite_alert).collect()
    }

    async fn count_readings(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("select count(*) from readings")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn add_rule_override(
        &self,
        rule_override: &NewRuleOverride,
    ) -> Result<RuleOverride, StoreError> {
        let settings = serde_json::to_string(&rule_override.settings)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?;
        // One statement: SQLite serialises writers, so the next version
        // number cannot be taken twice.
        let row = sqlx::query(&format!(
            "insert into rule_overrides
                 (patient_id, rule_key, version, settings, valid_from, valid_until, author, reason, created_at,
                  review_by, approved_by)
             select ?1, ?2, coalesce(max(version), 0) + 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
             from rule_overrides where patient_id = ?1 and rule_key = ?2
             returning {RULE_OVERRIDE_COLUMNS}"
        ))
        .bind(rule_override.patient_id.to_string())
        .bind(&rule_override.rule_key)
        .bind(settings)
        .bind(rule_override.valid_from.micros())
        .bind(rule_override.valid_until.map(Timestamp::micros))
        .bind(&rule_override.author)
        .bind(&rule_override.reason)
        .bind(Timestamp::now().micros())
        .bind(rule_override.review_by.map(date_text))
        .bind(&rule_override.approved_by)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| match on_constraint(error, "this version") {
            StoreError::NotFound(_) => {
                StoreError::NotFound(format!("patient {}", rule_override.patient_id))
            }
            other => other,
        })?;
        rule_override_from_row(&row)
    }

    async fn rule_overrides_after(&self, after_id: i64) -> Result<Vec<RuleOverride>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {RULE_OVERRIDE_COLUMNS} from rule_overrides where id > ? order by id"
        ))
        .bind(after_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_override_from_row).collect()
    }

    async fn patient_rule_overrides(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<RuleOverride>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {RULE_OVERRIDE_COLUMNS} from rule_overrides where patient_id = ? order by id"
        ))
        .bind(patient_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_override_from_row).collect()
    }

    async fn add_protocol_version(
        &self,
        version: &NewProtocolVersion,
    ) -> Result<ProtocolVersion, StoreError> {
        let definition = serde_json::to_string(&version.definition)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?;
        // One statement: SQLite serialises writers, so the base check and
        // the insert cannot interleave with another save.
        let row = sqlx::query(&format!(
            "insert into protocol_versions
                 (protocol_id, version, definition, valid_from, author, reason, restored_from, created_at)
             select ?1, ?2 + 1, ?3, ?4, ?5, ?6, ?7, ?8
             where coalesce((select max(version) from protocol_versions where protocol_id = ?1), 0) = ?2
             returning {PROTOCOL_VERSION_COLUMNS}"
        ))
        .bind(&version.protocol_id)
        .bind(version.base_version)
        .bind(definition)
        .bind(version.valid_from.micros())
        .bind(&version.author)
        .bind(&version.reason)
        .bind(version.restored_from)
        .bind(Timestamp::now().micros())
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| on_constraint(error, "a newer version"))?;
        match row {
            Some(row) => protocol_version_from_row(&row),
            None => Err(StoreError::Conflict(format!(
                "a version of {} newer than {}",
                version.protocol_id, version.base_version
            ))),
        }
    }

    async fn protocol_versions_after(
        &self,
        after_id: i64,
    ) -> Result<Vec<ProtocolVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {PROTOCOL_VERSION_COLUMNS} from protocol_versions where id > ? order by id"
        ))
        .bind(after_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(protocol_version_from_row).collect()
    }

    async fn commit_observation(
        &self,
        observation: &NewObservation,
    ) -> Result<Vec<bool>, StoreError> {
        // The first statement writes (see add_patient).
        let mut transaction = self.pool.begin().await?;
        let mut is_new = Vec::with_capacity(observation.readings.len());
        for reading in &observation.readings {
            let inserted = sqlx::query(
                "insert into readings (device_id, metric, ts, patient_id, value, received_at)
                 values (?, ?, ?, ?, ?, ?)
                 on conflict (device_id, metric, ts) do nothing",
            )
            .bind(reading.device_id.as_str())
            .bind(reading.metric.code())
            .bind(reading.ts.micros())
            .bind(reading.patient_id.to_string())
            .bind(reading.value)
            .bind(reading.received_at.micros())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            is_new.push(inserted == 1);
        }
        if is_new.contains(&true) {
            sqlx::query(
                "insert into observations (id, patient_id, ts, author, note, entered, recorded_at)
                 values (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(observation.id.to_string())
            .bind(observation.patient_id.to_string())
            .bind(observation.ts.micros())
            .bind(&observation.author)
            .bind(&observation.note)
            .bind(observation.entered.to_string())
            .bind(Timestamp::now().micros())
            .execute(&mut *transaction)
            .await
            .map_err(|error| on_constraint(error, "patient"))?;
        }
        transaction.commit().await?;
        Ok(is_new)
    }

    fn alert_changes(&self) -> tokio::sync::broadcast::Receiver<AlertChange> {
        self.changes.subscribe()
    }

    async fn set_team_response_target(
        &self,
        target: &TeamResponseTarget,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into team_response_targets (team_id, priority, minutes, updated_by, updated_at)
             values (?, ?, ?, ?, ?)
             on conflict (team_id, priority) do update set
                 minutes = excluded.minutes, updated_by = excluded.updated_by,
                 updated_at = excluded.updated_at",
        )
        .bind(target.team_id.to_string())
        .bind(priority_code(target.priority))
        .bind(i64::from(target.minutes))
        .bind(&target.updated_by)
        .bind(Timestamp::now().micros())
        .execute(&self.pool)
        .await
        .map_err(|error| on_constraint(error, "team"))?;
        Ok(())
    }

    async fn team_response_targets(&self) -> Result<Vec<TeamResponseTarget>, StoreError> {
        let rows =
            sqlx::query("select team_id, priority, minutes, updated_by from team_response_targets")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let team_id: &str = row.get(0);
                let priority: &str = row.get(1);
                Ok(TeamResponseTarget {
                    team_id: parse_uuid(team_id)?,
                    priority: crate::alert_book::priority_from_code(priority)
                        .ok_or_else(|| StoreError::NotFound(format!("priority {priority}")))?,
                    minutes: u32::try_from(row.get::<i64, _>(2)).unwrap_or(1),
                    updated_by: row.get(3),
                })
            })
            .collect()
    }

    async fn query_alerts(&self, query: &AlertQuery) -> Result<AlertPage, StoreError> {
        let order = match query.order {
            AlertOrder::Urgency => URGENCY_ORDER,
            AlertOrder::Newest => "x.opened_at desc, x.id",
        };
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "select x.*, p.display_name, p.team_id, t.name, count(*) over ()
             from (select {ALERT_COLUMNS} from alerts where status in ("
        ));
        let mut list = builder.separated(", ");
        for code in query.status_codes() {
            list.push_bind(code);
        }
        builder.push(") and priority in (");
        let mut list = builder.separated(", ");
        for code in query.priority_codes() {
            list.push_bind(code);
        }
        builder.push(")");
        if let Some(patient_id) = query.patient_id {
            builder
                .push(" and patient_id = ")
                .push_bind(patient_id.to_string());
        }
        builder.push(") x join patients p on p.id = x.patient_id join teams t on t.id = p.team_id");
        if let Some(teams) = &query.teams {
            if teams.is_empty() {
                builder.push(" where 0");
            } else {
                builder.push(" where p.team_id in (");
                let mut list = builder.separated(", ");
                for team in teams {
                    list.push_bind(team.to_string());
                }
                builder.push(")");
            }
        }
        builder
            .push(format!(" order by {order} limit "))
            .push_bind(query.limit.clamp(1, 1000))
            .push(" offset ")
            .push_bind(query.offset.max(0));
        let rows = builder.build().fetch_all(&self.pool).await?;
        let total = rows.first().map_or(0, |row| row.get::<i64, _>(21));
        let items = rows
            .iter()
            .map(|row| {
                let team_id: &str = row.get(19);
                Ok(AlertListItem {
                    alert: sqlite_alert(row)?,
                    patient_display_name: row.get(18),
                    team_id: parse_uuid(team_id)?,
                    team: row.get(20),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(AlertPage { items, total })
    }

    async fn patient_readings(
        &self,
        patient_id: Uuid,
        metric: Option<Metric>,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> Result<Vec<StoredReading>, StoreError> {
        let rows = sqlx::query(
            "select r.device_id, r.patient_id, r.metric, r.value, r.ts
             from (select device_id from devices where patient_id = ?1
                   union select ?2) d
             join readings r on r.device_id = d.device_id
             where r.patient_id = ?1 and (?3 is null or r.metric = ?3)
               and r.ts >= ?4 and r.ts < ?5
             order by r.ts, r.metric
             limit ?6",
        )
        .bind(patient_id.to_string())
        .bind(super::observation_device(patient_id).as_str().to_owned())
        .bind(metric.map(Metric::code))
        .bind(from.micros())
        .bind(to.micros())
        .bind(limit.clamp(1, 100_000))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored_reading_from_row).collect()
    }

    async fn patient(&self, patient_id: Uuid) -> Result<Option<Patient>, StoreError> {
        let row = sqlx::query(
            "select p.id, p.team_id, t.name, p.display_name, p.birth_year,
                    (select json_group_array(protocol_id) from
                        (select protocol_id from patient_protocols where patient_id = p.id order by protocol_id))
             from patients p join teams t on t.id = p.team_id
             where p.id = ?",
        )
        .bind(patient_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let id: &str = row.get(0);
            let team_id: &str = row.get(1);
            let protocols: String = row.get(5);
            Ok(Patient {
                id: parse_uuid(id)?,
                team_id: parse_uuid(team_id)?,
                team: row.get(2),
                display_name: row.get(3),
                birth_year: row.get(4),
                protocols: serde_json::from_str(&protocols).unwrap_or_default(),
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all, fields(statuses = reports.len()))]
    async fn record_statuses(&self, reports: &[StatusReport]) -> Result<Vec<bool>, StoreError> {
        // Every iteration writes first, so the transaction holds SQLite's
        // write lock before it reads (see add_patient).
        let mut transaction = self.pool.begin().await?;
        let mut newest = Vec::with_capacity(reports.len());
        let now = Timestamp::now().micros();
        for report in reports {
            let (fresh, _) = DeviceStatus::merge(None, report);
            let inserted = sqlx::query(
                "insert into device_status (device_id, patient_id, last_seen_at, status_ts, online,
                                            battery_pct, fault, updated_at)
                 values (?, ?, ?, ?, ?, ?, ?, ?)
                 on conflict (device_id) do nothing",
            )
            .bind(fresh.device_id.as_str())
            .bind(fresh.patient_id.to_string())
            .bind(fresh.last_seen_at.map(Timestamp::micros))
            .bind(fresh.status_ts.micros())
            .bind(fresh.online)
            .bind(fresh.battery_pct)
            .bind(fresh.fault.as_deref())
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(|error| on_constraint(error, "device status"))?;
            if inserted.rows_affected() == 1 {
                newest.push(true);
                continue;
            }
            let row = sqlx::query(&format!("{DEVICE_STATUS_SELECT} where device_id = ?"))
                .bind(report.device_id.as_str())
                .fetch_one(&mut *transaction)
                .await?;
            let previous = sqlite_device_status(&row)?;
            let (merged, is_newest) = DeviceStatus::merge(Some(&previous), report);
            if merged != previous {
                sqlx::query(
                    "update device_status set patient_id = ?2, last_seen_at = ?3, status_ts = ?4,
                            online = ?5, battery_pct = ?6, fault = ?7, updated_at = ?8
                     where device_id = ?1",
                )
                .bind(merged.device_id.as_str())
                .bind(merged.patient_id.to_string())
                .bind(merged.last_seen_at.map(Timestamp::micros))
                .bind(merged.status_ts.micros())
                .bind(merged.online)
                .bind(merged.battery_pct)
                .bind(merged.fault.as_deref())
                .bind(now)
                .execute(&mut *transaction)
                .await?;
            }
            newest.push(is_newest);
        }
        transaction.commit().await?;
        Ok(newest)
    }

    async fn device_status(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceStatus>, StoreError> {
        let row = sqlx::query(&format!("{DEVICE_STATUS_SELECT} where device_id = ?"))
            .bind(device_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sqlite_device_status).transpose()
    }

    async fn last_heard(
        &self,
        device_ids: &[DeviceId],
        metrics: &[Metric],
        since: Timestamp,
        measured_since: Timestamp,
    ) -> Result<Vec<(DeviceId, Timestamp)>, StoreError> {
        let ids: Vec<&str> = device_ids.iter().map(DeviceId::as_str).collect();
        let metrics: Vec<&str> = metrics.iter().map(|metric| metric.code()).collect();
        let rows = sqlx::query(
            "select device_id, max(heard) from (
                 select device_id, last_seen_at as heard from device_status
                  where device_id in (select value from json_each(?1)) and last_seen_at >= ?3
                 union all
                 select device_id, max(received_at) from readings
                  where device_id in (select value from json_each(?1))
                    and metric in (select value from json_each(?2))
                    and ts >= ?4 and received_at >= ?3
                  group by device_id
             )
             group by device_id",
        )
        .bind(serde_json::to_string(&ids).expect("strings serialize"))
        .bind(serde_json::to_string(&metrics).expect("strings serialize"))
        .bind(since.micros())
        .bind(measured_since.micros())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let device_id: &str = row.get(0);
                Ok((parse_device_id(device_id)?, Timestamp(row.get(1))))
            })
            .collect()
    }

    async fn first_reading_between(
        &self,
        patient_id: Uuid,
        device_ids: &[DeviceId],
        metric: Metric,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let ids: Vec<&str> = device_ids.iter().map(DeviceId::as_str).collect();
        let first: Option<i64> = sqlx::query_scalar(
            "select min(ts) from readings
             where device_id in (select value from json_each(?1)) and metric = ?2
               and ts >= ?3 and ts < ?4 and patient_id = ?5",
        )
        .bind(serde_json::to_string(&ids).expect("strings serialize"))
        .bind(metric.code())
        .bind(from.micros())
        .bind(to.micros())
        .bind(patient_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(first.map(Timestamp))
    }

    async fn unresolved_alert(
        &self,
        patient_id: Uuid,
        rule_key: &str,
    ) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query(&format!(
            "select {ALERT_COLUMNS} from alerts
             where patient_id = ? and rule_key = ? and status <> 'resolved'"
        ))
        .bind(patient_id.to_string())
        .bind(rule_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(sqlite_alert).transpose()
    }

    async fn add_threshold_proposal(
        &self,
        proposal: &NewThresholdProposal,
    ) -> Result<ThresholdProposal, StoreError> {
        self.sqlite_add_threshold_proposal(proposal).await
    }

    async fn threshold_proposal(&self, id: i64) -> Result<Option<ThresholdProposal>, StoreError> {
        self.sqlite_threshold_proposal(id).await
    }

    async fn patient_threshold_proposals(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<ThresholdProposal>, StoreError> {
        self.sqlite_patient_threshold_proposals(patient_id).await
    }

    async fn approve_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
    ) -> Result<(ThresholdProposal, RuleOverride), StoreError> {
        self.sqlite_approve_threshold_proposal(decision).await
    }

    async fn close_threshold_proposal(
        &self,
        decision: &ThresholdDecision,
        status: ProposalStatus,
    ) -> Result<ThresholdProposal, StoreError> {
        self.sqlite_close_threshold_proposal(decision, status).await
    }

    async fn withdraw_threshold_proposals(
        &self,
        patient_id: Uuid,
        rule_key: &str,
        decided_by: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<Vec<i64>, StoreError> {
        self.sqlite_withdraw_threshold_proposals(patient_id, rule_key, decided_by, at, note)
            .await
    }

    async fn pending_threshold_proposals(
        &self,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<PendingProposalItem>, StoreError> {
        self.sqlite_pending_threshold_proposals(teams, patient_id)
            .await
    }

    async fn threshold_reviews_due(
        &self,
        at: Timestamp,
        today: chrono::NaiveDate,
        teams: Option<&[Uuid]>,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<ThresholdReviewItem>, StoreError> {
        self.sqlite_threshold_reviews_due(at, today, teams, patient_id)
            .await
    }

    async fn add_user(&self, user: &NewUser) -> Result<Uuid, StoreError> {
        self.sqlite_add_user(user).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.sqlite_list_users().await
    }

    async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        self.sqlite_user_credentials(username).await
    }

    async fn disable_user(&self, username: &str, at: Timestamp) -> Result<User, StoreError> {
        self.sqlite_disable_user(username, at).await
    }

    async fn add_session(
        &self,
        session: &NewSession,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError> {
        self.sqlite_add_session(session, audit).await
    }

    async fn active_session(
        &self,
        secret_sha256: &[u8],
        now: Timestamp,
        idle_timeout_micros: i64,
    ) -> Result<Option<ActiveSession>, StoreError> {
        self.sqlite_active_session(secret_sha256, now, idle_timeout_micros)
            .await
    }

    async fn revoke_session(
        &self,
        secret_sha256: &[u8],
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.sqlite_revoke_session(secret_sha256, at).await
    }

    async fn append_audit(&self, records: &[NewAuditRecord]) -> Result<(), StoreError> {
        self.sqlite_append_audit(records).await
    }

    async fn patient_audit(
        &self,
        patient_id: Uuid,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.sqlite_patient_audit(patient_id, before_id, limit)
            .await
    }

    async fn add_break_glass(
        &self,
        grant: &NewBreakGlass,
        audit: &NewAuditRecord,
    ) -> Result<(), StoreError> {
        self.sqlite_add_break_glass(grant, audit).await
    }

    async fn active_break_glass(
        &self,
        user_id: Uuid,
        patient_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<BreakGlass>, StoreError> {
        self.sqlite_active_break_glass(user_id, patient_id, now)
            .await
    }

    async fn set_token_teams(&self, token_id: Uuid, teams: &TeamScope) -> Result<(), StoreError> {
        self.sqlite_set_token_teams(token_id, teams).await
    }

    fn newest_readings_per_series(
        &self,
        since: Timestamp,
        per_series: u32,
    ) -> BoxStream<'_, Result<SeriesTail, StoreError>> {
        if per_series == 0 {
            return futures_util::stream::empty().boxed();
        }
        // A loose index scan finds the series (SQLite has no LATERAL, so
        // each step looks the next key up twice, once per column); per
        // series, the `per_series`-th newest event time is one backward
        // probe of the key, and the readings from there on one range scan.
        let rows = sqlx::query(
            "with recursive series (device_id, metric) as (
                 select * from (select device_id, metric from readings order by device_id, metric limit 1)
                 union all
                 select (select r.device_id from readings r
                         where (r.device_id, r.metric) > (series.device_id, series.metric)
                         order by r.device_id, r.metric limit 1),
                        (select r.metric from readings r
                         where (r.device_id, r.metric) > (series.device_id, series.metric)
                         order by r.device_id, r.metric limit 1)
                 from series where series.device_id is not null
             )
             select r.device_id, r.patient_id, r.metric, r.value, r.ts
             from series
             join readings r on r.device_id = series.device_id and r.metric = series.metric
             where r.ts >= max(?1, coalesce((select oldest.ts from readings oldest
                                             where oldest.device_id = series.device_id
                                               and oldest.metric = series.metric
                                             order by oldest.ts desc limit 1 offset ?2), ?1))",
        )
        .bind(since.micros())
        .bind(i64::from(per_series) - 1)
        .fetch_all(&self.pool);
        // An embedded database holds a small practice: its newest readings
        // fit in memory, and grouping them here keeps the SQL plain.
        futures_util::stream::once(async move {
            let rows = rows.await?;
            let tails = series_tails(rows, per_series)?;
            Ok::<_, StoreError>(futures_util::stream::iter(tails.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }
}

pub(super) const RULE_OVERRIDE_COLUMNS: &str =
    "id, patient_id, rule_key, version, settings, valid_from, \
     valid_until, author, reason, created_at, review_by, approved_by";

/// A date as stored: text `YYYY-MM-DD`, which sorts as the date does.
pub(super) fn date_text(date: chrono::NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Reads a date stored by [`date_text`].
pub(super) fn parse_date(text: &str) -> Result<chrono::NaiveDate, StoreError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StoreError::NotFound(format!("valid date {text}")))
}

pub(super) fn rule_override_from_row(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<RuleOverride, StoreError> {
    let patient_id: &str = row.get(1);
    let settings: &str = row.get(4);
    Ok(RuleOverride {
        id: row.get(0),
        patient_id: parse_uuid(patient_id)?,
        rule_key: row.get(2),
        version: row.get(3),
        settings: serde_json::from_str(settings)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?,
        valid_from: Timestamp(row.get(5)),
        valid_until: row.get::<Option<i64>, _>(6).map(Timestamp),
        author: row.get(7),
        reason: row.get(8),
        created_at: Timestamp(row.get(9)),
        review_by: row.get::<Option<&str>, _>(10).map(parse_date).transpose()?,
        approved_by: row.get(11),
    })
}

const PROTOCOL_VERSION_COLUMNS: &str =
    "id, protocol_id, version, definition, valid_from, author, reason, restored_from, created_at";

fn protocol_version_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ProtocolVersion, StoreError> {
    let definition: &str = row.get(3);
    Ok(ProtocolVersion {
        id: row.get(0),
        protocol_id: row.get(1),
        version: row.get(2),
        definition: serde_json::from_str(definition)
            .map_err(|error| StoreError::Rejected(sqlx::Error::Decode(error.into())))?,
        valid_from: Timestamp(row.get(4)),
        author: row.get(5),
        reason: row.get(6),
        restored_from: row.get(7),
        created_at: Timestamp(row.get(8)),
    })
}

/// The device status columns, in the order [`sqlite_device_status`] reads them.
const DEVICE_STATUS_SELECT: &str =
    "select device_id, patient_id, last_seen_at, status_ts, online, battery_pct, fault
     from device_status";

fn sqlite_device_status(row: &sqlx::sqlite::SqliteRow) -> Result<DeviceStatus, StoreError> {
    Ok(DeviceStatus {
        device_id: parse_device_id(row.get(0))?,
        patient_id: parse_uuid(row.get(1))?,
        last_seen_at: row.get::<Option<i64>, _>(2).map(Timestamp),
        status_ts: Timestamp(row.get(3)),
        online: row.get(4),
        battery_pct: row.get(5),
        fault: row.get(6),
    })
}

fn parse_device_id(text: &str) -> Result<DeviceId, StoreError> {
    DeviceId::parse(text)
        .map_err(|error| StoreError::NotFound(format!("valid device id ({error})")))
}

fn sqlite_alert(row: &sqlx::sqlite::SqliteRow) -> Result<Alert, StoreError> {
    let time =
        |index: usize| -> Option<Timestamp> { row.get::<Option<i64>, _>(index).map(Timestamp) };
    let explanation: String = row.get(7);
    alert_from_parts(
        parse_uuid(row.get::<&str, _>(0))?,
        parse_uuid(row.get::<&str, _>(1))?,
        row.get(2),
        row.get::<&str, _>(3),
        row.get::<&str, _>(4),
        row.get::<&str, _>(5),
        row.get(6),
        serde_json::from_str(&explanation).unwrap_or_default(),
        [
            time(8),
            time(9),
            time(10),
            time(12),
            time(13),
            time(15),
            None,
        ],
        row.get(11),
        row.get(14),
        row.get(16),
        row.get(17),
    )
}

/// Groups rows of (device, patient, metric, value, ts) into one
/// [`SeriesTail`] per series and patient.
fn series_tails(
    rows: Vec<sqlx::sqlite::SqliteRow>,
    per_series: u32,
) -> Result<Vec<SeriesTail>, StoreError> {
    let mut series: BTreeMap<(String, &'static str), Vec<StoredReading>> = BTreeMap::new();
    for row in rows {
        let reading = stored_reading_from_row(row)?;
        series
            .entry((reading.device_id.clone(), reading.metric.code()))
            .or_default()
            .push(reading);
    }
    let mut tails = Vec::new();
    for (_, readings) in series {
        let complete = readings.len() < per_series as usize;
        let oldest = readings
            .iter()
            .map(|reading| reading.ts)
            .min()
            .unwrap_or(Timestamp(i64::MIN));
        let mut by_patient: BTreeMap<Uuid, SeriesTail> = BTreeMap::new();
        for reading in readings {
            by_patient
                .entry(reading.patient_id)
                .or_insert_with(|| SeriesTail {
                    device_id: reading.device_id.clone(),
                    metric: reading.metric,
                    patient_id: reading.patient_id,
                    readings: Vec::new(),
                    complete,
                    oldest,
                })
                .readings
                .push((reading.ts, reading.value));
        }
        tails.extend(by_patient.into_values());
    }
    Ok(tails)
}

fn stored_reading_from_row(row: sqlx::sqlite::SqliteRow) -> Result<StoredReading, StoreError> {
    let patient: &str = row.get(1);
    let metric: &str = row.get(2);
    Ok(StoredReading {
        device_id: row.get(0),
        patient_id: parse_uuid(patient)?,
        metric: Metric::from_code(metric)
            .ok_or_else(|| StoreError::NotFound(format!("metric {metric}")))?,
        value: row.get(3),
        ts: Timestamp(row.get(4)),
    })
}
