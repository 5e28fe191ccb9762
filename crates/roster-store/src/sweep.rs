//! The set-based sweep of one activity's auto-enrollment rule over a range of
//! user ids (R10–R16). "What must exist" versus "what exists" is computed by
//! the database; the unique key (activity, user, period) makes every step
//! safe to repeat after a crash or alongside another process.

pub use roster_core::sweep::AutoEnrollment;

use crate::db::Backend;
use crate::db::{Result, StoreError, Tx};
use crate::marks::{SweepSince, UserIds, bind_since};

/// One activity's rule, resolved for one day, over users `user_lo..user_hi`.
#[derive(Clone, Debug)]
pub struct ActivitySweep {
    pub activity_id: i64,
    /// Scope `groups` (the rule's groups are in `auto_rule_groups`).
    pub by_groups: bool,
    pub hired_after: Option<String>,
    /// The period each matching user needs: 'once', 'YYYY-MM-DD' or 'cycle-1'.
    pub period: String,
    pub kind: SweepKind,
    /// Due date of a user's first enrollment from this rule.
    pub due_first: Option<String>,
    /// Due date of a later one.
    pub due_later: Option<String>,
    pub today: String,
    pub now: i64,
    pub source_json: String,
    pub user_lo: i64,
    pub user_hi: i64,
    /// Only the users changed since a mark, or these users (an incremental
    /// sweep); `None` evaluates every user of the range.
    pub since: Option<Changed>,
    /// Those of `since`'s users the rule's scope holds, and which statements
    /// they may need (`Tx::sweep_matching_users`): when read, the statements
    /// that evaluate users look at these only, and only if they may act.
    pub matching: Option<Matching>,
    /// Whether `sweep_record_skips` counts the range's skips afterwards; a
    /// sweep job's pass leaves it to the marks it writes next
    /// (`Tx::put_sweep_marks`), and gets 0.
    pub count_skips: bool,
    /// What the caller knows beforehand of the users `since` names, when it
    /// names them (`Changed::Users`).
    pub narrowed: Option<Narrowed>,
    /// What the whole range holds of the activity, read once before a pass
    /// over every user of it (`Tx::sweep_range_holds`): a range with no
    /// enrollment has nothing to close or adopt, and one with neither an
    /// enrollment nor an exemption nobody to probe or skip. `None`: not
    /// read (each statement that can use it reads it, or assumes both).
    pub holds: Option<RangeHolds>,
}

/// Whether a range of users holds any enrollment, any exemption in an
/// activity (`Tx::sweep_range_holds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeHolds {
    pub enrolled: bool,
    pub exempted: bool,
}

/// What is known of an incremental sweep's users before its statements run
/// (`Tx::sweep_user_facts`): a superset of those the rule's scope holds
/// — `sweep_matching_users` evaluates these only, and none at all when
/// there are none — and whether any of the users has a skip recorded in the
/// activity, without which there is none to forget.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowed {
    pub candidates: UserIds,
    pub skipped: bool,
    /// What `sweep_matching_users` would read of the candidates — (user,
    /// open, exempt) as `Matching::from_rows` takes them — when the caller
    /// read it for a whole batch beforehand (`Tx::sweep_user_records`): no
    /// statement is run for it then.
    pub rows: Option<Vec<(i64, i32, bool)>>,
    /// The enrollments the caller already created for this pass's users
    /// (`Tx::sweep_create_many`), with their audit and jobs: the pass does
    /// not look for users to create enrollments for, and reports these.
    pub created: Option<Vec<Touched>>,
    /// Whether any of the pass's users holds an open enrollment of another
    /// period in the activity, when the caller read it beforehand: without
    /// one an annual rule's rollover has nothing to close among them
    /// (`sweep_close_earlier` runs no statement then).
    pub close: Option<bool>,
}

impl Matching {
    /// From (user, open enrollment, exempt) rows: open is 0 for none, 1 for
    /// one without a period, 2 for one of the current period, 3 for one of
    /// another period. The flags are read before the pass writes anything,
    /// and an annual rule's rollover (`sweep_close_earlier`) closes open
    /// enrollments of other periods first: their holders may then need a
    /// new one.
    pub fn from_rows(rows: Vec<(i64, i32, bool)>, kind: SweepKind) -> Matching {
        let annual = kind == SweepKind::Annual;
        Matching {
            adopt: rows
                .iter()
                .any(|&(_, open, _)| open == 1 || (annual && open == 3)),
            create: rows
                .iter()
                .any(|&(_, open, _)| open == 0 || (annual && open == 3)),
            record: rows.iter().any(|&(_, open, exempt)| exempt || open == 3),
            users: UserIds(rows.into_iter().map(|(id, _, _)| id).collect()),
        }
    }
}

