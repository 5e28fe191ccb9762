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

use crate::engine::EngineResult;
use crate::engine::rules::{Activity, activity_from};
use crate::state::Ctx;

/// Why an enrollment exists: its chain of sources, nearest first (R20).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EnrollmentExplanation {
    pub enrollment_id: i64,
    pub user_id: i64,
    pub activity_id: i64,
    /// The chain's steps in one sentence.
    pub summary: String,
    pub chain: Vec<ChainStep>,
    pub notes: Vec<String>,
}

/// One enrollment of the chain, or one that has since been deleted (then
/// only its id and the text).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChainStep {
    pub enrollment_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub text: String,
}

/// Why a user has (or has no) enrollment in an activity (R20).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PairExplanation {
    pub user_id: i64,
    pub activity_id: i64,
    pub enrolled: bool,
    /// The open enrollment, for the caller to show as it shows enrollments.
    #[serde(skip)]
    pub open_enrollment: Option<EnrollmentRecord>,
    pub enrollment_count: usize,
    /// Why the open enrollment exists.
    pub explanation: Option<EnrollmentExplanation>,
    pub reasons: Vec<Reason>,
    pub missing_prerequisites: Vec<Prerequisite>,
    pub pending_jobs: Vec<PendingJob>,
}

/// One reason, with a code a program can test and a message in words.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

/// What a reason is about.
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

/// A prerequisite the user has not passed (R4).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Prerequisite {
    pub activity_id: i64,
    pub title: String,
}

/// A pending post-enrollment job that will enroll the user in the activity.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PendingJob {
    pub job_id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub run_at: Timestamp,
    pub rule_id: Option<i64>,
}

impl Reason {
    fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            message: message.into(),
        }
    }
}

async fn title(tx: &mut Tx, activity_id: i64) -> EngineResult<String> {
    Ok(tx
        .get_activity(activity_id)
        .await?
        .map(|a| a.title)
        .unwrap_or_else(|| format!("activity {activity_id}")))
}

