//! A sweep job's plan: which ranges of users its activity's rule is swept
//! over, since their marks or in full (R14, R16), read in the claiming
//! transaction with what the batch's jobs share; and the creations decided
//! ahead for the passes over a few changed users.
//!
//! Deciding ahead (`create_ahead`): the changed users' enrollments and
//! exemptions in the batch's activities are read in two statements;
//! `roster_core::sweep::decide` applies the core's reference sweep
//! (`roster_core::decide::plan_sweep`, which the conformance suite holds the
//! SQL to) to each changed user; and the courses' new enrollments are written
//! in one statement (`Tx::sweep_create_many`) with their audit entries and
//! `enrolled` jobs. The per-activity statements still run for what cannot be
//! decided so (adoption, skips, an annual rollover among the changed users,
//! curricula and bundles), and check every user they touch.

use std::collections::HashMap;

use roster_core::payload::{JobPayload, SweepActivityPayload};
use roster_core::sweep::{Exempted, Held, SweepOn, decide, narrow, rollover_may_close};
use roster_core::{AutoRule, PostRule};
use roster_store::{
    AutoEnrollment, Changed, ClaimedJob, Narrowed, SweepMark, SweepSince, SweepUser, Tx, UserIds,
};

use crate::engine::EngineResult;
use crate::engine::rules::{Activity, activity_from, load_activity, post_rule_from};
use crate::engine::sweep::{BATCH_USERS, activity_sweep, after_sweep_create, fingerprint};
use crate::state::{AppState, Ctx};

/// What one sweep job is to do: the activity and its rule, the day, and the
/// passes to make — users `lo..hi`, since a mark or in full, and the ranges
/// whose marks the pass renews — with the skips of the ranges left alone.
pub(super) struct SweepPlan {
    pub(super) sweep_id: i64,
    pub(super) activity_id: i64,
    pub(super) ctx: Ctx,
    pub(super) activity: Option<Activity>,
    pub(super) fingerprint: String,
    pub(super) passes: Vec<Pass>,
    pub(super) unchanged_skipped: i64,
}

/// What the jobs of one batch (one transaction) read once: the highest user
/// id, which only cuts the ranges (the last one is open-ended), and the
/// stamp taken before the batch's first read of changed users — earlier
/// than each job's own would be, so the marks written with it can only make
/// the next sweep look at more users, never fewer.
///
/// And the users changed since the marks: those stamped since the oldest
/// mark seen (with their stamps, so each activity takes those since its
/// own), and the exemptions that ran out since the marks' day. Read once,
/// they serve every activity of the batch. What is written after the read
/// is stamped at or after the batch's stamp, so the next sweep sees it.
///
/// And what each activity's scope reads of those users (`facts`, in id
/// order, with `asked` the ids asked for, found or not), to narrow each
/// activity's pass to the users its scope may hold.
#[derive(Default)]
pub(super) struct BatchReads {
    max_user: Option<i64>,
    stamp: Option<i64>,
    stamped: Option<Stamped>,
    ended: Vec<Ended>,
    facts: Vec<SweepUser>,
    asked: std::collections::HashSet<i64>,
    /// The batch's activities (with a rule or not, `None` when gone) and
    /// their marks, read together; each job takes its own.
    activities: HashMap<i64, Option<Activity>>,
    marks: HashMap<i64, Vec<SweepMark>>,
}

/// Users stamped at or after a stamp, as (user, stamp), and whether the list
/// was cut at `BATCH_USERS`.
type Stamped = (i64, Vec<(i64, i64)>, bool);

/// Exemptions that ran out between a day and today, as (activity, user).
type Ended = ((String, String), Vec<(i64, i64)>);

