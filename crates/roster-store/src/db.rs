//! The two backends behind one `Store`, transactions, migrations and the
//! mapping of database errors to store errors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, SqlSafeStr, Sqlite, SqlitePool, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::PendingAudit;
use crate::jobs::NewJob;

/// Runs `$body` with `$c` bound to the transaction's connection, whichever
/// backend it is on. The body is compiled once per backend, so the same SQL
/// text and binds serve both.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(transaction) => {
                let $c = &mut ***transaction;
                $body
            }
            $crate::db::Tx::Postgres(transaction) => {
                let $c = &mut ***transaction;
                $body
            }
        }
    };
}

/// Like `on_tx!`, with different SQL text per backend.
macro_rules! on_tx_sql {
    ($tx:expr, $sqlite:expr, $postgres:expr, $sql:ident, $c:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(transaction) => {
                let $c = &mut ***transaction;
                let $sql = $sqlite;
                $body
            }
            $crate::db::Tx::Postgres(transaction) => {
                let $c = &mut ***transaction;
                let $sql = $postgres;
                $body
            }
        }
    };
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to one of the two backends.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePools),
    Postgres(PgPools),
}

/// PostgreSQL's connections: those of transactions and jobs, and the fewer
/// that serve reads outside any transaction (`Store::reader`: tokens and
/// learners' lists).
#[derive(Clone, Debug)]
pub struct PgPools {
    pub pool: PgPool,
    read: PgPool,
}

/// Connections that read at once, per process and backend: twice the
/// cores (SQLite's reading connections; on PostgreSQL those of
/// `Store::reader`). More reads at once than that only share the cores
/// between more threads or backends, each finishing later; waiting in the
/// pool's queue instead answers in the order asked. Measured with eight
/// clients reading a 500-enrollment Plan on two cores: p99 16–17 ms with
/// four, 18–21 ms with eight (SQLite); 17–22 ms with four, 20–29 ms with
/// sixteen (PostgreSQL), and more answers a second with four on both.
fn concurrent_reads() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get() as u32);
    2 * cores
}

/// SQLite's connections: readers, and the one connection that writes. SQLite
/// lets one transaction write at a time anyway; writing always through the
/// same connection keeps its page cache warm, where a pool of writers would
/// each drop its cache whenever another one had committed.
#[derive(Clone, Debug)]
pub struct SqlitePools {
    pub read: SqlitePool,
    pub write: SqlitePool,
    checkpoints: Arc<Checkpointer>,
}

/// How often the checkpointer copies the write-ahead log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The write-ahead log's size (in pages) at which a committing writer
/// checkpoints itself: only when the checkpointer cannot keep up (or a
/// reader holds an old snapshot for long).
pub(crate) const WRITER_CHECKPOINT_PAGES: &str = "65536";

