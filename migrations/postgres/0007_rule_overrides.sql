-- Personal thresholds: a patient's own settings for one rule of one of their
-- protocols, versioned. Each change is a new row (a new version) with its
-- author and reason; nothing is updated in place, so the history of who set
-- what, when and why stays. The newest version whose validity contains a
-- reading's event time applies to that reading; an empty settings object
-- means "as the protocol says" (a restore).
create table rule_overrides (
    id bigint generated always as identity primary key,
    patient_id uuid not null references patients (id),
    -- "{protocol id}/{rule id}", as alerts.rule_key.
    rule_key text not null,
    version integer not null check (version > 0),
    settings jsonb not null,
    valid_from timestamptz not null,
    -- Set for a temporary threshold, such as one a nurse accepted when
    -- resolving an alert; the protocol (or an earlier version) applies again after it.
    valid_until timestamptz,
    author text not null check (author <> ''),
    reason text not null check (reason <> ''),
    created_at timestamptz not null default now(),
    unique (patient_id, rule_key, version),
    check (valid_until is null or valid_until > valid_from)
);
