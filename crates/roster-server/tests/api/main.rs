//! End-to-end tests of the REST API (SPEC §3) against the real `roster` binary,
//! one fresh server and database per test (SQLite by default, PostgreSQL with
//! `ROSTER_TEST_BACKEND=postgres`).

mod activities;
mod attachments;
mod authorization;
mod enrollments;
mod groups;
mod helpers;
mod imports;
mod learner_views;
mod malformed;
mod operations;
mod purge;
mod readme_tour;
mod self_enrollment;
mod users;
