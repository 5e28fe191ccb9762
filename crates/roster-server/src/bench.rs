//! `roster bench`: generates a synthetic organisation from a seed and
//! measures the real code paths on the database it is given — the sweep as
//! the job workers run it, the administrators' bulk endpoints and the
//! learners' reads over HTTP, post-enrollment jobs through the worker — next
//! to the database's own raw insert rate for the same rows (the physical
//! limit). See BENCHMARKS.md for figures and how to read them.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use roster_core::{AutoRule, MonthDay, OneTimeDue, Recurrence, Scope, Status};
use roster_store::bench::BenchUser;
use roster_store::{ActivityRecord, Backend, EnrollmentInsert, PostRuleRecord, Store, SweepRecord};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::auth::hash_token;
use crate::cli::StoreArgs;
use crate::clock::{Clock, ClockMode};
use crate::engine::enroll::{Change, change};
use crate::engine::jobs::{RanJob, run_due, run_next_jobs};
use crate::engine::sweep::start_sweep;
use crate::state::{App, AppState};

/// What `roster bench --help` says after the flags.
pub const WORKLOADS_HELP: &str = "\
Workloads (one run, in this order):
  W1  cold sweep: every rule over every learner, about 20 enrollments each
  raw the same rows inserted into a copy of the enrollments table (same keys and
      indexes) in one transaction: prepared multi-row INSERTs on SQLite, COPY on
      PostgreSQL; the physical limit W1 is compared with
  W2  warm sweep: the same sweep again, which must write nothing
  W7  the cold sweep again (its enrollments deleted first) while 8 HTTP clients
      read learners' History, Plan and home
  W3  delta sweep two days later: 1% of learners change groups, 1% are hired,
      0.5% leave, and some annual rules cross their period end
  W4  one request enrolling 10,000 users; one bulk update of 10,000 enrollments
  W5  one completion per learner from 4 clients at once, one
      transaction each, firing post-enrollment rules (half at once, half a day
      later) and their chains, with 2 workers
  W6  History, Plan and home over HTTP: random learners and a learner with 500
      enrollments, 8 clients; the latter also alone
Targets: W1 >= 0.5 of raw; W2 < 5% of W1 writing 0 rows; W6 p99 < 20 ms for the
learner with 500 enrollments; W3 proportional to the delta, not to the
organisation, which shows between two sizes of organisation: W3's cost per row,
in rows of the same run's raw insert (w3_row_vs_raw_row), may grow at most as
users^0.2. Run once with --json > small.json, then at four or more times the
users with --compare small.json (or the other way round), both of 10,000 users
or more (below, W3's fixed part outweighs its rows); without --compare the W3
target is null in the JSON. w3_vs_delta, W3 against W2 plus its rows at W1's
rate, is an estimate within one run.";

/// Flags of `roster bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The database to measure, which must hold no users (see --force):
    /// `sqlite://FILE` or `postgres://USER@HOST:PORT/DB`.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Learners in the synthetic organisation. The cold sweep creates about
    /// 20 enrollments per learner; W5 completes one enrollment per learner.
    #[arg(long, env = "ROSTER_BENCH_USERS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub users: u64,
    /// Seed of the generator: the same seed and user count give the same
    /// organisation, rules and workload.
    #[arg(long, env = "ROSTER_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON document on standard output instead of the table.
    #[arg(long, env = "ROSTER_BENCH_JSON")]
    pub json: bool,
    /// Job worker tasks draining sweeps and jobs, as `roster serve --workers`.
    #[arg(long, env = "ROSTER_BENCH_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,
    /// Run even if the database already holds users (the bench adds its own
    /// organisation beside them; figures are then not comparable).
    #[arg(long, env = "ROSTER_BENCH_FORCE")]
    pub force: bool,
    /// The `--json` document of an earlier run on the same backend with at
    /// least four times fewer or more users: W3's cost per row is compared
    /// between the two sizes, which checks the target "W3 proportional to the
    /// delta, not to the organisation" (one run alone cannot).
    #[arg(long, env = "ROSTER_BENCH_COMPARE", value_name = "FILE")]
    pub compare: Option<std::path::PathBuf>,
}

/// What `--compare` takes from an earlier run's JSON document.
#[derive(Clone, Debug, PartialEq)]
struct EarlierRun {
    file: String,
    backend: String,
    users: u64,
    w3_row_vs_raw_row: f64,
}

/// The organisations compared must differ at least this much in size.
const COMPARE_MIN_FACTOR: f64 = 4.0;
/// The largest exponent k in "W3's cost per row grows as users^k" that still
/// counts as following the delta: k = 1 would be a cost per row growing with
/// the organisation; k = 0.2 allows ten times the users to cost at most 1.58
/// times as much a row (an index one level deeper and the machine's noise).
const W3_ORGANISATION_EXPONENT_MAX: f64 = 0.2;

impl EarlierRun {
    /// Reads an earlier `roster bench --json` document.
    fn read(path: &std::path::Path) -> anyhow::Result<EarlierRun> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("--compare {file}: cannot read it: {error}"))?;
        let document: Value = serde_json::from_str(&text).map_err(|error| {
            anyhow::anyhow!("--compare {file}: not a JSON document of roster bench --json: {error}")
        })?;
        EarlierRun::from_document(file, &document)
    }

    fn from_document(file: String, document: &Value) -> anyhow::Result<EarlierRun> {
        let missing = |field: &str| {
            anyhow::anyhow!(
                "--compare {file}: no {field} in it (the document roster bench --json prints)"
            )
        };
        let backend = document["backend"]
            .as_str()
            .ok_or_else(|| missing("\"backend\""))?
            .to_string();
        let users = document["users"]
            .as_u64()
            .filter(|users| *users > 0)
            .ok_or_else(|| missing("\"users\""))?;
        let w3_row_vs_raw_row = document["ratios"]["w3_row_vs_raw_row"]
            .as_f64()
            .filter(|value| value.is_finite() && *value > 0.0)
            .ok_or_else(|| missing("\"ratios\".\"w3_row_vs_raw_row\""))?;
        Ok(EarlierRun {
            file,
            backend,
            users,
            w3_row_vs_raw_row,
        })
    }

    /// Refuses a comparison that cannot tell anything: another backend, or
    /// organisations of nearly the same size.
    fn check(&self, backend: &str, users: u64) -> anyhow::Result<()> {
        if self.backend != backend {
            anyhow::bail!(
                "--compare {}: that run was on {}, this one is on {backend}; compare runs of one backend",
                self.file,
                self.backend
            );
        }
        let factor = users.max(self.users) as f64 / users.min(self.users) as f64;
        if factor < COMPARE_MIN_FACTOR {
            anyhow::bail!(
                "--compare {}: that run had {} users, this one {users}; the sizes must differ \
                 at least {COMPARE_MIN_FACTOR} times to tell the delta's cost from the organisation's",
                self.file,
                self.users
            );
        }
        Ok(())
    }
}

const GROUPS: usize = 500;
const ACTIVITIES: usize = 1_000;
const RULES: usize = 300;
/// Concurrent HTTP clients of the read workloads.
const CLIENTS: usize = 8;
/// W5's completions come from this many clients at once.
const PRODUCERS: usize = 4;
/// Pause of each W7 client between requests: learners browsing, not a
/// closed loop that would take both cores from the sweep it measures.
const W7_THINK: Duration = Duration::from_millis(50);
/// Learners whose tokens the read workloads use.
const READERS: usize = 256;
/// Enrollments of the heavy learner of W6.
const HEAVY_ENROLLMENTS: usize = 500;
/// The business time the bench starts at; W3 crosses the annual period end
/// of the next day.
const START: &str = "2040-06-29T09:00:00Z";
/// The activity W4 enrolls users into: no rule, no trigger, no parent.
const W4_ACTIVITY: usize = ACTIVITIES - 1;
const PATHS: [&str; 3] = ["/api/v1/me/history", "/api/v1/me/plan", "/api/v1/me/home"];
const PATH_NAMES: [&str; 3] = ["History", "Plan", "home"];