/// SQLite's checkpoints, taken off the writers' path: with its automatic
/// checkpoint, the transaction whose commit takes the log past its limit
/// copies the whole log into the database before its writer can go on —
/// tenths of a second in a sweep's path, on the one thread that writes. A
/// task with its own connection (its own thread) copies the log every
/// `CHECKPOINT_EVERY` instead, in `PASSIVE` mode, which neither waits for
/// nor blocks readers and the writer. The writers keep SQLite's automatic
/// checkpoint at a larger size as a backstop.
#[derive(Debug, Default)]
struct Checkpointer {
    stop: tokio::sync::Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the task; it ends at `stop`, or once no store holds it.
    fn start(options: SqliteConnectOptions) -> Arc<Checkpointer> {
        let checkpointer = Arc::new(Checkpointer::default());
        let held = Arc::downgrade(&checkpointer);
        let task = tokio::spawn(async move {
            use sqlx::Connection;
            let mut connection = match sqlx::SqliteConnection::connect_with(&options).await {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!(%error, "no checkpointer: the writers checkpoint themselves");
                    return;
                }
            };
            loop {
                let Some(checkpointer) = held.upgrade() else {
                    break;
                };
                tokio::select! {
                    _ = checkpointer.stop.notified() => break,
                    _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                }
                drop(checkpointer);
                if let Err(error) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut connection)
                    .await
                {
                    tracing::warn!(%error, "checkpoint failed");
                }
            }
            // The last connection to close checkpoints and removes the log.
            let _ = connection.close().await;
        });
        *checkpointer
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task);
        checkpointer
    }

    async fn stop(&self) {
        self.stop.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A transaction on either backend. Dropped without `commit`, it rolls back.
/// (Or, from `Store::reader`, a connection reading outside any transaction.)
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// A PostgreSQL transaction (or reading connection) and the audit entries
/// it will write when it commits.
pub struct PgTx {
    transaction: Conn<Postgres>,
    pub(crate) pending_audit: Vec<PendingAudit>,
    pub(crate) pending_jobs: Vec<(NewJob, i64)>,
    /// Begun by `Store::write_sweep` (sequential scans off, the commit not
    /// waiting for the log's flush), and not made durable since
    /// (`Tx::make_commit_durable`).
    pub(crate) sweeping: bool,
}

impl PgTx {
    fn new(transaction: Conn<Postgres>) -> PgTx {
        PgTx {
            transaction,
            pending_audit: Vec::new(),
            pending_jobs: Vec::new(),
            sweeping: false,
        }
    }
}

impl std::ops::Deref for PgTx {
    type Target = Conn<Postgres>;
    fn deref(&self) -> &Self::Target {
        &self.transaction
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.transaction
    }
}

/// A transaction, or a pooled connection used without one (`Store::reader`),
/// whose `commit` and `rollback` do nothing.
pub enum Conn<DB: sqlx::Database> {
    Transaction(Transaction<'static, DB>),
    Single(sqlx::pool::PoolConnection<DB>),
}

impl<DB: sqlx::Database> std::ops::Deref for Conn<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        match self {
            Conn::Transaction(transaction) => transaction,
            Conn::Single(connection) => connection,
        }
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Conn<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Conn::Transaction(transaction) => transaction,
            Conn::Single(connection) => connection,
        }
    }
}

impl<DB: sqlx::Database> Conn<DB> {
    async fn commit(self) -> Result<()> {
        if let Conn::Transaction(transaction) = self {
            transaction.commit().await?;
        }
        Ok(())
    }

    async fn rollback(self) -> Result<()> {
        if let Conn::Transaction(transaction) = self {
            transaction.rollback().await?;
        }
        Ok(())
    }
}

/// A SQLite transaction; a writing one holds this process's write turn for
/// its database until it ends, so writers queue in order (FIFO) instead of
/// racing for SQLite's lock, where a waiting writer can lose to newer ones for
/// seconds.
pub struct SqliteTx {
    transaction: Conn<Sqlite>,
    _turn: Option<OwnedSemaphorePermit>,
    pending_audit: Vec<PendingAudit>,
    pending_jobs: Vec<(NewJob, i64)>,
}

impl std::ops::Deref for SqliteTx {
    type Target = Conn<Sqlite>;
    fn deref(&self) -> &Self::Target {
        &self.transaction
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.transaction
    }
}

