//! Persistence of Roster: one `Store` over SQLite or PostgreSQL, migrations per
//! backend, and durable jobs. Every write happens inside a `Tx`; the callers
//! (the server's engine) decide what to write, this crate knows how.

#[macro_use]
mod db;
mod activities;
mod audit;
pub mod bench;
mod enrollments;
mod jobs;
mod marks;
mod misc;
mod records;
mod sweep;
mod users;

pub use audit::AuditEntry;
pub use db::{Backend, PgPools, SqlitePools, SqliteTx, Store, StoreError, Tx, from_micros, micros};
pub use enrollments::{EnrollmentFilter, EnrollmentInsert, EnrollmentPatch};
pub use jobs::{ClaimedJob, JobFilter, NewJob};
pub use marks::{
    MarksWrite, SweepMark, SweepSince, SweepUser, UserEnrollment, UserIds, UserRecords,
};
pub use records::*;
pub use sweep::{
    ActivitySweep, AdoptCandidate, AutoEnrollment, Changed, Matching, Narrowed, RangeHolds,
    SweepCounts, SweepKind, Touched,
};
pub use users::{UserFilter, UserInsert};
