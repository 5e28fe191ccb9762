//! The resilience harness: a database (SQLite file or a PostgreSQL database of
//! its own) that outlives the `roster serve` processes started on it, so a
//! test can SIGKILL a server, start another on the same data, or run several
//! at once; HTTP shorthands; and direct reads of the database for the final
//! comparisons.
//!
//! Adapted from `tests/api/helpers.rs`, which spawns one server per database.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sqlx::{Connection, Row};

#[path = "../common/startup.rs"]
mod startup;
use startup::{is_healthy, unique_name};

/// The bootstrap admin's API token (`ROSTER_BOOTSTRAP_TOKEN`).
pub const ADMIN_TOKEN: &str = "resilience-admin-token";

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    System,
    Manual,
}

/// A database that outlives the servers started on it; dropped (PostgreSQL)
/// or deleted (SQLite, unless the test failed) at the end.
pub struct Database {
    pub backend: Backend,
    pub url: String,
    pub dir: PathBuf,
    pg: Option<(String, String)>,
    starts: AtomicU64,
}

impl Database {
    pub async fn create(backend: Backend) -> Database {
        let name = unique_name();
        let dir = std::env::temp_dir().join(format!("roster-resilience-{name}"));
        std::fs::create_dir_all(dir.join("data")).expect("create the test directory");
        let (url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/roster.db", dir.display()), None),
            Backend::Postgres => {
                let admin_url = std::env::var("ROSTER_TEST_PG_URL")
                    .unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
                let database = format!("roster_resilience_{name}");
                let mut connection = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to PostgreSQL (set ROSTER_TEST_PG_URL)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
                    .execute(&mut connection)
                    .await
                    .expect("create the test database");
                connection.close().await.ok();
                (
                    replace_database(&admin_url, &database),
                    Some((admin_url, database)),
                )
            }
        };
        Database {
            backend,
            url,
            dir,
            pg,
            starts: AtomicU64::new(0),
        }
    }

    /// Spawns `roster serve` on this database (not yet waiting for it).
    pub fn spawn(&self, clock: ClockMode) -> Node {
        let number = self.starts.fetch_add(1, Ordering::Relaxed) + 1;
        let log_path = self.dir.join(format!("serve-{number}.log"));
        let log = std::fs::File::create(&log_path).expect("create the server log");
        // The server binds a port of its own choosing and prints its address
        // (a port picked here and released could be taken by another process
        // before the server binds it).
        let stdout_path = self.dir.join(format!("serve-{number}.out"));
        let stdout = std::fs::File::create(&stdout_path).expect("create the server's stdout file");
        let clock = match clock {
            ClockMode::System => "system",
            ClockMode::Manual => "manual",
        };
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["serve", "--database", &self.url])
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--clock", clock])
            .env("ROSTER_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
            // A short lease, so a killed process's jobs are taken over within seconds.
            .env("ROSTER_JOB_LEASE_SECONDS", "5")
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("ROSTER_WORKERS")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .expect("start the roster binary");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .expect("build the HTTP client");
        Node {
            name: format!("serve-{number}"),
            base: String::new(),
            client,
            child: Mutex::new(Some(child)),
            log_path,
            stdout_path,
        }
    }

    /// Starts a server and waits until it answers `/healthz`.
    pub async fn start(&self, clock: ClockMode) -> Node {
        let mut node = self.spawn(clock);
        node.wait_until_healthy().await;
        node
    }

    /// Starts `count` servers at once (all spawned before any is waited for).
    pub async fn start_many(&self, count: usize, clock: ClockMode) -> Vec<Node> {
        let mut nodes: Vec<Node> = (0..count).map(|_| self.spawn(clock)).collect();
        for node in &mut nodes {
            node.wait_until_healthy().await;
        }
        nodes
    }

