//! Who is calling: bearer tokens (stored as SHA-256), roles, and the checks
//! that keep learners to their own records (R63).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use roster_core::Role;
use roster_store::UserRecord;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user: UserRecord,
    pub role: Role,
}

impl Actor {
    pub fn id(&self) -> i64 {
        self.user.id
    }

    /// Administrators and integration accounts may use the administrative API.
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Integration)
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this endpoint is for administrators".into(),
            ))
        }
    }

    /// Whether the actor may see records of `user_id` (R63).
    pub fn may_see_user(&self, user_id: i64) -> bool {
        self.is_admin() || self.user.id == user_id
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Actor, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let mut tx = state.store.reader().await?;
        let user = tx.find_user_by_token_hash(&hash_token(token)).await?;
        tx.rollback().await?;
        let user = user.ok_or(ApiError::Unauthorized)?;
        if !user.active {
            return Err(ApiError::Unauthorized);
        }
        let role = user.role.parse().unwrap_or(Role::Learner);
        Ok(Actor { user, role })
    }
}

/// SHA-256 of a token, hex: what the database keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 32 random bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