/// One measured workload, as printed and as in the JSON document.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub name: &'static str,
    pub case: String,
    pub seconds: f64,
    pub rows: i64,
    pub rows_per_s: Option<f64>,
    pub requests: Option<usize>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub note: String,
}

impl Workload {
    fn rows(
        name: &'static str,
        case: &str,
        elapsed: Duration,
        rows: i64,
        note: String,
    ) -> Workload {
        let seconds = elapsed.as_secs_f64();
        Workload {
            name,
            case: case.into(),
            seconds,
            rows,
            rows_per_s: (seconds > 0.0).then(|| rows as f64 / seconds),
            requests: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            note,
        }
    }

    /// Latencies of requests (or jobs); a read workload writes no rows, so
    /// it has no row rate.
    fn with_latencies(mut self, samples: &mut [Duration]) -> Workload {
        if self.rows == 0 {
            self.rows_per_s = None;
        }
        self.requests = Some(samples.len());
        self.p50_ms = percentile_ms(samples, 0.50);
        self.p95_ms = percentile_ms(samples, 0.95);
        self.p99_ms = percentile_ms(samples, 0.99);
        self
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let earlier = args.compare.as_deref().map(EarlierRun::read).transpose()?;
    let store = crate::app::open_store(&args.store.database).await?;
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
        anyhow::bail!(
            "the database already holds {existing} users; the bench needs a fresh database \
             (or --force to add its organisation beside them)"
        );
    }
    let state = bench_state(store).await?;
    let start: Timestamp = START.parse()?;
    if state.clock.now() < start {
        state.clock.set(&state.store, start).await?;
    }
    let day0 = crate::state::local_date(state.clock.now(), "UTC");
    let mut rng = Rng::new(args.seed);
    let plan = Plan::generate(&mut rng, args.users as usize, day0);

