//! One workload's figures, the ratios and targets computed from them, and
//! the report printed as a table or as the `--json` document.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::compare::{EarlierRun, W3_ORGANISATION_EXPONENT_MAX};
use crate::plan::{ACTIVITIES, GROUPS, RULES};

/// One measured workload, as printed and as in the JSON document.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub name: &'static str,
    pub case: String,
    pub seconds: f64,
    pub rows: i64,
    pub rows_per_s: Option<f64>,
    pub requests: Option<usize>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub note: String,
}

impl Workload {
    pub(crate) fn rows(
        name: &'static str,
        case: &str,
        elapsed: Duration,
        rows: i64,
        note: String,
    ) -> Workload {
        let seconds = elapsed.as_secs_f64();
        Workload {
            name,
            case: case.into(),
            seconds,
            rows,
            rows_per_s: (seconds > 0.0).then(|| rows as f64 / seconds),
            requests: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            note,
        }
    }

    /// Latencies of requests (or jobs); a read workload writes no rows, so
    /// it has no row rate.
    pub(crate) fn with_latencies(mut self, samples: &mut [Duration]) -> Workload {
        if self.rows == 0 {
            self.rows_per_s = None;
        }
        self.requests = Some(samples.len());
        self.p50_ms = percentile_ms(samples, 0.50);
        self.p95_ms = percentile_ms(samples, 0.95);
        self.p99_ms = percentile_ms(samples, 0.99);
        self
    }
}

/// The 1, 5 and 15 minute load averages (Linux).
pub(crate) fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn percentile_ms(samples: &mut [Duration], quantile: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((quantile * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1].as_secs_f64() * 1000.0)
}

pub(crate) struct Report {
    /// The machine's load average before and after the run, where known: the
    /// figures mean little if other work shared the cores.
    pub(crate) load: [Option<String>; 2],
    pub(crate) backend: &'static str,
    pub(crate) users: u64,
    pub(crate) seed: u64,
    pub(crate) enrollments: i64,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) calibration_rows: i64,
    pub(crate) calibration_time: Duration,
    pub(crate) calibration_rate: f64,
    pub(crate) w1_time: Duration,
    pub(crate) w1_rows: i64,
    pub(crate) w2_time: Duration,
    pub(crate) w2_rows: i64,
    pub(crate) w3_time: Duration,
    pub(crate) w3_rows: i64,
    /// The run given by `--compare`.
    pub(crate) earlier: Option<EarlierRun>,
}

impl Report {
    fn w1_rate(&self) -> f64 {
        self.w1_rows as f64 / self.w1_time.as_secs_f64().max(1e-9)
    }

    fn w1_vs_raw(&self) -> f64 {
        self.w1_rate() / self.calibration_rate.max(1e-9)
    }

    fn w2_vs_w1(&self) -> f64 {
        self.w2_time.as_secs_f64() / self.w1_time.as_secs_f64().max(1e-9)
    }

    /// W3's time over what it would take if it cost W2's fixed price plus
    /// its rows at W1's rate: near 1 when it is proportional to the delta.
    fn w3_vs_delta(&self) -> f64 {
        let expected = self.w2_time.as_secs_f64() + self.w3_rows as f64 / self.w1_rate().max(1e-9);
        self.w3_time.as_secs_f64() / expected.max(1e-9)
    }

    /// What one of W3's rows cost, in rows of the raw insert of the same
    /// run: compared between organisations of different sizes, it shows
    /// whether W3's cost follows its delta (the same figure) or the
    /// organisation (a figure growing with it). It charges W3's rows for
    /// everything W3 does, as the check above charges them at W1's rate.
    fn w3_row_vs_raw_row(&self) -> f64 {
        let w3_per_row = self.w3_time.as_secs_f64() / (self.w3_rows.max(1) as f64);
        w3_per_row * self.calibration_rate
    }

    fn w6_heavy_p99(&self) -> f64 {
        self.workloads
            .iter()
            .filter(|workload| workload.name == "W6" && workload.case.ends_with("learner with 500"))
            .filter_map(|workload| workload.p99_ms)
            .fold(0.0, f64::max)
    }

