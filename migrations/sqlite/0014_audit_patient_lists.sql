-- A read that showed several patients at once (a worklist page) is one
-- audit row naming them all: patient_ids and team_ids are JSON arrays of
-- the same length, a patient's team in the same place. patient_id and
-- team_id stay for the reads and changes of one patient.
alter table audit_log add column patient_ids text;
alter table audit_log add column team_ids text;

-- One row per patient, whichever way it was written.
create view audit_log_patients as
    select id, at, actor, actor_kind, actor_id, on_behalf_of, action,
           patient_id, team_id, detail, source_address, user_agent
    from audit_log
    where patient_ids is null
    union all
    select a.id, a.at, a.actor, a.actor_kind, a.actor_id, a.on_behalf_of, a.action,
           p.value, t.value, a.detail, a.source_address, a.user_agent
    from audit_log a, json_each(a.patient_ids) p, json_each(a.team_ids) t
    where a.patient_ids is not null and t.key = p.key;
