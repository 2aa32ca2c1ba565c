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

use super::{
    alert_from_parts, on_constraint, postgres::mark_new, raw_preview, NewDevice, NewPatient,
    Patient, QuarantineEntry, QuarantineRecord, SeriesTail, Store, StoreError, StoredReading, Team,
    TokenRecord, TokenScope, ALERT_COLUMNS, RAISE_ALERT_SQL,
};
use crate::alert_book::{nts_code, priority_code, Alert, AlertEvent, AlertStatus, NewAlert};
use crate::domain::{DeviceId, Metric, Reading, RejectReason, Timestamp};
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
        Ok(SqliteStore { pool })
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

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
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
        Ok(TokenScope::from_code(scope).map(|scope| TokenRecord {
            id: Uuid::parse_str(id).unwrap_or_default(),
            name: row.get(1),
            scope,
            revoked: row.get(3),
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
        Ok((sqlite_alert(&row)?, created))
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