    progress.stage("generate", plan.users.len() as u64);
    let started = Instant::now();
    let org = load(&state, &plan, &mut rng, existing, &progress).await?;
    state.store.bench_settle().await?;
    progress.note(&format!(
        "organisation loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router = crate::app::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let workers = args.workers as usize;
    let mut workloads = Vec::new();

    // W1: the cold sweep, as the nightly sweep runs it.
    progress.stage("W1 sweep", 0);
    let (w1_time, w1) = sweep_now(&state, workers, &progress).await?;
    let w1_rows = w1.created + w1.adopted + w1.closed;
    workloads.push(Workload::rows(
        "W1",
        "cold sweep",
        w1_time,
        w1_rows,
        format!(
            "created {}, adopted {}, closed {}, skipped {}; {} activities, {workers} workers",
            w1.created, w1.adopted, w1.closed, w1.skipped, w1.jobs_total
        ),
    ));

    // The physical limit: the same rows into a copy of the table.
    progress.stage("calibrate", org.rule_activities.len() as u64);
    state.store.bench_settle().await?;
    let (calibration_rows, calibration_time) = calibrate(&state.store, &org, &progress).await?;
    // The calibration's table is gone: only its log is left to settle.
    state.store.bench_checkpoint().await?;
    let calibration_rate = calibration_rows as f64 / calibration_time.as_secs_f64().max(1e-9);

    // W2: nothing to do.
    progress.stage("W2 sweep", 0);
    let before = count_enrollments(&state.store).await?;
    let (w2_time, w2) = sweep_now(&state, workers, &progress).await?;
    let after = count_enrollments(&state.store).await?;
    let w2_rows = w2.created + w2.adopted + w2.closed + (after - before).abs();
    workloads.push(Workload::rows(
        "W2",
        "warm sweep",
        w2_time,
        w2_rows,
        format!(
            "skipped {}; enrollments {before} before, {after} after",
            w2.skipped
        ),
    ));

    // W7: the cold sweep again, with learners reading over HTTP meanwhile.
    progress.stage("W7 reset", 0);
    {
        let mut tx = state.store.write().await?;
        tx.bench_reset_sweep().await?;
        tx.commit().await?;
        state.store.bench_settle().await?;
    }
    progress.stage("W7 sweep", 0);
    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_clients(
        address,
        Arc::new(org.reader_tokens.clone()),
        CLIENTS,
        args.seed ^ 0x77,
        None,
        W7_THINK,
        stop.clone(),
    );
    let (w7_time, w7) = sweep_now(&state, workers, &progress).await?;
    stop.store(true, Ordering::SeqCst);
    let mut w7_samples: Vec<Duration> = join_clients(readers)
        .await?
        .into_iter()
        .map(|(_, latency)| latency)
        .collect();
    workloads.push(Workload::rows(
        "W7",
        "cold sweep under reads",
        w7_time,
        w7.created + w7.adopted + w7.closed,
        format!("the W1 sweep again while {CLIENTS} clients read"),
    ));
    workloads.push(
        Workload::rows(
            "W7",
            "reads during sweep",
            w7_time,
            0,
            format!(
                "History/Plan/home of random learners, {CLIENTS} clients, {} ms between requests",
                W7_THINK.as_millis()
            ),
        )
        .with_latencies(&mut w7_samples),
    );

    // W3: a day of changes and the crossing of an annual period end.
    progress.stage("W3 delta", 0);
    state.store.bench_settle().await?;
    let delta = apply_delta(&state, &plan, &org, &mut rng, day0).await?;
    state
        .clock
        .set(&state.store, start.checked_add(48.hours())?)
        .await?;
    progress.stage("W3 sweep", 0);
    let (w3_time, w3) = sweep_now(&state, workers, &progress).await?;
    let w3_rows = w3.created + w3.adopted + w3.closed;
    workloads.push(Workload::rows(
        "W3",
        "delta sweep",
        w3_time,
        w3_rows,
        format!(
            "{}; created {}, adopted {}, closed {} (annual rollover of {} rules)",
            delta, w3.created, w3.adopted, w3.closed, org.rollover_rules
        ),
    ));

    // W4: administrators' bulk operations over HTTP.
    progress.stage("W4 enroll", 0);
    let (w4a, w4b) = admin_bulk(&state, address, &org, &mut rng).await?;
    workloads.push(w4a);
    workloads.push(w4b);

    // W5: a burst of completions firing post-enrollment rules.
    progress.stage("W5 burst", 0);
    workloads.extend(
        event_burst(
            &state,
            &org,
            &mut rng,
            args.users as usize,
            workers,
            &progress,
        )
        .await?,
    );

    // W6: learners' reads on a quiet server.
    progress.stage("W6 reads", 0);
    state.store.bench_settle().await?;
    workloads.extend(reads(address, &org, args.users as usize, args.seed, &progress).await?);
    progress.finish();

    let report = Report {
        load: [load_before, load_average()],
        backend: backend_name(state.store.backend()),
        users: args.users,
        seed: args.seed,
        enrollments: count_enrollments(&state.store).await?,
        workloads,
        calibration_rows,
        calibration_time,
        calibration_rate,
        w1_time,
        w1_rows,
        w2_time,
        w2_rows,
        w3_time,
        w3_rows,
        earlier,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
    }
    state.store.close().await;
    Ok(())
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

// ---------------------------------------------------------------------------
// The synthetic organisation.

/// A small deterministic generator (SplitMix64): the same seed gives the same
/// organisation on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index below `n` drawn with a power law: low indexes are popular.
    fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((self.unit().powf(power) * n as f64) as usize).min(n - 1)
    }

    /// `count` distinct items of `items`, in a random order.
    fn sample<T: Copy>(&mut self, items: &[T], count: usize) -> Vec<T> {
        let mut items = items.to_vec();
        let count = count.min(items.len());
        for index in 0..count {
            let other = index + self.below(items.len() - index);
            items.swap(index, other);
        }
        items.truncate(count);
        items
    }
}

struct PlannedUser {
    active: bool,
    hired_on: Option<Date>,
    role: &'static str,
    groups: Vec<usize>,
}

struct PlannedRule {
    /// `None` for the whole company.
    groups: Option<Vec<usize>>,
    hired_after: Option<Date>,
    recurrence: Recurrence,
    initial_due_days: Option<u32>,
}

struct PlannedPost {
    when: &'static str,
    delay_days: i64,
    targets: Vec<usize>,
    allow_consecutive: bool,
}

struct PlannedActivity {
    kind: &'static str,
    items: Vec<usize>,
    rule: Option<PlannedRule>,
    posts: Vec<PlannedPost>,
}

struct Plan {
    users: Vec<PlannedUser>,
    activities: Vec<PlannedActivity>,
}

fn random_date(rng: &mut Rng, from: Date, days: usize) -> Date {
    from.checked_add((rng.below(days) as i64).days())
        .unwrap_or(from)
}

impl Plan {
    /// Users with 1–5 groups each, popular groups much larger than others;
    /// 300 rules over the first 300 activities, mixing scope, hire date and
    /// recurrence; post-enrollment rules on enrollment and completion, with
    /// chains among the activities without rules.
    fn generate(rng: &mut Rng, users: usize, day0: Date) -> Plan {
        let epoch = Date::constant(2000, 1, 1);
        let span = (day0 - epoch).get_days().max(1) as usize;
        let users = (0..users)
            .map(|_| {
                let active = rng.below(100) >= 2;
                let role = if rng.below(1000) == 0 {
                    "integration"
                } else {
                    "learner"
                };
                let hired_on = (rng.below(100) >= 5).then(|| random_date(rng, epoch, span));
                let wanted = 1 + rng.below(5);
                let mut groups = Vec::with_capacity(wanted);
                while groups.len() < wanted {
                    let group = rng.skewed(GROUPS, 2.2);
                    if !groups.contains(&group) {
                        groups.push(group);
                    }
                }
                PlannedUser {
                    active,
                    hired_on,
                    role,
                    groups,
                }
            })
            .collect();

        let cross = day0.tomorrow().unwrap_or(day0);
        let annual_ends = [
            MonthDay { month: 12, day: 31 },
            MonthDay { month: 3, day: 31 },
            MonthDay { month: 9, day: 30 },
            MonthDay { month: 1, day: 15 },
            MonthDay { month: 10, day: 1 },
        ];
        let mut activities = Vec::with_capacity(ACTIVITIES);
        for index in 0..ACTIVITIES {
            let kind = match index {
                295..300 | 960..980 => "curriculum",
                980..990 => "course_bundle",
                _ if index % 7 == 3 => "instructor_led",
                _ => "online_course",
            };
            let items = match kind {
                "curriculum" => (0..2 + index % 2)
                    .map(|k| 600 + (index * 5 + k * 37) % 300)
                    .collect(),
                "course_bundle" => (0..2).map(|k| 900 + (index * 3 + k * 11) % 60).collect(),
                _ => Vec::new(),
            };
            let rule = (index < RULES).then(|| {
                let groups = (index >= 20).then(|| {
                    let wanted = 1 + rng.below(3);
                    let mut groups = Vec::new();
                    while groups.len() < wanted {
                        let group = rng.skewed(GROUPS, 1.6);
                        if !groups.contains(&group) {
                            groups.push(group);
                        }
                    }
                    groups
                });
                let hired_after = ((10..20).contains(&index) || (index >= 20 && index % 9 == 4))
                    .then(|| random_date(rng, Date::constant(2010, 1, 1), 25 * 365));
                let (recurrence, initial_due_days) = match index % 5 {
                    0 | 1 => {
                        let due = match (index / 5) % 3 {
                            0 => None,
                            1 => Some(OneTimeDue::WithinDays(30)),
                            _ => Some(OneTimeDue::OnDate(
                                day0.checked_add(60.days()).unwrap_or(day0),
                            )),
                        };
                        (Recurrence::OneTime { due }, None)
                    }
                    2 | 3 => {
                        let end = if (index / 5) % 6 == 0 && index >= 20 {
                            MonthDay {
                                month: cross.month(),
                                day: cross.day(),
                            }
                        } else {
                            annual_ends[(index / 5) % annual_ends.len()]
                        };
                        (
                            Recurrence::Annual {
                                due_each_year_on: end,
                            },
                            (index % 3 == 0).then_some(30),
                        )
                    }
                    _ => (
                        Recurrence::EveryMonths {
                            months: [6, 12, 24][(index / 5) % 3],
                        },
                        (index % 2 == 0).then_some(60),
                    ),
                };
                PlannedRule {
                    groups,
                    hired_after,
                    recurrence,
                    initial_due_days,
                }
            });
            let mut posts = Vec::new();
            if index < RULES && index % 10 == 7 {
                // A follow-up two weeks after every enrollment: the sweep
                // writes one job per enrollment it creates here.
                posts.push(PlannedPost {
                    when: "enrolled",
                    delay_days: 14,
                    targets: vec![300 + (index * 7) % 300],
                    allow_consecutive: false,
                });
            }
            if index < RULES && (index % 10 == 0 || index % 10 == 2) {
                let mut targets = vec![300 + index % 40];
                if index % 20 == 0 {
                    targets.push(340 + (index * 3) % 200);
                }
                posts.push(PlannedPost {
                    when: "completed",
                    delay_days: if (index / 10) % 2 == 0 { 0 } else { 1 },
                    targets,
                    allow_consecutive: index % 4 == 0,
                });
            }
            if (300..321).contains(&index) {
                // Chains (R38): 300..320 lead on to 320..340, and 320 back to
                // 300, a cycle that R2 ends.
                posts.push(PlannedPost {
                    when: "enrolled",
                    delay_days: 0,
                    targets: vec![if index == 320 { 300 } else { index + 20 }],
                    allow_consecutive: false,
                });
            }
            activities.push(PlannedActivity {
                kind,
                items,
                rule,
                posts,
            });
        }
        Plan { users, activities }
    }
}

/// What the loaded organisation is called in the database.
struct Org {
    prefix: String,
    user_ids: Vec<i64>,
    group_ids: Vec<i64>,
    activity_ids: Vec<i64>,
    rule_activities: Vec<i64>,
    /// Activities whose `completed` rules fire at once, and a day later.
    completed_now: Vec<i64>,
    completed_later: Vec<i64>,
    /// Post rules on `completed` per activity id (jobs per completion).
    completed_rules: HashMap<i64, i64>,
    rollover_rules: usize,
    admin_token: String,
    /// The learners who read in W6 and W7 (never deactivated by W3).
    readers: HashSet<i64>,
    reader_tokens: Vec<String>,
    heavy_token: String,
}

async fn load(
    state: &AppState,
    plan: &Plan,
    rng: &mut Rng,
    existing: i64,
    progress: &Progress,
) -> anyhow::Result<Org> {
    let now = state.clock.now().as_microsecond();
    let prefix = if existing == 0 {
        "bench-".to_string()
    } else {
        format!("bench{}-", Timestamp::now().as_second())
    };

    let mut tx = state.store.write().await?;
    let mut group_ids = Vec::with_capacity(GROUPS);
    for index in 0..GROUPS {
        group_ids.push(
            tx.insert_group(&format!("{prefix}group-{index:03}"), now)
                .await?,
        );
    }
    tx.commit().await?;

    let username = |index: usize| format!("{prefix}{index:07}");
    for (chunk_index, chunk) in plan.users.chunks(10_000).enumerate() {
        let users: Vec<BenchUser> = chunk
            .iter()
            .enumerate()
            .map(|(offset, user)| BenchUser {
                username: username(chunk_index * 10_000 + offset),
                active: user.active,
                hired_on: user.hired_on.map(|date| date.to_string()),
                role: user.role,
            })
            .collect();
        let mut tx = state.store.write().await?;
        tx.bench_insert_users(&users, now).await?;
        tx.commit().await?;
        progress.advance(chunk.len() as u64);
    }
    let mut tx = state.store.write().await?;
    let ids: HashMap<String, i64> = tx.bench_user_ids(&prefix).await?.into_iter().collect();
    let user_ids: Vec<i64> = (0..plan.users.len())
        .map(|index| {
            ids.get(&username(index))
                .copied()
                .ok_or_else(|| anyhow::anyhow!("user {index} was not loaded"))
        })
        .collect::<anyhow::Result<_>>()?;
    let members: Vec<(i64, i64)> = plan
        .users
        .iter()
        .zip(&user_ids)
        .flat_map(|(user, id)| user.groups.iter().map(|group| (group_ids[*group], *id)))
        .collect();
    tx.bench_insert_members(&members).await?;

    let mut activity_ids = Vec::with_capacity(ACTIVITIES);
    for (index, activity) in plan.activities.iter().enumerate() {
        let record = ActivityRecord {
            id: 0,
            title: format!("{} {index:04}", title_of(activity.kind)),
            kind: activity.kind.into(),
            active: true,
            in_catalog: index % 4 != 0,
            allow_failure: false,
            enrollment_token: format!("{prefix}{index:04}-{}", rng.next_u64()),
            auto_rule: None,
            created_at: now,
        };
        activity_ids.push(tx.insert_activity(&record, now).await?);
    }
    let mut rule_activities = Vec::new();
    let mut completed_now = Vec::new();
    let mut completed_later = Vec::new();
    let mut completed_rules = HashMap::new();
    let mut rollover_rules = 0;
    let cross = crate::state::local_date(state.clock.now(), "UTC")
        .tomorrow()
        .ok();
    for (index, activity) in plan.activities.iter().enumerate() {
        let id = activity_ids[index];
        if !activity.items.is_empty() {
            let items: Vec<i64> = activity
                .items
                .iter()
                .map(|item| activity_ids[*item])
                .collect();
            tx.set_items(id, &items).await?;
        }
        if let Some(rule) = &activity.rule {
            let group_ids_of_rule: Vec<i64> = rule
                .groups
                .iter()
                .flatten()
                .map(|group| group_ids[*group])
                .collect();
            if let (Recurrence::Annual { due_each_year_on }, Some(cross)) =
                (&rule.recurrence, cross)
                && due_each_year_on.month == cross.month()
                && due_each_year_on.day == cross.day()
            {
                rollover_rules += 1;
            }
            let saved = AutoRule {
                scope: if rule.groups.is_some() {
                    Scope::Groups
                } else {
                    Scope::Company
                },
                group_ids: group_ids_of_rule.clone(),
                hired_after: rule.hired_after,
                recurrence: rule.recurrence.clone(),
                initial_due_days: rule.initial_due_days,
            };
            tx.set_auto_rule(
                id,
                Some(&serde_json::to_string(&saved)?),
                &group_ids_of_rule,
                now,
            )
            .await?;
            rule_activities.push(id);
        }
        for post in &activity.posts {
            let targets: Vec<i64> = post
                .targets
                .iter()
                .map(|target| activity_ids[*target])
                .collect();
            tx.insert_post_rule(
                &PostRuleRecord {
                    id: 0,
                    activity_id: id,
                    trigger_on: post.when.into(),
                    delay_days: post.delay_days,
                    target_ids: serde_json::to_string(&targets)?,
                    allow_consecutive: post.allow_consecutive,
                },
                now,
            )
            .await?;
            if post.when == "completed" {
                *completed_rules.entry(id).or_insert(0) += 1;
                if post.delay_days == 0 {
                    completed_now.push(id);
                } else {
                    completed_later.push(id);
                }
            }
        }
    }

    // The administrator of W4 and the learners of W6/W7, with their tokens.
    let admin_token = format!("{prefix}admin-{:016x}", rng.next_u64());
    let admin_id = tx
        .insert_user(
            &roster_store::UserInsert {
                username: format!("{prefix}admin"),
                email: "admin@bench.example".into(),
                display_name: "Bench Administrator".into(),
                active: true,
                role: "admin".into(),
                ..Default::default()
            },
            now,
        )
        .await?;
    tx.insert_token(admin_id, &hash_token(&admin_token), now)
        .await?;

    let learners: Vec<i64> = plan
        .users
        .iter()
        .zip(&user_ids)
        .filter(|(user, _)| user.active && user.role == "learner")
        .map(|(_, id)| *id)
        .collect();
    let mut reader_tokens = Vec::new();
    let mut readers = HashSet::new();
    for (index, user_id) in rng.sample(&learners, READERS).into_iter().enumerate() {
        let token = format!("{prefix}reader-{index}-{:016x}", rng.next_u64());
        tx.insert_token(user_id, &hash_token(&token), now).await?;
        reader_tokens.push(token);
        readers.insert(user_id);
    }

    // The heavy learner: 500 enrollments of every status, type and due date,
    // as years of history would leave them.
    let heavy_id = tx
        .insert_user(
            &roster_store::UserInsert {
                username: format!("{prefix}heavy"),
                email: "heavy@bench.example".into(),
                display_name: "Heavy Learner".into(),
                active: true,
                role: "learner".into(),
                ..Default::default()
            },
            now,
        )
        .await?;
    let heavy_token = format!("{prefix}heavy-{:016x}", rng.next_u64());
    tx.insert_token(heavy_id, &hash_token(&heavy_token), now)
        .await?;
    let day0 = crate::state::local_date(state.clock.now(), "UTC");
    let heavy_rows: Vec<EnrollmentInsert> = (0..HEAVY_ENROLLMENTS)
        .map(|index| {
            let status = match index % 10 {
                0..=5 => "in_progress",
                6..=8 => "passed",
                _ => "dropped",
            };
            let enrolled_at = now - (index as i64 + 1) * 86_400_000_000 / 3;
            EnrollmentInsert {
                user_id: heavy_id,
                activity_id: activity_ids[400 + index],
                enrollment_type: ["required", "recommended", "elected"][index % 3].into(),
                status: status.into(),
                due_on: (index % 7 != 0).then(|| {
                    day0.checked_add(((index % 120) as i64 - 30).days())
                        .unwrap_or(day0)
                        .to_string()
                }),
                required_by: (index % 3 != 2).then(|| "Bench Administrator".to_string()),
                reason: None,
                enrolled_at,
                completed_at: (status == "passed").then_some(enrolled_at + 3_600_000_000),
                source_kind: if index % 3 == 2 { "self" } else { "manual" }.into(),
                source: if index % 3 == 2 {
                    json!({"kind": "self"}).to_string()
                } else {
                    json!({"kind": "manual", "by": admin_id}).to_string()
                },
                period: None,
            }
        })
        .collect();
    tx.bench_insert_enrollments(&heavy_rows).await?;
    tx.commit().await?;

    Ok(Org {
        prefix,
        user_ids,
        group_ids,
        activity_ids,
        rule_activities,
        completed_now,
        completed_later,
        completed_rules,
        rollover_rules,
        admin_token,
        readers,
        reader_tokens,
        heavy_token,
    })
}

fn title_of(kind: &str) -> &'static str {
    match kind {
        "curriculum" => "Curriculum",
        "course_bundle" => "Bundle",
        "instructor_led" => "Workshop",
        _ => "Course",
    }
}

