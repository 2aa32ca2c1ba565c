-- The alert book: findings of the triage engine become alerts that nurses
-- claim, snooze, escalate and resolve. Every transition is an alert_events row.

create table alerts (
    id uuid primary key,
    patient_id uuid not null references patients (id),
    -- "{protocol id}/{rule id}": alerts are deduplicated per patient and rule.
    rule_key text not null,
    status text not null check (status in ('open', 'claimed', 'snoozed', 'escalated', 'resolved')),
    priority text not null check (priority in ('informational', 'low', 'medium', 'high')),
    -- Suggested NTS level (U1–U5); the nurse decides.
    nts text not null check (nts in ('U1', 'U2', 'U3', 'U4', 'U5')),
    score double precision not null,
    explanation jsonb not null,
    opened_at timestamptz not null,
    updated_at timestamptz not null,
    -- When the alert should be claimed by (opened_at + the response target).
    respond_by timestamptz not null,
    claimed_by text,
    claimed_at timestamptz,
    snoozed_until timestamptz,
    escalated_to text,
    resolved_at timestamptz,
    resolved_by text,
    outcome text
);

-- At most one unresolved alert per patient and rule. The index, not the
-- application, enforces it, so several Thuiswacht instances writing at once
-- stay consistent: new evidence updates the open alert (ON CONFLICT).
create unique index alerts_one_open_per_patient_rule on alerts (patient_id, rule_key)
    where status <> 'resolved';
create index alerts_unresolved on alerts (priority, score desc) where status <> 'resolved';
create index alerts_patient on alerts (patient_id, opened_at desc);

create table alert_events (
    id bigint generated always as identity primary key,
    alert_id uuid not null references alerts (id),
    at timestamptz not null,
    -- A user name, or "system" for the triage engine and automatic escalation.
    actor text not null,
    kind text not null,
    detail jsonb not null
);
create index alert_events_alert on alert_events (alert_id, id);
