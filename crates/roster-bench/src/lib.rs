//! `roster bench`: generates a synthetic organisation from a seed and
//! measures the real code paths on the database it is given — the sweep as
//! the job workers run it, the administrators' bulk endpoints and the
//! learners' reads over HTTP, post-enrollment jobs through the worker — next
//! to the database's own raw insert rate for the same rows (the physical
//! limit). See BENCHMARKS.md for figures and how to read them.
//!
//! The crate knows the core and the store only; the application it measures
//! is a [`Host`], which the `roster` binary implements and passes to [`run`].

mod args;
mod bulk;
mod burst;
mod compare;
mod error;
mod host;
mod http;
mod load;
mod plan;
mod progress;
mod reads;
mod report;
mod sweeps;

use std::net::SocketAddr;
use std::time::Instant;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use roster_store::{Backend, Store};

pub use args::{BenchArgs, WORKLOADS_HELP};
pub use error::BenchError;
pub use host::{Host, HostError, RanJob};
pub use report::Workload;

use compare::EarlierRun;
use error::Result;
use load::Org;
use plan::{Plan, Rng};
use progress::Progress;
use report::{Report, load_average};

/// The business time the bench starts at; W3 crosses the annual period end
/// of the next day.
const START: &str = "2040-06-29T09:00:00Z";

/// Runs `roster bench` on the application `H` and prints its report: the
/// table, or the JSON document with `--json`.
pub async fn run<H: Host>(args: BenchArgs) -> Result<()> {
    let earlier = args.compare.as_deref().map(EarlierRun::read).transpose()?;
    let store = open_store(&args.database).await?;
    if let Some(earlier) = &earlier {
        earlier.check(backend_name(store.backend()), args.users)?;
    }
    let progress = Progress::new();
    let load_before = load_average();
    let existing = {
        let mut tx = store.read().await?;
        let count = tx.count_users().await?;
        tx.rollback().await?;
        count
    };
    if existing > 0 && !args.force {
        return Err(BenchError::Refused(format!(
            "the database already holds {existing} users; the bench needs a fresh database \
             (or --force to add its organisation beside them)"
        )));
    }
    let host = H::open(store).await?;
    let start: Timestamp = START.parse()?;
    if host.now() < start {
        host.set_clock(start).await?;
    }
    let day0 = today(host.now());
    let mut rng = Rng::new(args.seed);
    let plan = Plan::generate(&mut rng, args.users as usize, day0);

    progress.stage("generate", plan.users.len() as u64);
    let started = Instant::now();
    let org = load::load(&host, &plan, &mut rng, existing, &progress).await?;
    host.store().bench_settle().await?;
    progress.note(&format!(
        "organisation loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    let bench = Bench {
        address: host.serve().await?,
        host,
        org,
        progress,
        workers: args.workers as usize,
        seed: args.seed,
    };
    let mut report = measure(&bench, &plan, &mut rng, start).await?;
    bench.progress.finish();
    report.load = [load_before, load_average()];
    report.users = args.users;
    report.earlier = earlier;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
    }
    bench.host.store().close().await;
    Ok(())
}

/// What every workload runs against.
struct Bench<H> {
    host: H,
    /// Where the application's HTTP API listens.
    address: SocketAddr,
    org: Org,
    progress: Progress,
    /// Job worker tasks draining sweeps and jobs.
    workers: usize,
    seed: u64,
}

/// Runs the workloads in their order (W1, raw, W2, W7, W3, W4, W5, W6) on
/// the loaded organisation; answers the report without the run's settings.
async fn measure<H: Host>(
    bench: &Bench<H>,
    plan: &Plan,
    rng: &mut Rng,
    start: Timestamp,
) -> Result<Report> {
    let store = bench.host.store();
    let day0 = today(bench.host.now());
    let sweeps = sweeps::cold_and_warm(bench).await?;
    let mut workloads = sweeps.workloads;

    // W3: a day of changes and the crossing of an annual period end.
    bench.progress.stage("W3 delta", 0);
    store.bench_settle().await?;
    let delta = sweeps::apply_delta(bench, plan, rng, day0).await?;
    bench.host.set_clock(start.checked_add(48.hours())?).await?;
    bench.progress.stage("W3 sweep", 0);
    let (w3_time, w3) = sweeps::sweep_now(bench).await?;
    let w3_rows = w3.created + w3.adopted + w3.closed;
    workloads.push(Workload::rows(
        "W3",
        "delta sweep",
        w3_time,
        w3_rows,
        format!(
            "{}; created {}, adopted {}, closed {} (annual rollover of {} rules)",
            delta, w3.created, w3.adopted, w3.closed, bench.org.rollover_rules
        ),
    ));

    // W4: administrators' bulk operations over HTTP.
    bench.progress.stage("W4 enroll", 0);
    workloads.extend(bulk::admin_bulk(bench, rng).await?);

    // W5: a burst of completions firing post-enrollment rules.
    bench.progress.stage("W5 burst", 0);
    workloads.extend(burst::event_burst(bench, rng, plan.users.len()).await?);

    // W6: learners' reads on a quiet server.
    bench.progress.stage("W6 reads", 0);
    store.bench_settle().await?;
    workloads.extend(reads::reads(bench, plan.users.len()).await?);

    Ok(Report {
        load: [None, None],
        backend: backend_name(store.backend()),
        users: plan.users.len() as u64,
        seed: bench.seed,
        enrollments: load::count_enrollments(store).await?,
        workloads,
        calibration_rows: sweeps.calibration_rows,
        calibration_time: sweeps.calibration_time,
        calibration_rate: sweeps.calibration_rate,
        w1_time: sweeps.w1_time,
        w1_rows: sweeps.w1_rows,
        w2_time: sweeps.w2_time,
        w2_rows: sweeps.w2_rows,
        w3_time,
        w3_rows,
        earlier: None,
    })
}

/// Opens and migrates the database, as `roster migrate` does.
async fn open_store(url: &str) -> Result<Store> {
    let store = Store::connect(url)
        .await
        .map_err(|error| BenchError::Open {
            url: url.to_string(),
            error,
        })?;
    store.migrate().await.map_err(|error| BenchError::Migrate {
        url: url.to_string(),
        error,
    })?;
    Ok(store)
}

/// The bench's organisation lives in UTC.
fn today(now: Timestamp) -> Date {
    now.to_zoned(TimeZone::UTC).date()
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}