/// The state of a `roster serve` process with a manual clock, without its
/// background workers and scheduler: the bench runs the workers itself.
async fn bench_state(store: Store) -> anyhow::Result<AppState> {
    let clock = Clock::load(ClockMode::Manual, &store).await?;
    let data_dir = std::env::temp_dir().join(format!("roster-bench-{}", std::process::id()));
    Ok(AppState(Arc::new(App {
        store,
        clock,
        data_dir,
        worker_id: format!("bench-{}", std::process::id()),
        jobs_ready: Notify::new(),
        metrics: None,
        lease_seconds: crate::engine::jobs::LEASE_SECONDS,
        settings_cache: Default::default(),
        activity_cache: Default::default(),
    })))
}

async fn count_enrollments(store: &Store) -> anyhow::Result<i64> {
    let mut tx = store.read().await?;
    let count = tx.bench_count_enrollments().await?;
    tx.rollback().await?;
    Ok(count)
}

async fn count_jobs(store: &Store, state_name: &str) -> anyhow::Result<i64> {
    let mut tx = store.read().await?;
    let count = tx.bench_count_jobs("post_enrollment", state_name).await?;
    tx.rollback().await?;
    Ok(count)
}

// ---------------------------------------------------------------------------
// Sweeps and the calibration.

/// Starts a sweep of the clock's day as `POST /sweeps` does and drains it
/// with the job workers, as `roster serve` would. Answers the real time from
/// the start to the last activity's commit, and the sweep's record.
async fn sweep_now(
    state: &AppState,
    workers: usize,
    progress: &Progress,
) -> anyhow::Result<(Duration, SweepRecord)> {
    let started = Instant::now();
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let id = start_sweep(&mut tx, &ctx, "manual", ctx.today).await?;
    tx.commit().await?;
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { run_due(&state).await })
        })
        .collect();
    // The time is taken when the last worker ends, not at the next look of
    // the progress bar.
    let all_done = async {
        for worker in workers {
            worker.await??;
        }
        anyhow::Ok(started.elapsed())
    };
    tokio::pin!(all_done);
    let elapsed = loop {
        tokio::select! {
            elapsed = &mut all_done => break elapsed?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let mut tx = state.store.read().await?;
                let record = tx.get_sweep(id).await?;
                tx.rollback().await?;
                if let Some(record) = &record {
                    progress.set(record.jobs_done as u64, record.jobs_total as u64);
                    progress.message(&format!("{} created", record.created));
                }
            }
        }
    };
    let mut tx = state.store.read().await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("sweep {id} vanished"))?;
    tx.rollback().await?;
    if record.state != "done" {
        anyhow::bail!("sweep {id} ended {}", record.state);
    }
    Ok((elapsed, record))
}

