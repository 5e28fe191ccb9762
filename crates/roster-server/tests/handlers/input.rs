//! Each kind of bad input gets the spec's status (SPEC §3): not JSON or a
//! wrong JSON type is 400; a missing or unknown field, an unknown enum value
//! or an impossible date is 422 naming the field; nothing is written.

use axum::http::Method;

use crate::support::Harness;

async fn post_user(harness: &Harness, body: &str) -> (u16, Vec<String>) {
    let answer = harness
        .admin(Method::POST, "/api/v1/users", Some(body))
        .await;
    let fields = answer.json["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (answer.status, fields)
}

#[tokio::test]
async fn a_misspelt_field_is_refused_by_name_and_the_user_is_not_created() {
    let harness = Harness::new().await;

    let (status, fields) =
        post_user(&harness, r#"{"username":"rita","hire_date":"2026-03-01"}"#).await;

    assert_eq!((status, fields), (422, vec!["hire_date".to_string()]));
    let list = harness
        .admin(Method::GET, "/api/v1/users?q=rita", None)
        .await;
    assert_eq!(list.json["items"], serde_json::json!([]));
}

#[tokio::test]
async fn each_kind_of_bad_user_body_gets_its_status() {
    let harness = Harness::new().await;
    let cases: [(&str, u16, &[&str]); 8] = [
        ("{", 400, &[]),
        ("[1]", 400, &[]),
        (r#"{"username":5}"#, 400, &[]),
        (r#"{"username":"a","active":"yes"}"#, 400, &[]),
        (r#"{"email":"a@example.com"}"#, 422, &["username"]),
        (r#"{"username":"a","role":"boss"}"#, 422, &["role"]),
        (
            r#"{"username":"a","hired_on":"2030-02-30"}"#,
            422,
            &["hired_on"],
        ),
        (r#"{"username":" "}"#, 422, &["username"]),
    ];
    for (body, status, fields) in cases {
        let fields: Vec<String> = fields.iter().map(|field| field.to_string()).collect();
        assert_eq!(post_user(&harness, body).await, (status, fields), "{body}");
    }
}

#[tokio::test]
async fn a_body_naming_a_group_that_does_not_exist_is_409_with_the_field() {
    let harness = Harness::new().await;

    let (status, fields) = post_user(&harness, r#"{"username":"ann","group_ids":[4040]}"#).await;

    assert_eq!((status, fields), (409, vec!["group_ids".to_string()]));
}

#[tokio::test]
async fn a_query_with_an_unknown_parameter_or_value_is_422_and_a_malformed_one_400() {
    let harness = Harness::new().await;
    let status = |answer: crate::support::Answer| answer.status;

    assert_eq!(
        status(
            harness
                .admin(Method::GET, "/api/v1/users?colour=red", None)
                .await
        ),
        422
    );
    assert_eq!(
        status(
            harness
                .admin(Method::GET, "/api/v1/users?active=maybe", None)
                .await
        ),
        400
    );
    assert_eq!(
        status(
            harness
                .admin(Method::GET, "/api/v1/users?limit=0", None)
                .await
        ),
        422
    );
    assert_eq!(
        status(
            harness
                .admin(Method::GET, "/api/v1/users?limit=5000", None)
                .await
        ),
        200
    );
    assert_eq!(
        status(
            harness
                .admin(Method::GET, "/api/v1/users?active=true", None)
                .await
        ),
        200
    );
}

#[tokio::test]
async fn a_change_tells_a_null_that_clears_from_an_absent_field_that_keeps() {
    let harness = Harness::new().await;
    let created = harness
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(r#"{"username":"ivy","hired_on":"2026-01-05","external_id":"E1"}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let path = format!("/api/v1/users/{}", created.json["id"]);

    let kept = harness
        .admin(Method::PATCH, &path, Some(r#"{"display_name":"Ivy"}"#))
        .await;
    let cleared = harness
        .admin(Method::PATCH, &path, Some(r#"{"hired_on":null}"#))
        .await;

    assert_eq!(kept.json["hired_on"], "2026-01-05");
    assert_eq!(cleared.json["hired_on"], serde_json::Value::Null);
    assert_eq!(cleared.json["external_id"], "E1");
}

#[tokio::test]
async fn a_form_body_reads_into_the_same_input_type_as_json() {
    let body: roster_server::api::groups::GroupBody =
        serde_urlencoded::from_str("name=Field+Sales").expect("a form reads into the input type");
    let name = roster_server::api::groups::GroupName::try_from(body).expect("valid");
    assert_eq!(name.0, "Field Sales");
    let refused = serde_urlencoded::from_str::<roster_server::api::groups::GroupBody>(
        "name=Sales&colour=red",
    );
    assert!(refused.is_err(), "a form is refused an unknown field too");
}
