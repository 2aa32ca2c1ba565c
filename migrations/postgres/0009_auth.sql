-- Users, sessions, the audit trail (NEN 7513) and break-glass access.
--
-- Who may see a patient follows from teams: a nurse or coordinator belongs
-- to one or more teams (user_teams) and sees their patients only. Admins
-- belong to no team; they read a patient only through a time-limited
-- break_glass grant with a reason. Integrations use api_tokens, now scoped
-- to teams as well (api_token_teams, or all_teams for an organisation-wide
-- integration, which an operator must ask for explicitly).

create table users (
    id uuid primary key,
    -- Lowercase, so that "Anouk" and "anouk" cannot be two accounts.
    username text not null unique check (username = lower(username) and username <> ''),
    display_name text not null,
    role text not null check (role in ('nurse', 'coordinator', 'admin')),
    -- PHC string of an argon2id hash (parameters and salt included), never the password.
    password_hash text not null,
    created_at timestamptz not null default now(),
    -- A disabled user keeps the row (the audit trail refers to it) but cannot sign in.
    disabled_at timestamptz
);

create table user_teams (
    user_id uuid not null references users (id) on delete cascade,
    team_id uuid not null references teams (id),
    primary key (user_id, team_id)
);
create index user_teams_team on user_teams (team_id);

-- Server-side sessions. The cookie carries a random secret; only its SHA-256
-- is stored, so a copy of this table cannot be replayed as cookies. The CSRF
-- token is not a credential on its own (it is useless without the cookie)
-- and is kept as issued, to be compared with what forms and scripts send.
create table sessions (
    id uuid primary key,
    secret_sha256 bytea not null unique,
    user_id uuid not null references users (id),
    csrf_token text not null,
    created_at timestamptz not null,
    -- The absolute end; the idle timeout is applied to last_seen_at when
    -- the session is used, so changing the setting takes effect at once.
    expires_at timestamptz not null,
    last_seen_at timestamptz not null,
    revoked_at timestamptz
);
create index sessions_user on sessions (user_id);
create index sessions_expires on sessions (expires_at);

-- The audit trail: who did what with whose data, when and from where.
-- Append-only: the triggers below refuse UPDATE, DELETE and TRUNCATE for
-- every role that does not first disable them (which needs the table
-- owner; run the service as a role that does not own its tables to keep
-- even the application itself from doing so).
-- No foreign keys: a row must outlive what it names, and an attempt to
-- reach a patient id that does not exist is worth recording too.
create table audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null,
    -- Username, token name, "system" or, for a failed sign-in, the name typed.
    actor text not null,
    actor_kind text not null check (actor_kind in ('user', 'token', 'system', 'anonymous')),
    actor_id uuid,
    -- The person an integration acts for, as it said (X-On-Behalf-Of).
    on_behalf_of text,
    action text not null,
    patient_id uuid,
    team_id uuid,
    detail jsonb not null default '{}',
    source_address text,
    user_agent text
);
-- The access overview of one patient, newest first.
create index audit_log_patient on audit_log (patient_id, id desc) where patient_id is not null;
create index audit_log_at on audit_log (at);

create function audit_log_is_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'audit_log is append-only: % refused', tg_op
        using errcode = 'insufficient_privilege';
end;
$$;

create trigger audit_log_no_update_or_delete
    before update or delete on audit_log
    for each row execute function audit_log_is_append_only();

create trigger audit_log_no_truncate
    before truncate on audit_log
    for each statement execute function audit_log_is_append_only();

-- Break-glass: an admin's time-limited access to one patient, with a reason.
-- The grant is written in the same transaction as its audit row.
create table break_glass (
    id uuid primary key,
    user_id uuid not null references users (id),
    patient_id uuid not null references patients (id),
    reason text not null check (length(btrim(reason)) > 0),
    at timestamptz not null,
    expires_at timestamptz not null,
    check (expires_at > at)
);
create index break_glass_user_patient on break_glass (user_id, patient_id, expires_at);

-- Tokens of scope read and observe see the patients of their teams only.
-- A token without teams and without all_teams sees no patient: tokens made
-- before this migration must be replaced by one made with --team or
-- --all-teams (failing closed is the safer default for patient data).
alter table api_tokens add column all_teams boolean not null default false;

create table api_token_teams (
    token_id uuid not null references api_tokens (id) on delete cascade,
    team_id uuid not null references teams (id),
    primary key (token_id, team_id)
);
