-- Nurse-entered observations (respiration rate, ACVPU, air or oxygen, and any
-- vital sign measured by hand). The values themselves are stored as readings
-- under the reserved device id "observation:{patient id}" so that triage,
-- charts and the start-up rebuild treat them like any other reading; this
-- table keeps who entered them, when, and the note.
create table observations (
    id uuid primary key,
    patient_id uuid not null references patients (id),
    ts timestamptz not null,
    author text not null,
    note text,
    entered jsonb not null,
    recorded_at timestamptz not null
);
create index observations_patient on observations (patient_id, ts desc);

-- Tokens of scope "observe" may post observations (a care record system).
alter table api_tokens drop constraint api_tokens_scope_check;
alter table api_tokens add constraint api_tokens_scope_check
    check (scope in ('ingest', 'read', 'observe'));
