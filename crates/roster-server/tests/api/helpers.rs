//! The test harness: `spawn_app()` starts the real `roster` binary on a free
//! port with a fresh database, and `TestApp` speaks HTTP to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use reqwest::{Method, multipart};
use serde_json::{Value, json};
use sqlx::Connection;

#[path = "../common/startup.rs"]
mod startup;
use startup::{is_healthy, unique_name};

/// The bootstrap admin's API token (`ROSTER_BOOTSTRAP_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-admin-token";

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A running server and what is needed to talk to it and clean up after it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin: String,
    /// The server's database, for commands run beside it (`roster import …`).
    pub database_url: String,
    child: Child,
    pub dir: PathBuf,
    pg_database: Option<(String, String)>,
}

/// One HTTP answer, kept whole for assertions on headers and raw bodies.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub content_disposition: String,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Starts a server with a fresh database and waits until `/healthz` answers.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// As `spawn_app`, with extra environment variables for the server
/// (`ROSTER_WORKERS=0`: no job runs until the test asks for it).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    let name = unique_name();
    let dir = std::env::temp_dir().join(format!("roster-api-{name}"));
    std::fs::create_dir_all(dir.join("data")).expect("create the test directory");

    let backend = std::env::var("ROSTER_TEST_BACKEND").unwrap_or_else(|_| "sqlite".to_string());
    let (database_url, pg_database) = match backend.as_str() {
        "sqlite" => (format!("sqlite://{}/roster.db", dir.display()), None),
        "postgres" => {
            let admin_url =
                std::env::var("ROSTER_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
            let database = format!("roster_api_{name}");
            let mut connection = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL (set ROSTER_TEST_PG_URL)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
                .execute(&mut connection)
                .await
                .expect("create the test database");
            // Commits need not wait for the disk in a throwaway test database;
            // it only makes the suite faster (durability is not under test here).
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {database} SET synchronous_commit = off"
            )))
            .execute(&mut connection)
            .await
            .expect("configure the test database");
            connection.close().await.ok();
            let url = replace_database(&admin_url, &database);
            (url, Some((admin_url, database)))
        }
        other => panic!("ROSTER_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    };

    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).expect("create the server log");
    // The server binds a port of its own choosing and prints its address
    // (a port picked here and released could be taken by another process
    // before the server binds it).
    let stdout_path = dir.join("server.out");
    let stdout = std::fs::File::create(&stdout_path).expect("create the server's stdout file");
    let child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--database", &database_url])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--clock", "manual"])
        .env("ROSTER_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .expect("start the roster binary");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build the HTTP client");
    let mut app = TestApp {
        base: String::new(),
        client,
        admin: ADMIN_TOKEN.to_string(),
        database_url: database_url.clone(),
        child,
        dir,
        pg_database,
    };
    app.wait_until_healthy(&log_path, &stdout_path).await;
    app
}

impl TestApp {
    async fn wait_until_healthy(&mut self, log_path: &Path, stdout_path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().expect("poll the server process") {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("roster exited before it was healthy ({exit}):\n{log}");
            }
            let healthy = is_healthy(&self.client, &mut self.base, stdout_path).await;
            if healthy {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("roster was not healthy within 30 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The full URL of an API path: `/users` means `/api/v1/users`; paths that
    /// already start with `/api/`, and `/healthz` and `/metrics`, are kept.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/api/") || path == "/healthz" || path == "/metrics" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        }
    }

    /// Sends a request; an empty token sends no `Authorization` header and a
    /// `Value::Null` body sends no body.
    pub async fn request(&self, method: Method, path: &str, token: &str, body: Value) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if !body.is_null() {
            request = request.json(&body);
        }
        into_reply(request.send().await.expect("send the request")).await
    }

    /// Sends a request with a raw body and content type (for malformed input).
    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header(CONTENT_TYPE, content_type)
            .body(body.to_string());
        into_reply(request.send().await.expect("send the request")).await
    }