/// The users of an incremental sweep the rule's scope holds, and whether
/// each statement that evaluates users may find anything to do among them.
/// Each flag is a cheap superset of the statement's own condition: `false`
/// means the statement would write nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matching {
    pub users: UserIds,
    /// Someone holds an open enrollment without a period (R15), or, for an
    /// annual rule, one of another period (`sweep_adopt_candidates`).
    pub adopt: bool,
    /// Someone holds no open enrollment (`sweep_create`).
    pub create: bool,
    /// Someone is exempt, or holds an open enrollment of another period
    /// (`sweep_record_skips`).
    pub record: bool,
}

/// The users an incremental sweep evaluates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Those stamped since the mark, or whose exemption ran out since its day.
    Since(SweepSince),
    /// These, read beforehand (`Tx::sweep_stamped_users`,
    /// `Tx::sweep_exemptions_ended`).
    Users(UserIds),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepKind {
    OneTime,
    Annual,
    EveryMonths,
}

/// What a sweep did (or would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub created: i64,
    pub adopted: i64,
    pub closed: i64,
    pub skipped: i64,
}

/// An enrollment the sweep touched: (enrollment id, user id).
pub type Touched = (i64, i64);

/// An open enrollment to adopt, as it was: (id, user id, type, due_on, first).
pub type AdoptCandidate = (i64, i64, String, Option<String>, bool);

// The users the rule matches today ($1 activity, $2 lo, $3 hi, $4 hired_after,
// $5 by_groups, $6 today): active people in scope, hired after the date, not
// exempt. A company rule reads the range's users; a groups rule reads the
// members of its groups in the range (an uncorrelated IN list, which the
// planners turn into a join driven by the members) and looks up only those
// users: it costs what its members cost, not what the whole range costs
// (PostgreSQL, a rule of three groups with 321 members in a range of 5,000
// users: 1.8 ms against 9.9 ms when the range's users were read and each
// checked against the list).
const MATCHING_ALL: &str = "u.active = TRUE AND u.role <> 'integration' AND u.id >= $2 AND u.id < $3 \
     AND ($4 IS NULL OR (u.hired_on IS NOT NULL AND u.hired_on > $4)) AND $5 = $5";
const MATCHING_IN_GROUPS: &str = "u.active = TRUE AND u.role <> 'integration' AND u.id >= $2 AND u.id < $3 \
     AND ($4 IS NULL OR (u.hired_on IS NOT NULL AND u.hired_on > $4)) \
     AND $5 = TRUE AND u.id IN (SELECT gm.user_id FROM auto_rule_groups rg JOIN group_members gm \
          ON gm.group_id = rg.group_id WHERE rg.activity_id = $1 AND gm.user_id >= $2 AND gm.user_id < $3)";
// The same for a few users (an incremental sweep): each one's groups are
// looked up, rather than every member of the rule's groups in the range, so
// the cost follows the users changed, not the size of the groups.
const MATCHING_FEW: &str = "u.active = TRUE AND u.role <> 'integration' AND u.id >= $2 AND u.id < $3 \
     AND ($4 IS NULL OR (u.hired_on IS NOT NULL AND u.hired_on > $4)) \
     AND ($5 = FALSE OR EXISTS (SELECT 1 FROM group_members gm JOIN auto_rule_groups rg \
          ON rg.group_id = gm.group_id AND rg.activity_id = $1 WHERE gm.user_id = u.id /*probe*/))";
const NOT_EXEMPT: &str = "NOT EXISTS (SELECT 1 FROM exemptions x WHERE x.user_id = u.id \
     AND x.activity_id = $1 AND (x.until IS NULL OR x.until >= $6))";
const EXEMPT: &str = "EXISTS (SELECT 1 FROM exemptions x WHERE x.user_id = u.id \
     AND x.activity_id = $1 AND (x.until IS NULL OR x.until >= $6))";
// Whether the user's need is already met ($7 period).
const UNSATISFIED_ONCE: &str = "NOT EXISTS (SELECT 1 FROM enrollments s WHERE s.activity_id = $1 \
     AND s.user_id = u.id AND (s.period = 'once' OR s.status = 'passed') AND $7 = 'once' /*probe*/)";
