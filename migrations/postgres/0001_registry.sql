-- Registry: who is monitored, by which team, with which devices.
-- Patients are pseudonymous (display name and birth year, never a national id):
-- identification stays in the care organisation's own record system.

create table teams (
    id uuid primary key,
    name text not null unique,
    created_at timestamptz not null default now()
);

create table patients (
    id uuid primary key,
    team_id uuid not null references teams (id),
    display_name text not null,
    birth_year integer check (birth_year between 1880 and 2100),
    created_at timestamptz not null default now()
);
create index patients_team on patients (team_id);

-- A patient follows one or more protocols from alerts/ (by file stem).
create table patient_protocols (
    patient_id uuid not null references patients (id) on delete cascade,
    protocol_id text not null,
    primary key (patient_id, protocol_id)
);

-- A device is linked to one patient at a time. active_until closes the link
-- when a device is returned; readings keep the patient they were stored under.
create table devices (
    device_id text primary key,
    profile_id text not null,
    patient_id uuid not null references patients (id),
    active_from timestamptz not null default now(),
    active_until timestamptz,
    created_at timestamptz not null default now()
);
create index devices_patient on devices (patient_id);

-- Bearer tokens for gateways and integrations. Only the SHA-256 of the secret
-- is stored: a leaked table does not leak usable tokens.
create table api_tokens (
    id uuid primary key,
    name text not null,
    scope text not null check (scope in ('ingest', 'read')),
    secret_sha256 bytea not null unique,
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);