impl BatchReads {
    /// Reads the activities of the sweep jobs `jobs` and their marks.
    pub(super) async fn prefetch(&mut self, tx: &mut Tx, jobs: &[ClaimedJob]) -> EngineResult<()> {
        // A payload that does not read fails its job when the job is planned.
        let ids: Vec<i64> = jobs
            .iter()
            .filter_map(|job| SweepActivityPayload::from_json(&job.payload).ok())
            .map(|payload| payload.activity_id)
            .collect();
        let ids = UserIds(ids);
        for &id in &ids.0 {
            self.activities.insert(id, None);
            self.marks.insert(id, Vec::new());
        }
        for record in tx.get_activities(&ids).await? {
            self.activities
                .insert(record.id, Some(activity_from(record)));
        }
        for mark in tx.sweep_marks_of(&ids).await? {
            self.marks.entry(mark.activity_id).or_default().push(mark);
        }
        Ok(())
    }

    /// The activity, as read with the batch or now.
    async fn activity(&mut self, tx: &mut Tx, id: i64) -> EngineResult<Option<Activity>> {
        match self.activities.remove(&id) {
            Some(activity) => Ok(activity),
            None => load_activity(tx, id).await,
        }
    }

    /// The activity's marks, as read with the batch or now.
    async fn marks(&mut self, tx: &mut Tx, id: i64) -> EngineResult<Vec<SweepMark>> {
        match self.marks.remove(&id) {
            Some(marks) => Ok(marks),
            None => Ok(tx.sweep_marks(id).await?),
        }
    }

    /// The users of the activity changed since the mark (in id order), as
    /// `SweepSince` names them (stamped since, or whose exemption ran out
    /// since its day); `None` when they are `BATCH_USERS` or more.
    async fn changed_users(
        &mut self,
        tx: &mut Tx,
        activity_id: i64,
        since: &SweepSince,
        today: &str,
    ) -> EngineResult<Option<Vec<i64>>> {
        let covered = matches!(&self.stamped, Some((from, _, _)) if *from <= since.stamp);
        if !covered {
            let users = tx.sweep_stamped_users(since.stamp, BATCH_USERS).await?;
            let cut = users.len() as i64 >= BATCH_USERS;
            self.stamped = Some((since.stamp, users, cut));
        }
        let key = (since.day.clone(), today.to_string());
        if !self.ended.iter().any(|(ended, _)| *ended == key) {
            let ended = tx.sweep_exemptions_ended(&since.day, today).await?;
            self.ended.push((key.clone(), ended));
        }
        let Some((_, stamped, cut)) = &self.stamped else {
            return Ok(None);
        };
        if *cut {
            // The list stops at some id: who comes after it is unknown.
            return Ok(None);
        }
        let mut users: Vec<i64> = stamped
            .iter()
            .filter(|(_, stamp)| *stamp >= since.stamp)
            .map(|(id, _)| *id)
            .collect();
        if let Some((_, ended)) = self.ended.iter().find(|(ended, _)| *ended == key) {
            users.extend(
                ended
                    .iter()
                    .filter(|(activity, _)| *activity == activity_id)
                    .map(|(_, user)| *user),
            );
        }
        users.sort_unstable();
        users.dedup();
        Ok((users.len() < BATCH_USERS as usize).then_some(users))
    }

    /// `users` narrowed to those the rule's scope may hold (`narrow`), from
    /// the facts read once per batch (those not read yet are read now).
    async fn narrowed(
        &mut self,
        tx: &mut Tx,
        activity_id: i64,
        rule: &AutoRule,
        users: &[i64],
    ) -> EngineResult<Narrowed> {
        let missing: Vec<i64> = users
            .iter()
            .copied()
            .filter(|id| !self.asked.contains(id))
            .collect();
        if !missing.is_empty() {
            let found = tx.sweep_user_facts(&UserIds(missing.clone())).await?;
            self.asked.extend(missing);
            self.facts.extend(found);
            self.facts.sort_unstable_by_key(|user| user.id);
        }
        let narrowing = narrow(activity_id, rule, users, &self.facts);
        Ok(Narrowed {
            candidates: UserIds(narrowing.candidates),
            skipped: narrowing.skipped,
            ..Narrowed::default()
        })
    }
}