const UNSATISFIED_ANNUAL: &str = "NOT EXISTS (SELECT 1 FROM enrollments s WHERE s.activity_id = $1 \
     AND s.user_id = u.id AND s.period = $7 /*probe*/)";
const UNSATISFIED_CYCLE: &str = "NOT EXISTS (SELECT 1 FROM enrollments s WHERE s.activity_id = $1 \
     AND s.user_id = u.id AND s.period LIKE 'cycle-%' AND $7 = 'cycle-1' /*probe*/)";
// Whether this rule gave the user an enrollment before (for initial_due_days).
const HAD_PERIOD: &str = "EXISTS (SELECT 1 FROM enrollments h WHERE h.activity_id = $1 \
     AND h.user_id = u.id AND h.period IS NOT NULL)";

impl ActivitySweep {
    /// The `MM-DD` of the current annual period's end, and its February twin
    /// (28 and 29 February name the same period end, R12). Digits and a dash
    /// only: the period comes from a parsed date.
    fn month_days(&self) -> (String, String) {
        let month_day: String = self
            .period
            .get(5..10)
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        match month_day.as_str() {
            "02-28" | "02-29" => ("02-28".into(), "02-29".into()),
            _ => (month_day.clone(), month_day),
        }
    }

    /// The users the statements that evaluate users look at: the matching
    /// ones among `since`'s when they were read, else `since`'s.
    fn evaluated(&self) -> Option<Changed> {
        match (&self.matching, &self.since) {
            (Some(matching), Some(_)) => Some(Changed::Users(matching.users.clone())),
            _ => self.since.clone(),
        }
    }

    /// Whether the statement `need` picks from `Matching` may act: always,
    /// unless the matching users were read.
    fn may(&self, need: fn(&Matching) -> bool) -> bool {
        match (&self.matching, &self.since) {
            (Some(matching), Some(_)) => need(matching),
            _ => true,
        }
    }
    /// The matching users' condition: over a whole range, the range's users
    /// or its members of the rule's groups; user by user over the users
    /// changed since a mark.
    fn matching(&self) -> &'static str {
        match self.since {
            Some(_) => MATCHING_FEW,
            None => self.matching_range(),
        }
    }

    /// The matching users' condition over the whole range.
    fn matching_range(&self) -> &'static str {
        if self.by_groups {
            MATCHING_IN_GROUPS
        } else {
            MATCHING_ALL
        }
    }

    fn unsatisfied(&self) -> &'static str {
        match self.kind {
            SweepKind::OneTime => UNSATISFIED_ONCE,
            SweepKind::Annual => UNSATISFIED_ANNUAL,
            SweepKind::EveryMonths => UNSATISFIED_CYCLE,
        }
    }

    /// Whether the range may hold enrollments of the activity: unless
    /// `holds` was read and says it holds none.
    fn may_hold_enrollments(&self) -> bool {
        self.holds.is_none_or(|holds| holds.enrolled)
    }

    /// How a statement of this pass is sent: its text, and whether its plan
    /// is kept on the connection. SQLite plans every statement as it
    /// prepares it. On PostgreSQL an incremental pass's statements, and
    /// those of one user's evaluation (R18: a range of one id, run for every
    /// rule when a user is created or changed), name a few users and probe
    /// them by index; they keep their plans. A pass over a whole range keeps
    /// its plans only in a sweep's transaction (`Store::write_sweep`), where
    /// sequential scans are off, and under a text of its own, so that no
    /// plan made elsewhere serves it: a plan cached while the activity's
    /// enrollments were few — after a mass deletion left their indexes large
    /// and the table small — scanned the table for each range once it had
    /// grown to hundreds of thousands of rows (a cold sweep after the
    /// bench's reset at 30,000 users: 60 s instead of 24). Elsewhere (an
    /// activity swept alone, a dry run) such a pass is planned for the table
    /// as it is, each time.
    fn sent(&self, tx: &Tx, sql: String) -> (String, bool) {
        let few = self.since.is_some() || self.user_hi.saturating_sub(self.user_lo) <= 1;
        match tx {
            Tx::Sqlite(_) => (sql, true),
            Tx::Postgres(_) if few => (sql, true),
            Tx::Postgres(pg) if pg.sweeping => (format!("{sql} /* range */"), true),
            Tx::Postgres(_) => (sql, false),
        }
    }
}

