-- Personal thresholds for the embedded store; see migrations/postgres/0007_rule_overrides.sql.
create table rule_overrides (
    id integer primary key autoincrement,
    patient_id text not null references patients (id),
    rule_key text not null,
    version integer not null check (version > 0),
    settings text not null,
    valid_from integer not null,
    valid_until integer,
    author text not null check (author <> ''),
    reason text not null check (reason <> ''),
    created_at integer not null,
    unique (patient_id, rule_key, version),
    check (valid_until is null or valid_until > valid_from)
);
