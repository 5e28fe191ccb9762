//! The learner's side: catalog and self-enrollment (R1, R3, R4), History
//! (R60), Plan and its iCalendar feed (R61), and home rows (R62). Everything
//! here is the caller's own data.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use icalendar::{Calendar, Component, EventLike};
use jiff::ToSpan;
use roster_core::date::Day;
use roster_core::{ActivityKind, EnrollmentType, Source, Status};
use roster_store::{
    ActivityBrief, ActivityRecord, EnrollmentFilter, EnrollmentRecord, EnrollmentRow, Tx,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::views::{Page, TimestampText, page_bounds};
use crate::api::{EnrollmentView, enrollments_csv, json_response, wants_csv};
use crate::auth::Actor;
use crate::engine::enroll::{Created, NewEnrollment, create};
use crate::error::{ApiError, ApiResult, FieldError, NamedRecord};
use crate::input::{Body, Query};
use crate::state::{Activities, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalog))
        .routes(routes!(self_enroll))
        .routes(routes!(enroll_by_url))
        .routes(routes!(history))
        .routes(routes!(plan))
        .routes(routes!(plan_ics))
        .routes(routes!(home))
}

/// An activity as the catalog shows it: without its rules, which are
/// administration, not catalog content.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogActivity {
    pub id: i64,
    pub title: String,
    #[schema(value_type = ActivityKind)]
    pub kind: String,
    pub active: bool,
    pub in_catalog: bool,
    pub allow_failure: bool,
    pub prerequisite_ids: Vec<i64>,
    pub item_ids: Vec<i64>,
    /// Where a learner enrolls themself (R1, R3).
    pub enrollment_url: String,
    pub created_at: TimestampText,
}

impl CatalogActivity {
    async fn read(tx: &mut Tx, record: ActivityRecord) -> ApiResult<CatalogActivity> {
        Ok(CatalogActivity {
            prerequisite_ids: tx.prerequisite_ids(record.id).await?,
            item_ids: tx.item_ids(record.id).await?,
            enrollment_url: format!("/api/v1/enroll/{}", record.enrollment_token),
            created_at: TimestampText(record.created_at),
            id: record.id,
            title: record.title,
            kind: record.kind,
            active: record.active,
            in_catalog: record.in_catalog,
            allow_failure: record.allow_failure,
        })
    }
}

/// The query of `GET /catalog`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Part of the title.
    pub q: Option<String>,
    pub kind: Option<ActivityKind>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// What the learner may enroll in themself: active activities in the
/// catalog (R3).
#[utoipa::path(
    get, path = "/catalog", tag = "learner",
    params(CatalogQuery),
    responses((status = 200, description = "A page of the catalog", body = Page<CatalogActivity>))
)]
pub async fn catalog(
    State(state): State<AppState>,
    _actor: Actor,
    Query(query): Query<CatalogQuery>,
) -> ApiResult<Json<Page<CatalogActivity>>> {
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let mut tx = state.store.read().await?;
    let records = tx
        .list_activities(
            query.q.as_deref().filter(|q| !q.is_empty()),
            query.kind.map(|kind| kind.as_str()),
            true,
            cursor.unwrap_or(0),
            limit,
        )
        .await?;
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        items.push(CatalogActivity::read(&mut tx, record).await?);
    }
    tx.rollback().await?;
    Ok(Json(Page::new(items, limit, |item| item.id)))
}

/// What a self-enrollment did (R2).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfOutcome {
    Created,
    AlreadyEnrolled,
}

/// The answer of a self-enrollment: `created` (201) or `already_enrolled`
/// (200), with the enrollment created or the open one found (R2).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfEnrollment<'a> {
    pub outcome: SelfOutcome,
    pub enrollment: EnrollmentView<'a>,
}

/// The body of `POST /me/enrollments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfEnrollBody {
    pub activity_id: i64,
}