/// One write turn per SQLite database file in this process.
fn write_turns(pool: &SqlitePool) -> Arc<Semaphore> {
    static TURNS: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> =
        LazyLock::new(Default::default);
    let key = pool
        .connect_options()
        .get_filename()
        .to_string_lossy()
        .into_owned();
    let mut turns = TURNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    turns
        .entry(key)
        .or_insert_with(|| Arc::new(Semaphore::new(1)))
        .clone()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string names it.
    #[error("conflict on {0}")]
    Conflict(String),
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://…")]
    BadUrl(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database refused the transaction only because another
    /// one ran at the same time (PostgreSQL's deadlock and serialization
    /// failures): the same work, tried again, may well succeed at once.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::Database(error))
                if matches!(error.code().as_deref(), Some("40P01" | "40001"))
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Microseconds since the epoch, as stored.
pub fn micros(timestamp: Timestamp) -> i64 {
    timestamp.as_microsecond()
}

pub fn from_micros(value: i64) -> Timestamp {
    Timestamp::from_microsecond(value).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Store {
    /// Opens (creating if needed) the database at `url`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory")
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
                // Once the log restarts, its file is cut back to 64 MiB.
                .pragma("journal_size_limit", "67108864")
                .pragma("mmap_size", "1073741824");
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(concurrent_reads())
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?;
            let checkpoints = Checkpointer::start(read.connect_options().as_ref().clone());
            Ok(Store::Sqlite(SqlitePools {
                read,
                write,
                checkpoints,
            }))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options.clone())
                .await?;
            let read = PgPoolOptions::new()
                .max_connections(concurrent_reads())
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?;
            Ok(Store::Postgres(PgPools { pool, read }))
        } else {
            Err(StoreError::BadUrl(url.to_string()))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the backend's migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(pools) => migrator(SQLITE_MIGRATIONS).run(&pools.write).await?,
            Store::Postgres(pools) => migrator(POSTGRES_MIGRATIONS).run(&pools.pool).await?,
        }
        Ok(())
    }

    /// A transaction that will write: on SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so it never fails midway on an upgrade.
    pub async fn write(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(pools) => {
                let turn = write_turns(&pools.write)
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Corrupt("the write queue is closed".into()))?;
                Tx::Sqlite(SqliteTx {
                    transaction: Conn::Transaction(
                        pools.write.begin_with("BEGIN IMMEDIATE").await?,
                    ),
                    _turn: Some(turn),
                    pending_audit: Vec::new(),
                    pending_jobs: Vec::new(),
                })
            }
            Store::Postgres(pools) => {
                Tx::Postgres(PgTx::new(Conn::Transaction(pools.pool.begin().await?)))
            }
        })
    }

    /// A transaction that writes a sweep's passes over ranges of users. On
    /// PostgreSQL it begins with two settings of its own, in the same round
    /// trip as `BEGIN`:
    /// - `enable_seqscan = off`: the statements of a pass over a whole range
    ///   keep their plans on the connection (`ActivitySweep::sent`), and a
    ///   plan made while an activity's enrollments were few must not scan
    ///   the table once they are many; with the setting every plan made in
    ///   such a transaction, the generic one too, reads by index;
    /// - `synchronous_commit = off`: the commit does not wait for the log to
    ///   reach the disk. A crash of the database server (not of Roster) may
    ///   lose the last fraction of a second of such commits — the passes'
    ///   rows with the marks that record them, so the sweep runs those
    ///   passes again; the transaction that finishes a sweep's jobs commits
    ///   as any other (`Tx::make_commit_durable`), which makes all of them
    ///   durable. SQLite (WAL, `synchronous = NORMAL`) makes the same trade
    ///   for every commit.
    ///
    /// On SQLite it is `write`.
    pub async fn write_sweep(&self) -> Result<Tx> {
        match self {
            Store::Sqlite(_) => self.write().await,
            Store::Postgres(pools) => {
                let mut tx = PgTx::new(Conn::Transaction(
                    pools
                        .pool
                        .begin_with(
                            "BEGIN; SET LOCAL enable_seqscan = off; \
                             SET LOCAL synchronous_commit = off",
                        )
                        .await?,
                ));
                tx.sweeping = true;
                Ok(Tx::Postgres(tx))
            }
        }
    }

    /// A transaction that only reads.
    pub async fn read(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(pools) => Tx::Sqlite(SqliteTx {
                transaction: Conn::Transaction(pools.read.begin().await?),
                _turn: None,
                pending_audit: Vec::new(),
                pending_jobs: Vec::new(),
            }),
            Store::Postgres(pools) => {
                Tx::Postgres(PgTx::new(Conn::Transaction(pools.pool.begin().await?)))
            }
        })
    }

    /// A connection that reads outside any transaction: each statement sees
    /// what is committed when it runs. For reads that need no snapshot across
    /// statements (a token lookup, a learner's lists): it saves the round
    /// trips of `BEGIN` and `ROLLBACK`. Never write through it.
    pub async fn reader(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(pools) => Tx::Sqlite(SqliteTx {
                transaction: Conn::Single(pools.read.acquire().await?),
                _turn: None,
                pending_audit: Vec::new(),
                pending_jobs: Vec::new(),
            }),
            Store::Postgres(pools) => {
                Tx::Postgres(PgTx::new(Conn::Single(pools.read.acquire().await?)))
            }
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match self {
            Store::Sqlite(pools) => sqlx::query("SELECT 1").execute(&pools.read).await.is_ok(),
            Store::Postgres(pools) => sqlx::query("SELECT 1").execute(&pools.pool).await.is_ok(),
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pools) => {
                pools.read.close().await;
                pools.write.close().await;
                pools.checkpoints.stop().await;
            }
            Store::Postgres(pools) => {
                pools.read.close().await;
                pools.pool.close().await;
            }
        }
    }
}

