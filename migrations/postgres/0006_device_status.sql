-- The latest status of each device, from `{root}/devices/{device_id}/status`
-- (or `POST /api/v1/devices/{id}/status`): battery, fault code, and when the
-- device or its gateway was last heard from. One row per device, replaced by
-- newer statuses; the missed-measurement sweep reads `last_seen_at` to tell
-- a silent device from a patient who did not measure.
--
-- `status_ts` is the device's own time of the newest status and decides
-- which status is newest, so a redelivered or late-uploaded older status
-- never overwrites a newer one. `last_seen_at` is the arrival of the latest
-- heartbeat (any status but a gateway's last will, `online = false`); it is
-- null when the device has only ever sent a last will.
create table device_status (
    device_id text primary key references devices (device_id),
    -- The device's patient when the status arrived, for the technical alerts.
    patient_id uuid not null,
    last_seen_at timestamptz,
    status_ts timestamptz not null,
    online boolean not null,
    battery_pct double precision check (battery_pct between 0 and 100),
    -- A fault code (at most 64 printable characters); null: no fault.
    fault text,
    updated_at timestamptz not null
);