    /// W3 against the run given by `--compare`: the exponent k in "W3's
    /// cost per row grows as users^k" between the two organisations (0: the
    /// same cost a row whatever the size; 1: a cost a row growing with the
    /// organisation).
    fn comparison(&self) -> Option<Value> {
        let earlier = self.earlier.as_ref()?;
        let organisation = self.users as f64 / earlier.users as f64;
        let per_row = self.w3_row_vs_raw_row() / earlier.w3_row_vs_raw_row;
        Some(json!({
            "file": earlier.file,
            "users": earlier.users,
            "w3_row_vs_raw_row": earlier.w3_row_vs_raw_row,
            "organisation_factor": organisation,
            "w3_row_factor": per_row,
            "w3_organisation_exponent": per_row.ln() / organisation.ln(),
        }))
    }

    /// The targets; W3's is `null` without `--compare`: whether a cost
    /// follows the organisation shows only between two sizes of it.
    fn targets(&self) -> Value {
        let w3 = self.comparison().map(|comparison| {
            comparison["w3_organisation_exponent"]
                .as_f64()
                .is_some_and(|exponent| exponent <= W3_ORGANISATION_EXPONENT_MAX)
        });
        json!({
            "w1_at_least_half_of_raw": self.w1_vs_raw() >= 0.5,
            "w2_under_5_percent_of_w1_with_0_rows": self.w2_vs_w1() < 0.05 && self.w2_rows == 0,
            "w3_proportional_to_delta": w3,
            "w6_p99_under_20_ms_for_500_enrollments": self.w6_heavy_p99() < 20.0,
        })
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "backend": self.backend,
            "users": self.users,
            "seed": self.seed,
            "groups": GROUPS,
            "activities": ACTIVITIES,
            "rules": RULES,
            "enrollments": self.enrollments,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "load_average": {"before": self.load[0], "after": self.load[1]},
            "workloads": self.workloads,
            "calibration": {
                "rows": self.calibration_rows,
                "seconds": self.calibration_time.as_secs_f64(),
                "rows_per_s": self.calibration_rate,
                "method": match self.backend {
                    "postgres" => "COPY into a copy of the enrollments table, one transaction",
                    _ => "prepared multi-row INSERTs into a copy of the enrollments table, one transaction",
                },
            },
            "ratios": {
                "w1_vs_raw": self.w1_vs_raw(),
                "w2_vs_w1": self.w2_vs_w1(),
                "w3_vs_delta": self.w3_vs_delta(),
                "w3_row_vs_raw_row": self.w3_row_vs_raw_row(),
            },
            "comparison": self.comparison(),
            "targets": self.targets(),
        })
    }

    pub(crate) fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "roster bench: {} users on {} (seed {}), {} enrollments at the end",
            self.users, self.backend, self.seed, self.enrollments
        );
        if let [Some(before), Some(after)] = &self.load {
            let _ = writeln!(out, "load average before: {before}; after: {after}");
        }
        let _ = writeln!(
            out,
            "{:<4} {:<34} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}",
            "", "case", "seconds", "rows", "rows/s", "p50 ms", "p95 ms", "p99 ms"
        );
        let number = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "-".to_string(), |value| format!("{value:.digits$}"))
        };
        for workload in &self.workloads {
            let _ = writeln!(
                out,
                "{:<4} {:<34} {:>9.3} {:>9} {:>10} {:>8} {:>8} {:>8}",
                workload.name,
                workload.case,
                workload.seconds,
                workload.rows,
                number(workload.rows_per_s, 0),
                number(workload.p50_ms, 2),
                number(workload.p95_ms, 2),
                number(workload.p99_ms, 2),
            );
        }
        let _ = writeln!(
            out,
            "raw  {:<34} {:>9.3} {:>9} {:>10.0}",
            "insert, same rows and indexes",
            self.calibration_time.as_secs_f64(),
            self.calibration_rows,
            self.calibration_rate
        );
        let _ = writeln!(out);
        for workload in &self.workloads {
            let _ = writeln!(
                out,
                "{} {}: {}",
                workload.name, workload.case, workload.note
            );
        }
        let _ = writeln!(out);
        self.write_targets(&mut out);
        out
    }

    /// The ratios against their targets, one line each.
    fn write_targets(&self, out: &mut String) {
        use std::fmt::Write;
        let targets = self.targets();
        let mark = |key: &str| match &targets[key] {
            Value::Bool(true) => "met",
            Value::Bool(false) => "MISSED",
            _ => "needs --compare",
        };
        let _ = writeln!(
            out,
            "W1 vs raw insert: {:.2} (target >= 0.50: {})",
            self.w1_vs_raw(),
            mark("w1_at_least_half_of_raw")
        );
        let _ = writeln!(
            out,
            "W2 vs W1 time:    {:.3} with {} rows written (target < 0.05 and 0 rows: {})",
            self.w2_vs_w1(),
            self.w2_rows,
            mark("w2_under_5_percent_of_w1_with_0_rows")
        );
        let _ = writeln!(
            out,
            "W3 per row, in raw insert rows: {:.2}",
            self.w3_row_vs_raw_row()
        );
        match self.comparison() {
            Some(comparison) => {
                let _ = writeln!(
                    out,
                    "W3 per row against {} users ({}): {:.2} ({:.2} times the cost a row for {:.1} \
                     times the users: users^{:.3}; target proportional to the delta, not to the \
                     organisation, exponent <= {W3_ORGANISATION_EXPONENT_MAX}: {})",
                    comparison["users"],
                    comparison["file"].as_str().unwrap_or_default(),
                    comparison["w3_row_vs_raw_row"].as_f64().unwrap_or_default(),
                    comparison["w3_row_factor"].as_f64().unwrap_or_default(),
                    comparison["organisation_factor"]
                        .as_f64()
                        .unwrap_or_default(),
                    comparison["w3_organisation_exponent"]
                        .as_f64()
                        .unwrap_or_default(),
                    mark("w3_proportional_to_delta")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "W3 proportional to the delta, not to the organisation: {} (give this \
                     run's --json to a run of another size with --compare FILE)",
                    mark("w3_proportional_to_delta")
                );
            }
        }
        let _ = writeln!(
            out,
            "W3 vs W2 + rows at W1's rate: {:.2} (within one run; W3's rows also cost the \
             changed users' evaluation against every rule, which W1's rate does not)",
            self.w3_vs_delta()
        );
        let _ = writeln!(
            out,
            "W6 p99, learner with 500 enrollments: {:.1} ms (target < 20 ms: {})",
            self.w6_heavy_p99(),
            mark("w6_p99_under_20_ms_for_500_enrollments")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::earlier;

    /// A report whose W3 costs `w3_row_vs_raw_row` raw rows a row.
    fn report(users: u64, w3_row_vs_raw_row: f64, earlier: Option<EarlierRun>) -> Report {
        Report {
            load: [None, None],
            backend: "sqlite",
            users,
            seed: 1,
            enrollments: 0,
            workloads: Vec::new(),
            calibration_rows: 100_000,
            calibration_time: Duration::from_secs(1),
            calibration_rate: 100_000.0,
            w1_time: Duration::from_secs(2),
            w1_rows: 100_000,
            w2_time: Duration::from_millis(20),
            w2_rows: 0,
            // 1,000 rows at w3_row_vs_raw_row / 100,000 s each.
            w3_time: Duration::from_secs_f64(w3_row_vs_raw_row / 100.0),
            w3_rows: 1_000,
            earlier,
        }
    }

    #[test]
    fn w3s_target_is_the_growth_of_its_cost_per_row_between_two_sizes() {
        let small = || EarlierRun::from_document("small.json".into(), &earlier(10_000, 2.0)).ok();
        // Without an earlier run the target is not decided.
        assert_eq!(
            report(100_000, 2.0, None).targets()["w3_proportional_to_delta"],
            Value::Null
        );
        assert_eq!(report(100_000, 2.0, None).json()["comparison"], Value::Null);

        // 1.2 times the cost a row for ten times the users: users^0.079.
        let follows = report(100_000, 2.4, small());
        let comparison = follows.comparison().unwrap();
        assert!((comparison["w3_row_factor"].as_f64().unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(comparison["organisation_factor"], 10.0);
        let exponent = comparison["w3_organisation_exponent"].as_f64().unwrap();
        assert!((exponent - 1.2f64.log10()).abs() < 1e-9, "{exponent}");
        assert_eq!(follows.targets()["w3_proportional_to_delta"], true);
        assert!(
            follows.table().contains("users^0.079"),
            "{}",
            follows.table()
        );

        // Twice the cost a row for ten times the users: users^0.30, missed.
        let grows = report(100_000, 4.0, small());
        assert_eq!(grows.targets()["w3_proportional_to_delta"], false);
        assert!(grows.table().contains("MISSED"));

        // The comparison reads the same whichever run is the smaller.
        let large = EarlierRun::from_document("large.json".into(), &earlier(100_000, 2.4)).ok();
        let backwards = report(10_000, 2.0, large).comparison().unwrap();
        assert!((backwards["w3_organisation_exponent"].as_f64().unwrap() - exponent).abs() < 1e-9);
    }
}
