//! W6 and the readers of W7: learners' History, Plan and home over HTTP from
//! several clients, each on its own keep-alive connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Bench;
use crate::error::{BenchError, Result};
use crate::host::Host;
use crate::http::ApiClient;
use crate::plan::Rng;
use crate::report::Workload;

/// Concurrent HTTP clients of the read workloads.
pub(crate) const CLIENTS: usize = 8;
const PATHS: [&str; 3] = ["/api/v1/me/history", "/api/v1/me/plan", "/api/v1/me/home"];
const PATH_NAMES: [&str; 3] = ["History", "Plan", "home"];

/// History, Plan and home of random learners from `CLIENTS` clients, then
/// of the learner with 500 enrollments from as many clients and alone.
pub(crate) async fn reads<H: Host>(bench: &Bench<H>, users: usize) -> Result<Vec<Workload>> {
    let org = &bench.org;
    let mut workloads = Vec::new();
    // Small organisations are smoke tests: fewer requests.
    let per_client = (users / 20).clamp(25, 300);
    // The last case is one client alone: the service time, without the
    // queueing that eight clients on two cores add to it.
    for (case, tokens, clients, requests) in [
        (
            "random learners",
            org.reader_tokens.clone(),
            CLIENTS,
            per_client,
        ),
        (
            "learner with 500",
            vec![org.heavy_token.clone()],
            CLIENTS,
            per_client / 2,
        ),
        (
            "learner with 500, 1 client",
            vec![org.heavy_token.clone()],
            1,
            per_client,
        ),
    ] {
        bench.progress.message(case);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = spawn_clients(
            bench.address,
            Arc::new(tokens),
            clients,
            bench.seed,
            Some(requests),
            Duration::ZERO,
            stop,
        );
        let samples = join_clients(tasks).await?;
        let elapsed = started.elapsed();
        for (index, name) in PATH_NAMES.iter().enumerate() {
            let mut latencies: Vec<Duration> = samples
                .iter()
                .filter(|(path, _)| *path == index)
                .map(|(_, latency)| *latency)
                .collect();
            workloads.push(
                Workload::rows(
                    "W6",
                    &format!("{name}, {case}"),
                    elapsed,
                    0,
                    format!(
                        "GET {}, {clients} client(s) with keep-alive, no pause",
                        PATHS[index]
                    ),
                )
                .with_latencies(&mut latencies),
            );
        }
    }
    Ok(workloads)
}

pub(crate) type ClientTask = tokio::task::JoinHandle<Result<Vec<(usize, Duration)>>>;

/// Starts `clients` clients, each on its own keep-alive connection, each
/// request for a random one of `tokens` and a random path, with `think`
/// between requests. Each stops after `requests` requests, or when `stop` is
/// set.
pub(crate) fn spawn_clients(
    address: SocketAddr,
    tokens: Arc<Vec<String>>,
    clients: usize,
    seed: u64,
    requests: Option<usize>,
    think: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<ClientTask> {
    (0..clients)
        .map(|client| {
            let tokens = tokens.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(seed.wrapping_add(client as u64 * 7919));
                let http = ApiClient::new(address)?;
                let mut samples = Vec::new();
                while requests.is_none_or(|limit| samples.len() < limit)
                    && !stop.load(Ordering::SeqCst)
                {
                    let token = &tokens[rng.below(tokens.len())];
                    let index = rng.below(PATHS.len());
                    let started = Instant::now();
                    let status = http.get(PATHS[index], token).await?;
                    let latency = started.elapsed();
                    if status != 200 {
                        return Err(BenchError::Unexpected(format!(
                            "GET {} answered {status}",
                            PATHS[index]
                        )));
                    }
                    samples.push((index, latency));
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
                Ok(samples)
            })
        })
        .collect()
}

pub(crate) async fn join_clients(clients: Vec<ClientTask>) -> Result<Vec<(usize, Duration)>> {
    let mut samples = Vec::new();
    for client in clients {
        samples.extend(client.await??);
    }
    Ok(samples)
}
