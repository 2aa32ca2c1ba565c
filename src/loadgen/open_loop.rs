//! An open-loop HTTP request generator: requests leave at a fixed rate
//! whatever the service does, and each latency is measured from the moment
//! the request was *due*, not from when it was sent. A service that stalls
//! therefore shows its stall in every request that should have left
//! meanwhile (no coordinated omission, as wrk2 measures).
//!
//! In: a client that carries the session cookie, the base URL, the paths
//! (taken in turn), the total rate and duration. Out: a [`PathReport`] per
//! path. The run is bounded: `rate × seconds` requests, each with a
//! deadline ten seconds after its due time, at most [`MAX_IN_FLIGHT`] at
//! once (a request that waits for a slot keeps its due time, so the wait
//! counts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

/// Requests in flight at most. At 200 requests/s and a 10 s timeout this
/// is never the limit unless the service stops answering, and then it keeps
/// the load generator from opening thousands of connections.
pub const MAX_IN_FLIGHT: usize = 512;

/// A request that has not answered this long after it was due counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Latency and errors of the requests to one path.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    pub path: String,
    pub requests: usize,
    /// Answers with status 200.
    pub ok: usize,
    /// Answers with another status.
    pub bad_status: usize,
    /// No answer: refused, reset or timed out.
    pub failed: usize,
    /// Of answered requests, due time to the last byte of the body.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Mean body size of 200 answers.
    pub mean_body_bytes: f64,
}

impl PathReport {
    /// One human-readable line.
    pub fn summary(&self) -> String {
        format!(
            "GET {}: {} requests, {} ok, {} other status, {} failed; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} bytes a page",
            self.path,
            self.requests,
            self.ok,
            self.bad_status,
            self.failed,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.mean_body_bytes
        )
    }
}

/// What one request gave.
struct Outcome {
    path_index: usize,
    latency_ms: f64,
    status: Option<u16>,
    body_bytes: usize,
}

/// Sends `rate × seconds` GET requests at `rate` per second, spread over
/// `paths` in turn, and reports per path.
pub async fn run(
    client: &reqwest::Client,
    base: &str,
    paths: &[String],
    rate: f64,
    seconds: f64,
) -> Vec<PathReport> {
    let total = (rate * seconds).round().max(0.0) as usize;
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut requests = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    for index in 0..total {
        let due = start + Duration::from_secs_f64(index as f64 / rate);
        tokio::time::sleep_until(due).await;
        let due: Instant = due.into_std();
        let path_index = index % paths.len();
        let url = format!("{base}{}", paths[path_index]);
        let client = client.clone();
        let slots = slots.clone();
        requests.spawn(async move {
            // The deadline counts from the due time, waiting for a slot
            // included, so an overloaded service cannot stretch the run.
            let deadline = tokio::time::Instant::from_std(due) + REQUEST_TIMEOUT;
            let answer = tokio::time::timeout_at(deadline, async {
                let _slot = slots.acquire_owned().await;
                let response = client.get(&url).send().await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body.len()))
            })
            .await;
            let latency_ms = due.elapsed().as_secs_f64() * 1_000.0;
            match answer {
                Ok(Ok((status, body_bytes))) => Outcome {
                    path_index,
                    latency_ms,
                    status: Some(status),
                    body_bytes,
                },
                _ => Outcome {
                    path_index,
                    latency_ms,
                    status: None,
                    body_bytes: 0,
                },
            }
        });
    }
    let mut outcomes = Vec::with_capacity(total);
    while let Some(outcome) = requests.join_next().await {
        if let Ok(outcome) = outcome {
            outcomes.push(outcome);
        }
    }
    paths
        .iter()
        .enumerate()
        .map(|(index, path)| report(path, outcomes.iter().filter(|o| o.path_index == index)))
        .collect()
}

fn report<'a>(path: &str, outcomes: impl Iterator<Item = &'a Outcome>) -> PathReport {
    let mut latencies = Vec::new();
    let (mut requests, mut ok, mut bad_status, mut failed, mut body_bytes) = (0, 0, 0, 0, 0);
    for outcome in outcomes {
        requests += 1;
        match outcome.status {
            Some(200) => {
                ok += 1;
                body_bytes += outcome.body_bytes;
                latencies.push(outcome.latency_ms);
            }
            Some(_) => {
                bad_status += 1;
                latencies.push(outcome.latency_ms);
            }
            None => failed += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    PathReport {
        path: path.to_owned(),
        requests,
        ok,
        bad_status,
        failed,
        p50_ms: quantile(&latencies, 0.50),
        p90_ms: quantile(&latencies, 0.90),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        mean_body_bytes: body_bytes as f64 / ok.max(1) as f64,
    }
}

/// Returns the `q` quantile of sorted `samples` (nearest rank), NaN when empty.
pub fn quantile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = (q * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&samples, 0.50), 50.0);
        assert_eq!(quantile(&samples, 0.99), 99.0);
        assert_eq!(quantile(&samples, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