/// Self-enrollment by either path (R1, R3, R4).
async fn self_enroll_into(
    state: &AppState,
    actor: &Actor,
    activity: ActivityRecord,
    source: Source,
) -> ApiResult<Response> {
    if !activity.active {
        return Err(ApiError::rule(format!(
            "\"{}\" is inactive: it cannot be enrolled in (R3)",
            activity.title
        )));
    }
    let mut tx = state.store.write().await?;
    let ctx = state.ctx(&mut tx, Some(actor.id())).await?;
    let mut missing = Vec::new();
    for prerequisite in tx.prerequisite_ids(activity.id).await? {
        if !tx.ever_passed(actor.id(), prerequisite).await? {
            let title = tx
                .get_activity(prerequisite)
                .await?
                .map(|a| a.title)
                .unwrap_or_default();
            missing.push((prerequisite, title));
        }
    }
    if !missing.is_empty() {
        let names = missing
            .iter()
            .map(|(_, title)| format!("\"{title}\""))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ApiError::Invalid {
            detail: format!("pass the prerequisites first: {names} (R4)"),
            errors: vec![FieldError::new(
                "activity_id",
                format!("missing prerequisites: {names}"),
            )],
            missing_prerequisites: missing
                .into_iter()
                .map(|(id, title)| NamedRecord { id, title })
                .collect(),
        });
    }
    let new = NewEnrollment {
        user_id: actor.id(),
        activity_id: activity.id,
        enrollment_type: EnrollmentType::Elected,
        status: Status::InProgress,
        due_on: None,
        required_by: None,
        reason: None,
        source,
        period: None,
    };
    let today = ctx.today.to_string();
    match create(&mut tx, &ctx, new).await? {
        Created::Created(record) => {
            tx.commit().await?;
            state.jobs_ready.notify_waiters();
            Ok(self_enrollment(
                StatusCode::CREATED,
                SelfOutcome::Created,
                &record,
                &today,
            ))
        }
        Created::AlreadyEnrolled | Created::PeriodHeld => {
            // R2: the open enrollment stays as it is and is named in the answer,
            // as the administrator's path (R50) reports `already_enrolled`.
            let open = tx.open_enrollment(actor.id(), activity.id).await?;
            tx.rollback().await?;
            let open = open.ok_or_else(|| {
                ApiError::Conflict(
                    "you already have an open enrollment in this activity (R2)".into(),
                )
            })?;
            Ok(self_enrollment(
                StatusCode::OK,
                SelfOutcome::AlreadyEnrolled,
                &open,
                &today,
            ))
        }
    }
}

fn self_enrollment(
    status: StatusCode,
    outcome: SelfOutcome,
    record: &EnrollmentRecord,
    today: &str,
) -> Response {
    let answer = SelfEnrollment {
        outcome,
        enrollment: EnrollmentView::of(record, today),
    };
    (status, Json(answer)).into_response()
}

/// Enroll oneself from the catalog (R1, R3, R4): `elected`, source `self`.
#[utoipa::path(
    post, path = "/me/enrollments", tag = "learner",
    request_body = SelfEnrollBody,
    responses(
        (status = 201, description = "Enrolled", body = SelfEnrollment),
        (status = 200, description = "Already enrolled: the open enrollment (R2)", body = SelfEnrollment),
    )
)]
pub async fn self_enroll(
    State(state): State<AppState>,
    actor: Actor,
    Body(body): Body<SelfEnrollBody>,
) -> ApiResult<Response> {
    let activity_id = body.activity_id;
    let mut tx = state.store.read().await?;
    let activity = tx.get_activity(activity_id).await?;
    tx.rollback().await?;
    let activity = activity.ok_or_else(|| ApiError::not_found("activity"))?;
    if !activity.in_catalog {
        return Err(ApiError::rule(format!(
            "\"{}\" is not in the catalog; use its enrollment URL (R3)",
            activity.title
        )));
    }
    self_enroll_into(&state, &actor, activity, Source::SelfEnrolled).await
}

/// Enroll oneself through an activity's enrollment URL (R1, R3, R4):
/// `elected`, source `url`; the activity need not be in the catalog.
#[utoipa::path(
    post, path = "/enroll/{token}", tag = "learner",
    params(("token" = String, Path, description = "The activity's enrollment token")),
    responses(
        (status = 201, description = "Enrolled", body = SelfEnrollment),
        (status = 200, description = "Already enrolled: the open enrollment (R2)", body = SelfEnrollment),
    )
)]
pub async fn enroll_by_url(
    State(state): State<AppState>,
    actor: Actor,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let mut tx = state.store.read().await?;
    let activity = tx.find_activity_by_token(&token).await?;
    tx.rollback().await?;
    let activity = activity.ok_or_else(|| ApiError::not_found("enrollment link"))?;
    self_enroll_into(&state, &actor, activity, Source::Url).await
}

/// The query of `GET /me/history`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Part of the activity's title.
    pub q: Option<String>,
    pub status: Option<Status>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub enrollment_type: Option<EnrollmentType>,
    /// Enrolled on or after this day (the organisation's time zone).
    pub from: Option<Day>,
    /// Enrolled on or before this day.
    pub to: Option<Day>,
    /// Items per page, 1 to 1000 (more is read as 1000); default 100.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// R60: all the learner's enrollments, newest first, searchable and
