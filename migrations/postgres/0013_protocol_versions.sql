-- Protocol versions saved by coordinators. The files in alerts/ are the
-- defaults (version 0); each saved change is a new row, never an update, so
-- who changed what, when and why stays. A version applies to readings whose
-- event time is at or after its valid_from (the moment it was saved);
-- earlier readings keep the version that was in force for them.
create table protocol_versions (
    id bigint generated always as identity primary key,
    protocol_id text not null check (protocol_id <> ''),
    version integer not null check (version > 0),
    -- The whole protocol as JSON (the shape of protocols::Protocol).
    definition jsonb not null,
    valid_from timestamptz not null,
    author text not null check (author <> ''),
    reason text not null check (reason <> ''),
    -- Set when the version restores an earlier one (0: the file).
    restored_from integer check (restored_from >= 0),
    created_at timestamptz not null default now(),
    unique (protocol_id, version)
);