/// The statement for the backend of `tx`. On PostgreSQL each `/*probe*/`
/// becomes `OFFSET 0`, which keeps the planner from turning that `NOT
/// EXISTS` into a join: it stays one index probe per user. As a join it was
/// planned from statistics taken while the activity had no enrollments (a
/// new organisation, a cached generic plan), and the plan scanned all of
/// them once per user — seconds instead of a tenth of one. SQLite probes
/// per row anyway.
fn probing(tx: &Tx, sql: String) -> String {
    match tx {
        Tx::Postgres(_) => sql.replace("/*probe*/", "OFFSET 0"),
        Tx::Sqlite(_) => sql.replace(" /*probe*/", ""),
    }
}

/// The restriction of a statement to the users `changed` names, if any, its
/// parameters from `$first` on (bound by `bind_changed!`).
fn restrict(changed: &Option<Changed>, column: &str, first: usize, backend: Backend) -> String {
    match changed {
        None => String::new(),
        Some(Changed::Since(_)) => SweepSince::clause(column, first),
        Some(Changed::Users(_)) => UserIds::clause(column, first, backend),
    }
}

/// Binds the parameters of `restrict`.
macro_rules! bind_changed {
    ($query:expr, $changed:expr, $today:expr) => {{
        let query = $query;
        match $changed {
            Some(Changed::Since(since)) => bind_since!(query, since, $today),
            Some(Changed::Users(users)) => query.bind(users),
            None => query,
        }
    }};
}

/// Binds the seven shared parameters of the clauses above, in order.
macro_rules! bind_common {
    ($query:expr, $sweep:expr) => {
        $query
            .bind($sweep.activity_id)
            .bind($sweep.user_lo)
            .bind($sweep.user_hi)
            .bind(&$sweep.hired_after)
            .bind($sweep.by_groups)
            .bind(&$sweep.today)
            .bind(&$sweep.period)
    };
}

impl Tx {
    /// Annual rollover (R14): closes as `incomplete` every open enrollment of
    /// an annual period of the activity that ended before today, in the user
    /// range.
    pub async fn sweep_close_earlier(&mut self, sweep: &ActivitySweep) -> Result<Vec<Touched>> {
        if sweep.kind != SweepKind::Annual || !sweep.may_hold_enrollments() {
            return Ok(Vec::new());
        }
        if let (
            Some(_),
            Some(Narrowed {
                close: Some(false), ..
            }),
        ) = (&sweep.since, &sweep.narrowed)
        {
            return Ok(Vec::new());
        }
        let valid = sweep.month_days();
        let sql = format!(
            "UPDATE enrollments SET status = 'incomplete', updated_at = $5 WHERE activity_id = $1 \
             AND user_id >= $2 AND user_id < $3 AND status = 'in_progress' AND period IS NOT NULL \
             AND period LIKE '____-__-__' AND (period < $4 OR (substr(period, 6, 5) NOT IN ($6, $7) \
                 AND EXISTS (SELECT 1 FROM enrollments c WHERE c.activity_id = $1 \
                     AND c.user_id = enrollments.user_id AND c.period = $8))){} RETURNING id, user_id",
            restrict(&sweep.since, "enrollments.user_id", 9, self.backend())
        );
        let (sql, keep) = sweep.sent(self, sql);
        Ok(
            on_tx!(self, c => bind_changed!(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(keep)
        .bind(sweep.activity_id)
        .bind(sweep.user_lo)
        .bind(sweep.user_hi)
        .bind(&sweep.today)
        .bind(sweep.now)
        .bind(valid.0)
        .bind(valid.1)
        .bind(&sweep.period), &sweep.since, &sweep.today)
        .fetch_all(c)
        .await?),
        )
    }

