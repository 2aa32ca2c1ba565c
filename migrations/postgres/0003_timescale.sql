-- TimescaleDB, when the server has it: readings become a hypertable with
-- compression and a retention policy. On plain PostgreSQL this migration does
-- nothing and every query works on the ordinary table above.
--
-- The extension is used when it is already created in this database, or when
-- it is available and preloaded (CREATE EXTENSION timescaledb fails inside a
-- transaction without shared_preload_libraries, so we do not try then).
do $$
begin
    if exists (select 1 from pg_extension where extname = 'timescaledb')
       or (exists (select 1 from pg_available_extensions where name = 'timescaledb')
           and current_setting('shared_preload_libraries', true) like '%timescaledb%')
    then
        create extension if not exists timescaledb;
        -- Week-long chunks: a year of 10,000 patients' spot checks is ~36M rows,
        -- so a chunk is ~700k rows and its indexes stay in memory.
        perform create_hypertable('readings', 'ts',
                                  chunk_time_interval => interval '7 days',
                                  migrate_data => true);
        -- Segment by the non-time columns of the unique key, so the key can
        -- still be checked on compressed chunks (late uploads land there).
        execute 'alter table readings set (timescaledb.compress, '
             || 'timescaledb.compress_segmentby = ''device_id, metric'', '
             || 'timescaledb.compress_orderby = ''ts desc'')';
        perform add_compression_policy('readings', interval '30 days');
        -- Five years, the usual Dutch retention floor for medical records is
        -- longer (20 years) but applies to the record, not raw telemetry;
        -- change with remove_retention_policy/add_retention_policy.
        perform add_retention_policy('readings', interval '5 years');
    end if;
end
$$;
