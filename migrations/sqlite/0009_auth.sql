-- Users, sessions, the audit trail and break-glass for the embedded store;
-- see migrations/postgres/0009_auth.sql for the reasoning. Uuids are text,
-- instants integer microseconds since the Unix epoch (UTC).

create table users (
    id text primary key,
    username text not null unique check (username = lower(username) and username <> ''),
    display_name text not null,
    role text not null check (role in ('nurse', 'coordinator', 'admin')),
    password_hash text not null,
    created_at integer not null,
    disabled_at integer
);

create table user_teams (
    user_id text not null references users (id) on delete cascade,
    team_id text not null references teams (id),
    primary key (user_id, team_id)
);
create index user_teams_team on user_teams (team_id);

create table sessions (
    id text primary key,
    secret_sha256 blob not null unique,
    user_id text not null references users (id),
    csrf_token text not null,
    created_at integer not null,
    expires_at integer not null,
    last_seen_at integer not null,
    revoked_at integer
);
create index sessions_user on sessions (user_id);
create index sessions_expires on sessions (expires_at);

create table audit_log (
    id integer primary key autoincrement,
    at integer not null,
    actor text not null,
    actor_kind text not null check (actor_kind in ('user', 'token', 'system', 'anonymous')),
    actor_id text,
    on_behalf_of text,
    action text not null,
    patient_id text,
    team_id text,
    detail text not null default '{}',
    source_address text,
    user_agent text
);
create index audit_log_patient on audit_log (patient_id, id desc) where patient_id is not null;
create index audit_log_at on audit_log (at);

-- SQLite has no TRUNCATE; "delete from audit_log" without a where clause is
-- a DELETE and is refused like any other.
create trigger audit_log_no_update
    before update on audit_log
    begin
        select raise(abort, 'audit_log is append-only: UPDATE refused');
    end;

create trigger audit_log_no_delete
    before delete on audit_log
    begin
        select raise(abort, 'audit_log is append-only: DELETE refused');
    end;

create table break_glass (
    id text primary key,
    user_id text not null references users (id),
    patient_id text not null references patients (id),
    reason text not null check (length(trim(reason)) > 0),
    at integer not null,
    expires_at integer not null,
    check (expires_at > at)
);
create index break_glass_user_patient on break_glass (user_id, patient_id, expires_at);

alter table api_tokens add column all_teams integer not null default 0;

create table api_token_teams (
    token_id text not null references api_tokens (id) on delete cascade,
    team_id text not null references teams (id),
    primary key (token_id, team_id)
);
