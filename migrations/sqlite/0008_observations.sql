-- Nurse-entered observations for the embedded store; see
-- migrations/postgres/0008_observations.sql.
create table observations (
    id text primary key,
    patient_id text not null references patients (id),
    ts integer not null,
    author text not null,
    note text,
    entered text not null,
    recorded_at integer not null
);
create index observations_patient on observations (patient_id, ts desc);

-- SQLite cannot change a check constraint: rebuild api_tokens with the new scope.
create table api_tokens_new (
    id text primary key,
    name text not null,
    scope text not null check (scope in ('ingest', 'read', 'observe')),
    secret_sha256 blob not null unique,
    created_at integer not null,
    revoked_at integer
);
insert into api_tokens_new select id, name, scope, secret_sha256, created_at, revoked_at from api_tokens;
drop table api_tokens;
alter table api_tokens_new rename to api_tokens;
