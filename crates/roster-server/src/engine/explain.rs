//! R20: why an enrollment exists (its chain of sources up to a person or a
//! rule), and why a user has no enrollment in an activity.

use std::collections::BTreeSet;

use jiff::Timestamp;
use roster_core::decide::{Mismatch, UserFacts, match_user};
use roster_core::payload::{JobPayload, PostEnrollmentPayload};
use roster_core::{ActivityKind, AutoRule, Role, Scope, Source};
use roster_store::{ActivityRecord, EnrollmentRecord, ExemptionRecord, Tx, UserRecord};
use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::rules::activity_from;
use crate::state::Ctx;

/// Why an enrollment exists: its chain of sources, newest first (R20).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    pub enrollment_id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    /// The chain's texts joined by "; because ".
    pub summary: String,
    pub chain: Vec<ChainStep>,
    /// What else shaped the enrollment: an adopted period, an exemption.
    pub notes: Vec<String>,
}

/// One enrollment of a chain of sources.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    pub enrollment_id: i64,
    /// Absent, as are the title and the source, when the enrollment has
    /// since been deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub text: String,
}

/// What a reason of [`PairExplanation`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    NoRule,
    PeriodHeld,
    OpenEnrollment,
    AwaitingSweep,
    ServiceAccount,
    InactiveUser,
    NotInGroups,
    NoHireDate,
    HiredTooEarly,
    Exempt,
    InactiveActivity,
    Prerequisites,
    Items,
    PendingJob,
}

/// One reason, in words.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

/// A prerequisite the user has not passed (R4).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingPrerequisite {
    pub activity_id: i64,
    pub title: String,
}

/// A pending post-enrollment job that will enroll the user in the activity.
#[derive(Clone, Debug)]
pub struct PendingJob {
    pub job_id: i64,
    /// Microseconds.
    pub run_at: i64,
    pub rule_id: Option<i64>,
}

/// Why a user has, or has no, enrollment in an activity (R20).
#[derive(Clone, Debug)]
pub struct PairExplanation {
    pub user_id: i64,
    pub activity_id: i64,
    /// The user's open enrollment in the activity, if any.
    pub open_enrollment: Option<EnrollmentRecord>,
    /// How many enrollments, open or closed, the user has in the activity.
    pub enrollment_count: usize,
    /// The open enrollment's explanation.
    pub explanation: Option<Explanation>,
    pub reasons: Vec<Reason>,
    pub missing_prerequisites: Vec<MissingPrerequisite>,
    pub pending_jobs: Vec<PendingJob>,
}

async fn title(tx: &mut Tx, activity_id: i64) -> anyhow::Result<String> {
    Ok(tx
        .get_activity(activity_id)
        .await?
        .map(|a| a.title)
        .unwrap_or_else(|| format!("activity {activity_id}")))
}

async fn person(tx: &mut Tx, user_id: i64) -> anyhow::Result<String> {
    Ok(tx
        .get_user(user_id)
        .await?
        .map(|u| {
            if u.display_name.is_empty() {
                u.username
            } else {
                u.display_name
            }
        })
        .unwrap_or_else(|| format!("user {user_id}")))
}

/// One step of the chain, in words.
async fn describe(
    tx: &mut Tx,
    record: &EnrollmentRecord,
    source: &Source,
) -> anyhow::Result<String> {
    let activity = title(tx, record.activity_id).await?;
    Ok(match source {
        Source::Manual { by } => format!(
            "{} enrolled the learner in \"{activity}\" by hand",
            person(tx, *by).await?
        ),
        Source::SelfEnrolled => format!("The learner enrolled in \"{activity}\" from the catalog"),
        Source::Url => format!("The learner enrolled in \"{activity}\" through its enrollment URL"),
        Source::Import => format!("An import enrolled the learner in \"{activity}\""),
        Source::AutoEnrollment {
            activity_id,
            period,
        } => format!(
            "The auto-enrollment rule of \"{}\" enrolled the learner for period {period}",
            title(tx, *activity_id).await?
        ),
        Source::PostEnrollment {
            rule_id,
            from_enrollment_id,
        } => format!(
            "Post-enrollment rule {rule_id} enrolled the learner in \"{activity}\" after enrollment {from_enrollment_id}"
        ),
        Source::Curriculum { enrollment_id } => {
            format!("Curriculum enrollment {enrollment_id} enrolled the learner in \"{activity}\"")
        }
        Source::Bundle { enrollment_id } => {
            format!("Bundle enrollment {enrollment_id} enrolled the learner in \"{activity}\"")
        }
    })
}

