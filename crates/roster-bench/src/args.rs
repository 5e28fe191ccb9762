//! The flags of `roster bench` and what its help says after them.

use clap::Args;

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
    #[arg(
        long = "database",
        env = "ROSTER_DATABASE_URL",
        default_value = "sqlite://roster.db"
    )]
    pub database: String,
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
