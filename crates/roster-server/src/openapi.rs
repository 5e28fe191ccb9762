//! The OpenAPI 3.1 document at `/api/v1/openapi.json`, built with utoipa from
//! the schema types below and the operation table `OPERATIONS`, which lists
//! every route of `api::router` (a test keeps the two in step).

use axum::Json;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, Required,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// A problem (RFC 9457), the body of every error.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    r#type: String,
    title: String,
    status: u16,
    detail: String,
    /// Field errors of a 422.
    errors: Option<Vec<FieldErrorDoc>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    field: String,
    message: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct User {
    id: i64,
    username: String,
    email: String,
    display_name: String,
    active: bool,
    /// `YYYY-MM-DD`
    hired_on: Option<String>,
    external_id: Option<String>,
    group_ids: Vec<i64>,
    /// `admin`, `learner` or `integration`
    role: String,
    created_at: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserInput {
    username: String,
    email: Option<String>,
    display_name: Option<String>,
    active: Option<bool>,
    hired_on: Option<String>,
    external_id: Option<String>,
    group_ids: Option<Vec<i64>>,
    role: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Group {
    id: i64,
    name: String,
    member_count: i64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GroupInput {
    name: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Token {
    token: String,
    user_id: i64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Recurrence {
    /// `one_time`, `annual` or `every_months`
    kind: String,
    /// one_time: null, `{"within_days":N}` or `{"on_date":"YYYY-MM-DD"}`
    due: Option<serde_json::Value>,
    /// annual: `MM-DD`
    due_each_year_on: Option<String>,
    /// every_months: 1–120
    months: Option<u32>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AutoEnrollmentRule {
    /// `none`, `company` or `groups`
    scope: String,
    group_ids: Option<Vec<i64>>,
    hired_after: Option<String>,
    recurrence: Option<Recurrence>,
    initial_due_days: Option<u32>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PostEnrollmentRule {
    id: i64,
    activity_id: i64,
    /// `enrolled`, `completed` or `failed`
    when: String,
    delay_days: u32,
    target_ids: Vec<i64>,
    allow_consecutive: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Activity {
    id: i64,
    title: String,
    /// `online_course`, `instructor_led`, `curriculum` or `course_bundle`
    kind: String,
    active: bool,
    in_catalog: bool,
    allow_failure: bool,
    prerequisite_ids: Vec<i64>,
    item_ids: Vec<i64>,
    enrollment_url: String,
    auto_enrollment: Option<AutoEnrollmentRule>,
    post_enrollments: Vec<PostEnrollmentRule>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActivityInput {
    title: String,
    kind: String,
    active: Option<bool>,
    in_catalog: Option<bool>,
    allow_failure: Option<bool>,
    prerequisite_ids: Option<Vec<i64>>,
    item_ids: Option<Vec<i64>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Enrollment {
    id: i64,
    user_id: i64,
    activity_id: i64,
    /// `elected`, `recommended` or `required`
    r#type: String,
    /// `in_progress`, `passed`, `failed`, `no_show`, `incomplete` or `dropped`
    status: String,
    due_on: Option<String>,
    required_by: Option<String>,
    reason: Option<String>,
    enrolled_at: String,
    completed_at: Option<String>,
    /// Provenance (R20), e.g. `{"kind":"manual","by":1}`
    source: serde_json::Value,
    /// `once`, `YYYY-MM-DD` or `cycle-N`, null where no rule holds it
    period: Option<String>,
    overdue: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EnrollInput {
    user_ids: Vec<i64>,
    due_on: Option<String>,
    status: Option<String>,
    r#type: Option<String>,
    required_by: Option<String>,
    reason: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EnrollmentChange {
    due_on: Option<String>,
    status: Option<String>,
    r#type: Option<String>,
    required_by: Option<String>,
    reason: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkUpdate {
    ids: Vec<i64>,
    due_on: Option<String>,
    status: Option<String>,
    r#type: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Confirmation {
    ids: Option<Vec<i64>>,
    confirm: Option<bool>,
    dry_run: Option<bool>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Results {
    results: Vec<serde_json::Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Page {
    items: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Job {
    id: i64,
    /// `post_enrollment` or `sweep_activity`
    kind: String,
    /// `pending`, `running`, `done`, `failed` or `cancelled`
    state: String,
    run_at: String,
    attempts: i64,
    rule_id: Option<i64>,
    payload: serde_json::Value,
    outcome: Option<serde_json::Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Sweep {
    id: i64,
    /// `queued`, `running`, `done` or `failed`
    state: String,
    dry_run: bool,
    started_at: String,
    finished_at: Option<String>,
    duration_ms: Option<i64>,
    created: i64,
    adopted: i64,
    closed: i64,
    skipped: i64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Clock {
    now: String,
    /// `system` or `manual`
    mode: String,
    today: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Exemption {
    id: i64,
    user_id: i64,
    activity_id: i64,
    reason: String,
    until: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Plan {
    overdue: Vec<Enrollment>,
    due_soon: Vec<Enrollment>,
    due_this_month: Vec<Enrollment>,
    later: Vec<Enrollment>,
    no_due_date: Vec<Enrollment>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Home {
    required: Vec<Enrollment>,
    recommended: Vec<Enrollment>,
}

/// A self-enrollment's answer: `created` (201) or, when an open enrollment is
/// already there, `already_enrolled` (200) with that enrollment (R2).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SelfEnrollment {
    /// `created` or `already_enrolled`
    outcome: String,
    enrollment: Enrollment,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AnyObject {}

/// One operation: method, path, tag, summary, request schema, success status
/// and response schema (`None` for no body), query parameters.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub request: Option<&'static str>,
    pub status: &'static str,
    pub response: Option<&'static str>,
    pub query: &'static [&'static str],
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    status: &'static str,
    response: Option<&'static str>,
    query: &'static [&'static str],
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        request,
        status,
        response,
        query,
    }
}

const PAGE: &[&str] = &["limit", "cursor"];
const LIST_ENROLLMENTS: &[&str] = &[
    "status", "type", "source", "overdue", "due_from", "due_to", "q", "limit", "cursor",
];

/// Every route of the API.
pub const OPERATIONS: &[Operation] = &[
    op(
        "post",
        "/users",
        "users",
        "Create a user (R18: evaluated against every rule at once)",
        Some("UserInput"),
        "201",
        Some("User"),
        &[],
    ),
    op(
        "get",
        "/users",
        "users",
        "List users",
        None,
        "200",
        Some("Page"),
        &["q", "active", "group_id", "limit", "cursor"],
    ),
    op(
        "get",
        "/users/{id}",
        "users",
        "Get a user",
        None,
        "200",
        Some("User"),
        &[],
    ),
    op(
        "patch",
        "/users/{id}",
        "users",
        "Change a user (R18)",
        Some("UserInput"),
        "200",
        Some("User"),
        &[],
    ),
    op(
        "post",
        "/users/{id}/tokens",
        "users",
        "Issue an API token for a user",
        None,
        "201",
        Some("Token"),
        &[],
    ),
    op(
        "get",
        "/users/{id}/enrollments",
        "enrollments",
        "A user's enrollments (R55); Accept: text/csv for CSV",
        None,
        "200",
        Some("Page"),
        LIST_ENROLLMENTS,
    ),
    op(
        "post",
        "/groups",
        "groups",
        "Create a group",
        Some("GroupInput"),
        "201",
        Some("Group"),
        &[],
    ),
    op(
        "get",
        "/groups",
        "groups",
        "List groups",
        None,
        "200",
        Some("Page"),
        PAGE,
    ),
    op(
        "get",
        "/groups/{id}",
        "groups",
        "Get a group",
        None,
        "200",
        Some("Group"),
        &[],
    ),
    op(
        "patch",
        "/groups/{id}",
        "groups",
        "Rename a group",
        Some("GroupInput"),
        "200",
        Some("Group"),
        &[],
    ),
    op(
        "delete",
        "/groups/{id}",
        "groups",
        "Delete a group",
        None,
        "204",
        None,
        &[],
    ),
    op(
        "put",
        "/groups/{id}/members/{user_id}",
        "groups",
        "Add a member (R18)",
        None,
        "204",
        None,
        &[],
    ),
    op(
        "delete",
        "/groups/{id}/members/{user_id}",
        "groups",
        "Remove a member (R18)",
        None,
        "204",
        None,
        &[],
    ),
    op(
        "post",
        "/activities",
        "activities",
        "Create an activity",
        Some("ActivityInput"),
        "201",
        Some("Activity"),
        &[],
    ),
    op(
        "get",
        "/activities",
        "activities",
        "List activities",
        None,
        "200",
        Some("Page"),
        &["q", "kind", "limit", "cursor"],
    ),
    op(
        "get",
        "/activities/{id}",
        "activities",
        "Get an activity",
        None,
        "200",
        Some("Activity"),
        &[],
    ),
    op(
        "patch",
        "/activities/{id}",
        "activities",
        "Change an activity (R40 for new bundle courses)",
        Some("ActivityInput"),
        "200",
        Some("Activity"),
        &[],
    ),
    op(
        "put",
        "/activities/{id}/auto-enrollment",
        "rules",
        "Set the auto-enrollment rule (R10-R13)",
        Some("AutoEnrollmentRule"),
        "200",
        Some("Activity"),
        &[],
    ),
    op(
        "post",
        "/activities/{id}/auto-enrollment/preview",
        "rules",
        "Dry run of a proposed or the saved rule (R17)",
        Some("AutoEnrollmentRule"),
        "200",
        Some("AnyObject"),
        PAGE,
    ),
    op(
        "get",
        "/activities/{id}/post-enrollments",
        "rules",
        "List post-enrollment rules",
        None,
        "200",
        Some("Page"),
        &[],
    ),
    op(
        "post",
        "/activities/{id}/post-enrollments",
        "rules",
        "Add a post-enrollment rule (R30, R31)",
        Some("PostEnrollmentRule"),
        "201",
        Some("PostEnrollmentRule"),
        &[],
    ),
    op(
        "patch",
        "/activities/{id}/post-enrollments/{rule_id}",
        "rules",
        "Change a post-enrollment rule (R35)",
        Some("PostEnrollmentRule"),
        "200",
        Some("PostEnrollmentRule"),
        &[],
    ),
    op(
        "delete",
        "/activities/{id}/post-enrollments/{rule_id}",
        "rules",
        "Remove a post-enrollment rule (R35)",
        None,
        "204",
        None,
        &[],
    ),
    op(
        "post",
        "/activities/{id}/enrollments",
        "enrollments",
        "Enroll users (R50)",
        Some("EnrollInput"),
        "200",
        Some("Results"),
        &[],
    ),
    op(
        "get",
        "/activities/{id}/enrollments",
        "enrollments",
        "An activity's enrollments (R55); Accept: text/csv for CSV",
        None,
        "200",
        Some("Page"),
        LIST_ENROLLMENTS,
    ),
    op(
        "get",
        "/enrollments",
        "enrollments",
        "All enrollments (R55); Accept: text/csv for CSV",
        None,
        "200",
        Some("Page"),
        &[
            "user_id",
            "activity_id",
            "status",
            "type",
            "source",
            "overdue",
            "due_from",
            "due_to",
            "q",
            "limit",
            "cursor",
        ],
    ),
    op(
        "post",
        "/enrollments/bulk-update",
        "enrollments",
        "Bulk update (R51)",
        Some("BulkUpdate"),
        "200",
        Some("Results"),
        &[],
    ),
    op(
        "post",
        "/enrollments/bulk-delete",
        "enrollments",
        "Delete after confirmation (R53)",
        Some("Confirmation"),
        "200",
        Some("AnyObject"),
        &[],
    ),
    op(
        "get",
        "/enrollments/{id}",
        "enrollments",
        "Get an enrollment with its user",
        None,
        "200",
        Some("Enrollment"),
        &[],
    ),
    op(
        "patch",
        "/enrollments/{id}",
        "enrollments",
        "Change an enrollment (R5, R32)",
        Some("EnrollmentChange"),
        "200",
        Some("Enrollment"),
        &[],
    ),
    op(
        "get",
        "/enrollments/{id}/explain",
        "explain",
        "Why the enrollment exists (R20)",
        None,
        "200",
        Some("AnyObject"),
        &[],
    ),
    op(
        "post",
        "/enrollments/{id}/attachments",
        "enrollments",
        "Upload an attachment: multipart field `file` (R52)",
        None,
        "201",
        Some("AnyObject"),
        &[],
    ),
    op(
        "get",
        "/enrollments/{id}/attachments",
        "enrollments",
        "List attachments (R52)",
        None,
        "200",
        Some("Page"),
        &[],
    ),
    op(
        "get",
        "/enrollments/{id}/attachments/{aid}",
        "enrollments",
        "Download an attachment (R52)",
        None,
        "200",
        None,
        &[],
    ),
    op(
        "delete",
        "/enrollments/{id}/attachments/{aid}",
        "enrollments",
        "Delete an attachment (R52)",
        None,
        "204",
        None,
        &[],
    ),
    op(
        "post",
        "/enrollments/{id}/tasks",
        "enrollments",
        "Add a task (R52)",
        Some("AnyObject"),
        "201",
        Some("AnyObject"),
        &[],
    ),
    op(
        "get",
        "/enrollments/{id}/tasks",
        "enrollments",
        "List tasks (R52)",
        None,
        "200",
        Some("Page"),
        &[],
    ),
    op(
        "get",
        "/explain",
        "explain",
        "Why a user has or has no enrollment in an activity (R20)",
        None,
        "200",
        Some("AnyObject"),
        &["user_id", "activity_id"],
    ),
    op(
        "post",
        "/maintenance/purge-inactive",
        "enrollments",
        "Purge in-progress enrollments of inactive users (R54)",
        Some("Confirmation"),
        "200",
        Some("AnyObject"),
        &[],
    ),
    op(
        "get",
        "/catalog",
        "learner",
        "The catalog (R3)",
        None,
        "200",
        Some("Page"),
        &["q", "kind", "limit", "cursor"],
    ),
    op(
        "post",
        "/me/enrollments",
        "learner",
        "Self-enroll from the catalog (R1, R3, R4)",
        Some("AnyObject"),
        "201",
        Some("SelfEnrollment"),
        &[],
    ),
    op(
        "post",
        "/enroll/{token}",
        "learner",
        "Self-enroll through an enrollment URL (R1, R3, R4)",
        None,
        "201",
        Some("SelfEnrollment"),
        &[],
    ),
    op(
        "get",
        "/me/history",
        "learner",
        "History (R60); Accept: text/csv for CSV",
        None,
        "200",
        Some("Page"),
        &["q", "status", "type", "from", "to", "limit", "cursor"],
    ),
    op(
        "get",
        "/me/plan",
        "learner",
        "Plan (R61)",
        None,
        "200",
        Some("Plan"),
        &[],
    ),
    op(
        "get",
        "/me/plan.ics",
        "learner",
        "Plan as iCalendar (R61)",
        None,
        "200",
        None,
        &[],
    ),
    op(
        "get",
        "/me/home",
        "learner",
        "Home rows (R62)",
        None,
        "200",
        Some("Home"),
        &[],
    ),
    op(
        "post",
        "/sweeps",
        "operations",
        "Start a sweep now (R13)",
        Some("AnyObject"),
        "202",
        Some("Sweep"),
        &[],
    ),
    op(
        "get",
        "/sweeps",
        "operations",
        "List sweeps",
        None,
        "200",
        Some("Page"),
        PAGE,
    ),
    op(
        "get",
        "/sweeps/{id}",
        "operations",
        "Get a sweep",
        None,
        "200",
        Some("Sweep"),
        &[],
    ),
    op(
        "get",
        "/jobs",
        "operations",
        "List jobs (R35)",
        None,
        "200",
        Some("Page"),
        &[
            "state",
            "kind",
            "rule_id",
            "user_id",
            "activity_id",
            "limit",
            "cursor",
        ],
    ),
    op(
        "post",
        "/jobs/run-due",
        "operations",
        "Run the due jobs and answer when done",
        None,
        "200",
        Some("AnyObject"),
        &[],
    ),
    op(
        "get",
        "/jobs/{id}",
        "operations",
        "Get a job",
        None,
        "200",
        Some("Job"),
        &[],
    ),
    op(
        "post",
        "/jobs/{id}/cancel",
        "operations",
        "Cancel a pending job (R35)",
        None,
        "200",
        Some("Job"),
        &[],
    ),
    op(
        "get",
        "/clock",
        "operations",
        "The clock",
        None,
        "200",
        Some("Clock"),
        &[],
    ),
    op(
        "post",
        "/clock",
        "operations",
        "Move a manual clock forward, playing the time in between",
        Some("AnyObject"),
        "200",
        Some("Clock"),
        &[],
    ),
    op(
        "get",
        "/audit",
        "operations",
        "Audit trail",
        None,
        "200",
        Some("Page"),
        &["entity", "id", "limit", "cursor"],
    ),
    op(
        "get",
        "/settings",
        "operations",
        "Organisation settings",
        None,
        "200",
        Some("Settings"),
        &[],
    ),
    op(
        "patch",
        "/settings",
        "operations",
        "Change settings",
        Some("Settings"),
        "200",
        Some("Settings"),
        &[],
    ),
    op(
        "post",
        "/exemptions",
        "rules",
        "Exempt a user from an activity's automation (R21)",
        Some("Exemption"),
        "201",
        Some("Exemption"),
        &[],
    ),
    op(
        "get",
        "/exemptions",
        "rules",
        "List exemptions (R21)",
        None,
        "200",
        Some("Page"),
        &["user_id", "activity_id", "limit", "cursor"],
    ),
    op(
        "delete",
        "/exemptions/{id}",
        "rules",
        "Remove an exemption (R21)",
        None,
        "204",
        None,
        &[],
    ),
    op(
        "get",
        "/forecast",
        "rules",
        "What the rules will do per day (R17)",
        None,
        "200",
        Some("AnyObject"),
        &["from", "to", "activity_id"],
    ),
    op(
        "post",
        "/imports/users",
        "users",
        "Import users from CSV: a text/csv body or the file field of a multipart/form-data upload; groups separated by ; (R18: deferred)",
        None,
        "200",
        Some("Results"),
        &[],
    ),
    op(
        "get",
        "/openapi.json",
        "operations",
        "This document",
        None,
        "200",
        None,
        &[],
    ),
];

fn method(name: &str) -> HttpMethod {
    match name {
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn json_ref(schema: &str) -> Content {
    Content::new(Some(Ref::from_schema_name(schema)))
}

/// Builds the document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut items: std::collections::BTreeMap<String, PathItem> = std::collections::BTreeMap::new();
    for operation in OPERATIONS {
        let mut builder = OperationBuilder::new()
            .tag(operation.tag)
            .summary(Some(operation.summary))
            .operation_id(Some(format!(
                "{}_{}",
                operation.method,
                operation.path.replace(['/', '{', '}', '-', '.'], "_")
            )));
        for segment in operation.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                builder = builder.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(if name == "token" {
                            String::schema()
                        } else {
                            i64::schema()
                        })),
                );
            }
        }
        for name in operation.query {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .schema(Some(String::schema())),
            );
        }
        if let Some(request) = operation.request {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json_ref(request))
                    .build(),
            ));
        }
        let mut success = ResponseBuilder::new().description(operation.summary);
        if let Some(response) = operation.response {
            success = success.content("application/json", json_ref(response));
        }
        builder = builder.response(operation.status, success.build());
        for (status, text) in [
            ("400", "Malformed input"),
            ("401", "No or bad token"),
            ("403", "Not allowed"),
            ("404", "Unknown id"),
            ("409", "Conflict"),
            ("422", "Invalid input"),
        ] {
            builder = builder.response(
                status,
                ResponseBuilder::new()
                    .description(text)
                    .content("application/problem+json", json_ref("Problem"))
                    .build(),
            );
        }
        let path = format!("/api/v1{}", operation.path);
        let entry = items.remove(&path);
        let item = match entry {
            Some(mut item) => {
                item.merge_operations(PathItem::new(method(operation.method), builder.build()));
                item
            }
            None => PathItem::new(method(operation.method), builder.build()),
        };
        items.insert(path, item);
    }
    for (path, item) in items {
        paths = paths.path(path, item);
    }
    let components = ComponentsBuilder::new()
        .schema_from::<Problem>()
        .schema_from::<FieldErrorDoc>()
        .schema_from::<User>()
        .schema_from::<UserInput>()
        .schema_from::<Group>()
        .schema_from::<GroupInput>()
        .schema_from::<Token>()
        .schema_from::<Recurrence>()
        .schema_from::<AutoEnrollmentRule>()
        .schema_from::<PostEnrollmentRule>()
        .schema_from::<Activity>()
        .schema_from::<ActivityInput>()
        .schema_from::<Enrollment>()
        .schema_from::<EnrollInput>()
        .schema_from::<EnrollmentChange>()
        .schema_from::<BulkUpdate>()
        .schema_from::<Confirmation>()
        .schema_from::<Results>()
        .schema_from::<Page>()
        .schema_from::<Job>()
        .schema_from::<Sweep>()
        .schema_from::<Clock>()
        .schema_from::<Exemption>()
        .schema_from::<Plan>()
        .schema_from::<Home>()
        .schema_from::<SelfEnrollment>()
        .schema_from::<AnyObject>()
        .schema_from::<crate::settings::Settings>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Roster")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("The enrollment engine for learning platforms. Errors are application/problem+json.")),
        )
        .paths(paths.build())
        .components(Some(components))
        .security(Some([SecurityRequirement::new("bearer", Vec::<String>::new())]))
        .build()
}

pub async fn openapi_json() -> Json<OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_operation() {
        let document = serde_json::to_value(document()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        for operation in OPERATIONS {
            let path = format!("/api/v1{}", operation.path);
            assert!(
                document["paths"][&path][operation.method].is_object(),
                "{} {path} missing",
                operation.method
            );
        }
    }

    #[test]
    fn every_operation_is_routed() {
        let source = include_str!("api/mod.rs");
        for operation in OPERATIONS {
            assert!(
                source.contains(&format!("\"{}\"", operation.path)),
                "{} is not in api::router",
                operation.path
            );
        }
    }
}
