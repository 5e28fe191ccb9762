//! End-to-end tests of the rules engine (SPEC R10–R21, R30–R41) against the
//! real `roster` binary: each test starts its own server with `--clock manual`,
//! sets the clock to a fixed date in 2030 or later, and plays months and years
//! of calendar through `POST /api/v1/clock` (nightly sweeps and jobs at their
//! times). SQLite by default, PostgreSQL with `ROSTER_TEST_BACKEND=postgres`.
#![allow(dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;

mod explain;
mod immediate;
mod incremental;
mod items;
mod next_period;
mod post;
mod preview;
mod recurrence;
mod scope;
mod support;
mod sweep;
