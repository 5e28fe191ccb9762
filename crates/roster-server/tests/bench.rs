//! `roster bench` runs end to end on a small organisation and reports every
//! workload, the raw-insert calibration and the ratios as JSON (§5).

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_prints_every_workload_the_calibration_and_the_ratios_as_json() {
    let directory = std::env::temp_dir().join(format!("roster-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temporary directory");
    let database = format!("sqlite://{}", directory.join("bench.db").display());
    // An earlier run of ten times the users, as its --json document: W3's
    // target compares the cost of a row between the two sizes.
    let earlier = directory.join("earlier.json");
    std::fs::write(
        &earlier,
        r#"{"backend": "sqlite", "users": 3000, "ratios": {"w3_row_vs_raw_row": 2.5}}"#,
    )
    .expect("write the earlier run");
    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["bench", "--users", "300", "--json", "--database", &database])
        .arg("--compare")
        .arg(&earlier)
        .env("RUST_LOG", "warn")
        .output()
        .expect("roster bench runs");
    let _ = std::fs::remove_dir_all(&directory);
    assert!(
        output.status.success(),
        "roster bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");

    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["users"], 300);
    let workloads = report["workloads"].as_array().expect("workloads");
    for name in ["W1", "W2", "W3", "W4", "W5", "W6", "W7"] {
        let workload = workloads
            .iter()
            .find(|workload| workload["name"] == name)
            .unwrap_or_else(|| panic!("{name} is reported"));
        for field in ["seconds", "rows", "rows_per_s", "p50_ms", "p99_ms"] {
            assert!(
                workload.get(field).is_some(),
                "{name} has {field}: {workload}"
            );
        }
        assert!(workload["seconds"].as_f64().is_some_and(|s| s > 0.0));
    }
    let first = |name: &str| {
        workloads
            .iter()
            .find(|workload| workload["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert!(first("W1")["rows"].as_i64().is_some_and(|rows| rows > 1000));
    // R14: a sweep with nothing to do writes nothing.
    assert_eq!(first("W2")["rows"], 0);
    assert!(
        workloads
            .iter()
            .any(|workload| workload["name"] == "W6" && workload["p99_ms"].as_f64().is_some())
    );
    assert!(
        report["calibration"]["rows_per_s"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0)
    );
    assert!(report["ratios"]["w1_vs_raw"].as_f64().is_some());
    assert!(report["ratios"]["w2_vs_w1"].as_f64().is_some());
    // W3's cost per row in rows of the raw insert, from the figures above.
    let w3 = first("W3");
    let w3_rows = w3["rows"].as_f64().expect("W3 rows").max(1.0);
    let expected = w3["seconds"].as_f64().expect("W3 seconds") / w3_rows
        * report["calibration"]["rows_per_s"]
            .as_f64()
            .expect("raw rate");
    let reported = report["ratios"]["w3_row_vs_raw_row"]
        .as_f64()
        .expect("w3_row_vs_raw_row");
    assert!(
        (reported - expected).abs() <= 1e-6 * expected.max(1.0),
        "w3_row_vs_raw_row {reported} against {expected}"
    );
    // Against the earlier run: the exponent k of users^k that the cost a row
    // grew by, and the target decided by it.
    let comparison = &report["comparison"];
    assert_eq!(comparison["users"], 3000, "{comparison}");
    let exponent = (reported / 2.5).ln() / (300.0f64 / 3000.0).ln();
    let reported_exponent = comparison["w3_organisation_exponent"]
        .as_f64()
        .expect("w3_organisation_exponent");
    assert!(
        (reported_exponent - exponent).abs() <= 1e-6,
        "exponent {reported_exponent} against {exponent}: {comparison}"
    );
    assert_eq!(
        report["targets"]["w3_proportional_to_delta"],
        exponent <= 0.2,
        "{}",
        report["targets"]
    );
}

#[test]
fn bench_refuses_a_comparison_with_another_backend_before_it_starts() {
    let directory =
        std::env::temp_dir().join(format!("roster-bench-compare-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temporary directory");
    let earlier = directory.join("earlier.json");
    std::fs::write(
        &earlier,
        r#"{"backend": "postgres", "users": 3000, "ratios": {"w3_row_vs_raw_row": 1.8}}"#,
    )
    .expect("write the earlier run");
    let database = directory.join("bench.db");
    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["bench", "--users", "300", "--database"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--compare")
        .arg(&earlier)
        .env("RUST_LOG", "warn")
        .output()
        .expect("roster bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut missing = Command::new(env!("CARGO_BIN_EXE_roster"));
    missing
        .args(["bench", "--users", "300", "--database"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--compare")
        .arg(directory.join("no-such.json"));
    let missing = missing.output().expect("roster bench runs");
    let _ = std::fs::remove_dir_all(&directory);

    assert!(!output.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains("postgres") && stderr.contains("sqlite"),
        "names both backends: {stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing measured");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no-such.json"),
        "names the file it cannot read: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