/// One pass of a sweep job: users `lo..hi`, in full or only those changed,
/// and the ranges whose marks it renews.
pub(super) struct Pass {
    pub(super) lo: i64,
    pub(super) hi: i64,
    pub(super) users: Option<Changed>,
    pub(super) marked: Vec<(i64, i64)>,
    /// The stamp of the new marks, when it was taken before the pass's
    /// users were read; otherwise it is taken as the pass starts.
    pub(super) stamp: Option<i64>,
    /// What was read beforehand of the users `users` names, when it names
    /// them.
    pub(super) narrowed: Option<Narrowed>,
}

impl SweepPlan {
    /// Whether the job is one pass over a few users read beforehand (fewer
    /// than `BATCH_USERS`), written in the claiming transaction.
    pub(super) fn inline(&self) -> bool {
        self.activity.is_some()
            && matches!(
                self.passes.as_slice(),
                [Pass {
                    users: Some(Changed::Users(_)),
                    ..
                }]
            )
    }
}

/// Reads what a sweep job must do (in the transaction that claims it). A
/// range whose mark was taken under the same rule and period (and not on a
/// later day) is swept only for the users stamped since — or, when there are
/// none, not at all: it keeps its mark and reports the skips it recorded.
/// When every range has such a mark and fewer than `BATCH_USERS` users
/// changed, one pass over those users renews all the marks.
pub(super) async fn plan_sweep_activity(
    state: &AppState,
    tx: &mut Tx,
    job: &ClaimedJob,
    reads: &mut BatchReads,
) -> EngineResult<SweepPlan> {
    let SweepActivityPayload {
        activity_id,
        day,
        sweep_id,
    } = SweepActivityPayload::from_json(&job.payload)?;
    let ctx = state.ctx_on(day);
    let today = ctx.today.to_string();
    let activity = reads
        .activity(tx, activity_id)
        .await?
        .filter(|activity| activity.rule.is_some());
    let rule = activity
        .as_ref()
        .and_then(|activity| activity.rule.as_ref());
    let fingerprint = rule
        .map(|rule| fingerprint(rule, ctx.today))
        .unwrap_or_default();
    let (passes, unchanged_skipped) = match rule {
        Some(rule) => plan_passes(tx, reads, activity_id, rule, &fingerprint, &today).await?,
        None => (Vec::new(), 0),
    };
    Ok(SweepPlan {
        sweep_id,
        activity_id,
        ctx,
        activity,
        fingerprint,
        passes,
        unchanged_skipped,
    })
}

/// The passes a sweep job of `rule` (whose marks are to have `fingerprint`)
/// makes on `today`, and the skips of the ranges it leaves alone.
async fn plan_passes(
    tx: &mut Tx,
    reads: &mut BatchReads,
    activity_id: i64,
    rule: &AutoRule,
    fingerprint: &str,
    today: &str,
) -> EngineResult<(Vec<Pass>, i64)> {
    let max_user = match reads.max_user {
        Some(max_user) => max_user,
        None => *reads.max_user.insert(tx.max_user_id().await?),
    };
    let marks = reads.marks(tx, activity_id).await?;
    let ranges = user_ranges(max_user);
    let valid: Vec<Option<&SweepMark>> = ranges
        .iter()
        .map(|&(lo, hi)| {
            marks.iter().find(|mark| {
                mark.user_lo == lo
                    && mark.user_hi == hi
                    && mark.fingerprint == fingerprint
                    && mark.day.as_str() <= today
            })
        })
        .collect();
    let oldest = valid
        .iter()
        .flatten()
        .map(|mark| SweepSince {
            stamp: mark.stamp,
            day: mark.day.clone(),
        })
        .reduce(|a, b| SweepSince {
            stamp: a.stamp.min(b.stamp),
            day: a.day.min(b.day),
        });
    // Every range has its mark: one look at the users changed since the
    // oldest. None after a quiet day, and every range is left as it is;
    // a few, and one pass over them renews every range's mark. The
    // pass's stamp is taken before they are read, so that whatever is
    // written after the read is at or after the new marks.
    let all_marked = valid.iter().all(Option::is_some);
    let listed = match &oldest {
        Some(oldest) if all_marked => {
            let stamp = match reads.stamp {
                Some(stamp) => stamp,
                None => *reads.stamp.insert(tx.sweep_stamp_now().await?),
            };
            let users = reads.changed_users(tx, activity_id, oldest, today).await?;
            Some((stamp, users))
        }
        _ => None,
    };
    match listed {
        Some((_, Some(users))) if users.is_empty() => {
            let unchanged_skipped = valid.iter().flatten().map(|mark| mark.skipped).sum();
            Ok((Vec::new(), unchanged_skipped))
        }
        Some((stamp, Some(users))) => {
            let narrowed = Some(reads.narrowed(tx, activity_id, rule, &users).await?);
            let pass = Pass {
                lo: 0,
                hi: i64::MAX,
                users: Some(Changed::Users(UserIds(users))),
                marked: ranges.clone(),
                stamp: Some(stamp),
                narrowed,
            };
            Ok((vec![pass], 0))
        }
        listed => {
            // Many changed, or some ranges to sweep in full: range by
            // range, those with a mark only if someone in them changed.
            let any_changed = match (&oldest, listed) {
                (_, Some(_)) => true,
                (Some(oldest), None) => {
                    tx.sweep_range_dirty(activity_id, 0, i64::MAX, oldest, today)
                        .await?
                }
                (None, None) => true,
            };
            range_passes(tx, activity_id, &ranges, &valid, any_changed, today).await
        }
    }
}

