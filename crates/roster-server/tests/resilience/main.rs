//! Resilience end to end (SPEC §4 Runtime, §5 Reliability; R2, R14, R32–R36):
//! real `roster serve` processes, real HTTP, real SIGKILL.
//!
//! - `multi_process`: several processes on one PostgreSQL database — every
//!   job runs once, a sweep is shared, the nightly sweep starts once.
//! - `crash`: a server killed during a sweep, a burst of post-enrollment
//!   jobs and a bulk enrollment, restarted on the same database, ends as an
//!   uninterrupted run does — on SQLite and on PostgreSQL.
//! - `load`: concurrent admin writers and learner readers on SQLite.
//!
//! Each test names its backend with a `_sqlite` or `_postgres` suffix and
//! always runs on that backend, whatever `ROSTER_TEST_BACKEND` says;
//! `scripts/test` selects them per phase with nextest filters
//! (`test(/_postgres$/)`), so that each phase counts only what ran there.
//! PostgreSQL is reached at `ROSTER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

mod crash;
mod load;
mod multi_process;
mod support;
