-- The alert book for the embedded store; see migrations/postgres/0004_alerts.sql.
create table alerts (
    id text primary key,
    patient_id text not null references patients (id),
    rule_key text not null,
    status text not null check (status in ('open', 'claimed', 'snoozed', 'escalated', 'resolved')),
    priority text not null check (priority in ('informational', 'low', 'medium', 'high')),
    nts text not null check (nts in ('U1', 'U2', 'U3', 'U4', 'U5')),
    score real not null,
    explanation text not null,
    opened_at integer not null,
    updated_at integer not null,
    respond_by integer not null,
    claimed_by text,
    claimed_at integer,
    snoozed_until integer,
    escalated_to text,
    resolved_at integer,
    resolved_by text,
    outcome text
);
create unique index alerts_one_open_per_patient_rule on alerts (patient_id, rule_key)
    where status <> 'resolved';
create index alerts_patient on alerts (patient_id, opened_at desc);

create table alert_events (
    id integer primary key autoincrement,
    alert_id text not null references alerts (id),
    at integer not null,
    actor text not null,
    kind text not null,
    detail text not null
);
create index alert_events_alert on alert_events (alert_id, id);
