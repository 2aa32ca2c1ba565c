-- Review-by dates and four-eyes proposals for personal thresholds in the
-- embedded store; see migrations/postgres/0012_threshold_review.sql.
-- Dates are text YYYY-MM-DD (they sort as dates), instants integer
-- microseconds since the Unix epoch (UTC).

alter table rule_overrides add column review_by text
    check (review_by is null or review_by glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]');
alter table rule_overrides add column approved_by text
    check (approved_by is null or approved_by <> '');

create table threshold_proposals (
    id integer primary key autoincrement,
    patient_id text not null references patients (id),
    rule_key text not null,
    settings text not null,
    valid_until integer,
    review_by text not null
        check (review_by glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    author text not null check (author <> ''),
    reason text not null check (reason <> ''),
    created_at integer not null,
    status text not null default 'pending'
        check (status in ('pending', 'approved', 'rejected', 'withdrawn')),
    decided_by text,
    decided_at integer,
    decision_note text,
    override_id integer references rule_overrides (id),
    check ((status = 'pending') = (decided_by is null)),
    check ((status = 'pending') = (decided_at is null)),
    check (override_id is null or status = 'approved'),
    check (status <> 'approved' or decided_by <> author)
);
create index threshold_proposals_patient on threshold_proposals (patient_id, id);
create index threshold_proposals_pending on threshold_proposals (id) where status = 'pending';