/// Inserts the rows the cold sweep created into an empty copy of the
/// enrollments table, activity by activity in user order, in one
/// transaction; answers the rows and the time spent writing (reading them
/// back is not counted).
async fn calibrate(
    store: &Store,
    org: &Org,
    progress: &Progress,
) -> anyhow::Result<(i64, Duration)> {
    let mut tx = store.write().await?;
    tx.calibration_create().await?;
    tx.commit().await?;
    let mut tx = store.write().await?;
    let mut spent = Duration::ZERO;
    let mut rows = 0;
    match store.backend() {
        // Reading the rows back is not counted: only the inserts are.
        Backend::Sqlite => {
            for activity_id in &org.rule_activities {
                let batch = tx.bench_auto_rows(*activity_id).await?;
                rows += batch.len() as i64;
                spent += tx.calibration_insert(&batch).await?;
                progress.advance(1);
            }
        }
        Backend::Postgres => {
            let (count, text) = tx.calibration_rows_text(&org.rule_activities).await?;
            rows = count;
            spent += tx.calibration_copy(text).await?;
            progress.advance(org.rule_activities.len() as u64);
        }
    }
    // The log this transaction wrote is copied into the database by the
    // store's checkpointer afterwards, as W1's is: not timed for either.
    tx.calibration_hold_checkpoints(true).await?;
    let committing = Instant::now();
    tx.commit().await?;
    spent += committing.elapsed();
    let mut tx = store.write().await?;
    tx.calibration_hold_checkpoints(false).await?;
    tx.calibration_drop().await?;
    tx.commit().await?;
    Ok((rows, spent))
}

/// W3's changes, written the way an integration writes them with nightly
/// evaluation (R18): 1% of learners change groups, 1% new hires, 0.5%
/// deactivations. Answers a description.
async fn apply_delta(
    state: &AppState,
    plan: &Plan,
    org: &Org,
    rng: &mut Rng,
    day0: Date,
) -> anyhow::Result<String> {
    let now = state.clock.now().as_microsecond();
    let users = plan.users.len();
    let movers = (users / 100).max(1);
    let hires = (users / 100).max(1);
    let leavers = (users / 200).max(1);
    let indexes: Vec<usize> = (0..users).collect();
    let chosen = rng.sample(&indexes, movers + leavers);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for index in &chosen[..movers] {
        let user = &plan.users[*index];
        let leaving = user.groups[rng.below(user.groups.len())];
        removed.push((org.group_ids[leaving], org.user_ids[*index]));
        loop {
            let joining = rng.skewed(GROUPS, 2.2);
            if !user.groups.contains(&joining) {
                added.push((org.group_ids[joining], org.user_ids[*index]));
                break;
            }
        }
    }
    let deactivated: Vec<i64> = chosen[movers..]
        .iter()
        .map(|index| org.user_ids[*index])
        .filter(|id| !org.readers.contains(id))
        .collect();
    let hired_on = day0.tomorrow().unwrap_or(day0).to_string();
    let new_users: Vec<BenchUser> = (0..hires)
        .map(|index| BenchUser {
            username: format!("{}hire-{index:06}", org.prefix),
            active: true,
            hired_on: Some(hired_on.clone()),
            role: "learner",
        })
        .collect();
    let mut tx = state.store.write().await?;
    tx.bench_remove_members(&removed).await?;
    tx.bench_insert_members(&added).await?;
    tx.bench_deactivate_users(&deactivated, now).await?;
    tx.bench_insert_users(&new_users, now).await?;
    let hired: Vec<i64> = tx
        .bench_user_ids(&format!("{}hire-", org.prefix))
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let mut memberships = Vec::new();
    for id in &hired {
        let wanted = 1 + rng.below(5);
        let mut groups = HashSet::new();
        while groups.len() < wanted {
            groups.insert(rng.skewed(GROUPS, 2.2));
        }
        memberships.extend(groups.into_iter().map(|group| (org.group_ids[group], *id)));
    }
    tx.bench_insert_members(&memberships).await?;
    tx.commit().await?;
    Ok(format!(
        "{movers} learners changed groups, {hires} hired, {leavers} deactivated, day {} to {}",
        day0,
        day0.checked_add(2.days()).unwrap_or(day0)
    ))
}

// ---------------------------------------------------------------------------
// W4: administrators' bulk operations.