/// The passes over `ranges` one by one (`valid`: each one's mark, if it
/// has one that holds): a range without a mark in full, one with a mark
/// only if someone in it changed since (`any_changed` false: nobody in
/// any range did). Answers them and the skips of the ranges left alone.
async fn range_passes(
    tx: &mut Tx,
    activity_id: i64,
    ranges: &[(i64, i64)],
    valid: &[Option<&SweepMark>],
    any_changed: bool,
    today: &str,
) -> EngineResult<(Vec<Pass>, i64)> {
    let mut passes = Vec::new();
    let mut unchanged_skipped = 0;
    for (&(lo, hi), mark) in ranges.iter().zip(valid) {
        match mark {
            Some(mark) => {
                let since = SweepSince {
                    stamp: mark.stamp,
                    day: mark.day.clone(),
                };
                if any_changed
                    && tx
                        .sweep_range_dirty(activity_id, lo, hi, &since, today)
                        .await?
                {
                    passes.push(Pass {
                        lo,
                        hi,
                        users: Some(Changed::Since(since)),
                        marked: vec![(lo, hi)],
                        stamp: None,
                        narrowed: None,
                    });
                } else {
                    unchanged_skipped += mark.skipped;
                }
            }
            None => passes.push(Pass {
                lo,
                hi,
                users: None,
                marked: vec![(lo, hi)],
                stamp: None,
                narrowed: None,
            }),
        }
    }
    Ok((passes, unchanged_skipped))
}

/// The passes of a batch over a few changed users each (`SweepPlan::inline`),
/// evaluated together before any runs: what each activity's scope holds of
/// its candidates — their enrollments and exemptions in the batch's
/// activities, read in two statements for all of them, instead of one
/// statement per activity (`Narrowed::rows`) — and the enrollments the
/// rules must create for them, written in one statement for every course
/// of the batch with their audit and `enrolled` jobs (`Narrowed::created`).
/// A pass that cannot be decided so (an annual rule where someone holds
/// another period's open enrollment; a curriculum or bundle, whose new
/// enrollments expand) looks for its creations itself, as before. The
/// passes' own statements still check every user they touch.
pub(super) async fn create_ahead(
    tx: &mut Tx,
    plans: &mut [(ClaimedJob, std::time::Instant, SweepPlan)],
    reads: &BatchReads,
) -> EngineResult<()> {
    let Some(records) = read_ahead(tx, plans).await? else {
        return Ok(());
    };
    let ahead = decide_ahead(plans, reads, &records);
    let Some((today, now)) = &ahead.day else {
        return Ok(());
    };
    write_ahead(tx, plans, &ahead, today, *now).await
}

