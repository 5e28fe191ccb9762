//! The demo organisation.

use crate::state::AppState;

pub async fn load(_state: &AppState, users: usize) -> anyhow::Result<String> {
    Ok(format!("demo with {users} users"))
}
