//! The OpenAPI 3.1 document at `/api/v1/openapi.json`. It is derived, not
//! kept: each handler's `#[utoipa::path]` and its request and answer types
//! make the operations, and utoipa-axum's `routes!` registers a handler in the
//! router and in the document at once, so a route cannot be served
//! undocumented. This module only adds what every operation shares: the
//! bearer scheme and the problem answers of the spec's error statuses.

use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, ResponseBuilder};

use crate::error::{FieldError, Problem};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Roster",
        description = "The enrollment engine for learning platforms. Every error is \
            application/problem+json (RFC 9457): 400 malformed (not JSON, a wrong JSON type), \
            401 no or bad token, 403 not allowed, 404 unknown id (also another learner's \
            record), 409 conflict, 413 too large, 422 invalid with field `errors` (a missing \
            or unknown field, an unknown enum value, an impossible date, a rule violation). \
            Lists take `limit` (1 to 1000, default 100) and `cursor` and answer \
            `{\"items\":[…],\"next_cursor\":…}`."
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&Shared)
)]
pub struct ApiDoc;

/// The bearer token and the error answers every operation may give.
struct Shared;

/// The statuses any operation may answer with a problem: malformed input,
/// no or bad token, a role that may not, an unknown id or route, invalid
/// input. An operation adds its own (409, 413) in its `#[utoipa::path]`.
const SHARED_PROBLEMS: [(&str, &str); 5] = [
    (
        "400",
        "Malformed: not JSON, or a value of the wrong JSON type",
    ),
    ("401", "No token, or a token that is not valid"),
    ("403", "The token's user may not do this"),
    (
        "404",
        "No such record (or one the token's user may not see)",
    ),
    (
        "422",
        "Invalid: a missing or unknown field, an unknown value, a rule violation",
    ),
];

impl Modify for Shared {
    fn modify(&self, document: &mut OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        document.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Adds the shared problem answers to every operation of the finished
/// document (the router's operations are merged in after `ApiDoc`).
pub fn add_shared_problems(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for (operation, write) in operations(item) {
            add_problems(operation, write);
        }
    }
}

/// The operations of a path, each with whether it writes with a body.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&mut Operation, bool)> {
    [
        (item.get.as_mut(), false),
        (item.put.as_mut(), true),
        (item.post.as_mut(), true),
        (item.delete.as_mut(), false),
        (item.patch.as_mut(), true),
    ]
    .into_iter()
    .filter_map(|(operation, write)| operation.map(|operation| (operation, write)))
}

/// What a write may meet besides the shared problems: the state it names
/// is not there, or not as it must be (SPEC §3 409; docs/decisions.md).
const WRITE_CONFLICT: &str = "Conflict with the current state: a record the body names does not exist, or a unique value is taken";

fn add_problems(operation: &mut Operation, write: bool) {
    if write {
        operation
            .responses
            .responses
            .entry("409".to_string())
            .or_insert_with(|| problem(WRITE_CONFLICT).into());
    }
    for (status, description) in SHARED_PROBLEMS {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem(description).into());
    }
}

/// A problem answer with `description`.
pub fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}
