-- Registry for the embedded SQLite store. Same tables and names as
-- migrations/postgres; uuids are stored as text, instants as integer
-- microseconds since the Unix epoch (UTC).

create table teams (
    id text primary key,
    name text not null unique,
    created_at integer not null
);

create table patients (
    id text primary key,
    team_id text not null references teams (id),
    display_name text not null,
    birth_year integer check (birth_year between 1880 and 2100),
    created_at integer not null
);
create index patients_team on patients (team_id);

create table patient_protocols (
    patient_id text not null references patients (id) on delete cascade,
    protocol_id text not null,
    primary key (patient_id, protocol_id)
);

create table devices (
    device_id text primary key,
    profile_id text not null,
    patient_id text not null references patients (id),
    active_from integer not null,
    active_until integer,
    created_at integer not null
);
create index devices_patient on devices (patient_id);

create table api_tokens (
    id text primary key,
    name text not null,
    scope text not null check (scope in ('ingest', 'read')),
    secret_sha256 blob not null unique,
    created_at integer not null,
    revoked_at integer
);