async fn admin_bulk(
    state: &AppState,
    address: SocketAddr,
    org: &Org,
    rng: &mut Rng,
) -> anyhow::Result<(Workload, Workload)> {
    let mut client = HttpClient::connect(address).await?;
    let count = org.user_ids.len().min(10_000);
    let users = rng.sample(&org.user_ids, count);
    let activity_id = org.activity_ids[W4_ACTIVITY];
    let body = json!({
        "user_ids": users,
        "type": "required",
        "due_on": "2040-09-30",
        "reason": "bench W4",
    });
    let started = Instant::now();
    let (status, answer) = client
        .send(
            "POST",
            &format!("/api/v1/activities/{activity_id}/enrollments"),
            &org.admin_token,
            body.to_string().as_bytes(),
        )
        .await?;
    let elapsed = started.elapsed();
    if status != 200 {
        anyhow::bail!(
            "W4 enroll answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let created = outcomes(&answer, "created")?;
    let enroll = Workload::rows(
        "W4",
        "enroll users",
        elapsed,
        created,
        format!("POST /activities/{{id}}/enrollments with {count} users, one request"),
    );

    let mut tx = state.store.read().await?;
    let open = tx.bench_open_enrollments(&[]).await?;
    tx.rollback().await?;
    let ids: Vec<i64> = rng
        .sample(&open, 10_000)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let body = json!({"ids": ids, "due_on": "2040-12-31", "type": "required"});
    let started = Instant::now();
    let (status, answer) = client
        .send(
            "POST",
            "/api/v1/enrollments/bulk-update",
            &org.admin_token,
            body.to_string().as_bytes(),
        )
        .await?;
    let elapsed = started.elapsed();
    if status != 200 {
        anyhow::bail!(
            "W4 bulk update answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let updated = outcomes(&answer, "updated")?;
    let update = Workload::rows(
        "W4",
        "bulk update",
        elapsed,
        updated,
        format!(
            "POST /enrollments/bulk-update of {} enrollments (due date, type), one request",
            ids.len()
        ),
    );
    Ok((enroll, update))
}

fn outcomes(answer: &[u8], outcome: &str) -> anyhow::Result<i64> {
    let value: Value = serde_json::from_slice(answer)?;
    Ok(value["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter(|result| result["outcome"] == outcome)
                .count() as i64
        })
        .unwrap_or(0))
}

// ---------------------------------------------------------------------------
// W5: a burst of completions.

/// Completes one enrollment per learner (half in activities whose
/// `completed` rules fire at once, half a day later), one transaction per
/// completion as `PATCH /enrollments/{id}` does, from `PRODUCERS` tasks at
/// once as from as many clients, while two workers run the jobs as they come; then plays the clock a day forward and drains the
/// delayed half.
async fn event_burst(
    state: &AppState,
    org: &Org,
    rng: &mut Rng,
    users: usize,
    workers: usize,
    progress: &Progress,
) -> anyhow::Result<Vec<Workload>> {
    let mut tx = state.store.read().await?;
    let now_pool = tx.bench_open_enrollments(&org.completed_now).await?;
    let later_pool = tx.bench_open_enrollments(&org.completed_later).await?;
    tx.rollback().await?;
    let half = users / 2;
    let mut chosen = rng.sample(&now_pool, half);
    chosen.extend(rng.sample(&later_pool, users - half));
    let order: Vec<usize> = (0..chosen.len()).collect();
    let chosen: Vec<(i64, i64)> = rng
        .sample(&order, order.len())
        .into_iter()
        .map(|index| chosen[index])
        .collect();
    let immediate_jobs: i64 = chosen
        .iter()
        .filter(|(_, activity)| org.completed_now.contains(activity))
        .map(|(_, activity)| org.completed_rules.get(activity).copied().unwrap_or(0))
        .sum();
    let delayed_jobs: i64 = chosen
        .iter()
        .filter(|(_, activity)| org.completed_later.contains(activity))
        .map(|(_, activity)| org.completed_rules.get(activity).copied().unwrap_or(0))
        .sum();

    let done_before = count_jobs(&state.store, "done").await?;
    let commits: Arc<Mutex<HashMap<i64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker_tasks: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(timed_worker(
                state.clone(),
                commits.clone(),
                latencies.clone(),
                stop.clone(),
            ))
        })
        .collect();

    progress.set(0, chosen.len() as u64);
    let started = Instant::now();
    let total = chosen.len() as u64;
    let chosen = Arc::new(chosen);
    let next = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let producer = |state: AppState| {
        let (chosen, next, completed, commits, progress) = (
            chosen.clone(),
            next.clone(),
            completed.clone(),
            commits.clone(),
            progress.clone(),
        );
        async move {
            while let Some((id, _)) = chosen.get(next.fetch_add(1, Ordering::SeqCst)) {
                let mut tx = state.store.write().await?;
                let Some(before) = tx.get_enrollment(*id).await? else {
                    tx.rollback().await?;
                    continue;
                };
                if before.status != Status::InProgress.as_str() {
                    tx.rollback().await?;
                    continue;
                }
                let ctx = state.ctx(&mut tx, None).await?;
                change(
                    &mut tx,
                    &ctx,
                    before,
                    Change {
                        status: Some(Status::Passed),
                        ..Change::default()
                    },
                )
                .await?;
                lock(&commits).insert(*id, Instant::now());
                tx.commit().await?;
                state.jobs_ready.notify_waiters();
                let done = completed.fetch_add(1, Ordering::SeqCst) + 1;
                if done % 256 == 0 {
                    progress.set(done, total);
                }
            }
            anyhow::Ok(())
        }
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| tokio::spawn(producer(state.clone())))
        .collect();
    for producer in producers {
        producer.await??;
    }
    let completed = completed.load(Ordering::SeqCst);
    let enqueue_time = started.elapsed();
    // The workers go on until nothing due is left.
    loop {
        let mut tx = state.store.read().await?;
        let due = tx
            .count_due_jobs(state.clock.now().as_microsecond())
            .await?;
        tx.rollback().await?;
        if due == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_time = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    state.jobs_ready.notify_waiters();
    for worker in worker_tasks {
        worker.await??;
    }
    let done_now = count_jobs(&state.store, "done").await?;
    let mut samples = std::mem::take(&mut *lock(&latencies));

    // The delayed half, a day later.
    progress.message("delayed jobs");
    let later = state.clock.now().checked_add(25.hours())?;
    state.clock.set(&state.store, later).await?;
    let started = Instant::now();
    let drains: Vec<_> = (0..workers)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { run_due(&state).await })
        })
        .collect();
    for drain in drains {
        drain.await??;
    }
    let delayed_time = started.elapsed();
    let done_later = count_jobs(&state.store, "done").await?;

    Ok(vec![
        Workload::rows(
            "W5",
            "completions",
            enqueue_time,
            immediate_jobs + delayed_jobs,
            format!(
                "{completed} completions from {PRODUCERS} clients, one transaction each, enqueueing {} jobs at once and {} for a day later",
                immediate_jobs, delayed_jobs
            ),
        ),
        Workload::rows(
            "W5",
            "jobs at once",
            drain_time,
            done_now - done_before,
            format!(
                "jobs run by {workers} workers during and after the burst (chains included); p50/p99: enqueue to start of the {} jobs timed",
                samples.len()
            ),
        )
        .with_latencies(&mut samples),
        Workload::rows(
            "W5",
            "jobs a day later",
            delayed_time,
            done_later - done_now,
            format!("the clock a day forward, {workers} workers drain the delayed jobs and their chains"),
        ),
    ])
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|error| error.into_inner())
}

