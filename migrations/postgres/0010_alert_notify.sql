-- Every alert event (raised, updated, claimed, resolved, …) is announced on
-- the channel thuiswacht_alert_changes, so that every Thuiswacht instance can
-- push the change to the browsers connected to it (the worklist's SSE
-- stream), whichever instance made it. The payload is small: the alert, its
-- patient and what happened; listeners read the rest.
create function notify_alert_change() returns trigger language plpgsql as $$
begin
    perform pg_notify(
        'thuiswacht_alert_changes',
        json_build_object(
            'alert_id', new.alert_id,
            'patient_id', (select patient_id from alerts where id = new.alert_id),
            'kind', new.kind
        )::text
    );
    return null;
end
$$;

create trigger alert_events_notify after insert on alert_events
    for each row execute function notify_alert_change();
