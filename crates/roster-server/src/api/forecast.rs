//! The forecast (R17): per day of a range, what the rules and the pending
//! jobs will do, from the rules, users and jobs as they stand.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use roster_core::calendar::annual_period_end;
use roster_core::date::Day;
use roster_core::{MonthDay, Recurrence, Scope};
use roster_store::Tx;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Actor;
use crate::engine::rules::{Activity, activity_from};
use crate::engine::sweep::activity_sweep;
use crate::error::ApiResult;
use crate::input::Query;
use crate::state::{AppState, Ctx};

/// The days a forecast covers at most: ten years. A later `to` is read as
/// the last day of that span.
pub const MAX_FORECAST_DAYS: i32 = 3660;
/// The days a forecast covers when `to` is not given: `from` and the 30 after.
pub const DEFAULT_FORECAST_DAYS: i32 = 30;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(forecast))
}

/// The query of `GET /forecast`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// The first day; default today.
    pub from: Option<Day>,
    /// The last day; default 30 days after `from`. The range holds at most
    /// 3660 days (ten years): a later day is read as the 3660th after
    /// `from`. A day before `from` makes an empty range.
    pub to: Option<Day>,
    /// Only this activity's rule, its enrollments and the post-enrollment
    /// jobs that target it.
    pub activity_id: Option<i64>,
}

/// The forecast of a range of days.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Forecast {
    pub from: Day,
    /// The last day, as bounded.
    pub to: Day,
    /// The days on which something happens, in order.
    pub days: Vec<ForecastDay>,
}

/// What happens on one day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastDay {
    pub date: Day,
    pub events: Vec<ForecastEvent>,
}

/// One thing that happens on a day; `text` says it in words.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ForecastEvent {
    /// The users an annual rule matches start a new period (R12).
    AnnualPeriodStart {
        activity_id: i64,
        activity_title: String,
        /// The users the rule matches today.
        users: i64,
        /// The end of the new period.
        period: Day,
        text: String,
    },
    /// Open enrollments fall due.
    EnrollmentsDue {
        activity_id: i64,
        activity_title: String,
        count: i64,
        text: String,
    },
    /// Post-enrollment jobs run.
    PostEnrollmentJobs {
        count: i64,
        rule_ids: BTreeSet<i64>,
        text: String,
    },
}

/// Per day of the range, what the rules and pending jobs will do (R17).
#[utoipa::path(
    get, path = "/forecast", tag = "admin",
    params(ForecastQuery),
    responses((status = 200, description = "The forecast, per day", body = Forecast))
)]
pub async fn forecast(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<ForecastQuery>,
) -> ApiResult<Json<Forecast>> {
    actor.require_admin()?;
    let mut tx = state.store.read().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let from = query.from.map(Day::date).unwrap_or(ctx.today);
    let to = bounded_to(from, query.to.map(Day::date));
    let mut days: BTreeMap<Date, Vec<ForecastEvent>> = BTreeMap::new();
    if from <= to {
        rule_events(&mut tx, &ctx, (from, to), query.activity_id, &mut days).await?;
        job_events(&mut tx, &ctx, (from, to), query.activity_id, &mut days).await?;
    }
    tx.rollback().await?;
    Ok(Json(Forecast {
        from: Day(from),
        to: Day(to),
        days: days
            .into_iter()
            .map(|(date, events)| ForecastDay {
                date: Day(date),
                events,
            })
            .collect(),
    }))
}

/// `to`, or the default, within [`MAX_FORECAST_DAYS`] of `from`.
fn bounded_to(from: Date, to: Option<Date>) -> Date {
    let after = |days: i32| from.checked_add(days.days()).unwrap_or(Date::MAX);
    match to {
        None => after(DEFAULT_FORECAST_DAYS),
        Some(to) => to.min(after(MAX_FORECAST_DAYS - 1)),
    }
}

/// The annual period starts and the due enrollments of each activity with
/// a rule.
async fn rule_events(
    tx: &mut Tx,
    ctx: &Ctx,
    (from, to): (Date, Date),
    only: Option<i64>,
    days: &mut BTreeMap<Date, Vec<ForecastEvent>>,
) -> ApiResult<()> {
    for record in tx.activities_with_rules().await? {
        if only.is_some_and(|id| id != record.id) {
            continue;
        }
        let activity = activity_from(record);
        let Some(rule) = activity.rule.clone() else {
            continue;
        };
        if rule.scope == Scope::None {
            continue;
        }
        if let Recurrence::Annual { due_each_year_on } = rule.recurrence {
            let probe = activity_sweep(
                activity.record.id,
                &rule,
                ctx.today,
                ctx,
                roster_core::sweep::UserRange::ALL,
            );
            let matching = tx.sweep_matching_count(&probe).await?;
            for (day, period) in annual_starts(from, to, due_each_year_on) {
                days.entry(day)
                    .or_default()
                    .push(ForecastEvent::AnnualPeriodStart {
                        activity_id: activity.record.id,
                        activity_title: activity.record.title.clone(),
                        users: matching,
                        period: Day(period),
                        text: format!(
                            "{matching} users start a new annual period of \"{}\" (due {period})",
                            activity.record.title
                        ),
                    });
            }
        }
        due_events(tx, &activity, (from, to), days).await?;
    }
    Ok(())
}

