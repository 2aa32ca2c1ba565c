//! `thuiswacht admin user …` and the team scope of `admin token add`: the
//! operator's side of sign-in. Each change is audited with actor kind
//! `system` and the operating-system user who ran the command.

use std::sync::Arc;

use anyhow::Context;
use uuid::Uuid;

use super::password::{generate_password, hash_password};
use super::session::{normalize_username, MAX_USERNAME_CHARS};
use crate::cli::UserCommand;
use crate::domain::Timestamp;
use crate::store::{
    ActorKind, AuditAction, NewAuditRecord, NewUser, Role, Store, TeamScope, TokenScope,
};

/// Returns why `username` (already normalized) cannot be a username, if it cannot.
pub fn username_problem(username: &str) -> Option<String> {
    let length = username.chars().count();
    if !(2..=MAX_USERNAME_CHARS).contains(&length) {
        return Some(format!(
            "a username has 2 to {MAX_USERNAME_CHARS} characters"
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '@'))
    {
        return Some("a username has only letters, digits, '.', '-', '_' and '@'".to_owned());
    }
    None
}

/// Returns the audit row of a change made at the command line.
pub fn command_line_record(action: AuditAction, detail: serde_json::Value) -> NewAuditRecord {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    let mut detail = detail;
    if let Some(object) = detail.as_object_mut() {
        object.insert("os_user".to_owned(), serde_json::json!(os_user));
    }
    NewAuditRecord {
        at: Timestamp::now(),
        actor: "command line".to_owned(),
        actor_kind: ActorKind::System,
        actor_id: None,
        on_behalf_of: None,
        action,
        patient_id: None,
        team_id: None,
        detail,
        source_address: None,
        user_agent: None,
        shown: Vec::new(),
    }
}

/// Returns the team scope a new token of `scope` gets from the flags.
///
/// # Errors
/// An ingest token given teams, a read or observe token given none, or an
/// unknown team.
pub async fn token_team_scope(
    store: &Arc<dyn Store>,
    scope: TokenScope,
    teams: &[String],
    all_teams: bool,
) -> anyhow::Result<Option<TeamScope>> {
    if scope == TokenScope::Ingest {
        anyhow::ensure!(
            teams.is_empty() && !all_teams,
            "ingest tokens reach no patient data; give no --team or --all-teams"
        );
        return Ok(None);
    }
    if all_teams {
        return Ok(Some(TeamScope::All));
    }
    anyhow::ensure!(
        !teams.is_empty(),
        "a {} token needs --team NAME (repeatable) or, for an organisation-wide integration, --all-teams",
        scope.code()
    );
    let known = store.list_teams().await?;
    let mut ids = Vec::with_capacity(teams.len());
    for name in teams {
        let Some(team) = known.iter().find(|team| team.name == name.trim()) else {
            anyhow::bail!(
                "unknown team {name}; known: {}",
                known
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        ids.push(team.id);
    }
    Ok(Some(TeamScope::Teams(ids)))
}

/// Runs `admin user …`; prints what the command line contract says.
///
/// # Errors
/// Invalid input, an unknown team or user, a taken username, store failures.
pub async fn user_command(
    store: &Arc<dyn Store>,
    json: bool,
    command: UserCommand,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            username,
            role,
            team,
            display_name,
        } => {
            let username = normalize_username(&username);
            if let Some(problem) = username_problem(&username) {
                anyhow::bail!("{problem}");
            }
            let role =
                Role::from_code(&role).context("role must be nurse, coordinator or admin")?;
            let teams: Vec<String> = team
                .iter()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .collect();
            match role {
                Role::Admin => anyhow::ensure!(
                    teams.is_empty(),
                    "admins belong to no team: they read patient data only through break-glass"
                ),
                Role::Nurse | Role::Coordinator => anyhow::ensure!(
                    !teams.is_empty(),
                    "a {} needs at least one --team",
                    role.code()
                ),
            }
            let display_name = display_name
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| username.clone());
            let password = generate_password();
            let password_hash = tokio::task::spawn_blocking({
                let password = password.clone();
                move || hash_password(&password)
            })
            .await??;
            let id = store
                .add_user(&NewUser {
                    id: Uuid::new_v4(),
                    username: username.clone(),
                    display_name,
                    role,
                    password_hash,
                    teams: teams.clone(),
                })
                .await?;
            let record = command_line_record(
                AuditAction::UserAdded,
                serde_json::json!({"user_id": id, "username": username, "role": role, "teams": teams}),
            );
            store.append_audit(&[record]).await?;
            if json {
                crate::commands::print_json(
                    &serde_json::json!({"id": id, "username": username, "password": password}),
                )?;
            } else {
                println!("{password}");
            }
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            if json {
                crate::commands::print_json(&users)?;
            } else {
                for user in users {
                    let teams: Vec<&str> = user.teams.iter().map(|t| t.name.as_str()).collect();
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        user.username,
                        user.role.code(),
                        teams.join(","),
                        user.display_name,
                        if user.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        }
                    );
                }
            }
        }
        UserCommand::Disable { username } => {
            let username = normalize_username(&username);
            let user = store.disable_user(&username, Timestamp::now()).await?;
            store
                .append_audit(&[command_line_record(
                    AuditAction::UserDisabled,
                    serde_json::json!({"user_id": user.id, "username": user.username}),
                )])
                .await?;
            if json {
                crate::commands::print_json(&user)?;
            } else {
                println!("{}", user.username);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_plain_and_lowercase() {
        assert_eq!(username_problem("anouk.de-vries_2@assen"), None);
        assert!(username_problem("a").is_some());
        assert!(username_problem(&"a".repeat(65)).is_some());
        assert!(username_problem("anouk de vries").is_some());
        assert!(username_problem("Anouk").is_some(), "normalize first");
        assert!(username_problem("anouk<script>").is_some());
    }
}
