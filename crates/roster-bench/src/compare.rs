//! `--compare`: an earlier run's JSON document, read and checked before
//! anything is measured, to compare W3's cost per row between two sizes of
//! organisation.

use serde_json::Value;

use crate::error::{BenchError, Result};

/// What `--compare` takes from an earlier run's JSON document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EarlierRun {
    pub(crate) file: String,
    pub(crate) backend: String,
    pub(crate) users: u64,
    pub(crate) w3_row_vs_raw_row: f64,
}

/// The organisations compared must differ at least this much in size.
const COMPARE_MIN_FACTOR: f64 = 4.0;
/// The largest exponent k in "W3's cost per row grows as users^k" that still
/// counts as following the delta: k = 1 would be a cost per row growing with
/// the organisation; k = 0.2 allows ten times the users to cost at most 1.58
/// times as much a row (an index one level deeper and the machine's noise).
pub(crate) const W3_ORGANISATION_EXPONENT_MAX: f64 = 0.2;

impl EarlierRun {
    /// Reads an earlier `roster bench --json` document.
    pub(crate) fn read(path: &std::path::Path) -> Result<EarlierRun> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            BenchError::Refused(format!("--compare {file}: cannot read it: {error}"))
        })?;
        let document: Value = serde_json::from_str(&text).map_err(|error| {
            BenchError::Refused(format!(
                "--compare {file}: not a JSON document of roster bench --json: {error}"
            ))
        })?;
        EarlierRun::from_document(file, &document)
    }

    pub(crate) fn from_document(file: String, document: &Value) -> Result<EarlierRun> {
        let missing = |field: &str| {
            BenchError::Refused(format!(
                "--compare {file}: no {field} in it (the document roster bench --json prints)"
            ))
        };
        let backend = document["backend"]
            .as_str()
            .ok_or_else(|| missing("\"backend\""))?
            .to_string();
        let users = document["users"]
            .as_u64()
            .filter(|users| *users > 0)
            .ok_or_else(|| missing("\"users\""))?;
        let w3_row_vs_raw_row = document["ratios"]["w3_row_vs_raw_row"]
            .as_f64()
            .filter(|value| value.is_finite() && *value > 0.0)
            .ok_or_else(|| missing("\"ratios\".\"w3_row_vs_raw_row\""))?;
        Ok(EarlierRun {
            file,
            backend,
            users,
            w3_row_vs_raw_row,
        })
    }

    /// Refuses a comparison that cannot tell anything: another backend, or
    /// organisations of nearly the same size.
    pub(crate) fn check(&self, backend: &str, users: u64) -> Result<()> {
        if self.backend != backend {
            return Err(BenchError::Refused(format!(
                "--compare {}: that run was on {}, this one is on {backend}; compare runs of one backend",
                self.file, self.backend
            )));
        }
        let factor = users.max(self.users) as f64 / users.min(self.users) as f64;
        if factor < COMPARE_MIN_FACTOR {
            return Err(BenchError::Refused(format!(
                "--compare {}: that run had {} users, this one {users}; the sizes must differ \
                 at least {COMPARE_MIN_FACTOR} times to tell the delta's cost from the organisation's",
                self.file, self.users
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn earlier(users: u64, w3_row_vs_raw_row: f64) -> Value {
        json!({"backend": "sqlite", "users": users, "ratios": {"w3_row_vs_raw_row": w3_row_vs_raw_row}})
    }

    #[test]
    fn an_earlier_run_is_read_from_its_json_and_refused_where_it_cannot_compare() {
        let run = EarlierRun::from_document("small.json".into(), &earlier(10_000, 1.77)).unwrap();
        assert_eq!((run.backend.as_str(), run.users), ("sqlite", 10_000));
        assert_eq!(run.w3_row_vs_raw_row, 1.77);
        for (document, field) in [
            (
                json!({"users": 10, "ratios": {"w3_row_vs_raw_row": 1.0}}),
                "backend",
            ),
            (
                json!({"backend": "sqlite", "ratios": {"w3_row_vs_raw_row": 1.0}}),
                "users",
            ),
            (
                json!({"backend": "sqlite", "users": 10, "ratios": {}}),
                "w3_row_vs_raw_row",
            ),
            (earlier(10, 0.0), "w3_row_vs_raw_row"),
        ] {
            let error = EarlierRun::from_document("x.json".into(), &document).unwrap_err();
            assert!(error.to_string().contains(field), "{error}");
        }

        assert!(run.check("sqlite", 100_000).is_ok());
        assert!(run.check("sqlite", 2_500).is_ok(), "smaller by four times");
        let other = run.check("postgres", 100_000).unwrap_err().to_string();
        assert!(
            other.contains("postgres") && other.contains("sqlite"),
            "{other}"
        );
        let close = run.check("sqlite", 30_000).unwrap_err().to_string();
        assert!(close.contains("at least 4 times"), "{close}");
    }
}
