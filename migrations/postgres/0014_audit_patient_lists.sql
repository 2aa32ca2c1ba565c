-- A read that showed several patients at once (a worklist page) is one
-- audit row naming them all, with each patient's team in the same place of
-- team_ids, instead of one row per patient: a nurse's worklist of a hundred
-- patients, reloaded all day, would otherwise write a hundred rows a view.
-- patient_id and team_id stay for the reads and changes of one patient.
alter table audit_log
    add column patient_ids uuid[],
    add column team_ids uuid[],
    add constraint audit_log_shown_aligned check (
        patient_ids is null
        or (team_ids is not null and cardinality(team_ids) = cardinality(patient_ids)));

-- The access overview of one patient finds the lists that name them.
-- Without fastupdate: a pending list would be merged by whichever insert
-- finds it full, stalling that read for hundreds of milliseconds.
create index audit_log_patient_ids on audit_log using gin (patient_ids)
    with (fastupdate = off)
    where patient_ids is not null;

-- One row per patient, whichever way it was written: what an operator or
-- an auditor queries.
create view audit_log_patients as
    select id, at, actor, actor_kind, actor_id, on_behalf_of, action,
           patient_id, team_id, detail, source_address, user_agent
    from audit_log
    where patient_ids is null
    union all
    select a.id, a.at, a.actor, a.actor_kind, a.actor_id, a.on_behalf_of, a.action,
           shown.patient_id, shown.team_id, a.detail, a.source_address, a.user_agent
    from audit_log a
    cross join lateral unnest(a.patient_ids, a.team_ids) as shown (patient_id, team_id)
    where a.patient_ids is not null;