pub async fn explain_enrollment(
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
) -> anyhow::Result<Explanation> {
    let mut chain = Vec::new();
    let mut current = Some(record.clone());
    let mut seen = BTreeSet::new();
    while let Some(step) = current.take() {
        if !seen.insert(step.id) {
            break;
        }
        let source: Source = serde_json::from_str(&step.source).unwrap_or(Source::Import);
        let text = describe(tx, &step, &source).await?;
        chain.push(ChainStep {
            enrollment_id: step.id,
            activity_id: Some(step.activity_id),
            activity_title: Some(title(tx, step.activity_id).await?),
            source: Some(source.clone()),
            text,
        });
        let parent = match source {
            Source::PostEnrollment {
                from_enrollment_id, ..
            } => Some(from_enrollment_id),
            Source::Curriculum { enrollment_id } | Source::Bundle { enrollment_id } => {
                Some(enrollment_id)
            }
            _ => None,
        };
        if let Some(parent) = parent {
            match tx.get_enrollment(parent).await? {
                Some(parent_record) => current = Some(parent_record),
                None => chain.push(ChainStep {
                    enrollment_id: parent,
                    activity_id: None,
                    activity_title: None,
                    source: None,
                    text: format!("Enrollment {parent} has since been deleted"),
                }),
            }
        }
    }
    let mut notes = Vec::new();
    if record.period.is_some() && record.source_kind != "auto_enrollment" {
        notes.push(format!(
            "The auto-enrollment rule adopted this enrollment for period {} (R15)",
            record.period.as_deref().unwrap_or_default()
        ));
    }
    if let Some(exemption) = tx
        .exemption_on(record.user_id, record.activity_id, &ctx.today.to_string())
        .await?
    {
        notes.push(format!(
            "The learner is exempt from the automation of this activity: {} (until {})",
            exemption.reason,
            exemption.until.as_deref().unwrap_or("further notice")
        ));
    }
    let summary = chain
        .iter()
        .map(|step| step.text.as_str())
        .collect::<Vec<_>>()
        .join("; because ");
    Ok(Explanation {
        enrollment_id: record.id,
        user_id: record.user_id,
        activity_id: record.activity_id,
        summary,
        chain,
        notes,
    })
}

/// Why the user has (or has no) enrollment in the activity.
pub async fn explain_pair(
    tx: &mut Tx,
    ctx: &Ctx,
    user: &UserRecord,
    activity: ActivityRecord,
) -> anyhow::Result<PairExplanation> {
    let activity = activity_from(activity);
    let enrollments = tx.enrollments_of(user.id, activity.record.id).await?;
    let open = enrollments.iter().find(|e| e.status == "in_progress");
    let mut reasons = vec![rule_reason(tx, ctx, user, &activity, &enrollments).await?];
    if !activity.record.active {
        reasons.push(Reason {
            code: ReasonCode::InactiveActivity,
            message:
                "The activity is inactive: learners cannot self-enroll and do not see it (R3, R37)"
                    .into(),
        });
    }
    let missing = missing_prerequisites(tx, user.id, activity.record.id).await?;
    if !missing.is_empty() {
        let titles: Vec<&str> = missing
            .iter()
            .map(|missing| missing.title.as_str())
            .collect();
        reasons.push(Reason {
            code: ReasonCode::Prerequisites,
            message: format!(
                "Self-enrollment needs these prerequisites passed first: {} (R4)",
                titles.join(", ")
            ),
        });
    }
    if activity.kind == ActivityKind::CourseBundle || activity.kind == ActivityKind::Curriculum {
        let items = tx.item_ids(activity.record.id).await?;
        reasons.push(Reason {
            code: ReasonCode::Items,
            message: format!("The {} holds {} course(s)", activity.kind, items.len()),
        });
    }
    let pending = pending_jobs(tx, user.id, activity.record.id).await?;
    if let Some(first) = pending.first() {
        reasons.push(Reason {
            code: ReasonCode::PendingJob,
            message: format!(
                "{} pending post-enrollment job(s) will enroll the learner; the first runs at {}",
                pending.len(),
                Timestamp::from_microsecond(first.run_at).unwrap_or(Timestamp::UNIX_EPOCH)
            ),
        });
    }
    let explanation = match open {
        Some(record) => Some(explain_enrollment(tx, ctx, record).await?),
        None => None,
    };
    Ok(PairExplanation {
        user_id: user.id,
        activity_id: activity.record.id,
        open_enrollment: open.cloned(),
        enrollment_count: enrollments.len(),
        explanation,
        reasons,
        missing_prerequisites: missing,
        pending_jobs: pending,
    })
}