/// The batch's activities' enrollments and exemptions of the users of its
/// passes over a few changed users, each keyed by activity then user;
/// `None` when the batch has no such pass.
type AheadRecords = (HashMap<i64, Held>, HashMap<i64, Exempted>);

/// Reads, in two statements, the enrollments and exemptions of every user
/// of the passes over a few changed users (the candidates among them, and
/// the others for whether an annual rule's rollover has anything to close
/// among them too) in the batch's activities.
async fn read_ahead(
    tx: &mut Tx,
    plans: &[(ClaimedJob, std::time::Instant, SweepPlan)],
) -> EngineResult<Option<AheadRecords>> {
    let mut users = std::collections::BTreeSet::new();
    let mut activities = Vec::new();
    for (_, _, plan) in plans.iter() {
        if let Some(passed) = ahead_users(plan) {
            users.extend(passed.iter().copied());
            activities.push(plan.activity_id);
        }
    }
    if activities.is_empty() {
        return Ok(None);
    }
    let users = UserIds(users.into_iter().collect());
    let ids = UserIds(activities);
    let mut enrollments: HashMap<i64, Held> = HashMap::new();
    let records = tx.sweep_user_records(&users, &ids).await?;
    for (user, activity, id, status, period, due_on) in records.enrollments {
        enrollments
            .entry(activity)
            .or_default()
            .entry(user)
            .or_default()
            .push((id, status, period, due_on));
    }
    let mut exemptions: HashMap<i64, Exempted> = HashMap::new();
    for (user, activity, until) in records.exemptions {
        exemptions
            .entry(activity)
            .or_default()
            .entry(user)
            .or_default()
            .push(until);
    }
    Ok(Some((enrollments, exemptions)))
}

/// What `decide_ahead` decided for the batch: the creations of one day
/// (the batch's first deciding pass's — one sweep's jobs share its day —
/// and its instant), and the plans they are for, with their period.
struct Ahead {
    day: Option<(String, i64)>,
    creations: Vec<AutoEnrollment>,
    creating: Vec<(usize, String)>,
}

/// Decides, from what `read_ahead` read, each pass's (user, open, exempt)
/// rows and whether its rollover may close anything (`Narrowed::rows`,
/// `Narrowed::close`), and the enrollments the rules must create — for the
/// courses only, whose new enrollments do not expand.
fn decide_ahead(
    plans: &mut [(ClaimedJob, std::time::Instant, SweepPlan)],
    reads: &BatchReads,
    (enrollments, exemptions): &AheadRecords,
) -> Ahead {
    let empty_enrollments = HashMap::new();
    let empty_exemptions = HashMap::new();
    let mut ahead = Ahead {
        day: None,
        creations: Vec::new(),
        creating: Vec::new(),
    };
    for (at, (_, _, plan)) in plans.iter_mut().enumerate() {
        let close = plan_closes(plan, enrollments.get(&plan.activity_id));
        if let Some(narrowed) = plan
            .passes
            .first_mut()
            .and_then(|pass| pass.narrowed.as_mut())
        {
            narrowed.close = close;
        }
        let Some(candidates) = ahead_candidates(plan).map(<[i64]>::to_vec) else {
            continue;
        };
        let (Some(activity), Some(pass)) = (&plan.activity, plan.passes.first_mut()) else {
            continue;
        };
        let Some(rule) = &activity.rule else {
            continue;
        };
        let sweep = activity_sweep(
            plan.activity_id,
            rule,
            plan.ctx.today,
            &plan.ctx,
            roster_core::sweep::UserRange {
                lo: pass.lo,
                hi: pass.hi,
            },
        );
        let on = SweepOn {
            activity_id: sweep.activity_id,
            period: &sweep.period,
            today: &sweep.today,
            source_json: &sweep.source_json,
        };
        let (rows, decided) = decide(
            rule,
            &on,
            &candidates,
            &reads.facts,
            enrollments
                .get(&plan.activity_id)
                .unwrap_or(&empty_enrollments),
            exemptions
                .get(&plan.activity_id)
                .unwrap_or(&empty_exemptions),
        );
        let Some(narrowed) = &mut pass.narrowed else {
            continue;
        };
        narrowed.rows = Some(rows);
        if activity.kind.has_items()
            || ahead
                .day
                .as_ref()
                .is_some_and(|(today, _)| *today != sweep.today)
        {
            continue;
        }
        if let Some(decided) = decided {
            ahead.day.get_or_insert((sweep.today.clone(), sweep.now));
            narrowed.created = Some(Vec::new());
            ahead.creating.push((at, sweep.period.clone()));
            ahead.creations.extend(decided);
        }
    }
    ahead
}

