//! What each subcommand does. Commands that create something print its id or
//! secret alone on stdout (or JSON with `--json`), so scripts can use them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use rand::RngCore;

use crate::api::token_hash;
use crate::app::{shutdown_on_signals, Application};
use crate::cli::{
    AdminCommand, Cli, Command, DeviceCommand, EvaluateArgs, PatientCommand, QuarantineCommand,
    SimulateArgs, TeamCommand, ThresholdCommand, TokenCommand,
};
use crate::domain::{DeviceId, Timestamp};
use crate::profiles::Profiles;
use crate::settings::Settings;
use crate::store::AuditAction;
use crate::store::{NewDevice, NewPatient, NewRuleOverride, TokenScope};

/// Loads the settings of a command line: file < environment < flags.
///
/// # Errors
/// Lists every problem of the configuration.
pub fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let flags = cli.flags.pairs();
    let flags: Vec<(&str, String)> = flags.into_iter().collect();
    Ok(Settings::load(
        cli.config.as_deref(),
        std::env::vars(),
        &flags,
    )?)
}

/// Runs the command line.
///
/// # Errors
/// Returns what failed; `main` prints it and exits non-zero.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Some(Command::Check) => return Ok(check(&cli)),
        Some(Command::Replay(args)) => {
            // Needs no configuration: the engine runs in memory.
            let file = std::fs::File::create(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?;
            let summary = match args.format {
                crate::cli::ReplayFormat::Physionet2019 => {
                    crate::triage::replay::replay_physionet2019(
                        &args.dir,
                        std::io::BufWriter::new(file),
                    )?
                }
            };
            println!("{}", serde_json::to_string(&summary)?);
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Evaluate(args)) => return evaluate(&cli, args),
        Some(Command::News2) => {
            // Needs no configuration: a pure calculation over stdin.
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            crate::triage::news2::run_jsonl(stdin, stdout).context("failed to read or write")?;
            return Ok(ExitCode::SUCCESS);
        }
        None | Some(Command::Serve) => {}
        Some(_) => {}
    }
    let settings = load_settings(&cli)?;
    match cli.command {
        None | Some(Command::Serve) => serve(settings).await,
        Some(Command::Migrate) => {
            crate::store::open(&settings).await?;
            eprintln!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check | Command::News2 | Command::Replay(_) | Command::Evaluate(_)) => {
            unreachable!("handled above")
        }
        Some(Command::Admin { json, command }) => admin(settings, json, command).await,
        Some(Command::Simulate(args)) => simulate(settings, args).await,
    }
}

/// The end of every evaluated simulation, 2026-01-01T00:00:00Z. Only the
/// dates depend on it (the simulator's patterns follow the time of day and
/// the day's index), so a fixed end keeps the output identical run to run.
const EVALUATION_END_SECONDS: i64 = 1_767_225_600;

