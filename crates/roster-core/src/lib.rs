//! Roster's pure core: the enrollment model, the rules as data, the recurrence
//! calendar and the decisions the rules make. Nothing here does I/O or reads a
//! clock: callers pass facts and "today" in and get decisions back.

pub mod calendar;
pub mod date;
pub mod decide;
pub mod model;
pub mod overdue;
pub mod payload;
pub mod retry;
pub mod sweep;
pub mod validate;

pub use model::*;
pub use overdue::is_overdue;
