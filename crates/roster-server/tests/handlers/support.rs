//! A router on a fresh database and a way to call it.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "in-process-admin-token";

/// The router of a fresh organisation (SQLite in a temporary directory)
/// whose administrator holds [`ADMIN_TOKEN`].
pub struct Harness {
    pub router: Router,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One answer: status, content type and the body (as JSON when it is).
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub json: Value,
}

impl Harness {
    pub async fn new() -> Harness {
        let name = format!("roster-handlers-{}-{}", std::process::id(), rand_suffix());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(dir.join("data")).expect("create the test directory");
        let url = format!("sqlite://{}/roster.db", dir.display());
        let state = roster_server::app::manual_state(&url, dir.join("data"), ADMIN_TOKEN)
            .await
            .expect("open the state");
        Harness {
            router: roster_server::app::router(state),
            _dir: TempDir(dir),
        }
    }

    /// Calls `method path` with `body` (raw text, sent as JSON) and the
    /// admin's token unless `token` is `None`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or("").to_string()))
            .expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            json,
        }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        self.call(method, path, body, Some(ADMIN_TOKEN)).await
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish()
}
