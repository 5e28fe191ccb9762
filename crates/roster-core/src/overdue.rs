//! R61's "overdue": an enrollment still open whose due date has passed. One
//! definition, used wherever an enrollment is shown or filtered as overdue
//! (the store's SQL filter mirrors it and is checked against it).

use crate::Status;

/// Whether an enrollment of `status` due on `due_on` is overdue on `today`
/// (R61): it is open (`in_progress`) and due before today; an enrollment
/// without a due date, or closed in any way, never is.
///
/// Dates are any ordered form of a day: `jiff::civil::Date`, or the
/// store's `YYYY-MM-DD` text, which orders as the dates do.
pub fn is_overdue<D: PartialOrd>(status: Status, due_on: Option<D>, today: D) -> bool {
    status == Status::InProgress && due_on.is_some_and(|due| due < today)
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    #[test]
    fn r61_overdue_is_open_and_due_before_today() {
        let today = date(2030, 7, 10);
        let check = |status: Status, due_on: Option<jiff::civil::Date>, expect: bool| {
            assert_eq!(
                is_overdue(status, due_on, today),
                expect,
                "{status} {due_on:?}"
            );
        };
        check(Status::InProgress, Some(date(2030, 7, 9)), true);
        check(Status::InProgress, Some(date(2029, 12, 31)), true);
        // Due today is not yet overdue.
        check(Status::InProgress, Some(today), false);
        check(Status::InProgress, Some(date(2030, 7, 11)), false);
        check(Status::InProgress, None, false);
        for closed in Status::ALL.iter().filter(|s| **s != Status::InProgress) {
            check(*closed, Some(date(2030, 1, 1)), false);
        }
    }

    #[test]
    fn r61_overdue_reads_the_same_on_iso_text() {
        assert!(is_overdue(
            Status::InProgress,
            Some("2030-07-09"),
            "2030-07-10"
        ));
        assert!(!is_overdue(
            Status::InProgress,
            Some("2030-07-10"),
            "2030-07-10"
        ));
        assert!(!is_overdue(
            Status::Passed,
            Some("2030-07-09"),
            "2030-07-10"
        ));
        assert!(!is_overdue(Status::InProgress, None, "2030-07-10"));
    }
}
