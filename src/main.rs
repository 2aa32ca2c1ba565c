//! The `thuiswacht` binary: parse the command line, start tracing, dispatch.

use clap::Parser;
use thuiswacht::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let quiet = !matches!(cli.command, None | Some(Command::Serve));
    thuiswacht::telemetry::init_tracing(if quiet { "warn" } else { "info,rumqttd=off" });
    match runtime.block_on(thuiswacht::commands::dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