/// filterable; `Accept: text/csv` gives them all as CSV.
#[utoipa::path(
    get, path = "/me/history", tag = "learner",
    params(HistoryQuery),
    responses((status = 200, description = "A page of the learner's enrollments, or all as CSV",
        content((Page<EnrollmentView> = "application/json"), (String = "text/csv"))))
)]
pub async fn history(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Response> {
    let (limit, cursor) = page_bounds(query.limit, query.cursor.as_deref())?;
    let mut tx = state.store.reader().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let tz = ctx.settings.time_zone();
    let start_of = |day: Day| {
        day.date()
            .to_zoned(tz.clone())
            .ok()
            .map(|zoned| zoned.timestamp().as_microsecond())
    };
    let csv = wants_csv(&headers);
    let filter = EnrollmentFilter {
        user_id: Some(actor.id()),
        status: query.status.map(|status| status.as_str().into()),
        enrollment_type: query.enrollment_type.map(|value| value.as_str().into()),
        enrolled_from: query.from.and_then(start_of),
        enrolled_to: query
            .to
            .and_then(|day| day.date().checked_add(1.day()).ok())
            .map(Day)
            .and_then(start_of),
        title_q: query.q.filter(|q| !q.is_empty()),
        today: ctx.today.to_string(),
        cursor,
        newest_first: true,
        limit: if csv && cursor.is_none() {
            i64::MAX
        } else {
            limit
        },
        ..EnrollmentFilter::default()
    };
    let own = own(&state, &mut tx, &actor, &filter).await?;
    tx.rollback().await?;
    if csv {
        return Ok(enrollments_csv(&own.rows(), &filter.today, "history.csv")?);
    }
    let items = own.views(&filter.today).collect();
    Ok(json_response(&Page::new(
        items,
        limit,
        |view: &EnrollmentView| view.id,
    )))
}

/// The caller's enrollments and what the lists show of their activities.
struct Own {
    records: Vec<EnrollmentRecord>,
    activities: Activities,
    username: String,
}

impl Own {
    /// Each enrollment with its activity (there is one for every
    /// enrollment: `own` checked it).
    fn iter(&self) -> impl Iterator<Item = (&EnrollmentRecord, &ActivityBrief)> {
        self.records.iter().filter_map(|record| {
            self.activities
                .get(&record.activity_id)
                .map(|activity| (record, activity))
        })
    }

    fn views<'a>(&'a self, today: &'a str) -> impl Iterator<Item = EnrollmentView<'a>> + 'a {
        self.iter().map(move |(record, activity)| {
            EnrollmentView::of_own(record, activity, &self.username, today)
        })
    }

    /// The list as rows, for the CSV export.
    fn rows(&self) -> Vec<EnrollmentRow> {
        self.iter()
            .map(|(record, activity)| EnrollmentRow {
                enrollment: record.clone(),
                activity_title: activity.title.clone(),
                activity_kind: activity.kind.clone(),
                activity_active: activity.active,
                username: self.username.clone(),
            })
            .collect()
    }
}

/// The caller's enrollments as `filter` selects them: the enrollments read
/// alone, their activities' titles, kinds and active flags taken from
/// `ActivityCache`. An unpaginated list is filtered on the activity's active
/// flag here; a page, where the database must filter before it counts, joins
/// the activities for it (as it does to search their titles).
async fn own(
    state: &AppState,
    tx: &mut roster_store::Tx,
    actor: &Actor,
    filter: &EnrollmentFilter,
) -> ApiResult<Own> {
    let here = filter.activity_active.filter(|_| filter.limit == i64::MAX);
    let mut records = if here.is_some() {
        tx.list_enrollment_records(&EnrollmentFilter {
            activity_active: None,
            ..filter.clone()
        })
        .await?
    } else {
        tx.list_enrollment_records(filter).await?
    };
    let mut ids: Vec<i64> = records.iter().map(|record| record.activity_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let activities = state.activity_cache.covering(tx, &ids).await?;
    if let Some(missing) = ids.iter().find(|id| !activities.contains_key(id)) {
        // An enrollment's activity is never deleted (foreign key).
        return Err(anyhow::anyhow!("enrollment of missing activity {missing}").into());
    }
    if let Some(active) = here {
        records.retain(|record| activities[&record.activity_id].active == active);
    }
    Ok(Own {
        records,
        activities,
        username: actor.user.username.clone(),
    })
}

/// The learner's open enrollments in active activities (R37, R61, R62),
/// soonest due first, undated last, ties by enrollment id.
async fn open_visible(state: &AppState, actor: &Actor) -> ApiResult<(Own, jiff::civil::Date)> {
    let mut tx = state.store.reader().await?;
    let ctx = state.ctx(&mut tx, None).await?;
    let filter = EnrollmentFilter {
        user_id: Some(actor.id()),
        status: Some("in_progress".into()),
        activity_active: Some(true),
        today: ctx.today.to_string(),
        limit: i64::MAX,
        ..EnrollmentFilter::default()
    };
    let mut own = own(state, &mut tx, actor, &filter).await?;
    tx.rollback().await?;
    own.records.sort_unstable_by(|a, b| {
        (a.due_on.is_none(), a.due_on.as_deref(), a.id).cmp(&(
            b.due_on.is_none(),
            b.due_on.as_deref(),
            b.id,
        ))
    });
    Ok((own, ctx.today))
}

/// R61's groups of the learner's open enrollments in active activities,
/// each soonest due first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Plan)]
pub struct PlanView<'a> {
    /// Today in the organisation's time zone.
    #[schema(value_type = Day)]
    today: String,
    overdue: Vec<EnrollmentView<'a>>,
    due_soon: Vec<EnrollmentView<'a>>,
    due_this_month: Vec<EnrollmentView<'a>>,
    later: Vec<EnrollmentView<'a>>,
    no_due_date: Vec<EnrollmentView<'a>>,
}

