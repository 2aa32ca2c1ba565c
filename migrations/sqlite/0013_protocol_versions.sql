-- Protocol versions; see migrations/postgres/0013_protocol_versions.sql.
create table protocol_versions (
    id integer primary key autoincrement,
    protocol_id text not null check (protocol_id <> ''),
    version integer not null check (version > 0),
    definition text not null,
    valid_from integer not null,
    author text not null check (author <> ''),
    reason text not null check (reason <> ''),
    restored_from integer check (restored_from >= 0),
    created_at integer not null,
    unique (protocol_id, version)
);
