//! The recurrence calendar (R12, R19): annual periods, month arithmetic and due
//! dates. Every function is total over the dates Roster accepts.

use jiff::ToSpan;
use jiff::civil::Date;

use crate::model::{AutoRule, MonthDay, OneTimeDue, Period, Recurrence};

/// The end of the annual period `MM-DD` in `year`; 29 February becomes
/// 28 February in common years (R12).
///
/// Years beyond the calendar saturate at its first or last day, so that the
/// functions below stay total up to 9999-12-31.
pub fn annual_end_in_year(year: i16, month_day: MonthDay) -> Date {
    if year > Date::MAX.year() {
        return Date::MAX;
    }
    if year < Date::MIN.year() {
        return Date::MIN;
    }
    match Date::new(year, month_day.month, month_day.day) {
        Ok(date) => date,
        // Only 02-29 in a common year can fail: MonthDay is validated on a leap year.
        Err(_) => Date::new(year, month_day.month, month_day.day - 1)
            .expect("the day before 29 February exists every year"),
    }
}

/// The end of the annual period containing `day`: the first `MM-DD` on or
/// after it (R12). After the last `MM-DD` of year 9999 it is 9999-12-31.
pub fn annual_period_end(day: Date, month_day: MonthDay) -> Date {
    let this_year = annual_end_in_year(day.year(), month_day);
    if this_year >= day {
        this_year
    } else {
        annual_end_in_year(day.year() + 1, month_day)
    }
}

/// The end of the annual period that follows the one ending on `end`.
pub fn next_annual_period_end(end: Date, month_day: MonthDay) -> Date {
    annual_period_end(end.tomorrow().unwrap_or(end), month_day)
}

/// `date` plus `months`, the day clamped to the last day of the target month
/// (31 January + 1 month = 28 or 29 February).
pub fn add_months(date: Date, months: u32) -> Date {
    date.checked_add((months as i64).months())
        .unwrap_or(Date::MAX)
}

/// `date` plus `days` calendar days, saturating at the end of the calendar.
pub fn add_days(date: Date, days: u32) -> Date {
    date.checked_add((days as i64).days()).unwrap_or(Date::MAX)
}

/// The period a sweep on `today` must make sure each matching user has; for
/// every_months it is the chain's first, `cycle-1` (R14).
pub fn current_period(recurrence: &Recurrence, today: Date) -> Period {
    match recurrence {
        Recurrence::OneTime { .. } => Period::Once,
        Recurrence::Annual { due_each_year_on } => {
            Period::Annual(annual_period_end(today, *due_each_year_on))
        }
        Recurrence::EveryMonths { .. } => Period::Cycle(1),
    }
}

/// The due date of an enrollment a rule creates (or adopts) on `today` for
/// `period`; `first` says whether it is the first the rule gives this user,
/// which `initial_due_days` governs (R12, R15).
pub fn due_for_new(rule: &AutoRule, period: &Period, today: Date, first: bool) -> Option<Date> {
    match &rule.recurrence {
        Recurrence::OneTime { due } => match due {
            None => None,
            Some(OneTimeDue::WithinDays(days)) => Some(add_days(today, *days)),
            Some(OneTimeDue::OnDate(date)) => Some(*date),
        },
        Recurrence::Annual { .. } | Recurrence::EveryMonths { .. } => {
            if first && let Some(days) = rule.initial_due_days {
                return Some(add_days(today, days));
            }
            match period {
                Period::Annual(end) => Some(*end),
                _ => None,
            }
        }
    }
}

/// The next period after `period` was passed on `completed_on`, with its due
/// date, for annual and every_months rules (R19); `today` is the date of the
/// completion as seen by the clock. One-time rules have no next period, nor
/// has the last cycle a `u32` can count.
pub fn next_period_on_completion(
    recurrence: &Recurrence,
    period: &Period,
    completed_on: Date,
    today: Date,
) -> Option<(Period, Option<Date>)> {
    match (recurrence, period) {
        (Recurrence::Annual { due_each_year_on }, Period::Annual(end)) => {
            let following = next_annual_period_end(*end, *due_each_year_on);
            let current = annual_period_end(today, *due_each_year_on);
            let next = following.max(current);
            Some((Period::Annual(next), Some(next)))
        }
        (Recurrence::EveryMonths { months }, Period::Cycle(n)) => Some((
            Period::Cycle(n.checked_add(1)?),
            Some(add_months(completed_on, *months)),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn md(text: &str) -> MonthDay {
        MonthDay::parse(text).unwrap()
    }

    fn check_end(day: &str, month_day: &str, expect: &str) {
        let got = annual_period_end(day.parse().unwrap(), md(month_day));
        assert_eq!(
            got.to_string(),
            expect,
            "period end of {day} for {month_day}"
        );
    }

    #[test]
    fn r12_annual_period_ends_on_first_month_day_on_or_after() {
        check_end("2027-01-01", "06-30", "2027-06-30");
        check_end("2027-06-30", "06-30", "2027-06-30");
        check_end("2027-07-01", "06-30", "2028-06-30");
        check_end("2027-12-31", "12-31", "2027-12-31");
        check_end("2028-01-01", "12-31", "2028-12-31");
    }

    #[test]
    fn r12_february_29_becomes_february_28_in_common_years() {
        check_end("2027-02-28", "02-29", "2027-02-28");
        check_end("2027-03-01", "02-29", "2028-02-29");
        check_end("2028-02-29", "02-29", "2028-02-29");
        check_end("2028-03-01", "02-29", "2029-02-28");
    }

    #[test]
    fn months_clamp_to_the_end_of_the_month() {
        assert_eq!(add_months(date(2027, 1, 31), 1), date(2027, 2, 28));
        assert_eq!(add_months(date(2028, 1, 31), 1), date(2028, 2, 29));
        assert_eq!(add_months(date(2027, 8, 31), 6), date(2028, 2, 29));
        assert_eq!(add_months(date(2027, 3, 15), 120), date(2037, 3, 15));
    }

    #[test]
    fn r19_annual_next_period_is_later_of_following_and_current() {
        let annual = Recurrence::Annual {
            due_each_year_on: md("06-30"),
        };
        let p = Period::Annual(date(2027, 6, 30));
        let (next, due) =
            next_period_on_completion(&annual, &p, date(2027, 3, 1), date(2027, 3, 1)).unwrap();
        assert_eq!(next, Period::Annual(date(2028, 6, 30)));
        assert_eq!(due, Some(date(2028, 6, 30)));
        // A late completion two periods on lands in the period containing today.
        let (next, _) =
            next_period_on_completion(&annual, &p, date(2029, 1, 1), date(2029, 1, 1)).unwrap();
        assert_eq!(next, Period::Annual(date(2029, 6, 30)));
    }

    #[test]
    fn r19_every_months_next_cycle_is_due_months_after_completion() {
        let every = Recurrence::EveryMonths { months: 6 };
        let (next, due) = next_period_on_completion(
            &every,
            &Period::Cycle(1),
            date(2027, 8, 31),
            date(2027, 8, 31),
        )
        .unwrap();
        assert_eq!(next, Period::Cycle(2));
        assert_eq!(due, Some(date(2028, 2, 29)));
    }
}