/// The days of `from..=to` on which a new annual period starts, with the
/// end of that period.
fn annual_starts(from: Date, to: Date, due_each_year_on: MonthDay) -> Vec<(Date, Date)> {
    let mut starts = Vec::new();
    let mut day = from;
    loop {
        let yesterday = day.yesterday().unwrap_or(day);
        let period = annual_period_end(day, due_each_year_on);
        if annual_period_end(yesterday, due_each_year_on) != period {
            starts.push((day, period));
        }
        match day.tomorrow() {
            Ok(next) if next <= to => day = next,
            _ => return starts,
        }
    }
}

async fn due_events(
    tx: &mut Tx,
    activity: &Activity,
    (from, to): (Date, Date),
    days: &mut BTreeMap<Date, Vec<ForecastEvent>>,
) -> ApiResult<()> {
    let record = &activity.record;
    for (due_on, count) in tx
        .due_counts(record.id, &from.to_string(), &to.to_string())
        .await?
    {
        let Some(due_on) = roster_core::date::parse_date(&due_on) else {
            continue;
        };
        days.entry(due_on)
            .or_default()
            .push(ForecastEvent::EnrollmentsDue {
                activity_id: record.id,
                activity_title: record.title.clone(),
                count,
                text: format!("{count} open enrollments in \"{}\" fall due", record.title),
            });
    }
    Ok(())
}

/// The pending post-enrollment jobs of the range, per local day.
async fn job_events(
    tx: &mut Tx,
    ctx: &Ctx,
    (from, to): (Date, Date),
    only: Option<i64>,
    days: &mut BTreeMap<Date, Vec<ForecastEvent>>,
) -> ApiResult<()> {
    let tz = ctx.settings.time_zone();
    let start = day_start(from, &tz);
    let end = to.tomorrow().map_or(i64::MAX, |day| day_start(day, &tz));
    let mut per_day: BTreeMap<Date, (i64, BTreeSet<i64>)> = BTreeMap::new();
    for job in tx.pending_jobs_between(start, end).await? {
        if job.kind != "post_enrollment" {
            continue;
        }
        let payload: serde_json::Value =
            serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
        let targets: Vec<i64> =
            serde_json::from_value(payload["target_ids"].clone()).unwrap_or_default();
        if only
            .is_some_and(|id| !targets.contains(&id) && payload["activity_id"].as_i64() != Some(id))
        {
            continue;
        }
        let Ok(run_at) = Timestamp::from_microsecond(job.run_at) else {
            continue;
        };
        let entry = per_day
            .entry(run_at.to_zoned(tz.clone()).date())
            .or_default();
        entry.0 += 1;
        if let Some(rule_id) = job.rule_id {
            entry.1.insert(rule_id);
        }
    }
    for (day, (count, rule_ids)) in per_day {
        days.entry(day)
            .or_default()
            .push(ForecastEvent::PostEnrollmentJobs {
                count,
                rule_ids,
                text: format!("{count} post-enrollment jobs run"),
            });
    }
    Ok(())
}

/// The first instant of `day` in `tz`, in microseconds; a day at the edge of
/// the calendar saturates instead of failing.
fn day_start(day: Date, tz: &TimeZone) -> i64 {
    match day.to_zoned(tz.clone()) {
        Ok(zoned) => zoned.timestamp().as_microsecond(),
        Err(_) if day.year() < 0 => i64::MIN,
        Err(_) => i64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_bounded_to_ten_years_and_defaults_to_thirty_days() {
        let from = jiff::civil::date(2030, 1, 1);
        assert_eq!(bounded_to(from, None), jiff::civil::date(2030, 1, 31));
        assert_eq!(
            bounded_to(from, Some(jiff::civil::date(2050, 1, 1))),
            from.checked_add((MAX_FORECAST_DAYS - 1).days())
                .unwrap_or(Date::MAX)
        );
        assert_eq!(
            bounded_to(Date::MAX, Some(Date::MAX)),
            Date::MAX,
            "the end of the calendar saturates"
        );
    }

    #[test]
    fn r12_an_annual_period_starts_the_day_after_its_due_day() {
        let due = MonthDay { month: 6, day: 30 };
        let starts = annual_starts(
            jiff::civil::date(2030, 6, 25),
            jiff::civil::date(2030, 7, 5),
            due,
        );
        assert_eq!(
            starts,
            vec![(
                jiff::civil::date(2030, 7, 1),
                jiff::civil::date(2031, 6, 30)
            )]
        );
    }
}