async fn person(tx: &mut Tx, user_id: i64) -> EngineResult<String> {
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
async fn describe(tx: &mut Tx, record: &EnrollmentRecord, source: &Source) -> EngineResult<String> {
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

/// Why `record` exists: its sources up to a person or a rule, and notes.
pub async fn explain_enrollment(
    tx: &mut Tx,
    ctx: &Ctx,
    record: &EnrollmentRecord,
) -> EngineResult<EnrollmentExplanation> {
    let mut chain = Vec::new();
    let mut current = Some(record.clone());
    let mut seen = BTreeSet::new();
    while let Some(step) = current.take() {
        if !seen.insert(step.id) {
            break;
        }
        let source: Source = serde_json::from_str(&step.source).unwrap_or(Source::Import);
        let text = describe(tx, &step, &source).await?;
        let parent = match source {
            Source::PostEnrollment {
                from_enrollment_id, ..
            } => Some(from_enrollment_id),
            Source::Curriculum { enrollment_id } | Source::Bundle { enrollment_id } => {
                Some(enrollment_id)
            }
            _ => None,
        };
        chain.push(ChainStep {
            enrollment_id: step.id,
            activity_id: Some(step.activity_id),
            activity_title: Some(title(tx, step.activity_id).await?),
            source: Some(source),
            text,
        });
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
    Ok(EnrollmentExplanation {
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
) -> EngineResult<PairExplanation> {
    let activity = activity_from(activity);
    let enrollments = tx.enrollments_of(user.id, activity.record.id).await?;
    let open = enrollments
        .iter()
        .find(|enrollment| enrollment.status == "in_progress")
        .cloned();
    let mut reasons =
        vec![rule_reason(tx, ctx, user, &activity, &enrollments, open.is_some()).await?];
    if !activity.record.active {
        reasons.push(Reason::new(
            ReasonCode::InactiveActivity,
            "The activity is inactive: learners cannot self-enroll and do not see it (R3, R37)",
        ));
    }
    let missing = missing_prerequisites(tx, user.id, activity.record.id).await?;
    if !missing.is_empty() {
        let titles = missing
            .iter()
            .map(|prerequisite| prerequisite.title.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        reasons.push(Reason::new(
            ReasonCode::Prerequisites,
            format!("Self-enrollment needs these prerequisites passed first: {titles} (R4)"),
        ));
    }
    if activity.kind == ActivityKind::CourseBundle || activity.kind == ActivityKind::Curriculum {
        let items = tx.item_ids(activity.record.id).await?;
        reasons.push(Reason::new(
            ReasonCode::Items,
            format!("The {} holds {} course(s)", activity.kind, items.len()),
        ));
    }
    let pending = pending_jobs(tx, user.id, activity.record.id).await?;
    if let Some(first) = pending.first() {
        reasons.push(Reason::new(
            ReasonCode::PendingJob,
            format!(
                "{} pending post-enrollment job(s) will enroll the learner; the first runs at {}",
                pending.len(),
                first.run_at
            ),
        ));
    }
    let explanation = match &open {
        Some(record) => Some(explain_enrollment(tx, ctx, record).await?),
        None => None,
    };
    Ok(PairExplanation {
        user_id: user.id,
        activity_id: activity.record.id,
        enrolled: open.is_some(),
        open_enrollment: open,
        enrollment_count: enrollments.len(),
        explanation,
        reasons,
        missing_prerequisites: missing,
        pending_jobs: pending,
    })
}

/// What the activity's auto-enrollment rule makes of the user (R10–R13, R21).
async fn rule_reason(
    tx: &mut Tx,
    ctx: &Ctx,
    user: &UserRecord,
    activity: &Activity,
    enrollments: &[EnrollmentRecord],
    has_open: bool,
) -> EngineResult<Reason> {
    let no_rule = || {
        Reason::new(
            ReasonCode::NoRule,
            "The activity has no auto-enrollment rule",
        )
    };
    let rule = match &activity.rule {
        Some(rule) if rule.scope != Scope::None => rule,
        _ => return Ok(no_rule()),
    };
    let exemption = tx
        .exemption_on(user.id, activity.record.id, &ctx.today.to_string())
        .await?;
    let facts = UserFacts {
        id: user.id,
        active: user.active,
        role: user.role.parse().unwrap_or(Role::Learner),
        hired_on: user.hired_on.as_deref().and_then(|day| day.parse().ok()),
        group_ids: tx.user_group_ids(user.id).await?.into_iter().collect(),
        exempt: exemption.is_some(),
    };
    let mismatch = match match_user(rule, &facts) {
        Ok(()) => return Ok(matching_reason(ctx, rule, enrollments, has_open)),
        Err(Mismatch::NoRule) => return Ok(no_rule()),
        Err(mismatch) => mismatch,
    };
    Ok(mismatch_reason(mismatch, rule, user, exemption.as_ref()))
}

/// Why a user the rule matches has no enrollment of the current period yet,
/// or why they need none.
fn matching_reason(
    ctx: &Ctx,
    rule: &AutoRule,
    enrollments: &[EnrollmentRecord],
    has_open: bool,
) -> Reason {
    let period = roster_core::calendar::current_period(&rule.recurrence, ctx.today).to_string();
    if enrollments
        .iter()
        .any(|enrollment| enrollment.period.as_deref() == Some(period.as_str()))
    {
        Reason::new(
            ReasonCode::PeriodHeld,
            format!("The rule's current period {period} already has its enrollment"),
        )
    } else if has_open {
        Reason::new(
            ReasonCode::OpenEnrollment,
            "The learner already has an open enrollment in the activity (R2)",
        )
    } else {
        Reason::new(
            ReasonCode::AwaitingSweep,
            format!(
                "The rule matches the learner; the next sweep enrolls them for period {period} (R13)"
            ),
        )
    }
}

/// Why the rule does not match the user, in words.
fn mismatch_reason(
    mismatch: Mismatch,
    rule: &AutoRule,
    user: &UserRecord,
    exemption: Option<&ExemptionRecord>,
) -> Reason {
    match mismatch {
        Mismatch::NoRule => Reason::new(
            ReasonCode::NoRule,
            "The activity has no auto-enrollment rule",
        ),
        Mismatch::ServiceAccount => Reason::new(
            ReasonCode::ServiceAccount,
            "The user is an integration account; no rule enrolls service accounts (R10)",
        ),
        Mismatch::Inactive => Reason::new(
            ReasonCode::InactiveUser,
            "The user is inactive; inactive users are never auto-enrolled (R10)",
        ),
        Mismatch::NotInGroups => Reason::new(
            ReasonCode::NotInGroups,
            format!(
                "The user is in none of the rule's groups {:?} (R10)",
                rule.group_ids
            ),
        ),
        Mismatch::NoHireDate => Reason::new(
            ReasonCode::NoHireDate,
            "The rule enrolls users hired after a date and the user has no hire date (R11)",
        ),
        Mismatch::HiredTooEarly(after) => Reason::new(
            ReasonCode::HiredTooEarly,
            format!(
                "The rule enrolls users hired after {after}; the user was hired on {} (R11)",
                user.hired_on.as_deref().unwrap_or("?")
            ),
        ),
        Mismatch::Exempt => Reason::new(
            ReasonCode::Exempt,
            format!(
                "The user is exempt from this activity's automation: {} (until {}) (R21)",
                exemption.map(|e| e.reason.as_str()).unwrap_or_default(),
                exemption
                    .and_then(|e| e.until.as_deref())
                    .unwrap_or("further notice")
            ),
        ),
    }
}

/// The activity's prerequisites the user has never passed (R4).
async fn missing_prerequisites(
    tx: &mut Tx,
    user_id: i64,
    activity_id: i64,
) -> EngineResult<Vec<Prerequisite>> {
    let mut missing = Vec::new();
    for prerequisite in tx.prerequisite_ids(activity_id).await? {
        if !tx.ever_passed(user_id, prerequisite).await? {
            missing.push(Prerequisite {
                activity_id: prerequisite,
                title: title(tx, prerequisite).await?,
            });
        }
    }
    Ok(missing)
}

/// The user's pending post-enrollment jobs that name the activity a target.
async fn pending_jobs(
    tx: &mut Tx,
    user_id: i64,
    activity_id: i64,
) -> EngineResult<Vec<PendingJob>> {
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
                run_at: Timestamp::from_microsecond(job.run_at).unwrap_or(Timestamp::UNIX_EPOCH),
                rule_id: job.rule_id,
            });
        }
    }
    Ok(pending)
}