/// What the activity's auto-enrollment rule does for the user (R10-R13, R21).
async fn rule_reason(
    tx: &mut Tx,
    ctx: &Ctx,
    user: &UserRecord,
    activity: &crate::engine::rules::Activity,
    enrollments: &[EnrollmentRecord],
) -> anyhow::Result<Reason> {
    let no_rule = || Reason {
        code: ReasonCode::NoRule,
        message: "The activity has no auto-enrollment rule".into(),
    };
    let Some(rule) = activity
        .rule
        .as_ref()
        .filter(|rule| rule.scope != Scope::None)
    else {
        return Ok(no_rule());
    };
    let exemption = tx
        .exemption_on(user.id, activity.record.id, &ctx.today.to_string())
        .await?;
    let facts = UserFacts {
        id: user.id,
        active: user.active,
        role: user.role.parse().unwrap_or(Role::Learner),
        hired_on: user
            .hired_on
            .as_deref()
            .and_then(roster_core::date::parse_date),
        group_ids: tx.user_group_ids(user.id).await?.into_iter().collect(),
        exempt: exemption.is_some(),
    };
    Ok(match match_user(rule, &facts) {
        Ok(()) => matching_reason(rule, ctx, enrollments),
        Err(Mismatch::NoRule) => no_rule(),
        Err(mismatch) => mismatch_reason(mismatch, rule, user, exemption.as_ref()),
    })
}

/// The rule matches the user: whether its period is held, another open
/// enrollment stands in the way (R2), or the next sweep enrolls them.
fn matching_reason(rule: &AutoRule, ctx: &Ctx, enrollments: &[EnrollmentRecord]) -> Reason {
    let period = roster_core::calendar::current_period(&rule.recurrence, ctx.today).to_string();
    if enrollments
        .iter()
        .any(|e| e.period.as_deref() == Some(period.as_str()))
    {
        Reason {
            code: ReasonCode::PeriodHeld,
            message: format!("The rule's current period {period} already has its enrollment"),
        }
    } else if enrollments.iter().any(|e| e.status == "in_progress") {
        Reason {
            code: ReasonCode::OpenEnrollment,
            message: "The learner already has an open enrollment in the activity (R2)".into(),
        }
    } else {
        Reason {
            code: ReasonCode::AwaitingSweep,
            message: format!(
                "The rule matches the learner; the next sweep enrolls them for period {period} (R13)"
            ),
        }
    }
}

/// Why the rule does not match the user.
fn mismatch_reason(
    mismatch: Mismatch,
    rule: &AutoRule,
    user: &UserRecord,
    exemption: Option<&ExemptionRecord>,
) -> Reason {
    let (code, message) = match mismatch {
        Mismatch::NoRule => (
            ReasonCode::NoRule,
            "The activity has no auto-enrollment rule".to_string(),
        ),
        Mismatch::ServiceAccount => (
            ReasonCode::ServiceAccount,
            "The user is an integration account; no rule enrolls service accounts (R10)".into(),
        ),
        Mismatch::Inactive => (
            ReasonCode::InactiveUser,
            "The user is inactive; inactive users are never auto-enrolled (R10)".into(),
        ),
        Mismatch::NotInGroups => (
            ReasonCode::NotInGroups,
            format!(
                "The user is in none of the rule's groups {:?} (R10)",
                rule.group_ids
            ),
        ),
        Mismatch::NoHireDate => (
            ReasonCode::NoHireDate,
            "The rule enrolls users hired after a date and the user has no hire date (R11)".into(),
        ),
        Mismatch::HiredTooEarly(after) => (
            ReasonCode::HiredTooEarly,
            format!(
                "The rule enrolls users hired after {after}; the user was hired on {} (R11)",
                user.hired_on.as_deref().unwrap_or("?")
            ),
        ),
        Mismatch::Exempt => (
            ReasonCode::Exempt,
            format!(
                "The user is exempt from this activity's automation: {} (until {}) (R21)",
                exemption.map(|e| e.reason.as_str()).unwrap_or_default(),
                exemption
                    .and_then(|e| e.until.as_deref())
                    .unwrap_or("further notice")
            ),
        ),
    };
    Reason { code, message }
}

/// The prerequisites of the activity the user has not passed (R4).
async fn missing_prerequisites(
    tx: &mut Tx,
    user_id: i64,
    activity_id: i64,
) -> anyhow::Result<Vec<MissingPrerequisite>> {
    let mut missing = Vec::new();
    for prerequisite in tx.prerequisite_ids(activity_id).await? {
        if !tx.ever_passed(user_id, prerequisite).await? {
            missing.push(MissingPrerequisite {
                activity_id: prerequisite,
                title: title(tx, prerequisite).await?,
            });
        }
    }
    Ok(missing)
}

/// The user's pending post-enrollment jobs that target the activity.
async fn pending_jobs(
    tx: &mut Tx,
    user_id: i64,
    activity_id: i64,
) -> anyhow::Result<Vec<PendingJob>> {
    let mut pending = Vec::new();
    for job in tx.pending_jobs_of_user(user_id).await? {
        // A payload that does not read names no target here; its job fails
        // when it runs.
        let targets = PostEnrollmentPayload::from_json(&job.payload)
            .map(|payload| payload.target_ids)
            .unwrap_or_default();
        if targets.contains(&activity_id) {
            pending.push(PendingJob {
                job_id: job.id,
                run_at: job.run_at,
                rule_id: job.rule_id,
            });
        }
    }
    Ok(pending)
}