    /// Open enrollments no period holds (R15), or held by a running annual
    /// period under the rule's former date, of matching users whose need is
    /// not met, as they are before adoption.
    pub async fn sweep_adopt_candidates(
        &mut self,
        sweep: &ActivitySweep,
    ) -> Result<Vec<AdoptCandidate>> {
        if !sweep.may(|m| m.adopt) || !sweep.may_hold_enrollments() {
            return Ok(Vec::new());
        }
        let evaluated = sweep.evaluated();
        // The range is stated on the enrollments too: the planners do not
        // carry it over from the users through the join, and without it the
        // look-up read every enrollment of the activity once per range
        // (PostgreSQL: 9,899 index entries instead of 4,895 for a range of
        // 5,000 users out of 10,000; twenty times as many out of 100,000).
        // Besides unheld enrollments, an annual rule moves an open enrollment of
        // a running period under its former date (period end not yet passed)
        // to the current period; a due date equal to the old period end is
        // the rule's own and is reported as none, so the new one applies.
        let movable = if sweep.kind == SweepKind::Annual {
            let (first, second) = sweep.month_days();
            format!(
                "(e.period IS NULL OR (e.period LIKE '____-__-__' AND e.period >= $6 \
                 AND substr(e.period, 6, 5) NOT IN ('{first}', '{second}')))"
            )
        } else {
            "e.period IS NULL".to_string()
        };
        let sql = format!(
            "SELECT e.id, e.user_id, e.type, \
             CASE WHEN e.period IS NOT NULL AND e.due_on = e.period THEN NULL ELSE e.due_on END AS due_on, \
             NOT {HAD_PERIOD} AS first \
             FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE e.activity_id = $1 AND e.user_id >= $2 AND e.user_id < $3 \
             AND e.status = 'in_progress' AND {movable} \
             AND {}{} AND {NOT_EXEMPT} AND {} ORDER BY e.user_id",
            sweep.matching(),
            restrict(&evaluated, "u.id", 8, self.backend()),
            sweep.unsatisfied()
        );
        let (sql, keep) = sweep.sent(self, probing(self, sql));
        Ok(
            on_tx!(self, c => bind_changed!(bind_common!(sqlx::query_as(sqlx::AssertSqlSafe(sql)).persistent(keep), sweep), &evaluated, &sweep.today)
            .fetch_all(c)
            .await?),
        )
    }

    /// Adopts one open enrollment for the period (R15), or moves it there from
    /// a former period: required, the given due date, the period set.
    pub async fn sweep_adopt(
        &mut self,
        id: i64,
        period: &str,
        due_on: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let changed = on_tx!(self, c => sqlx::query(
            "UPDATE enrollments SET type = 'required', period = $2, due_on = $3, updated_at = $4 \
             WHERE id = $1 AND status = 'in_progress' AND (period IS NULL OR period <> $2)"
        )
        .bind(id)
        .bind(period)
        .bind(due_on)
        .bind(now)
        .execute(c)
        .await
        .map_err(crate::db::on_constraint)?
        .rows_affected());
        Ok(changed == 1)
    }