    /// Rows of a query as text (`NULL` as `-`), read straight from the
    /// database. Every column must be text or cast to it.
    pub async fn rows(&self, sql: &'static str) -> Vec<Vec<String>> {
        fn text<R: Row>(row: &R) -> Vec<String>
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            (0..row.len())
                .map(|index| {
                    row.try_get::<Option<String>, usize>(index)
                        .expect("a text column")
                        .unwrap_or_else(|| "-".to_string())
                })
                .collect()
        }
        match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("open the SQLite file");
                let rows = sqlx::query(sql)
                    .fetch_all(&mut connection)
                    .await
                    .unwrap_or_else(|error| panic!("{sql}: {error}"));
                connection.close().await.ok();
                rows.iter().map(text).collect()
            }
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect to the test database");
                let rows = sqlx::query(sql)
                    .fetch_all(&mut connection)
                    .await
                    .unwrap_or_else(|error| panic!("{sql}: {error}"));
                connection.close().await.ok();
                rows.iter().map(text).collect()
            }
        }
    }

    /// Every enrollment as (username, activity, type, status, period,
    /// due_on, source kind), sorted: what must be the same after a crash as
    /// after an uninterrupted run.
    pub async fn enrollment_fingerprint(&self) -> Vec<Vec<String>> {
        let mut rows = self
            .rows(
                "SELECT u.username, a.title, e.type, e.status, e.period, e.due_on, e.source_kind \
                 FROM enrollments e JOIN users u ON u.id = e.user_id \
                 JOIN activities a ON a.id = e.activity_id",
            )
            .await;
        rows.sort();
        rows
    }

    /// `PRAGMA integrity_check` of the SQLite file (no server may be running).
    pub async fn integrity_check(&self) -> String {
        assert_eq!(self.backend, Backend::Sqlite, "integrity_check is SQLite's");
        let mut connection = sqlx::SqliteConnection::connect(&self.url)
            .await
            .expect("open the SQLite file");
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut connection)
            .await
            .expect("PRAGMA integrity_check");
        connection.close().await.ok();
        rows.join("\n")
    }

    /// Log lines of every server started on this database that show a
    /// server-side failure: errors, panics, warnings (failed job attempts,
    /// worker errors), a locked database. sqlx's slow-statement warnings are
    /// performance notes, not failures: they are returned apart.
    pub fn log_problems(&self) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut slow = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (problems, slow);
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                let lower = line.to_ascii_lowercase();
                if line.contains("ERROR")
                    || line.contains("WARN")
                    || lower.contains("panick")
                    || lower.contains("database is locked")
                {
                    let file = path.file_name().unwrap_or_default().to_string_lossy();
                    let entry = format!("{file}: {}", strip_ansi(line));
                    if line.contains("slow statement") {
                        slow.push(entry);
                    } else {
                        problems.push(entry);
                    }
                }
            }
        }
        (problems, slow)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((admin_url, database)) = self.pg.take() {
            // Drop runs inside the test's runtime, which cannot block on itself.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        if let Ok(mut connection) = sqlx::PgConnection::connect(&admin_url).await {
                            let sql = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                                .execute(&mut connection)
                                .await
                                .ok();
                            connection.close().await.ok();
                        }
                    });
                }
            })
            .join()
            .ok();
        }
        if std::thread::panicking() {
            eprintln!("server logs and data kept in {}", self.dir.display());
        } else {
            std::fs::remove_dir_all(&self.dir).ok();
        }
    }
}

/// One `roster serve` process. Dropped, it is killed.
pub struct Node {
    pub name: String,
    pub base: String,
    pub client: reqwest::Client,
    child: Mutex<Option<Child>>,
    pub log_path: PathBuf,
    stdout_path: PathBuf,
}

