-- Personal thresholds with a review-by date and four-eyes approval.
--
-- Every personal threshold gets a date by which a coordinator should look
-- at it again; the worklist reminds the team once that date is reached.
-- A change that makes an alert more likely, earlier or more urgent
-- (stricter) applies at once. A change that makes alerts less likely
-- (looser) is first stored here as a proposal: the triage engine reads
-- rule_overrides only, so a proposal changes nothing until a second
-- coordinator approves it. Approval writes the rule_overrides version
-- (valid from the moment of approval) and links it here; a rejection or a
-- withdrawal only closes the proposal.

alter table rule_overrides
    -- The date (in the team's time zone) by which the version should be
    -- looked at again; null for versions made before this migration and
    -- by the admin command.
    add column review_by date,
    -- The coordinator who approved a looser version (four eyes); null for
    -- a version that applied at once.
    add column approved_by text check (approved_by is null or approved_by <> '');

create table threshold_proposals (
    id bigint generated always as identity primary key,
    patient_id uuid not null references patients (id),
    -- "{protocol id}/{rule id}", as rule_overrides.rule_key.
    rule_key text not null,
    -- The settings the version will have, as rule_overrides.settings.
    settings jsonb not null,
    valid_until timestamptz,
    review_by date not null,
    author text not null check (author <> ''),
    reason text not null check (reason <> ''),
    created_at timestamptz not null default now(),
    status text not null default 'pending'
        check (status in ('pending', 'approved', 'rejected', 'withdrawn')),
    decided_by text,
    decided_at timestamptz,
    decision_note text,
    -- The version made on approval.
    override_id bigint references rule_overrides (id),
    check ((status = 'pending') = (decided_by is null)),
    check ((status = 'pending') = (decided_at is null)),
    check (override_id is null or status = 'approved'),
    -- Four eyes: nobody approves their own proposal.
    check (status <> 'approved' or decided_by <> author)
);
create index threshold_proposals_patient on threshold_proposals (patient_id, id);
create index threshold_proposals_pending on threshold_proposals (id) where status = 'pending';