/// Runs a simulated population through the engine with the protocols of the
/// configured alerts folder and prints the evaluation.
fn evaluate(cli: &Cli, args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.patients > 0, "--patients must be at least 1");
    anyhow::ensure!(
        args.days >= 3,
        "--days must be at least 3 (deteriorations start in the second half)"
    );
    let settings = load_settings(cli)?;
    let protocols = crate::protocols::load_dir(&settings.alerts_dir)?;
    let population = crate::simulate::Population::generate(
        args.seed,
        args.patients,
        args.days,
        crate::domain::Timestamp(EVALUATION_END_SECONDS * 1_000_000 - 1),
    );
    let evaluation = crate::triage::evaluation::evaluate(&population, protocols)?;
    if args.json {
        print_json(&evaluation)?;
    } else {
        println!("{evaluation}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let demo = settings.demo_enabled();
    let demo_settings = settings.clone();
    let app = Application::build(settings).await?;
    let demo_password = if demo {
        Some(crate::app::ensure_demo_user(&app.store(), &demo_settings).await?)
    } else {
        None
    };
    eprintln!("Thuiswacht is running.");
    eprintln!("  web and API:  http://{}/", app.http_addr());
    if let Some(password) = demo_password {
        eprintln!(
            "  demo sign-in: {} / {password}  (kept in {})",
            crate::app::DEMO_USERNAME,
            demo_settings.data_dir.join("demo-login.txt").display()
        );
    }
    eprintln!(
        "  health:       http://{}/healthz   metrics: http://{}/metrics",
        app.http_addr(),
        app.http_addr()
    );
    eprintln!(
        "  MQTT broker:  {}  (topic thuiswacht/v1/devices/{{device_id}}/readings)",
        app.broker_url()
    );
    eprintln!("Stop with Ctrl-C.");
    app.run_until_stopped(shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Validates `devices/` and `alerts/`; prints every problem.
fn check(cli: &Cli) -> ExitCode {
    let mut defaults = Settings::defaults();
    // Directories may come from any layer; read them without requiring the
    // rest of the configuration to be valid.
    if let Ok(settings) = load_settings(cli) {
        defaults = settings;
    } else {
        for (key, value) in cli.flags.pairs() {
            match key {
                "devices_dir" => defaults.devices_dir = value.into(),
                "alerts_dir" => defaults.alerts_dir = value.into(),
                _ => {}
            }
        }
        if let Ok(dir) = std::env::var("THUISWACHT_DEVICES_DIR") {
            defaults.devices_dir = dir.into();
        }
        if let Ok(dir) = std::env::var("THUISWACHT_ALERTS_DIR") {
            defaults.alerts_dir = dir.into();
        }
    }
    let mut ok = true;
    match Profiles::load_dir(&defaults.devices_dir) {
        Ok(profiles) => println!(
            "{}: {} device profiles OK ({})",
            defaults.devices_dir.display(),
            profiles.len(),
            profiles.ids().join(", ")
        ),
        Err(error) => {
            ok = false;
            eprintln!("{error}");
        }
    }
    match crate::protocols::check_dir(&defaults.alerts_dir) {
        Ok(summary) => println!("{}: {summary}", defaults.alerts_dir.display()),
        Err(error) => {
            ok = false;
            eprintln!("{error}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints a value as pretty JSON on stdout (`--json`).
///
/// # Errors
/// Writing to stdout failed.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

async fn admin(settings: Settings, json: bool, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let store = crate::store::open(&settings).await?;
    match command {
        AdminCommand::Team {
            command: TeamCommand::Add { name },
        } => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty(), "a team needs a name");
            let id = store.add_team(name).await?;
            if json {
                print_json(&serde_json::json!({"id": id, "name": name}))?;
            } else {
                println!("{id}");
            }
        }
        AdminCommand::Team {
            command:
                TeamCommand::Target {
                    team,
                    priority,
                    minutes,
                    author,
                },
        } => {
            anyhow::ensure!(
                minutes > 0,
                "a response target is a positive number of minutes"
            );
            anyhow::ensure!(!author.trim().is_empty(), "give the author");
            let Some(found) = store
                .list_teams()
                .await?
                .into_iter()
                .find(|t| t.name == team)
            else {
                anyhow::bail!("team {team} not found");
            };
            let priority = crate::alert_book::priority_from_code(&priority)
                .context("priority must be high, medium, low or informational")?;
            store
                .set_team_response_target(&crate::store::TeamResponseTarget {
                    team_id: found.id,
                    priority,
                    minutes,
                    updated_by: author.trim().to_owned(),
                })
                .await?;
            if json {
                print_json(
                    &serde_json::json!({"team": team, "priority": priority, "minutes": minutes}),
                )?;
            } else {
                println!(
                    "{team}\t{}\t{minutes}",
                    crate::alert_book::priority_code(priority)
                );
            }
        }
        AdminCommand::Team {
            command: TeamCommand::List,
        } => {
            let teams = store.list_teams().await?;
            if json {
                print_json(&teams)?;
            } else {
                for team in teams {
                    println!("{}\t{}", team.id, team.name);
                }
            }
        }
        AdminCommand::Patient {
            command:
                PatientCommand::Add {
                    team,
                    display_name,
                    birth_year,
                    protocol,
                },
        } => {
            anyhow::ensure!(
                !display_name.trim().is_empty(),
                "a patient needs a display name"
            );
            let known = crate::protocols::protocol_ids(&settings.alerts_dir)?;
            for id in &protocol {
                anyhow::ensure!(
                    known.contains(id),
                    "unknown protocol {id}; known: {}",
                    known.join(", ")
                );
            }
            let id = store
                .add_patient(&NewPatient {
                    id: uuid::Uuid::new_v4(),
                    team,
                    display_name: display_name.trim().to_owned(),
                    birth_year,
                    protocols: protocol,
                })
                .await?;
            if json {
                print_json(&serde_json::json!({"id": id}))?;
            } else {
                println!("{id}");
            }
        }
        AdminCommand::Patient {
            command: PatientCommand::List,
        } => {
            let patients = store.list_patients().await?;
            if json {
                print_json(&patients)?;
            } else {
                for patient in patients {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        patient.id,
                        patient.team,
                        patient.display_name,
                        patient
                            .birth_year
                            .map(|y| y.to_string())
                            .unwrap_or_default(),
                        patient.protocols.join(",")
                    );
                }
            }
        }
        AdminCommand::Device {
            command:
                DeviceCommand::Add {
                    device_id,
                    profile,
                    patient,
                },
        } => {
            let device_id = DeviceId::parse(&device_id)
                .with_context(|| format!("invalid device id {device_id:?}"))?;
            anyhow::ensure!(
                !device_id
                    .as_str()
                    .starts_with(crate::store::OBSERVATION_DEVICE_PREFIX),
                "device ids starting with {} are reserved for nurse-entered observations",
                crate::store::OBSERVATION_DEVICE_PREFIX
            );
            let profiles = Profiles::load_dir(&settings.devices_dir)?;
            anyhow::ensure!(
                profiles.get(&profile).is_some(),
                "unknown profile {profile}; known: {}",
                profiles.ids().join(", ")
            );
            store
                .add_device(&NewDevice {
                    device_id: device_id.clone(),
                    profile_id: profile,
                    patient_id: patient,
                })
                .await?;
            if json {
                print_json(&serde_json::json!({"device_id": device_id}))?;
            } else {
                println!("{device_id}");
            }
        }
        AdminCommand::Device {
            command: DeviceCommand::List,
        } => {
            let devices = store.list_devices().await?;
            if json {
                let rows: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        serde_json::json!({"device_id": d.device_id, "profile": d.profile_id,
                            "patient_id": d.patient_id, "team_id": d.team_id, "active": d.active})
                    })
                    .collect();
                print_json(&rows)?;
            } else {
                for device in devices {
                    println!(
                        "{}\t{}\t{}\t{}",
                        device.device_id,
                        device.profile_id,
                        device.patient_id,
                        if device.active { "active" } else { "inactive" }
                    );
                }
            }
        }
        AdminCommand::Token {
            command:
                TokenCommand::Add {
                    name,
                    scope,
                    team,
                    all_teams,
                },
        } => {
            let scope =
                TokenScope::from_code(&scope).context("scope must be ingest, read or observe")?;
            let teams =
                crate::auth::admin::token_team_scope(&store, scope, &team, all_teams).await?;
            let secret = new_token_secret();
            let id = store.add_token(&name, scope, &token_hash(&secret)).await?;
            if let Some(teams) = &teams {
                store.set_token_teams(id, teams).await?;
            }
            store
                .append_audit(&[crate::auth::admin::command_line_record(
                    AuditAction::TokenAdded,
                    serde_json::json!({"token_id": id, "name": name, "scope": scope, "teams": teams}),
                )])
                .await?;
            if json {
                print_json(
                    &serde_json::json!({"id": id, "name": name, "scope": scope, "teams": teams, "token": secret}),
                )?;
            } else {
                println!("{secret}");
            }
        }
        AdminCommand::User { command } => {
            crate::auth::admin::user_command(&store, json, command).await?;
        }
        AdminCommand::Threshold {
            command:
                ThresholdCommand::Set {
                    patient,
                    rule,
                    settings: rule_settings,
                    from,
                    until,
                    author,
                    reason,
                },
        } => {
            let rule_settings: crate::protocols::RuleSettings =
                serde_json::from_str(&rule_settings)
                    .with_context(|| format!("invalid settings {rule_settings}"))?;
            anyhow::ensure!(!author.trim().is_empty(), "give the author");
            anyhow::ensure!(!reason.trim().is_empty(), "give a reason");
            let time = |text: Option<String>, what: &str| -> anyhow::Result<Option<Timestamp>> {
                text.map(|text| {
                    Timestamp::parse_rfc3339(&text)
                        .with_context(|| format!("{what} must be an RFC 3339 time, not {text}"))
                })
                .transpose()
            };
            let valid_from = time(from, "--from")?.unwrap_or_else(Timestamp::now);
            let valid_until = time(until, "--until")?;
            anyhow::ensure!(
                valid_until.is_none_or(|until| until > valid_from),
                "--until must be after --from"
            );
            let Some(record) = store.patient(patient).await? else {
                anyhow::bail!("patient {patient} not found");
            };
            let protocols = crate::protocols::load_dir(&settings.alerts_dir)?;
            if let Err(problems) = crate::protocols::personal_rule(
                &protocols,
                &record.protocols,
                &rule,
                &rule_settings,
            ) {
                anyhow::bail!(
                    "invalid personal settings:\n  - {}",
                    problems.join("\n  - ")
                );
            }
            let version = store
                .add_rule_override(&NewRuleOverride {
                    patient_id: patient,
                    rule_key: rule,
                    settings: rule_settings,
                    valid_from,
                    valid_until,
                    author: author.trim().to_owned(),
                    reason: reason.trim().to_owned(),
                    review_by: None,
                    approved_by: None,
                })
                .await?;
            if json {
                print_json(&version)?;
            } else {
                println!("{} v{}", version.rule_key, version.version);
            }
        }
        AdminCommand::Threshold {
            command: ThresholdCommand::List { patient },
        } => {
            let versions = store.patient_rule_overrides(patient).await?;
            if json {
                print_json(&versions)?;
            } else {
                for version in versions {
                    println!(
                        "{}\tv{}\t{}\t{}–{}\t{}\t{}",
                        version.rule_key,
                        version.version,
                        serde_json::to_string(&version.settings)?,
                        version.valid_from,
                        version
                            .valid_until
                            .map(|until| until.to_string())
                            .unwrap_or_default(),
                        version.author,
                        version.reason
                    );
                }
            }
        }
        AdminCommand::Quarantine {
            command: QuarantineCommand::List { limit },
        } => {
            let entries = store.list_quarantine(limit.clamp(1, 10_000)).await?;
            if json {
                print_json(&entries)?;
            } else {
                for entry in entries {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{} bytes",
                        entry.received_at,
                        entry.reason,
                        entry.device_id.as_deref().unwrap_or("-"),
                        entry.source,
                        entry.detail,
                        entry.raw_size
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Returns a new bearer token secret: `tw_` and 32 random bytes in hex.
pub fn new_token_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("tw_{}", hex::encode(bytes))
}

/// Returns the URL of the broker the settings point at (the embedded one by default).
pub fn broker_url(settings: &Settings) -> String {
    settings
        .mqtt_url
        .clone()
        .unwrap_or_else(|| format!("mqtt://{}", settings.embedded_broker_addr))
}

async fn simulate(settings: Settings, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    use crate::simulate::{publish, register, write_truth, Population, PublishOptions};
    anyhow::ensure!(args.patients > 0, "--patients must be at least 1");
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be positive");
    }
    let until = args
        .until
        .as_deref()
        .map(|text| {
            crate::domain::Timestamp::parse_rfc3339(text)
                .with_context(|| format!("--until {text:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    let population = Population::generate(
        args.seed,
        args.patients,
        args.days,
        until.unwrap_or_else(crate::domain::Timestamp::now),
    );
    let truth = args
        .truth
        .unwrap_or_else(|| settings.data_dir.join("simulation-truth.jsonl"));
    write_truth(&population, &truth)
        .with_context(|| format!("cannot write {}", truth.display()))?;
    eprintln!(
        "{} patients, {} devices, {} injected deteriorations (written to {})",
        population.patients.len(),
        population
            .patients
            .iter()
            .map(|p| p.devices.len())
            .sum::<usize>(),
        population.deteriorations.len(),
        truth.display()
    );
    if args.register {
        let store = crate::store::open(&settings).await?;
        register(&store, &population)
            .await
            .context("failed to register the population")?;
        eprintln!("registered teams, patients and devices");
    }
    let options = PublishOptions {
        broker_url: broker_url(&settings),
        topic_root: settings.mqtt_topic_root.clone(),
        client_id: format!("thuiswacht-simulator-{}", args.seed),
        rate: args.rate,
        follow: args.follow,
        until,
        progress: true,
    };
    let report = publish(&population, &options, shutdown_on_signals()).await?;
    println!(
        "{}",
        serde_json::json!({"messages": report.messages, "readings": report.readings,
            "faulty_readings": report.faulty_readings, "statuses": report.statuses,
            "seconds": report.seconds})
    );
    Ok(ExitCode::SUCCESS)
}