    /// `GET` with an `Accept` header, for CSV and other representations.
    pub async fn get_accept(&self, path: &str, token: &str, accept: &str) -> Reply {
        let request = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .header(ACCEPT, accept);
        into_reply(request.send().await.expect("send the request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.request(Method::GET, path, token, Value::Null)
            .await
            .pair()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request(Method::POST, path, token, body).await.pair()
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request(Method::PATCH, path, token, body).await.pair()
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request(Method::PUT, path, token, body).await.pair()
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.request(Method::DELETE, path, token, Value::Null)
            .await
            .pair()
    }

    /// Uploads `bytes` as the multipart field `file` (R52).
    pub async fn upload(
        &self,
        enrollment_id: i64,
        token: &str,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let part = multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(mime)
            .expect("a valid MIME type");
        let form = multipart::Form::new().part("file", part);
        let request = self
            .client
            .post(self.url(&format!("/enrollments/{enrollment_id}/attachments")))
            .bearer_auth(token)
            .multipart(form);
        into_reply(request.send().await.expect("send the upload")).await
    }

    /// Creates a learner with the given groups and returns their id.
    pub async fn create_user(&self, username: &str, group_ids: &[i64]) -> i64 {
        let body = json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "display_name": format!("{username} person"),
            "group_ids": group_ids,
        });
        let (status, user) = self.post("/users", &self.admin, body).await;
        assert_eq!(status, 201, "create user {username}: {user}");
        id(&user)
    }

    /// Issues an API token for a user (`POST /users/{id}/tokens`).
    pub async fn token_for(&self, user_id: i64) -> String {
        let (status, body) = self
            .post(&format!("/users/{user_id}/tokens"), &self.admin, json!({}))
            .await;
        assert_eq!(status, 201, "issue a token: {body}");
        body["token"].as_str().expect("a token string").to_string()
    }

    /// Creates a learner and a token for them.
    pub async fn create_learner(&self, username: &str) -> (i64, String) {
        let user_id = self.create_user(username, &[]).await;
        let token = self.token_for(user_id).await;
        (user_id, token)
    }

    /// Creates an activity with default flags and returns its id.
    pub async fn create_activity(&self, title: &str, kind: &str) -> i64 {
        id(&self
            .create_activity_with(json!({"title": title, "kind": kind}))
            .await)
    }

    /// Creates an activity from a full body and returns it.
    pub async fn create_activity_with(&self, body: Value) -> Value {
        let (status, activity) = self.post("/activities", &self.admin, body.clone()).await;
        assert_eq!(status, 201, "create activity {body}: {activity}");
        activity
    }

    pub async fn create_group(&self, name: &str) -> i64 {
        let (status, group) = self
            .post("/groups", &self.admin, json!({"name": name}))
            .await;
        assert_eq!(status, 201, "create group {name}: {group}");
        id(&group)
    }

    /// Manual enrollment (R50) of users into an activity; `extra` adds fields
    /// such as `due_on`, `status` or `type`. Returns the per-user results.
    pub async fn enroll(&self, activity_id: i64, user_ids: &[i64], extra: Value) -> Vec<Value> {
        let mut body = json!({"user_ids": user_ids});
        if let Value::Object(fields) = extra {
            body.as_object_mut().expect("an object").extend(fields);
        }
        let (status, answer) = self
            .post(
                &format!("/activities/{activity_id}/enrollments"),
                &self.admin,
                body,
            )
            .await;
        assert_eq!(status, 200, "manual enrollment: {answer}");
        answer["results"].as_array().expect("results").clone()
    }

    /// Enrolls one user and returns the created enrollment.
    pub async fn enroll_one(&self, activity_id: i64, user_id: i64, extra: Value) -> Value {
        let results = self.enroll(activity_id, &[user_id], extra).await;
        assert_eq!(results[0]["outcome"], "created", "{results:?}");
        results[0]["enrollment"].clone()
    }

