//! The harness of the store conformance suite: a fresh, migrated database per
//! test on each backend, the macro that runs every test body on both, small
//! fixtures and a seeded random generator for the property cases.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use roster_store::{ActivityRecord, EnrollmentInsert, Store, StoreError, UserInsert};
use sqlx::Connection;

/// The PostgreSQL server tests create their databases on, unless
/// `ROSTER_TEST_PG_URL` names another (an administrator's URL).
pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A business time the fixtures write, in microseconds (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000_000_000;

/// One hour in microseconds.
pub const HOUR: i64 = 3_600_000_000;

/// Generates, for each `module::body`, the test `sqlite::body` running it on a
/// fresh SQLite file and the test `postgres::body` running it on a fresh
/// PostgreSQL database. Bodies are `async fn body(store: Store)`.
macro_rules! both {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::on_sqlite(crate::$module::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::on_postgres(crate::$module::$name).await;
                }
            )*
        }
    };
}

/// A name no other test of any run on this machine uses.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000_000
    )
}

/// Runs `body` on a migrated SQLite database in a fresh temporary directory,
/// removed afterwards unless the test failed.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let directory: PathBuf = std::env::temp_dir().join(format!("roster_t_{}", unique_name()));
    std::fs::create_dir_all(&directory).expect("temporary directory");
    let url = format!("sqlite://{}", directory.join("roster.db").display());
    let store = Store::connect(&url).await.expect("open SQLite");
    store.migrate().await.expect("migrate SQLite");
    let outcome = tokio::spawn(body(store.clone())).await;
    store.close().await;
    match outcome {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&directory);
        }
        Err(error) => {
            eprintln!("the database is kept at {}", directory.display());
            rethrow(error);
        }
    }
}

/// Runs `body` on a migrated PostgreSQL database created for it, dropped
/// afterwards (best effort) whether the test passed or not.
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url =
        std::env::var("ROSTER_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_string());
    let name = format!("roster_t_{}", unique_name());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {admin_url}: {error}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let store = Store::connect(&database_url(&admin_url, &name))
        .await
        .expect("open PostgreSQL");
    store.migrate().await.expect("migrate PostgreSQL");
    let outcome = tokio::spawn(body(store.clone())).await;
    store.close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    if let Err(error) = outcome {
        rethrow(error);
    }
}

/// The administrator's URL with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

fn rethrow(error: tokio::task::JoinError) -> ! {
    if error.is_panic() {
        std::panic::resume_unwind(error.into_panic());
    }
    panic!("test body did not finish: {error}");
}

/// Whether the error is a unique-key refusal.
pub fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

/// An active learner named `username`.
pub fn user(username: &str) -> UserInsert {
    UserInsert {
        username: username.to_string(),
        email: format!("{username}@example.com"),
        display_name: format!("User {username}"),
        active: true,
        role: "learner".to_string(),
        ..UserInsert::default()
    }
}

/// An active online course in the catalog; its token is derived from the title.
pub fn activity(title: &str) -> ActivityRecord {
    ActivityRecord {
        id: 0,
        title: title.to_string(),
        kind: "online_course".to_string(),
        active: true,
        in_catalog: true,
        allow_failure: false,
        enrollment_token: format!("token-{}", title.to_lowercase().replace(' ', "-")),
        auto_rule: None,
        created_at: 0,
    }
}

/// An open, recommended, manual enrollment of the user in the activity.
pub fn enrollment(user_id: i64, activity_id: i64) -> EnrollmentInsert {
    EnrollmentInsert {
        user_id,
        activity_id,
        enrollment_type: "recommended".to_string(),
        status: "in_progress".to_string(),
        due_on: None,
        required_by: Some("Admin".to_string()),
        reason: None,
        enrolled_at: NOW,
        completed_at: None,
        source_kind: "manual".to_string(),
        source: r#"{"kind":"manual","by":1}"#.to_string(),
        period: None,
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same cases on every machine, and a failing case names its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with the given percentage.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
