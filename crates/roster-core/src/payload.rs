//! The snapshots jobs carry (R33): one serde type per job kind, written by
//! the code that enqueues a job and read by the worker that runs it, so the
//! two cannot drift apart. A payload missing a field fails its job with an
//! error naming the field, never reads as id 0.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Trigger;

/// A job's payload: its kind's name in the `jobs` table and its JSON text.
pub trait JobPayload: Serialize + DeserializeOwned {
    /// The job kind (`jobs.kind`) whose payload this is.
    const KIND: &'static str;

    /// The payload as stored in `jobs.payload`.
    fn to_json(&self) -> String {
        // Plain structs of numbers, strings and lists always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored payload. The text is read as JSON first and then as
    /// the type, so that a missing field is reported by name alone, without
    /// the position serde_json would add.
    fn from_json(text: &str) -> Result<Self, PayloadError> {
        let error = |error| PayloadError {
            kind: Self::KIND,
            error,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(error)?;
        serde_json::from_value(value).map_err(error)
    }
}

/// A payload that does not read as its kind's type.
#[derive(Debug, thiserror::Error)]
#[error("{kind} payload: {error}")]
pub struct PayloadError {
    pub kind: &'static str,
    pub error: serde_json::Error,
}

/// What a post-enrollment job carries: the rule's snapshot when it was
/// triggered (R33), and the enrollment and learner that triggered it.
///
/// Fields are in alphabetical order, the order the payloads were written in
/// before this type existed, so stored and new payloads read the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostEnrollmentPayload {
    /// The activity whose rule this is.
    pub activity_id: i64,
    pub allow_consecutive: bool,
    pub delay_days: u32,
    pub from_enrollment_id: i64,
    pub rule_id: i64,
    pub target_ids: Vec<i64>,
    pub triggered_at: Timestamp,
    pub user_id: i64,
    pub when: Trigger,
}

impl JobPayload for PostEnrollmentPayload {
    const KIND: &'static str = "post_enrollment";
}

/// What a sweep job carries: its sweep, the activity it sweeps and the day
/// the sweep is for (R13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepActivityPayload {
    pub activity_id: i64,
    pub day: Date,
    pub sweep_id: i64,
}

impl JobPayload for SweepActivityPayload {
    const KIND: &'static str = "sweep_activity";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r33_a_post_enrollment_payload_keeps_its_json_shape() {
        let payload = PostEnrollmentPayload {
            activity_id: 4,
            allow_consecutive: false,
            delay_days: 3,
            from_enrollment_id: 90,
            rule_id: 7,
            target_ids: vec![5, 6],
            triggered_at: "2030-07-10T08:00:00Z".parse().unwrap(),
            user_id: 12,
            when: Trigger::Completed,
        };
        let text = payload.to_json();
        assert_eq!(
            text,
            r#"{"activity_id":4,"allow_consecutive":false,"delay_days":3,"from_enrollment_id":90,"rule_id":7,"target_ids":[5,6],"triggered_at":"2030-07-10T08:00:00Z","user_id":12,"when":"completed"}"#
        );
        assert_eq!(PostEnrollmentPayload::from_json(&text).unwrap(), payload);
    }

    #[test]
    fn r13_a_sweep_payload_keeps_its_json_shape() {
        let payload = SweepActivityPayload {
            activity_id: 4,
            day: jiff::civil::date(2030, 7, 10),
            sweep_id: 2,
        };
        let text = payload.to_json();
        assert_eq!(text, r#"{"activity_id":4,"day":"2030-07-10","sweep_id":2}"#);
        assert_eq!(SweepActivityPayload::from_json(&text).unwrap(), payload);
    }

    #[test]
    fn a_payload_missing_a_field_names_it_instead_of_reading_zero() {
        let text = r#"{"activity_id":4,"allow_consecutive":false,"delay_days":0,"from_enrollment_id":90,"target_ids":[],"triggered_at":"2030-07-10T08:00:00Z","user_id":12,"when":"enrolled"}"#;
        let error = PostEnrollmentPayload::from_json(text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "post_enrollment payload: missing field `rule_id`"
        );
        let error = SweepActivityPayload::from_json(r#"{"activity_id":4,"sweep_id":2}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "sweep_activity payload: missing field `day`");
        assert!(
            SweepActivityPayload::from_json("not json")
                .unwrap_err()
                .to_string()
                .starts_with("sweep_activity payload: ")
        );
    }
}
