-- Response targets per team; see migrations/postgres/0011_team_response_targets.sql.
create table team_response_targets (
    team_id text not null references teams (id),
    priority text not null check (priority in ('informational', 'low', 'medium', 'high')),
    minutes integer not null check (minutes > 0),
    updated_by text not null,
    updated_at integer not null,
    primary key (team_id, priority)
);
