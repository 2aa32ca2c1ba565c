-- Response targets per team and priority, set by coordinators; they win
-- over the protocol's defaults (alerts/*.toml) for the team's patients.
create table team_response_targets (
    team_id uuid not null references teams (id),
    priority text not null check (priority in ('informational', 'low', 'medium', 'high')),
    minutes integer not null check (minutes > 0),
    updated_by text not null,
    updated_at timestamptz not null default now(),
    primary key (team_id, priority)
);