/// The learner's Plan (R61): overdue, due within 7 days, within 30 days,
/// later, and without a due date.
#[utoipa::path(
    get, path = "/me/plan", tag = "learner",
    responses((status = 200, description = "The plan", body = PlanView))
)]
pub async fn plan(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let (own, today) = open_visible(&state, &actor).await?;
    let soon = today.checked_add(7.days()).unwrap_or(today).to_string();
    let month = today.checked_add(30.days()).unwrap_or(today).to_string();
    let today_text = today.to_string();
    let mut groups: [Vec<EnrollmentView>; 5] = Default::default();
    for view in own.views(&today_text) {
        let index = match view.due_on {
            None => 4,
            Some(_) if view.overdue => 0,
            Some(due) if due <= soon.as_str() => 1,
            Some(due) if due <= month.as_str() => 2,
            Some(_) => 3,
        };
        groups[index].push(view);
    }
    let [overdue, due_soon, due_this_month, later, no_due_date] = groups;
    Ok(json_response(&PlanView {
        today: today_text.clone(),
        overdue,
        due_soon,
        due_this_month,
        later,
        no_due_date,
    }))
}

/// The iCalendar producer identifier of the plan feed (RFC 5545 3.7.3).
const PRODID: &str = "-//Roster//Roster plan//EN";

/// The Plan as an iCalendar feed (R61): one all-day event per open
/// enrollment with a due date, with a stable UID.
#[utoipa::path(
    get, path = "/me/plan.ics", tag = "learner",
    responses((status = 200, description = "The feed", content_type = "text/calendar", body = String))
)]
pub async fn plan_ics(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let (own, _) = open_visible(&state, &actor).await?;
    // R61: the feed names Roster as its producer (the library's default
    // PRODID names the library).
    let mut calendar = Calendar::empty();
    calendar
        .append_property(("VERSION", "2.0"))
        .append_property(("PRODID", PRODID))
        .append_property(("CALSCALE", "GREGORIAN"))
        .name("Roster plan");
    for (record, activity) in own.iter() {
        let Some(due) = record.due_on.as_deref() else {
            continue;
        };
        // The one date parser reads the stored day; icalendar takes chrono's.
        let Some(date) = roster_core::date::parse_date(due).and_then(|day| {
            chrono::NaiveDate::from_ymd_opt(
                i32::from(day.year()),
                u32::try_from(day.month()).ok()?,
                u32::try_from(day.day()).ok()?,
            )
        }) else {
            continue;
        };
        // An all-day event ends, exclusively, the day after it starts (RFC 5545
        // 3.6.1); the library's `all_day` would end it on the day itself.
        let Some(day_after) = date.succ_opt() else {
            continue;
        };
        // The UID depends only on the enrollment, so a calendar that
        // subscribes to the feed updates its events instead of duplicating them.
        let event = icalendar::Event::new()
            .uid(&format!("enrollment-{}@roster", record.id))
            .summary(&format!("Due: {}", activity.title))
            .description(&format!(
                "{} enrollment in {}",
                record.enrollment_type, activity.title
            ))
            .starts(date)
            .ends(day_after)
            .done();
        calendar.push(event);
    }
    let body = calendar.done().to_string();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"plan.ics\""),
    );
    Ok(response)
}

/// R62's rows: open required and recommended enrollments in active
/// activities, soonest due first, undated last.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Home)]
pub struct HomeView<'a> {
    required: Vec<EnrollmentView<'a>>,
    recommended: Vec<EnrollmentView<'a>>,
}

/// The learner's home rows (R62).
#[utoipa::path(
    get, path = "/me/home", tag = "learner",
    responses((status = 200, description = "The rows", body = HomeView))
)]
pub async fn home(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let (own, today) = open_visible(&state, &actor).await?;
    let today_text = today.to_string();
    let row_of = |kind: &str| -> Vec<EnrollmentView> {
        own.views(&today_text)
            .filter(|view| view.enrollment_type == kind)
            .collect()
    };
    Ok(json_response(&HomeView {
        required: row_of("required"),
        recommended: row_of("recommended"),
    }))
}
