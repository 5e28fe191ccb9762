//! The document and the router agree: every operation the OpenAPI document
//! names is routed, and routed behind the token.

use axum::http::Method;

use crate::support::Harness;

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_asks_for_a_token() {
    let harness = Harness::new().await;
    let (_, document) = roster_server::app::api_parts();
    let mut operations = 0;
    for (path, item) in &document.paths.paths {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::DELETE, item.delete.is_some()),
        ];
        for (method, documented) in methods {
            if !documented {
                continue;
            }
            operations += 1;
            let answer = harness
                .call(method.clone(), &concrete(path), None, None)
                .await;
            assert_eq!(
                answer.status, 401,
                "{method} {path}: a documented operation answers 401 without a token, not {}",
                answer.status
            );
            assert_eq!(
                answer.content_type, "application/problem+json",
                "{method} {path}"
            );
        }
    }
    assert!(operations >= 12, "only {operations} operations documented");
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_closed_request_schemas() {
    let harness = Harness::new().await;
    let answer = harness
        .admin(Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(answer.status, 200);
    let document = answer.json;
    assert!(
        document["openapi"]
            .as_str()
            .unwrap_or("")
            .starts_with("3.1")
    );
    let schemas = &document["components"]["schemas"];
    for name in ["NewUserBody", "UserChangeBody", "GroupBody"] {
        assert_eq!(
            schemas[name]["additionalProperties"], false,
            "{name} refuses unknown fields, and says so"
        );
    }
    let branches = schemas["AutoRuleInput"]["oneOf"]
        .as_array()
        .expect("the rule input is one of its scopes");
    assert_eq!(
        branches.len(),
        5,
        "none, and company or groups, one-time or periodic"
    );
    for branch in branches {
        assert_eq!(branch["additionalProperties"], false, "{branch}");
    }
}
