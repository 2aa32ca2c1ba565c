//! Tracing subscriber set-up and the process's metrics.
//!
//! [`events`] holds one function per notable event; each logs and counts, so
//! what an operator reads in the log and what `/metrics` shows never drift apart.

pub mod events;

pub use events::Metrics;

/// Installs the global tracing subscriber. The filter comes from
/// `THUISWACHT_LOG` (or `RUST_LOG`), default `info`; output goes to stderr so
/// that commands printing ids on stdout stay scriptable.
pub fn init_tracing(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("THUISWACHT_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default_filter.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