impl Tx {
    /// Writes the audit entries and jobs held back so far, then commits.
    pub async fn commit(mut self) -> Result<()> {
        self.flush_at_commit().await?;
        match self {
            Tx::Sqlite(transaction) => transaction.transaction.commit().await?,
            Tx::Postgres(transaction) => transaction.transaction.commit().await?,
        }
        Ok(())
    }

    /// Makes the commit of a transaction from `Store::write_sweep` wait for
    /// the log's flush, as any other does: then everything the sweep's
    /// transactions committed before it is durable too (PostgreSQL writes
    /// its log in order). Nothing to do elsewhere.
    pub async fn make_commit_durable(&mut self) -> Result<()> {
        if let Tx::Postgres(transaction) = self
            && transaction.sweeping
        {
            sqlx::query("SET LOCAL synchronous_commit = on")
                .execute(&mut *transaction.transaction)
                .await?;
            transaction.sweeping = false;
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(transaction) => transaction.transaction.rollback().await?,
            Tx::Postgres(transaction) => transaction.transaction.rollback().await?,
        }
        Ok(())
    }

    /// The jobs enqueued to be written when the transaction commits, each
    /// with its creation time.
    pub(crate) fn pending_jobs(&mut self) -> &mut Vec<(NewJob, i64)> {
        match self {
            Tx::Sqlite(transaction) => &mut transaction.pending_jobs,
            Tx::Postgres(transaction) => &mut transaction.pending_jobs,
        }
    }

    /// The audit entries written when the transaction commits.
    pub(crate) fn pending_audit(&mut self) -> &mut Vec<PendingAudit> {
        match self {
            Tx::Sqlite(transaction) => &mut transaction.pending_audit,
            Tx::Postgres(transaction) => &mut transaction.pending_audit,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "incremental sweep",
        include_str!("../migrations/sqlite/0002_incremental_sweep.sql"),
    ),
    (
        3,
        "indexes for scale",
        include_str!("../migrations/sqlite/0003_indexes_for_scale.sql"),
    ),
    (
        4,
        "exemption ends",
        include_str!("../migrations/sqlite/0004_exemption_ends.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "incremental sweep",
        include_str!("../migrations/postgres/0002_incremental_sweep.sql"),
    ),
    (
        3,
        "indexes for scale",
        include_str!("../migrations/postgres/0003_indexes_for_scale.sql"),
    ),
    (
        4,
        "exemption ends",
        include_str!("../migrations/postgres/0004_exemption_ends.sql"),
    ),
];

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = list
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Turns a unique-constraint violation into `Conflict`, naming the column or
/// index; every other error passes through. The one place constraint errors
/// are interpreted.
pub(crate) fn on_constraint(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database_error) = &error
        && database_error.is_unique_violation()
    {
        let name = database_error
            .constraint()
            .map(str::to_string)
            .unwrap_or_else(|| database_error.message().to_string());
        return StoreError::Conflict(name);
    }
    StoreError::Database(error)
}
