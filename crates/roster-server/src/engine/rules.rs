//! Loading the rules of an activity from the store into core types.

use roster_core::{ActivityKind, AutoRule, MAX_DELAY_DAYS, PostRule, Trigger};
use roster_store::{ActivityRecord, PostRuleRecord, Tx};

use crate::engine::EngineResult;

/// An activity with its kind parsed and its auto-enrollment rule, if any.
#[derive(Clone, Debug)]
pub struct Activity {
    pub record: ActivityRecord,
    pub kind: ActivityKind,
    pub rule: Option<AutoRule>,
    /// Its post-enrollment rules, when a caller creating many enrollments in
    /// it read them once (`with_post_rules`); otherwise read at each trigger.
    pub post_rules: Option<Vec<PostRule>>,
}

impl Activity {
    /// The activity with its post-enrollment rules read now, for a caller
    /// that enrolls many users in it within one transaction.
    pub async fn with_post_rules(mut self, tx: &mut Tx) -> EngineResult<Activity> {
        self.post_rules = Some(post_rules(tx, self.record.id).await?);
        Ok(self)
    }
}

pub fn activity_from(record: ActivityRecord) -> Activity {
    let kind = record.kind.parse().unwrap_or(ActivityKind::OnlineCourse);
    let rule = record
        .auto_rule
        .as_deref()
        .and_then(|json| serde_json::from_str::<AutoRule>(json).ok());
    Activity {
        record,
        kind,
        rule,
        post_rules: None,
    }
}

pub async fn load_activity(tx: &mut Tx, id: i64) -> EngineResult<Option<Activity>> {
    Ok(tx.get_activity(id).await?.map(activity_from))
}

pub fn post_rule_from(record: &PostRuleRecord) -> PostRule {
    PostRule {
        id: record.id,
        activity_id: record.activity_id,
        when: record.trigger_on.parse().unwrap_or(Trigger::Enrolled),
        delay_days: record.delay_days.clamp(0, i64::from(MAX_DELAY_DAYS)) as u32,
        target_ids: serde_json::from_str(&record.target_ids).unwrap_or_default(),
        allow_consecutive: record.allow_consecutive,
    }
}

pub async fn post_rules(tx: &mut Tx, activity_id: i64) -> EngineResult<Vec<PostRule>> {
    Ok(tx
        .post_rules(activity_id)
        .await?
        .iter()
        .map(post_rule_from)
        .collect())
}