/// The worker loop of `roster serve` (`engine::jobs::worker_loop`), noting
/// for each job fired at once by a completion the real time from the
/// completion's commit to the job's start.
async fn timed_worker(
    state: AppState,
    commits: Arc<Mutex<HashMap<i64, Instant>>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    loop {
        loop {
            let ran = run_next_jobs(&state).await?;
            if ran.is_empty() {
                break;
            }
            for RanJob { job, started } in ran {
                let payload: Value = serde_json::from_str(&job.payload).unwrap_or(Value::Null);
                if payload["when"] == "completed" && payload["delay_days"] == 0 {
                    let from = payload["from_enrollment_id"].as_i64().unwrap_or_default();
                    if let Some(committed) = lock(&commits).get(&from).copied() {
                        lock(&latencies).push(started.saturating_duration_since(committed));
                    }
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        tokio::select! {
            _ = state.jobs_ready.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(1000)) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// W6: reads over HTTP.

async fn reads(
    address: SocketAddr,
    org: &Org,
    users: usize,
    seed: u64,
    progress: &Progress,
) -> anyhow::Result<Vec<Workload>> {
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
        progress.message(case);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = spawn_clients(
            address,
            Arc::new(tokens),
            clients,
            seed,
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

type ClientTask = tokio::task::JoinHandle<anyhow::Result<Vec<(usize, Duration)>>>;

/// Starts `clients` clients, each on its own keep-alive connection, each
/// request for a random one of `tokens` and a random path, with `think`
/// between requests. Each stops after `requests` requests, or when `stop` is
/// set.
fn spawn_clients(
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
                let mut http = HttpClient::connect(address).await?;
                let mut samples = Vec::new();
                while requests.is_none_or(|limit| samples.len() < limit)
                    && !stop.load(Ordering::SeqCst)
                {
                    let token = &tokens[rng.below(tokens.len())];
                    let index = rng.below(PATHS.len());
                    let started = Instant::now();
                    let (status, _) = http.send("GET", PATHS[index], token, b"").await?;
                    let latency = started.elapsed();
                    if status != 200 {
                        anyhow::bail!("GET {} answered {status}", PATHS[index]);
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

async fn join_clients(clients: Vec<ClientTask>) -> anyhow::Result<Vec<(usize, Duration)>> {
    let mut samples = Vec::new();
    for client in clients {
        samples.extend(client.await??);
    }
    Ok(samples)
}

/// A minimal HTTP/1.1 client on one keep-alive connection: enough for a
/// benchmark, and no client library between the figures and the server.
struct HttpClient {
    address: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl HttpClient {
    async fn connect(address: SocketAddr) -> anyhow::Result<HttpClient> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(HttpClient {
            address,
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads the whole answer: (status, body).
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;

        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad status line {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut answer = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
                if size == 0 {
                    line.clear();
                    self.stream.read_line(&mut line).await?;
                    break;
                }
                let start = answer.len();
                answer.resize(start + size, 0);
                self.stream.read_exact(&mut answer[start..]).await?;
                line.clear();
                self.stream.read_line(&mut line).await?;
            }
        } else if let Some(length) = length {
            answer.resize(length, 0);
            self.stream.read_exact(&mut answer).await?;
        }
        if close {
            *self = HttpClient::connect(self.address).await?;
        }
        Ok((status, answer))
    }
}

/// The 1, 5 and 15 minute load averages (Linux).
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn percentile_ms(samples: &mut [Duration], quantile: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((quantile * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1].as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------
// Progress and the report.

/// A progress bar on a terminal; one line per stage otherwise.
#[derive(Clone)]
struct Progress {
    bar: ProgressBar,
    terminal: bool,
}

impl Progress {
    fn new() -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar, terminal }
    }

    fn stage(&self, name: &str, length: u64) {
        if !self.terminal {
            eprintln!("roster bench: {name}");
        }
        self.bar.set_prefix(name.to_string());
        self.bar.set_length(length);
        self.bar.set_position(0);
        self.bar.set_message("");
    }

    fn set(&self, position: u64, length: u64) {
        self.bar.set_length(length);
        self.bar.set_position(position);
    }

    fn advance(&self, by: u64) {
        self.bar.inc(by);
    }

    fn message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    fn note(&self, message: &str) {
        if self.terminal {
            self.bar.println(message);
        } else {
            eprintln!("roster bench: {message}");
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

struct Report {
    /// The machine's load average before and after the run, where known: the
    /// figures mean little if other work shared the cores.
    load: [Option<String>; 2],
    backend: &'static str,
    users: u64,
    seed: u64,
    enrollments: i64,
    workloads: Vec<Workload>,
    calibration_rows: i64,
    calibration_time: Duration,
    calibration_rate: f64,
    w1_time: Duration,
    w1_rows: i64,
    w2_time: Duration,
    w2_rows: i64,
    w3_time: Duration,
    w3_rows: i64,
    /// The run given by `--compare`.
    earlier: Option<EarlierRun>,
}

impl Report {
    fn w1_rate(&self) -> f64 {
        self.w1_rows as f64 / self.w1_time.as_secs_f64().max(1e-9)
    }

    fn w1_vs_raw(&self) -> f64 {
        self.w1_rate() / self.calibration_rate.max(1e-9)
    }

    fn w2_vs_w1(&self) -> f64 {
        self.w2_time.as_secs_f64() / self.w1_time.as_secs_f64().max(1e-9)
    }

    /// W3's time over what it would take if it cost W2's fixed price plus
    /// its rows at W1's rate: near 1 when it is proportional to the delta.
    fn w3_vs_delta(&self) -> f64 {
        let expected = self.w2_time.as_secs_f64() + self.w3_rows as f64 / self.w1_rate().max(1e-9);
        self.w3_time.as_secs_f64() / expected.max(1e-9)
    }

    /// What one of W3's rows cost, in rows of the raw insert of the same
    /// run: compared between organisations of different sizes, it shows
    /// whether W3's cost follows its delta (the same figure) or the
    /// organisation (a figure growing with it). It charges W3's rows for
    /// everything W3 does, as the check above charges them at W1's rate.
    fn w3_row_vs_raw_row(&self) -> f64 {
        let w3_per_row = self.w3_time.as_secs_f64() / (self.w3_rows.max(1) as f64);
        w3_per_row * self.calibration_rate
    }

    fn w6_heavy_p99(&self) -> f64 {
        self.workloads
            .iter()
            .filter(|workload| workload.name == "W6" && workload.case.ends_with("learner with 500"))
            .filter_map(|workload| workload.p99_ms)
            .fold(0.0, f64::max)
    }

    /// W3 against the run given by `--compare`: the exponent k in "W3's
    /// cost per row grows as users^k" between the two organisations (0: the
    /// same cost a row whatever the size; 1: a cost a row growing with the
    /// organisation).
    fn comparison(&self) -> Option<Value> {
        let earlier = self.earlier.as_ref()?;
        let organisation = self.users as f64 / earlier.users as f64;
        let per_row = self.w3_row_vs_raw_row() / earlier.w3_row_vs_raw_row;
        Some(json!({
            "file": earlier.file,
            "users": earlier.users,
            "w3_row_vs_raw_row": earlier.w3_row_vs_raw_row,
            "organisation_factor": organisation,
            "w3_row_factor": per_row,
            "w3_organisation_exponent": per_row.ln() / organisation.ln(),
        }))
    }

    /// The targets; W3's is `null` without `--compare`: whether a cost
    /// follows the organisation shows only between two sizes of it.
    fn targets(&self) -> Value {
        let w3 = self.comparison().map(|comparison| {
            comparison["w3_organisation_exponent"]
                .as_f64()
                .is_some_and(|exponent| exponent <= W3_ORGANISATION_EXPONENT_MAX)
        });
        json!({
            "w1_at_least_half_of_raw": self.w1_vs_raw() >= 0.5,
            "w2_under_5_percent_of_w1_with_0_rows": self.w2_vs_w1() < 0.05 && self.w2_rows == 0,
            "w3_proportional_to_delta": w3,
            "w6_p99_under_20_ms_for_500_enrollments": self.w6_heavy_p99() < 20.0,
        })
    }

    fn json(&self) -> Value {
        json!({
            "backend": self.backend,
            "users": self.users,
            "seed": self.seed,
            "groups": GROUPS,
            "activities": ACTIVITIES,
            "rules": RULES,
            "enrollments": self.enrollments,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "load_average": {"before": self.load[0], "after": self.load[1]},
            "workloads": self.workloads,
            "calibration": {
                "rows": self.calibration_rows,
                "seconds": self.calibration_time.as_secs_f64(),
                "rows_per_s": self.calibration_rate,
                "method": match self.backend {
                    "postgres" => "COPY into a copy of the enrollments table, one transaction",
                    _ => "prepared multi-row INSERTs into a copy of the enrollments table, one transaction",
                },
            },
            "ratios": {
                "w1_vs_raw": self.w1_vs_raw(),
                "w2_vs_w1": self.w2_vs_w1(),
                "w3_vs_delta": self.w3_vs_delta(),
                "w3_row_vs_raw_row": self.w3_row_vs_raw_row(),
            },
            "comparison": self.comparison(),
            "targets": self.targets(),
        })
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "roster bench: {} users on {} (seed {}), {} enrollments at the end",
            self.users, self.backend, self.seed, self.enrollments
        );
        if let [Some(before), Some(after)] = &self.load {
            let _ = writeln!(out, "load average before: {before}; after: {after}");
        }
        let _ = writeln!(
            out,
            "{:<4} {:<34} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}",
            "", "case", "seconds", "rows", "rows/s", "p50 ms", "p95 ms", "p99 ms"
        );
        let number = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "-".to_string(), |value| format!("{value:.digits$}"))
        };
        for workload in &self.workloads {
            let _ = writeln!(
                out,
                "{:<4} {:<34} {:>9.3} {:>9} {:>10} {:>8} {:>8} {:>8}",
                workload.name,
                workload.case,
                workload.seconds,
                workload.rows,
                number(workload.rows_per_s, 0),
                number(workload.p50_ms, 2),
                number(workload.p95_ms, 2),
                number(workload.p99_ms, 2),
            );
        }
        let _ = writeln!(
            out,
            "raw  {:<34} {:>9.3} {:>9} {:>10.0}",
            "insert, same rows and indexes",
            self.calibration_time.as_secs_f64(),
            self.calibration_rows,
            self.calibration_rate
        );
        let _ = writeln!(out);
        for workload in &self.workloads {
            let _ = writeln!(
                out,
                "{} {}: {}",
                workload.name, workload.case, workload.note
            );
        }
        let _ = writeln!(out);
        let targets = self.targets();
        let mark = |key: &str| match &targets[key] {
            Value::Bool(true) => "met",
            Value::Bool(false) => "MISSED",
            _ => "needs --compare",
        };
        let _ = writeln!(
            out,
            "W1 vs raw insert: {:.2} (target >= 0.50: {})",
            self.w1_vs_raw(),
            mark("w1_at_least_half_of_raw")
        );
        let _ = writeln!(
            out,
            "W2 vs W1 time:    {:.3} with {} rows written (target < 0.05 and 0 rows: {})",
            self.w2_vs_w1(),
            self.w2_rows,
            mark("w2_under_5_percent_of_w1_with_0_rows")
        );
        let _ = writeln!(
            out,
            "W3 per row, in raw insert rows: {:.2}",
            self.w3_row_vs_raw_row()
        );
        match self.comparison() {
            Some(comparison) => {
                let _ = writeln!(
                    out,
                    "W3 per row against {} users ({}): {:.2} ({:.2} times the cost a row for {:.1} \
                     times the users: users^{:.3}; target proportional to the delta, not to the \
                     organisation, exponent <= {W3_ORGANISATION_EXPONENT_MAX}: {})",
                    comparison["users"],
                    comparison["file"].as_str().unwrap_or_default(),
                    comparison["w3_row_vs_raw_row"].as_f64().unwrap_or_default(),
                    comparison["w3_row_factor"].as_f64().unwrap_or_default(),
                    comparison["organisation_factor"]
                        .as_f64()
                        .unwrap_or_default(),
                    comparison["w3_organisation_exponent"]
                        .as_f64()
                        .unwrap_or_default(),
                    mark("w3_proportional_to_delta")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "W3 proportional to the delta, not to the organisation: {} (give this \
                     run's --json to a run of another size with --compare FILE)",
                    mark("w3_proportional_to_delta")
                );
            }
        }
        let _ = writeln!(
            out,
            "W3 vs W2 + rows at W1's rate: {:.2} (within one run; W3's rows also cost the \
             changed users' evaluation against every rule, which W1's rate does not)",
            self.w3_vs_delta()
        );
        let _ = writeln!(
            out,
            "W6 p99, learner with 500 enrollments: {:.1} ms (target < 20 ms: {})",
            self.w6_heavy_p99(),
            mark("w6_p99_under_20_ms_for_500_enrollments")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(users: u64, w3_row_vs_raw_row: f64) -> Value {
        json!({"backend": "sqlite", "users": users, "ratios": {"w3_row_vs_raw_row": w3_row_vs_raw_row}})
    }

    /// A report whose W3 costs `w3_row_vs_raw_row` raw rows a row.
    fn report(users: u64, w3_row_vs_raw_row: f64, earlier: Option<EarlierRun>) -> Report {
        Report {
            load: [None, None],
            backend: "sqlite",
            users,
            seed: 1,
            enrollments: 0,
            workloads: Vec::new(),
            calibration_rows: 100_000,
            calibration_time: Duration::from_secs(1),
            calibration_rate: 100_000.0,
            w1_time: Duration::from_secs(2),
            w1_rows: 100_000,
            w2_time: Duration::from_millis(20),
            w2_rows: 0,
            // 1,000 rows at w3_row_vs_raw_row / 100,000 s each.
            w3_time: Duration::from_secs_f64(w3_row_vs_raw_row / 100.0),
            w3_rows: 1_000,
            earlier,
        }
    }

    #[test]
    fn an_earlier_run_is_read_from_its_json_and_refused_where_it_cannot_compare() {
        let run = EarlierRun::from_document("small.json".into(), &earlier(10_000, 1.77)).unwrap();
        assert_eq!((run.backend.as_str(), run.users), ("sqlite", 10_000));
        assert_eq!(run.w3_row_vs_raw_row, 1.77);
        for (document, field) in [
            (
                json!({"users": 10, "ratios": {"w3_row_vs_raw_row": 1.0}}),
                "backend",
            ),
            (
                json!({"backend": "sqlite", "ratios": {"w3_row_vs_raw_row": 1.0}}),
                "users",
            ),
            (
                json!({"backend": "sqlite", "users": 10, "ratios": {}}),
                "w3_row_vs_raw_row",
            ),
            (earlier(10, 0.0), "w3_row_vs_raw_row"),
        ] {
            let error = EarlierRun::from_document("x.json".into(), &document).unwrap_err();
            assert!(error.to_string().contains(field), "{error}");
        }

        assert!(run.check("sqlite", 100_000).is_ok());
        assert!(run.check("sqlite", 2_500).is_ok(), "smaller by four times");
        let other = run.check("postgres", 100_000).unwrap_err().to_string();
        assert!(
            other.contains("postgres") && other.contains("sqlite"),
            "{other}"
        );
        let close = run.check("sqlite", 30_000).unwrap_err().to_string();
        assert!(close.contains("at least 4 times"), "{close}");
    }

    #[test]
    fn w3s_target_is_the_growth_of_its_cost_per_row_between_two_sizes() {
        let small = || EarlierRun::from_document("small.json".into(), &earlier(10_000, 2.0)).ok();
        // Without an earlier run the target is not decided.
        assert_eq!(
            report(100_000, 2.0, None).targets()["w3_proportional_to_delta"],
            Value::Null
        );
        assert_eq!(report(100_000, 2.0, None).json()["comparison"], Value::Null);

        // 1.2 times the cost a row for ten times the users: users^0.079.
        let follows = report(100_000, 2.4, small());
        let comparison = follows.comparison().unwrap();
        assert!((comparison["w3_row_factor"].as_f64().unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(comparison["organisation_factor"], 10.0);
        let exponent = comparison["w3_organisation_exponent"].as_f64().unwrap();
        assert!((exponent - 1.2f64.log10()).abs() < 1e-9, "{exponent}");
        assert_eq!(follows.targets()["w3_proportional_to_delta"], true);
        assert!(
            follows.table().contains("users^0.079"),
            "{}",
            follows.table()
        );

        // Twice the cost a row for ten times the users: users^0.30, missed.
        let grows = report(100_000, 4.0, small());
        assert_eq!(grows.targets()["w3_proportional_to_delta"], false);
        assert!(grows.table().contains("MISSED"));

        // The comparison reads the same whichever run is the smaller.
        let large = EarlierRun::from_document("large.json".into(), &earlier(100_000, 2.4)).ok();
        let backwards = report(10_000, 2.0, large).comparison().unwrap();
        assert!((backwards["w3_organisation_exponent"].as_f64().unwrap() - exponent).abs() < 1e-9);
    }
}