    /// Whether users `user_lo..user_hi` hold any enrollment (open or not)
    /// and any exemption in the sweep's activity.
    pub async fn sweep_range_holds(&mut self, sweep: &ActivitySweep) -> Result<RangeHolds> {
        let (sql, keep) = sweep.sent(
            self,
            "SELECT EXISTS (SELECT 1 FROM enrollments e WHERE e.activity_id = $1 \
               AND e.user_id >= $2 AND e.user_id < $3), \
             EXISTS (SELECT 1 FROM exemptions x WHERE x.activity_id = $1 \
               AND x.user_id >= $2 AND x.user_id < $3)"
                .to_string(),
        );
        let (enrolled, exempted) = on_tx!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(keep)
        .bind(sweep.activity_id)
        .bind(sweep.user_lo)
        .bind(sweep.user_hi)
        .fetch_one(c)
        .await?);
        Ok(RangeHolds { enrolled, exempted })
    }

    /// Creates the period's enrollment for every matching user whose need is
    /// not met and who has no open enrollment in the activity (R14), in one
    /// statement, in user order. Returns what it created. Whether the rule
    /// gave the user a period before is looked up only when the first and
    /// later due dates differ (`initial_due_days`).
    pub async fn sweep_create(&mut self, sweep: &ActivitySweep) -> Result<Vec<Touched>> {
        if let Some(Narrowed {
            created: Some(created),
            ..
        }) = &sweep.narrowed
        {
            return Ok(created.clone());
        }
        if !sweep.may(|m| m.create) {
            return Ok(Vec::new());
        }
        let evaluated = sweep.evaluated();
        // A whole range where the activity has no enrollment and no
        // exemption yet (a new rule, a cold start) needs none of the
        // per-user probes: nobody there is exempt, has their need met or
        // holds an open enrollment. (Each probe left out keeps its
        // parameters in use.)
        let RangeHolds { enrolled, exempted } = match sweep.holds {
            Some(holds) => holds,
            None if sweep.since.is_none() => self.sweep_range_holds(sweep).await?,
            None => RangeHolds {
                enrolled: true,
                exempted: true,
            },
        };
        let (had_period, unsatisfied, no_open) = if enrolled {
            (
                HAD_PERIOD,
                sweep.unsatisfied(),
                "NOT EXISTS (SELECT 1 FROM enrollments o WHERE o.activity_id = $1 AND o.user_id = u.id \
                 AND o.status = 'in_progress' /*probe*/)",
            )
        } else {
            ("FALSE", "$7 = $7", "TRUE")
        };
        let not_exempt = if exempted { NOT_EXEMPT } else { "$6 = $6" };
        let sql = format!(
            "INSERT INTO enrollments (user_id, activity_id, type, status, due_on, required_by, reason, \
             enrolled_at, completed_at, source_kind, source, period, updated_at) \
             SELECT u.id, $1, 'required', 'in_progress', \
             CASE WHEN $8 IS NOT DISTINCT FROM $9 THEN $8 WHEN {had_period} THEN $9 ELSE $8 END, \
             NULL, NULL, $10, NULL, 'auto_enrollment', $11, $7, $10 FROM users u \
             WHERE {}{} AND {not_exempt} AND {unsatisfied} AND {no_open} \
             ORDER BY u.id ON CONFLICT DO NOTHING RETURNING id, user_id",
            sweep.matching(),
            restrict(&evaluated, "u.id", 12, self.backend()),
        );
        let (sql, keep) = sweep.sent(self, probing(self, sql));
        Ok(
            on_tx!(self, c => bind_changed!(bind_common!(sqlx::query_as(sqlx::AssertSqlSafe(sql)).persistent(keep), sweep)
            .bind(&sweep.due_first)
            .bind(&sweep.due_later)
            .bind(sweep.now)
            .bind(&sweep.source_json), &evaluated, &sweep.today)
            .fetch_all(c)
            .await?),
        )
    }

    /// Creates the enrollments decided beforehand for a batch of incremental
    /// passes over several activities, in one statement: required, in
    /// progress, from the rule, each with its period and due date. A user
    /// who holds an open enrollment in the activity by now (R2), or an
    /// exemption in force on `today` (R21), is left out, and an existing
    /// (activity, user, period) too. Answers (id, user, activity) of those
    /// created, in activity and user order.
    pub async fn sweep_create_many(
        &mut self,
        rows: &[AutoEnrollment],
        today: &str,
        now: i64,
    ) -> Result<Vec<(i64, i64, i64)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let tail = "WHERE NOT EXISTS (SELECT 1 FROM enrollments o WHERE o.activity_id = p.a \
               AND o.user_id = p.u AND o.status = 'in_progress') \
             AND NOT EXISTS (SELECT 1 FROM exemptions x WHERE x.user_id = p.u AND x.activity_id = p.a \
               AND (x.until IS NULL OR x.until >= $2)) \
             ORDER BY p.a, p.u ON CONFLICT DO NOTHING RETURNING id, user_id, activity_id";
        let columns = "INSERT INTO enrollments (user_id, activity_id, type, status, due_on, required_by, \
             reason, enrolled_at, completed_at, source_kind, source, period, updated_at) \
             SELECT p.u, p.a, 'required', 'in_progress', p.due, NULL, NULL, $1, NULL, \
             'auto_enrollment', p.src, p.period, $1";
        Ok(match self {
            Tx::Postgres(transaction) => {
                let c = &mut ***transaction;
                let sql = format!(
                    "{columns} FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[]) \
                     AS p(a, u, due, period, src) {tail}"
                );
                let activities: Vec<i64> = rows.iter().map(|row| row.activity_id).collect();
                let users: Vec<i64> = rows.iter().map(|row| row.user_id).collect();
                let dues: Vec<Option<String>> = rows.iter().map(|row| row.due_on.clone()).collect();
                let periods: Vec<String> = rows.iter().map(|row| row.period.clone()).collect();
                let sources: Vec<String> = rows.iter().map(|row| row.source_json.clone()).collect();
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(today)
                    .bind(activities)
                    .bind(users)
                    .bind(dues)
                    .bind(periods)
                    .bind(sources)
                    .fetch_all(c)
                    .await
                    .map_err(crate::db::on_constraint)?
            }
            Tx::Sqlite(transaction) => {
                let c = &mut ***transaction;
                let sql = format!(
                    "{columns} FROM (SELECT json_extract(value, '$[0]') AS a, json_extract(value, '$[1]') AS u, \
                       json_extract(value, '$[2]') AS due, json_extract(value, '$[3]') AS period, \
                       json_extract(value, '$[4]') AS src FROM json_each($3)) AS p {tail}"
                );
                let json = serde_json::to_string(
                    &rows
                        .iter()
                        .map(|row| {
                            serde_json::json!([
                                row.activity_id,
                                row.user_id,
                                row.due_on,
                                row.period,
                                row.source_json
                            ])
                        })
                        .collect::<Vec<_>>(),
                )
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(today)
                    .bind(json)
                    .fetch_all(c)
                    .await
                    .map_err(crate::db::on_constraint)?
            }
        })
    }

    /// Records which matching users the rule skips — those whose need is
    /// blocked by an open enrollment another period holds (R2), and exempt
    /// users the rule would otherwise reach (R21) — for the users evaluated,
    /// and answers how many of the range's users it skips now.
    pub async fn sweep_record_skips(&mut self, sweep: &ActivitySweep) -> Result<i64> {
        let evaluated = sweep.evaluated();
        let forget = format!(
            "DELETE FROM sweep_skips WHERE activity_id = $1 AND user_id >= $2 AND user_id < $3{}",
            restrict(&sweep.since, "user_id", 4, self.backend())
        );
        // One pass over the matching users: exempt ones, and the others whose
        // need is blocked (the two sets are disjoint).
        let record = format!(
            "INSERT INTO sweep_skips (activity_id, user_id) SELECT $1, u.id FROM users u \
             WHERE {matching}{} AND ({EXEMPT} OR ({unsatisfied} \
               AND EXISTS (SELECT 1 FROM enrollments o WHERE o.activity_id = $1 AND o.user_id = u.id \
                 AND o.status = 'in_progress' AND o.period IS NOT NULL))) ON CONFLICT DO NOTHING",
            restrict(&evaluated, "u.id", 8, self.backend()),
            matching = sweep.matching(),
            unsatisfied = sweep.unsatisfied()
        );
        let (record, keep) = sweep.sent(self, probing(self, record));
        if sweep.since.is_none() {
            // A user is skipped only if exempt or holding an open enrollment
            // of another period: when the range has neither, the pass over
            // its matching users is not needed. A range that held no
            // enrollment before the pass holds only the period's own now.
            let possible: bool = if sweep.holds
                == Some(RangeHolds {
                    enrolled: false,
                    exempted: false,
                }) {
                false
            } else {
                let (sql, keep) = sweep.sent(
                    self,
                    "SELECT EXISTS (SELECT 1 FROM exemptions x WHERE x.activity_id = $1 \
                       AND x.user_id >= $2 AND x.user_id < $3) \
                     OR EXISTS (SELECT 1 FROM enrollments o WHERE o.activity_id = $1 \
                       AND o.user_id >= $2 AND o.user_id < $3 AND o.status = 'in_progress' \
                       AND o.period IS NOT NULL AND o.period <> $4)"
                        .to_string(),
                );
                on_tx!(self, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .persistent(keep)
            .bind(sweep.activity_id)
            .bind(sweep.user_lo)
            .bind(sweep.user_hi)
            .bind(&sweep.period)
            .fetch_one(c)
            .await?)
            };
            if !possible {
                on_tx!(self, c => sqlx::query(sqlx::AssertSqlSafe(forget))
                    .bind(sweep.activity_id)
                    .bind(sweep.user_lo)
                    .bind(sweep.user_hi)
                    .execute(c)
                    .await?
                    .rows_affected());
                return Ok(0);
            }
        }
        let record = sweep.may(|m| m.record).then_some(record);
        // Known beforehand that none of the users has a skip recorded here.
        let forget =
            (!matches!(&sweep.narrowed, Some(narrowed) if !narrowed.skipped)).then_some(forget);
        on_tx!(self, c => {
            if let Some(forget) = forget {
                bind_changed!(sqlx::query(sqlx::AssertSqlSafe(forget))
                    .bind(sweep.activity_id)
                    .bind(sweep.user_lo)
                    .bind(sweep.user_hi), &sweep.since, &sweep.today)
                    .execute(&mut *c)
                    .await?;
            }
            if let Some(record) = record {
                bind_changed!(bind_common!(sqlx::query(sqlx::AssertSqlSafe(record)).persistent(keep), sweep), &evaluated, &sweep.today)
                    .execute(&mut *c)
                    .await?;
            }
        });
        if !sweep.count_skips {
            return Ok(0);
        }
        self.sweep_skip_count(sweep.activity_id, sweep.user_lo, sweep.user_hi)
            .await
    }

    /// Of the users an incremental sweep names (`since`), those the rule's
    /// scope holds today, in id order — the only ones its statements need to
    /// evaluate; users who left the scope need no more than their recorded
    /// skips forgotten — and which of those statements may act on them.
    pub async fn sweep_matching_users(&mut self, sweep: &ActivitySweep) -> Result<Matching> {
        // Narrowed beforehand: only the candidates are looked at.
        let candidates = match &sweep.narrowed {
            Some(narrowed) if narrowed.candidates.0.is_empty() => return Ok(Matching::default()),
            Some(Narrowed {
                rows: Some(rows), ..
            }) => return Ok(Matching::from_rows(rows.clone(), sweep.kind)),
            Some(narrowed) => Some(Changed::Users(narrowed.candidates.clone())),
            None => sweep.since.clone(),
        };
        // Per user: 0 no open enrollment in the activity, 1 one without a
        // period, 2 one of the current period, 3 one of another period
        // (at most one is open, R2); and whether any exemption exists.
        let sql = format!(
            "SELECT u.id, COALESCE((SELECT CASE WHEN o.period IS NULL THEN 1 WHEN o.period = $6 THEN 2 ELSE 3 END \
               FROM enrollments o WHERE o.activity_id = $1 AND o.user_id = u.id AND o.status = 'in_progress' \
               LIMIT 1), 0) AS open, \
             EXISTS (SELECT 1 FROM exemptions x WHERE x.activity_id = $1 AND x.user_id = u.id) AS exempt \
             FROM users u WHERE {MATCHING_FEW}{} ORDER BY u.id",
            restrict(&candidates, "u.id", 7, self.backend())
        );
        let sql = probing(self, sql);
        let rows: Vec<(i64, i32, bool)> = on_tx!(self, c => bind_changed!(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(sweep.activity_id)
            .bind(sweep.user_lo)
            .bind(sweep.user_hi)
            .bind(&sweep.hired_after)
            .bind(sweep.by_groups)
            .bind(&sweep.period), &candidates, &sweep.today)
            .fetch_all(c)
            .await?);
        Ok(Matching::from_rows(rows, sweep.kind))
    }

    /// The highest user id, to cut the sweep into ranges.
    pub async fn max_user_id(&mut self) -> Result<i64> {
        let max: Option<i64> =
            on_tx!(self, c => sqlx::query_scalar("SELECT MAX(id) FROM users").fetch_one(c).await?);
        Ok(max.unwrap_or(0))
    }

    /// Users the rule matches today and who are not exempt, over the range:
    /// for preview lists and forecasts.
    pub async fn sweep_matching_count(&mut self, sweep: &ActivitySweep) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM users u WHERE {} AND {NOT_EXEMPT} AND $7 = $7",
            sweep.matching_range()
        );
        Ok(
            on_tx!(self, c => bind_common!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), sweep)
            .fetch_one(c)
            .await?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Matching, SweepKind};

    fn flags(rows: Vec<(i64, i32, bool)>, kind: SweepKind) -> (bool, bool, bool) {
        let matching = Matching::from_rows(rows, kind);
        (matching.adopt, matching.create, matching.record)
    }

    #[test]
    fn r14_r15_r21_each_statement_runs_when_someone_may_need_it() {
        use SweepKind::*;
        // Everyone holds the current period: nothing to do.
        assert_eq!(
            flags(vec![(1, 2, false), (2, 2, false)], OneTime),
            (false, false, false)
        );
        // No open enrollment: creation (R14).
        assert_eq!(
            flags(vec![(1, 2, false), (2, 0, false)], OneTime),
            (false, true, false)
        );
        // One without a period: adoption (R15).
        assert_eq!(
            flags(vec![(1, 1, false)], EveryMonths),
            (true, false, false)
        );
        // Exempt: the skip is recorded (R21).
        assert_eq!(flags(vec![(1, 0, true)], OneTime), (false, true, true));
        // Another period's open enrollment blocks a one-time need: recorded.
        assert_eq!(flags(vec![(1, 3, false)], OneTime), (false, false, true));
        // Annual: another period's open enrollment may be moved (adoption)
        // or closed by the rollover, after which a new one is created.
        assert_eq!(flags(vec![(1, 3, false)], Annual), (true, true, true));
        // Nobody in scope: nothing.
        assert_eq!(flags(vec![], Annual), (false, false, false));
    }
}
