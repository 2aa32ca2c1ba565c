//! `thuiswacht-load`: the end-to-end load benchmark. Starts the release
//! `thuiswacht` binary against the local Mosquitto and PostgreSQL (or in its
//! embedded default), publishes readings over MQTT, and prints sustained
//! readings/s from publish to commit, p50/p99 publish→commit latency and the
//! service's peak RSS. See `scripts/load`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = thuiswacht::loadgen::LoadArgs::parse();
    thuiswacht::telemetry::init_tracing("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(thuiswacht::loadgen::run(args)) {
        Ok(report) => {
            println!("{}", report.summary());
            println!(
                "{}",
                serde_json::to_string(&report).expect("report serializes")
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
