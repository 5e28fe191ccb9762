//! The rules engine's shell: it gathers facts from the store, asks the core
//! for decisions and applies them in the caller's transaction. Every change
//! to an enrollment goes through `enroll::create` or `enroll::change`, so
//! triggers (R32), next periods (R19), curricula and bundles (R39, R40) fire
//! the same way whatever the path.

pub mod enroll;
pub mod error;
pub mod explain;
pub mod jobs;
pub mod rules;
pub mod sweep;

pub use error::{EngineError, EngineResult};