    /// Moves the manual clock forward to an RFC 3339 time.
    pub async fn set_clock(&self, now: &str) {
        let (status, body) = self.post("/clock", &self.admin, json!({"now": now})).await;
        assert_eq!(status, 200, "set the clock to {now}: {body}");
    }

    /// Runs every job due now (`POST /jobs/run-due`) and returns how many ran.
    pub async fn run_due_jobs(&self) -> i64 {
        let (status, body) = self.post("/jobs/run-due", &self.admin, json!({})).await;
        assert_eq!(status, 200, "run due jobs: {body}");
        body["ran"].as_i64().expect("ran is a number")
    }

    /// The bootstrap admin's user record.
    pub async fn admin_user(&self) -> Value {
        let (status, list) = self.get("/users?q=admin", &self.admin).await;
        assert_eq!(status, 200, "{list}");
        items(&list)
            .into_iter()
            .find(|user| user["username"] == "admin")
            .expect("the bootstrap admin is listed")
    }
}

impl Reply {
    pub fn pair(self) -> (u16, Value) {
        (self.status, self.json)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        if let Some((admin_url, database)) = self.pg_database.take() {
            // Drop runs inside the test's runtime, which cannot block on itself:
            // the database goes away from a thread with a runtime of its own.
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
        // A failing test keeps its directory (and server.log) for inspection.
        if !std::thread::panicking() {
            std::fs::remove_dir_all(&self.dir).ok();
        } else {
            eprintln!("server log and data kept in {}", self.dir.display());
        }
    }
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header(CONTENT_TYPE);
    let content_disposition = header(CONTENT_DISPOSITION);
    let bytes = response.bytes().await.expect("read the body").to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        content_disposition,
        bytes,
        json,
    }
}

/// The URL with its database name (the last path segment) replaced.
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

/// The `id` of a JSON record.
pub fn id(record: &Value) -> i64 {
    record["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no numeric id in {record}"))
}

/// The `items` of a list answer (`{"items":[…],"next_cursor":…}`).
pub fn items(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items array in {list}"))
        .clone()
}

/// The ids of a list answer's items, in order.
pub fn item_ids(list: &Value) -> Vec<i64> {
    items(list).iter().map(id).collect()
}

/// The `activity_id`s of a list of enrollments, in order.
pub fn activity_ids(enrollments: &Value) -> Vec<i64> {
    enrollments
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {enrollments}"))
        .iter()
        .map(|enrollment| enrollment["activity_id"].as_i64().expect("activity_id"))
        .collect()
}

/// Percent-encodes a query value (cursors are opaque strings).
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A JSON value that may have been stored as a JSON string, read as JSON.
pub fn as_json(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| value.clone()),
        other => other.clone(),
    }
}

/// Asserts an RFC 9457 problem answer with the given status.
pub fn assert_problem(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status,
        status,
        "expected {status}, got {}: {}",
        reply.status,
        reply.text()
    );
    assert!(
        reply.content_type.starts_with("application/problem+json"),
        "an error must be application/problem+json, got {:?}: {}",
        reply.content_type,
        reply.text()
    );
    assert_eq!(
        reply.json["status"],
        status,
        "problem body: {}",
        reply.text()
    );
    assert!(
        reply.json["title"].is_string(),
        "problem without title: {}",
        reply.text()
    );
}

/// Asserts a 4xx problem answer (any client error, never a 5xx).
pub fn assert_client_error(reply: &Reply) {
    assert!(
        (400..500).contains(&reply.status),
        "expected a 4xx, got {}: {}",
        reply.status,
        reply.text()
    );
    assert_problem(reply, reply.status);
}

/// Asserts a 422 problem whose `errors` name the field.
pub fn assert_field_error(reply: &Reply, field: &str) {
    assert_problem(reply, 422);
    let errors = reply.json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("422 without an errors array: {}", reply.text()));
    assert!(
        errors.iter().any(|error| error["field"]
            .as_str()
            .is_some_and(|name| name.contains(field))),
        "no error names the field {field:?}: {}",
        reply.text()
    );
}
