//! README's "A short API tour" runs as written against a fresh
//! `roster serve --demo`: its ids come from the answers, and every request
//! of it answers 2xx (its `curl --fail-with-body` stops the tour otherwise).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, items, spawn_app_with};

/// The first `sh` code block after the tour's heading in README.md.
fn tour_block() -> String {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split_once("## A short API tour")
        .expect("README has an API tour")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the tour has a sh code block")
        .1;
    block
        .split_once("```")
        .expect("the tour's code block ends")
        .0
        .to_string()
}

/// Waits until no sweep is queued or running: a reader starts the tour after
/// the server has printed its tokens, by when the start-up sweep is done.
async fn wait_for_sweeps(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, list) = app.get("/sweeps?limit=1000", &app.admin).await;
        assert_eq!(status, 200, "{list}");
        let busy = items(&list)
            .iter()
            .any(|sweep| sweep["state"] == "queued" || sweep["state"] == "running");
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "sweeps still running: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_readme_api_tour_runs_as_written_on_a_fresh_demo_server() {
    let app = spawn_app_with(&[("ROSTER_DEMO", "true")]).await;
    wait_for_sweeps(&app).await;
    let tour = tour_block();
    assert!(tour.contains("http://127.0.0.1:8080"), "{tour}");
    assert!(tour.contains("TOKEN=change-me"), "{tour}");
    // After the tour, the ids it picked out of the answers must be numbers.
    let check = r#"
for name in GROUP RITA COURSE NEGOTIATION ADVANCED ENROLLMENT; do
  [[ ${!name} =~ ^[0-9]+$ ]] || { echo "$name is ${!name:-empty}" >&2; exit 1; }
done
[[ -n $RITA_TOKEN && $RITA_TOKEN != null ]] || { echo "no token for Rita" >&2; exit 1; }
"#;
    let script = tour
        .replace("http://127.0.0.1:8080", &app.base)
        .replace("TOKEN=change-me", &format!("TOKEN={}", app.admin))
        + check;

    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .expect("run bash (the tour needs bash, curl and jq)");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the tour failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- script\n{script}",
        output.status
    );
    // The tour reached its end: Rita's calendar feed was printed.
    assert!(stdout.contains("BEGIN:VCALENDAR"), "{stdout}");
}
