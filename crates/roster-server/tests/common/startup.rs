//! What the test harnesses share to start `roster serve`: the server
//! binds a port of its own choosing (`--listen 127.0.0.1:0`) and prints its
//! address; a port picked by the test and released could be taken by
//! another process before the server bound it.

use std::path::Path;
use std::time::Duration;

/// The base URL a server printed on its standard output once it listened
/// (`Roster is running at http://127.0.0.1:PORT`), if it has yet.
pub fn announced_base(stdout_path: &Path) -> Option<String> {
    let printed = std::fs::read_to_string(stdout_path).ok()?;
    printed.lines().find_map(|line| {
        line.strip_prefix("Roster is running at ")
            .map(|base| base.trim().to_string())
    })
}

/// Learns the server's base URL into `base` (empty until it is printed),
/// then whether `/healthz` answers 200.
pub async fn is_healthy(client: &reqwest::Client, base: &mut String, stdout_path: &Path) -> bool {
    if base.is_empty() {
        *base = announced_base(stdout_path).unwrap_or_default();
    }
    !base.is_empty()
        && client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
}

/// A name unique across concurrent test processes and threads (a test's
/// directory and database).
pub fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}_{}_{}",
        std::process::id(),
        count,
        nanos % 1_000_000_000_000
    )
}
