-- The latest status of each device for the embedded store; see
-- migrations/postgres/0006_device_status.sql.
create table device_status (
    device_id text primary key references devices (device_id),
    patient_id text not null,
    last_seen_at integer,
    status_ts integer not null,
    online integer not null,
    battery_pct real check (battery_pct between 0 and 100),
    fault text,
    updated_at integer not null
);
