//! `thuiswacht-load`: the load benchmarks. Without a subcommand it starts the
//! release `thuiswacht` binary against the local Mosquitto and PostgreSQL (or
//! in its embedded default), publishes readings over MQTT, and prints
//! sustained readings/s from publish to commit, p50/p99 publish→commit
//! latency and the service's peak RSS. `rebuild` times the start-up rebuild
//! of triage state on a large stored history; `memory` measures triage state
//! per monitored patient; `worklist` measures the worklist API and page under
//! load on a year of data and MQTT publish → SSE alert latency. Each prints a summary and a JSON line. See
//! `scripts/load`.

use clap::Parser;
use thuiswacht::loadgen::{self, LoadCli, LoadCommand};

fn main() -> std::process::ExitCode {
    let cli = LoadCli::parse();
    // The bulk load and its vacuum are slow statements on purpose.
    thuiswacht::telemetry::init_tracing("warn,sqlx::query=error");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = match cli.command {
        None => runtime
            .block_on(loadgen::run(cli.run))
            .map(|report| (report.summary(), serde_json::to_string(&report))),
        Some(LoadCommand::Rebuild(args)) => runtime
            .block_on(loadgen::rebuild::run(args))
            .map(|report| (report.summary(), serde_json::to_string(&report))),
        Some(LoadCommand::Worklist(args)) => runtime
            .block_on(loadgen::worklist::run(args))
            .map(|report| (report.summary(), serde_json::to_string(&report))),
        Some(LoadCommand::Memory(args)) => loadgen::memory::run(&args)
            .map(|report| (report.summary(), serde_json::to_string(&report))),
    };
    match report {
        Ok((summary, json)) => {
            println!("{summary}");
            println!("{}", json.expect("report serializes"));
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