/// Writes the creations decided ahead in one statement, at `now` of day
/// `today`, then what they set off (`after_sweep_create`) plan by plan,
/// with the activities' post-enrollment rules read in one statement; each
/// plan's pass then reports its creations (`Narrowed::created`).
async fn write_ahead(
    tx: &mut Tx,
    plans: &mut [(ClaimedJob, std::time::Instant, SweepPlan)],
    ahead: &Ahead,
    today: &str,
    now: i64,
) -> EngineResult<()> {
    let mut created: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for (id, user, activity) in tx.sweep_create_many(&ahead.creations, today, now).await? {
        created.entry(activity).or_default().push((id, user));
    }
    let with_rules = UserIds(created.keys().copied().collect());
    let mut rules: HashMap<i64, Vec<PostRule>> = HashMap::new();
    if !with_rules.0.is_empty() {
        for record in tx.post_rules_of(&with_rules).await? {
            rules
                .entry(record.activity_id)
                .or_default()
                .push(post_rule_from(&record));
        }
    }
    for (at, period) in &ahead.creating {
        let (_, _, plan) = &mut plans[*at];
        let Some(mine) = created.remove(&plan.activity_id) else {
            continue;
        };
        let (Some(activity), Some(pass)) = (&plan.activity, plan.passes.first_mut()) else {
            continue;
        };
        after_sweep_create(
            tx,
            &plan.ctx,
            activity,
            period,
            &mine,
            Some(rules.remove(&plan.activity_id).unwrap_or_default()),
        )
        .await?;
        if let Some(narrowed) = &mut pass.narrowed {
            narrowed.created = Some(mine);
        }
    }
    Ok(())
}

/// The users of a plan's one pass over a few changed users, if it is one.
fn ahead_users(plan: &SweepPlan) -> Option<&[i64]> {
    if !plan.inline() {
        return None;
    }
    match &plan.passes.first()?.users {
        Some(Changed::Users(users)) => Some(users.0.as_slice()),
        _ => None,
    }
}

/// For a plan's one pass over a few changed users, whether its annual
/// rule's rollover may close anything among them (`rollover_may_close`);
/// `None` for any other pass.
fn plan_closes(plan: &SweepPlan, held: Option<&Held>) -> Option<bool> {
    let users = ahead_users(plan)?;
    let rule = plan.activity.as_ref()?.rule.as_ref()?;
    rollover_may_close(&rule.recurrence, plan.ctx.today, users, held)
}

/// The candidates of a plan's one pass over a few changed users, if it is
/// one and has any.
fn ahead_candidates(plan: &SweepPlan) -> Option<&[i64]> {
    if !plan.inline() {
        return None;
    }
    let narrowed = plan.passes.first()?.narrowed.as_ref()?;
    (!narrowed.candidates.0.is_empty()).then_some(narrowed.candidates.0.as_slice())
}

/// The user id ranges a sweep cuts an activity into, each one transaction:
/// `BATCH_USERS` ids each, the last one open-ended and holding between one
/// and two batches, so that the boundaries (and the ranges' marks) stay put
/// as users are added.
pub fn user_ranges(max_user: i64) -> Vec<(i64, i64)> {
    let mut ranges = Vec::new();
    let mut lo = 0;
    loop {
        if lo + 2 * BATCH_USERS > max_user + 1 {
            ranges.push((lo, i64::MAX));
            return ranges;
        }
        ranges.push((lo, lo + BATCH_USERS));
        lo += BATCH_USERS;
    }
}
