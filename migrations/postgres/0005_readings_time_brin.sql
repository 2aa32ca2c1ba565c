-- Triage rebuilds its state at start from the last days of readings of all
-- patients (`where ts >= $1`). A BRIN index on the event time answers that
-- without scanning years of history, and costs next to nothing on insert
-- because readings arrive roughly in time order (late uploads only widen a
-- block range a little). With TimescaleDB, chunk exclusion does the same.
create index readings_ts_brin on readings using brin (ts);