impl Node {
    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exited = match self.child.lock().expect("the child").as_mut() {
                Some(child) => child.try_wait().expect("poll the server process"),
                None => None,
            };
            if let Some(exit) = exited {
                panic!(
                    "{} exited before it was healthy ({exit}):\n{}",
                    self.name,
                    self.log()
                );
            }
            let healthy = is_healthy(&self.client, &mut self.base, &self.stdout_path).await;
            if healthy {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} was not healthy within 60 s:\n{}", self.name, self.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL (`Child::kill` on Unix), then reaps the process.
    pub fn kill(&self) {
        let child = self.child.lock().expect("the child").take();
        if let Some(mut child) = child {
            child.kill().ok();
            child.wait().ok();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/api/") || path == "/healthz" || path == "/metrics" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        }
    }

    /// Sends an admin request; `Value::Null` sends no body. Errors (the
    /// connection dropped by a kill) are returned, not panicked on.
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, json))
    }

    pub async fn request(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        self.try_request(method.clone(), path, &body)
            .await
            .unwrap_or_else(|error| panic!("{method} {path} on {}: {error}", self.name))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(Method::GET, path, Value::Null).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(Method::POST, path, body).await
    }

    /// A request that must answer `expected`; returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Value, expected: u16) -> Value {
        let (status, answer) = self.request(method.clone(), path, body.clone()).await;
        assert_eq!(
            status, expected,
            "{method} {path} {body} on {}: {answer}",
            self.name
        );
        answer
    }

    /// Imports users from CSV (`POST /imports/users`); returns their ids in
    /// row order.
    pub async fn import_users(&self, csv: &str) -> Vec<i64> {
        let response = self
            .client
            .post(self.url("/imports/users"))
            .bearer_auth(ADMIN_TOKEN)
            .header(CONTENT_TYPE, "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("send the import");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.expect("an import answer");
        assert_eq!(status, 200, "import: {answer}");
        answer["results"]
            .as_array()
            .expect("import results")
            .iter()
            .map(|row| {
                assert_eq!(row["outcome"], "created", "import row: {row}");
                row["user_id"].as_i64().expect("a user id")
            })
            .collect()
    }

    /// Imports CSV rows (after `header`) as four concurrent requests, which
    /// PostgreSQL commits in parallel; returns the ids in row order. Groups
    /// named in the rows must exist already (two imports creating the same
    /// group at once would race).
    pub async fn import_users_parallel(&self, header: &str, rows: &[String]) -> Vec<i64> {
        let quarter = rows.len().div_ceil(4).max(1);
        let mut parts: Vec<String> = rows
            .chunks(quarter)
            .map(|chunk| format!("{header}\n{}\n", chunk.join("\n")))
            .collect();
        parts.resize(4, String::new());
        let import = |csv: String| async move {
            if csv.is_empty() {
                Vec::new()
            } else {
                self.import_users(&csv).await
            }
        };
        let (a, b, c, d) = tokio::join!(
            import(parts[0].clone()),
            import(parts[1].clone()),
            import(parts[2].clone()),
            import(parts[3].clone())
        );
        [a, b, c, d].concat()
    }

    pub async fn create_activity(&self, title: &str) -> i64 {
        let activity = self
            .ok(
                Method::POST,
                "/activities",
                json!({"title": title, "kind": "online_course"}),
                201,
            )
            .await;
        id(&activity)
    }

    pub async fn set_rule(&self, activity_id: i64, rule: Value) {
        self.ok(
            Method::PUT,
            &format!("/activities/{activity_id}/auto-enrollment"),
            rule,
            200,
        )
        .await;
    }

    pub async fn post_rule(&self, activity_id: i64, when: &str, targets: &[i64]) {
        self.ok(
            Method::POST,
            &format!("/activities/{activity_id}/post-enrollments"),
            json!({"when": when, "delay_days": 0, "target_ids": targets, "allow_consecutive": false}),
            201,
        )
        .await;
    }

    /// The id of a group by name.
    pub async fn group_id(&self, name: &str) -> i64 {
        let groups = self.all("/groups").await;
        groups
            .iter()
            .find(|group| group["name"] == name)
            .map(id)
            .unwrap_or_else(|| panic!("no group {name}"))
    }

    /// Manual enrollment (R50); every user must be `created`.
    pub async fn enroll_all(&self, activity_id: i64, user_ids: &[i64], extra: Value) -> Value {
        let mut body = json!({"user_ids": user_ids});
        if let Value::Object(fields) = extra {
            body.as_object_mut().expect("an object").extend(fields);
        }
        let answer = self
            .ok(
                Method::POST,
                &format!("/activities/{activity_id}/enrollments"),
                body,
                200,
            )
            .await;
        let results = answer["results"].as_array().expect("results");
        assert_eq!(results.len(), user_ids.len());
        for result in results {
            assert_eq!(result["outcome"], "created", "{result}");
        }
        answer
    }

    /// `POST /jobs/run-due`: returns how many ran. It waits for jobs other
    /// workers hold, so after a kill it returns once their leases expired
    /// and they were run again.
    pub async fn run_due(&self) -> i64 {
        let answer = self.ok(Method::POST, "/jobs/run-due", json!({}), 200).await;
        answer["ran"].as_i64().expect("ran is a number")
    }

    /// Every item of a paginated list (`limit=1000`, following `next_cursor`).
    pub async fn all(&self, path: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(cursor) => format!("{path}{separator}limit=1000&cursor={cursor}"),
                None => format!("{path}{separator}limit=1000"),
            };
            let page = self.ok(Method::GET, &page_path, Value::Null, 200).await;
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }

    pub async fn sweep(&self, id: i64) -> Value {
        self.ok(Method::GET, &format!("/sweeps/{id}"), Value::Null, 200)
            .await
    }

    /// Polls a sweep record until it is `done` (or fails the test).
    pub async fn wait_sweep_done(&self, id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let record = self.sweep(id).await;
            if record["state"] == "done" {
                return record;
            }
            assert_ne!(record["state"], "failed", "sweep failed: {record}");
            assert!(
                Instant::now() < deadline,
                "sweep {id} not done within {within:?}: {record}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of a counter in `/metrics` with the given `kind` label (0
    /// when the process has not counted it yet).
    pub async fn counter(&self, name: &str, kind: &str) -> f64 {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("read /metrics");
        let text = response.text().await.expect("metrics text");
        let label = format!("kind=\"{kind}\"");
        text.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(&label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts that every job is `done` and returns them all.
pub async fn settled_jobs(node: &Node) -> Vec<Value> {
    let jobs = node.all("/jobs").await;
    let unsettled: Vec<&Value> = jobs.iter().filter(|job| job["state"] != "done").collect();
    assert!(
        unsettled.is_empty(),
        "{} of {} jobs are not done, e.g. {}",
        unsettled.len(),
        jobs.len(),
        unsettled[0]
    );
    jobs
}

/// Compares two sorted row lists as multisets and fails with the
/// differences (a few of each), not with two huge dumps.
pub fn assert_same_rows(what: &str, expected: &[Vec<String>], actual: &[Vec<String>]) {
    if expected == actual {
        return;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < actual.len() {
        match (expected.get(i), actual.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                missing.push(a.join(" | "));
                i += 1;
            }
            (Some(_), Some(b)) => {
                extra.push(b.join(" | "));
                j += 1;
            }
            (Some(a), None) => {
                missing.push(a.join(" | "));
                i += 1;
            }
            (None, Some(b)) => {
                extra.push(b.join(" | "));
                j += 1;
            }
            (None, None) => break,
        }
    }
    panic!(
        "{what}: {} rows expected, {} found; {} missing (lost), {} extra (duplicated or wrong)\n\
         missing, first ones:\n  {}\nextra, first ones:\n  {}",
        expected.len(),
        actual.len(),
        missing.len(),
        extra.len(),
        missing
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
        extra
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}

/// Fails with the log lines if any server logged a failure.
pub fn assert_clean_logs(db: &Database) {
    let (problems, slow) = db.log_problems();
    if let Some(first) = slow.first() {
        let shown: String = first.chars().take(400).collect();
        eprintln!(
            "[{}] note: {} slow-statement warning(s) in the server logs, e.g. {shown}…",
            db.backend.name(),
            slow.len()
        );
    }
    assert!(
        problems.is_empty(),
        "the servers logged {} problem(s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A small pseudo-random number in `0..bound` (no seed to manage: the kill
/// points only need to vary from run to run).
pub fn jitter(bound: u64) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .subsec_nanos() as u64;
    let mixed = (nanos ^ COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed))
        .wrapping_mul(0x2545_F491_4F6C_DD1D);
    if bound == 0 { 0 } else { (mixed >> 17) % bound }
}

/// The `p`-th percentile (0..=100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn id(record: &Value) -> i64 {
    record["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no numeric id in {record}"))
}

fn replace_database(url: &str, database: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let head = before_query
        .rsplit_once('/')
        .map_or(before_query, |(head, _)| head);
    match query {
        Some(query) => format!("{head}/{database}?{query}"),
        None => format!("{head}/{database}"),
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
