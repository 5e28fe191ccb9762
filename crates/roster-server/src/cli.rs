//! Command-line interface: one typed configuration from flags and
//! environment variables (every flag has one), and the subcommands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app;
use crate::clock::ClockMode;

/// Roster: the enrollment engine for learning platforms.
#[derive(Debug, Parser)]
#[command(name = "roster", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database URL: `sqlite://FILE` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long = "database",
        env = "ROSTER_DATABASE_URL",
        default_value = "sqlite://roster.db"
    )]
    pub database: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address and port the HTTP server listens on.
    #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for attachments (created if missing).
    #[arg(
        long = "data-dir",
        env = "ROSTER_DATA_DIR",
        default_value = "roster-data"
    )]
    pub data_dir: PathBuf,
    /// `system` follows real time; `manual` starts at the real time and moves
    /// only by `POST /api/v1/clock` (simulation and tests).
    #[arg(long, env = "ROSTER_CLOCK", value_enum, default_value = "system")]
    pub clock: ClockMode,
    /// When set, makes sure an admin user `admin` exists whose API token is this value.
    #[arg(
        long = "bootstrap-token",
        env = "ROSTER_BOOTSTRAP_TOKEN",
        hide_env_values = true
    )]
    pub bootstrap_token: Option<String>,
    /// Load the demo organisation first when the database has no users.
    #[arg(long, env = "ROSTER_DEMO")]
    pub demo: bool,
    /// Job worker tasks in this process. 0 runs none: an API-only process
    /// beside others that run the jobs (its own jobs then run only there, or
    /// through `POST /api/v1/jobs/run-due`).
    #[arg(long, env = "ROSTER_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Seconds (real time) a claimed job stays leased to its worker before
    /// another worker or process may take it over, if the worker dies.
    #[arg(long = "job-lease-seconds", env = "ROSTER_JOB_LEASE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3600))]
    pub job_lease_seconds: i64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the job workers and the nightly scheduler in one process.
    Serve(ServeArgs),
    /// Apply the database migrations and exit (serve also applies them at start).
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run a sweep of every auto-enrollment rule now and wait for it.
    Sweep {
        #[command(flatten)]
        store: StoreArgs,
        /// Report what the sweep would do without changing anything.
        #[arg(long = "dry-run", env = "ROSTER_SWEEP_DRY_RUN")]
        dry_run: bool,
        /// Evaluate every user against every rule, not only the users changed
        /// since the last sweep (after writing to the database outside Roster).
        #[arg(long, env = "ROSTER_SWEEP_FULL")]
        full: bool,
    },
    /// Load a realistic demo organisation (users, groups, activities, rules, enrollments).
    Demo {
        #[command(flatten)]
        store: StoreArgs,
        /// How many learners to create.
        #[arg(long, env = "ROSTER_DEMO_USERS", default_value_t = 300)]
        users: usize,
    },
    /// Import users from a CSV file (columns: username, email, display_name, active, hired_on, groups, external_id).
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Export data as CSV on standard output.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Measure the engine on a synthetic organisation (fresh database): cold,
    /// warm and delta sweeps, bulk administration, a burst of completions,
    /// learners' reads over HTTP, and the database's raw insert rate for the
    /// same rows. Prints a table, or JSON with --json.
    #[command(after_help = roster_bench::WORKLOADS_HELP)]
    Bench(roster_bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImportWhat {
    /// Upsert users by username from FILE.csv.
    Users {
        #[command(flatten)]
        store: StoreArgs,
        /// The CSV file, with a header row.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Every enrollment, as CSV.
    Enrollments {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    app::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => app::serve(args).await,
        Command::Migrate { store } => {
            let store = app::open_store(&store.database).await?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Sweep {
            store,
            dry_run,
            full,
        } => sweep(store, dry_run, full).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Demo { store, users } => {
            let state = app::offline_state(&store.database).await?;
            let summary = crate::demo::load(&state, users).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Import {
            what: ImportWhat::Users { store, file },
        } => {
            let state = app::offline_state(&store.database).await?;
            let bytes = std::fs::read(&file)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", file.display()))?;
            let report = crate::api::imports::import_csv(&state, None, &bytes)
                .await
                .map_err(|error| match error {
                    // The file as a whole is refused: say why in the file's name.
                    crate::error::ApiError::Invalid { errors, .. } if errors.len() == 1 => {
                        anyhow::anyhow!("{} {}", file.display(), errors[0].message)
                    }
                    other => anyhow::anyhow!("{}: {other}", file.display()),
                })?;
            print_import_report(&report);
            if report.failed > 0 {
                anyhow::bail!("{} of {} rows failed", report.failed, report.results.len());
            }
            Ok(())
        }
        Command::Export {
            what: ExportWhat::Enrollments { store },
        } => {
            let state = app::offline_state(&store.database).await?;
            let mut tx = state.store.read().await?;
            let ctx = state.ctx(&mut tx, None).await?;
            let rows = tx
                .list_enrollments(&roster_store::EnrollmentFilter {
                    today: ctx.today.to_string(),
                    limit: i64::MAX,
                    ..Default::default()
                })
                .await?;
            tx.rollback().await?;
            let response =
                crate::api::enrollments_csv(&rows, &ctx.today.to_string(), "enrollments.csv")?;
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            Ok(())
        }
    }
}

/// `roster sweep`: runs the sweep in this process with a progress bar.
async fn sweep(store: StoreArgs, dry_run: bool, full: bool) -> anyhow::Result<()> {
    let state = app::offline_state(&store.database).await?;
    if dry_run {
        let counts = crate::engine::jobs::dry_run_counts(&state, None).await?;
        println!(
            "dry run: would create {}, adopt {}, close {}, skip {}",
            counts.created, counts.adopted, counts.closed, counts.skipped
        );
        return Ok(());
    }
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    if let Some(running) = tx.running_sweep().await? {
        anyhow::bail!(
            "sweep {} is {}; wait for it to finish",
            running.id,
            running.state
        );
    }
    if full {
        tx.clear_sweep_marks().await?;
    }
    let id = crate::engine::sweep::start_sweep(&mut tx, &ctx, "manual", ctx.today).await?;
    tx.commit().await?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} sweep {msg} [{bar:30}] {pos}/{len} activities ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let worker = tokio::spawn({
        let state = state.clone();
        async move { crate::engine::jobs::run_due(&state).await }
    });
    loop {
        let mut tx = state.store.read().await?;
        let record = tx.get_sweep(id).await?;
        tx.rollback().await?;
        let Some(record) = record else { break };
        bar.set_length(record.jobs_total as u64);
        bar.set_position(record.jobs_done as u64);
        bar.set_message(format!("{id}: {} created", record.created));
        if record.state == "done" || record.state == "failed" || worker.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    worker.await??;
    bar.finish_and_clear();
    let mut tx = state.store.read().await?;
    let record = tx
        .get_sweep(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("sweep {id} vanished"))?;
    tx.rollback().await?;
    println!(
        "sweep {} {}: created {}, adopted {}, closed {}, skipped {}",
        record.id, record.state, record.created, record.adopted, record.closed, record.skipped
    );
    Ok(())
}

/// `roster import users`: the totals, the groups created, then each failed
/// row with its line number (on standard error, as the failures they are).
fn print_import_report(report: &crate::api::imports::ImportReport) {
    println!(
        "{} created, {} updated, {} unchanged, {} failed",
        report.created, report.updated, report.unchanged, report.failed
    );
    if report.groups_created.is_empty() {
        println!("groups created: none");
    } else {
        println!("groups created: {}", report.groups_created.join(", "));
    }
    for result in &report.results {
        if let Some(error) = &result.error {
            eprintln!("line {}: {error}", result.line);
        }
    }
}
