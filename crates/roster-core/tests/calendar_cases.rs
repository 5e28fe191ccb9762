//! Data-driven cases for the recurrence calendar (R12, R19), the wire forms of
//! `MM-DD` and periods (R14), and rule validation (R10, R12).
//!
//! Every case goes through one `check(input, expect)`: the input is a small
//! command, the function named first and its arguments after it, and the
//! output is rendered as text, so that a case reads as one line of a table.
//! Recurrences and rules are written in their JSON wire form.

use jiff::civil::Date;
use proptest::strategy::Strategy;
use roster_core::calendar::{
    add_months, annual_end_in_year, annual_period_end, due_for_new, next_annual_period_end,
    next_period_on_completion,
};
use roster_core::validate::check_auto_rule;
use roster_core::{AutoRule, MonthDay, Period, Recurrence, Scope};

#[track_caller]
fn check(input: &str, expect: &str) {
    let actual = run(input);
    assert_eq!(actual, expect, "input: {input}");
}

/// Runs one command and renders its answer: dates as `YYYY-MM-DD`, an absent
/// date as `none`, a refused text as `refused`.
fn run(input: &str) -> String {
    let mut words = input.split_whitespace();
    let command = words.next().expect("a command");
    let args: Vec<&str> = words.collect();
    match command {
        "annual_period_end" => {
            let [day, month_day] = args[..] else {
                panic!("annual_period_end DAY MM-DD")
            };
            annual_period_end(date(day), md(month_day)).to_string()
        }
        "annual_end_in_year" => {
            let [year, month_day] = args[..] else {
                panic!("annual_end_in_year YEAR MM-DD")
            };
            annual_end_in_year(year.parse().unwrap(), md(month_day)).to_string()
        }
        "next_annual_period_end" => {
            let [end, month_day] = args[..] else {
                panic!("next_annual_period_end END MM-DD")
            };
            next_annual_period_end(date(end), md(month_day)).to_string()
        }
        "add_months" => {
            let [day, months] = args[..] else {
                panic!("add_months DAY +N")
            };
            let months = months.strip_prefix('+').expect("+N").parse().unwrap();
            add_months(date(day), months).to_string()
        }
        "due_for_new" => {
            // due_for_new RECURRENCE [initial=N] period=P today=D first|later
            let rule = rule_of(&args);
            let period = period(arg(&args, "period"));
            let today = date(arg(&args, "today"));
            let first = match *args.last().unwrap() {
                "first" => true,
                "later" => false,
                other => panic!("first or later, not {other}"),
            };
            render_date(due_for_new(&rule, &period, today, first))
        }
        "next_period_on_completion" => {
            // next_period_on_completion RECURRENCE period=P completed=D today=D
            let rule = rule_of(&args);
            let answer = next_period_on_completion(
                &rule.recurrence,
                &period(arg(&args, "period")),
                date(arg(&args, "completed")),
                date(arg(&args, "today")),
            );
            match answer {
                None => "none".to_string(),
                Some((next, due)) => format!("{next} due {}", render_date(due)),
            }
        }
        "month_day" => {
            let [text] = args[..] else {
                panic!("month_day TEXT")
            };
            match MonthDay::parse(text) {
                None => "refused".to_string(),
                Some(month_day) => {
                    let json = serde_json::to_string(&month_day).unwrap();
                    let back: MonthDay = serde_json::from_str(&json).unwrap();
                    assert_eq!(back, month_day, "JSON round trip of {text}");
                    month_day.to_string()
                }
            }
        }
        "period" => {
            let [text] = args[..] else {
                panic!("period TEXT")
            };
            match Period::parse(text) {
                None => "refused".to_string(),
                Some(parsed) => {
                    let shown = parsed.to_string();
                    assert_eq!(
                        Period::parse(&shown),
                        Some(parsed.clone()),
                        "round trip of {text}"
                    );
                    format!("{parsed:?} = {shown}")
                }
            }
        }
        "check_auto_rule" => {
            let json = args.join(" ");
            let rule: AutoRule = serde_json::from_str(&json).expect("a rule in JSON");
            let errors = check_auto_rule(&rule);
            if errors.is_empty() {
                return "ok".to_string();
            }
            let errors: Vec<String> = errors
                .iter()
                .map(|error| format!("{}: {}", error.field, error.message))
                .collect();
            errors.join("; ")
        }
        other => panic!("unknown command {other}"),
    }
}

fn date(text: &str) -> Date {
    text.parse().unwrap_or_else(|_| panic!("{text} is a date"))
}

fn md(text: &str) -> MonthDay {
    MonthDay::parse(text).unwrap_or_else(|| panic!("{text} is MM-DD"))
}

fn period(text: &str) -> Period {
    Period::parse(text).unwrap_or_else(|| panic!("{text} is a period"))
}

fn render_date(date: Option<Date>) -> String {
    date.map_or("none".to_string(), |date| date.to_string())
}

/// The value of `key=value` among the arguments.
fn arg<'a>(args: &[&'a str], key: &str) -> &'a str {
    args.iter()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("missing {key}="))
}

/// A company-wide rule whose recurrence is the first argument (compact JSON),
/// with `initial=N` as its `initial_due_days`.
fn rule_of(args: &[&str]) -> AutoRule {
    let recurrence: Recurrence = serde_json::from_str(args[0]).expect("a recurrence in JSON");
    let initial_due_days = args
        .iter()
        .find_map(|word| word.strip_prefix("initial="))
        .map(|days| days.parse().unwrap());
    AutoRule {
        scope: Scope::Company,
        group_ids: Vec::new(),
        hired_after: None,
        recurrence,
        initial_due_days,
    }
}

const ANNUAL_0630: &str = r#"{"kind":"annual","due_each_year_on":"06-30"}"#;
const ANNUAL_0229: &str = r#"{"kind":"annual","due_each_year_on":"02-29"}"#;
const ANNUAL_1231: &str = r#"{"kind":"annual","due_each_year_on":"12-31"}"#;

// --- annual_period_end (R12) ---

#[test]
fn r12_annual_period_ends_on_the_first_month_day_on_or_after_the_day() {
    check("annual_period_end 2027-01-01 06-30", "2027-06-30");
    check("annual_period_end 2027-06-29 06-30", "2027-06-30");
    check("annual_period_end 2027-07-01 06-30", "2028-06-30");
    check("annual_period_end 2027-12-31 06-30", "2028-06-30");
}

#[test]
fn r12_the_due_day_itself_belongs_to_the_period_it_ends() {
    check("annual_period_end 2027-06-30 06-30", "2027-06-30");
    check("annual_period_end 2027-12-31 12-31", "2027-12-31");
    check("annual_period_end 2027-01-01 01-01", "2027-01-01");
}

#[test]
fn r12_the_day_after_the_due_day_starts_next_year_period() {
    check("annual_period_end 2028-01-01 12-31", "2028-12-31");
    check("annual_period_end 2027-01-02 01-01", "2028-01-01");
}

#[test]
fn r12_february_29_becomes_february_28_in_common_years() {
    check("annual_period_end 2027-02-28 02-29", "2027-02-28");
    check("annual_period_end 2027-01-15 02-29", "2027-02-28");
    check("annual_period_end 2027-03-01 02-29", "2028-02-29");
    check("annual_period_end 2028-02-28 02-29", "2028-02-29");
    check("annual_period_end 2028-02-29 02-29", "2028-02-29");
    check("annual_period_end 2028-03-01 02-29", "2029-02-28");
}

#[test]
fn r12_february_29_follows_the_gregorian_century_rule() {
    check("annual_end_in_year 2100 02-29", "2100-02-28");
    check("annual_end_in_year 2000 02-29", "2000-02-29");
    check("annual_end_in_year 2400 02-29", "2400-02-29");
    check("annual_period_end 2099-03-01 02-29", "2100-02-28");
    check("annual_period_end 2100-03-01 02-29", "2101-02-28");
}

#[test]
fn r12_february_28_is_not_moved_in_leap_years() {
    check("annual_period_end 2028-02-29 02-28", "2029-02-28");
    check("annual_end_in_year 2028 02-28", "2028-02-28");
}

#[test]
fn r12_annual_period_end_saturates_at_the_end_of_the_calendar() {
    check("annual_period_end 9999-06-30 06-30", "9999-06-30");
    check("annual_period_end 9999-07-01 06-30", "9999-12-31");
    check("annual_period_end 9999-12-31 02-29", "9999-12-31");
    check("next_annual_period_end 9999-06-30 06-30", "9999-12-31");
    check("next_annual_period_end 9999-12-31 12-31", "9999-12-31");
}

#[test]
fn r12_every_day_of_a_leap_and_a_common_year_lies_in_a_period_ending_at_most_365_days_on() {
    let month_days = ["01-01", "02-28", "02-29", "03-01", "06-30", "12-31"];
    for month_day in month_days.map(md) {
        let mut day = date("2027-01-01");
        while day <= date("2028-12-31") {
            let end = annual_period_end(day, month_day);
            assert!(end >= day, "{day} {month_day} ends {end}");
            // A period lasts at most 366 days, so its end is at most 365 days on.
            let days_to_end = end.since(day).unwrap().get_days();
            assert!(
                days_to_end <= 365,
                "{day} {month_day} ends {end}, {days_to_end} days on"
            );
            // The end of a period lies in that same period.
            assert_eq!(annual_period_end(end, month_day), end);
            day = day.tomorrow().unwrap();
        }
    }
}

// --- next_annual_period_end (R12, R19) ---

#[test]
fn r19_next_annual_period_ends_one_year_later() {
    check("next_annual_period_end 2027-06-30 06-30", "2028-06-30");
    check("next_annual_period_end 2027-12-31 12-31", "2028-12-31");
    check("next_annual_period_end 2027-01-01 01-01", "2028-01-01");
}

#[test]
fn r19_next_annual_period_of_february_29_alternates_with_february_28() {
    check("next_annual_period_end 2027-02-28 02-29", "2028-02-29");
    check("next_annual_period_end 2028-02-29 02-29", "2029-02-28");
    check("next_annual_period_end 2099-02-28 02-29", "2100-02-28");
}

// --- add_months (R19) ---

#[test]
fn r19_months_keep_the_day_when_the_target_month_has_it() {
    check("add_months 2027-03-15 +1", "2027-04-15");
    check("add_months 2027-01-30 +2", "2027-03-30");
    check("add_months 2027-12-15 +1", "2028-01-15");
}

#[test]
fn r19_months_clamp_the_day_to_the_end_of_a_shorter_month() {
    check("add_months 2027-01-31 +1", "2027-02-28");
    check("add_months 2027-03-31 +1", "2027-04-30");
    check("add_months 2027-05-31 +4", "2027-09-30");
    check("add_months 2027-10-31 +1", "2027-11-30");
    check("add_months 2027-01-29 +1", "2027-02-28");
}

#[test]
fn r19_months_clamp_to_february_29_in_leap_years() {
    check("add_months 2028-01-31 +1", "2028-02-29");
    check("add_months 2027-08-31 +6", "2028-02-29");
    check("add_months 2028-01-30 +1", "2028-02-29");
    check("add_months 2099-12-31 +2", "2100-02-28");
    check("add_months 1999-12-31 +2", "2000-02-29");
}

#[test]
fn r19_months_are_added_to_the_anchor_not_one_month_at_a_time() {
    // One month at a time would lose the 31st in February and give 03-28.
    check("add_months 2027-01-31 +2", "2027-03-31");
    check("add_months 2027-01-31 +12", "2028-01-31");
    check("add_months 2028-02-29 +12", "2029-02-28");
    check("add_months 2028-02-29 +48", "2032-02-29");
    check("add_months 2096-02-29 +48", "2100-02-28");
}

#[test]
fn r12_every_months_accepts_one_to_one_hundred_twenty_months() {
    check("add_months 2027-03-15 +1", "2027-04-15");
    check("add_months 2027-03-15 +6", "2027-09-15");
    check("add_months 2027-03-15 +12", "2028-03-15");
    check("add_months 2027-03-15 +119", "2037-02-15");
    check("add_months 2027-03-15 +120", "2037-03-15");
    check("add_months 2027-03-31 +120", "2037-03-31");
    check("add_months 2028-02-29 +120", "2038-02-28");
}

#[test]
fn r19_months_saturate_at_the_end_of_the_calendar() {
    check("add_months 9999-11-15 +1", "9999-12-15");
    check("add_months 9999-11-15 +2", "9999-12-31");
    check("add_months 9990-01-01 +120", "9999-12-31");
}

#[test]
fn r19_adding_months_never_goes_back_and_never_skips_a_month() {
    let mut day = date("2027-01-01");
    while day <= date("2028-12-31") {
        for months in 1..=120u32 {
            let later = add_months(day, months);
            assert!(later > day, "{day} + {months} months = {later}");
            let month_index = |d: Date| i32::from(d.year()) * 12 + i32::from(d.month());
            assert_eq!(
                month_index(later) - month_index(day),
                months as i32,
                "{day} + {months} months = {later}"
            );
            assert_eq!(
                later.day(),
                day.day().min(later.days_in_month()),
                "{day} + {months} months = {later}"
            );
        }
        day = day.tomorrow().unwrap();
    }
}

// --- due_for_new (R12, R15) ---

#[test]
fn r12_one_time_without_due_has_no_due_date() {
    let one_time = r#"{"kind":"one_time","due":null}"#;
    check(
        &format!("due_for_new {one_time} period=once today=2027-03-01 first"),
        "none",
    );
    let one_time = r#"{"kind":"one_time"}"#;
    check(
        &format!("due_for_new {one_time} period=once today=2027-03-01 first"),
        "none",
    );
}

#[test]
fn r12_one_time_within_days_is_due_days_after_the_enrollment_date() {
    let within = r#"{"kind":"one_time","due":{"within_days":30}}"#;
    check(
        &format!("due_for_new {within} period=once today=2027-03-01 first"),
        "2027-03-31",
    );
    check(
        &format!("due_for_new {within} period=once today=2027-12-15 first"),
        "2028-01-14",
    );
    check(
        &format!("due_for_new {within} period=once today=2028-02-10 first"),
        "2028-03-11",
    );
    let same_day = r#"{"kind":"one_time","due":{"within_days":0}}"#;
    check(
        &format!("due_for_new {same_day} period=once today=2027-03-01 first"),
        "2027-03-01",
    );
}

#[test]
fn r12_one_time_on_date_is_due_on_that_date_whatever_the_enrollment_date() {
    let on_date = r#"{"kind":"one_time","due":{"on_date":"2027-09-01"}}"#;
    check(
        &format!("due_for_new {on_date} period=once today=2027-03-01 first"),
        "2027-09-01",
    );
    check(
        &format!("due_for_new {on_date} period=once today=2027-08-31 later"),
        "2027-09-01",
    );
}

#[test]
fn r12_annual_enrollment_is_due_on_its_period_end() {
    check(
        &format!("due_for_new {ANNUAL_0630} period=2027-06-30 today=2027-03-01 first"),
        "2027-06-30",
    );
    check(
        &format!("due_for_new {ANNUAL_0630} period=2028-06-30 today=2027-07-01 later"),
        "2028-06-30",
    );
    check(
        &format!("due_for_new {ANNUAL_0229} period=2027-02-28 today=2027-02-01 first"),
        "2027-02-28",
    );
}

#[test]
fn r12_annual_initial_due_days_govern_the_first_enrollment_only() {
    check(
        &format!("due_for_new {ANNUAL_0630} initial=30 period=2027-06-30 today=2027-03-01 first"),
        "2027-03-31",
    );
    check(
        &format!("due_for_new {ANNUAL_0630} initial=30 period=2028-06-30 today=2027-07-01 later"),
        "2028-06-30",
    );
}

#[test]
fn r12_annual_initial_due_days_may_fall_after_the_period_end() {
    // Enrolled a week before the period ends, the newcomer still gets 30 days.
    check(
        &format!("due_for_new {ANNUAL_1231} initial=30 period=2027-12-31 today=2027-12-24 first"),
        "2028-01-23",
    );
}

#[test]
fn r12_every_months_first_without_initial_due_days_has_no_due_date() {
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!("due_for_new {every} period=cycle-1 today=2027-03-01 first"),
        "none",
    );
}

#[test]
fn r12_every_months_first_with_initial_due_days_is_due_days_after_enrollment() {
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!("due_for_new {every} initial=14 period=cycle-1 today=2027-03-01 first"),
        "2027-03-15",
    );
    check(
        &format!("due_for_new {every} initial=0 period=cycle-1 today=2027-03-01 first"),
        "2027-03-01",
    );
}

#[test]
fn r12_every_months_later_enrollment_gets_no_due_date_from_the_sweep() {
    // A later cycle's due date comes from the completion (R19), not from here.
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!("due_for_new {every} initial=14 period=cycle-2 today=2027-03-01 later"),
        "none",
    );
}

// --- next_period_on_completion (R19) ---

#[test]
fn r19_annual_completion_in_the_period_enrolls_the_following_period() {
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0630} period=2027-06-30 completed=2027-03-01 today=2027-03-01"
        ),
        "2028-06-30 due 2028-06-30",
    );
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0630} period=2027-06-30 completed=2027-06-30 today=2027-06-30"
        ),
        "2028-06-30 due 2028-06-30",
    );
}

#[test]
fn r19_annual_completion_one_period_late_enrolls_the_period_after_the_current() {
    // Passed on 2027-07-01, which is in P+1 already: P+1 is the later one.
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0630} period=2027-06-30 completed=2027-07-01 today=2027-07-01"
        ),
        "2028-06-30 due 2028-06-30",
    );
}

#[test]
fn r19_annual_completion_periods_late_enrolls_the_period_containing_today() {
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0630} period=2027-06-30 completed=2029-01-01 today=2029-01-01"
        ),
        "2029-06-30 due 2029-06-30",
    );
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0630} period=2027-06-30 completed=2029-07-01 today=2029-07-01"
        ),
        "2030-06-30 due 2030-06-30",
    );
}

#[test]
fn r19_annual_next_period_of_february_29_is_february_28_in_common_years() {
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0229} period=2028-02-29 completed=2028-02-01 today=2028-02-01"
        ),
        "2029-02-28 due 2029-02-28",
    );
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0229} period=2027-02-28 completed=2027-02-28 today=2027-02-28"
        ),
        "2028-02-29 due 2028-02-29",
    );
}

#[test]
fn r19_every_months_next_cycle_is_due_months_after_the_completion() {
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!(
            "next_period_on_completion {every} period=cycle-1 completed=2027-03-15 today=2027-03-15"
        ),
        "cycle-2 due 2027-09-15",
    );
    check(
        &format!(
            "next_period_on_completion {every} period=cycle-7 completed=2027-03-15 today=2027-03-15"
        ),
        "cycle-8 due 2027-09-15",
    );
}

#[test]
fn r19_every_months_next_due_date_is_clamped_to_the_month_end() {
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!(
            "next_period_on_completion {every} period=cycle-1 completed=2027-08-31 today=2027-08-31"
        ),
        "cycle-2 due 2028-02-29",
    );
    let monthly = r#"{"kind":"every_months","months":1}"#;
    check(
        &format!(
            "next_period_on_completion {monthly} period=cycle-3 completed=2027-01-31 today=2027-01-31"
        ),
        "cycle-4 due 2027-02-28",
    );
    let decade = r#"{"kind":"every_months","months":120}"#;
    check(
        &format!(
            "next_period_on_completion {decade} period=cycle-1 completed=2028-02-29 today=2028-02-29"
        ),
        "cycle-2 due 2038-02-28",
    );
}

#[test]
fn r19_every_months_counts_from_the_completion_not_from_today() {
    let every = r#"{"kind":"every_months","months":3}"#;
    check(
        &format!(
            "next_period_on_completion {every} period=cycle-1 completed=2027-01-31 today=2027-02-02"
        ),
        "cycle-2 due 2027-04-30",
    );
}

#[test]
fn r19_one_time_rules_have_no_next_period() {
    let one_time = r#"{"kind":"one_time","due":null}"#;
    check(
        &format!(
            "next_period_on_completion {one_time} period=once completed=2027-03-01 today=2027-03-01"
        ),
        "none",
    );
}

#[test]
fn r19_a_period_of_another_recurrence_has_no_next_period() {
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!(
            "next_period_on_completion {every} period=2027-06-30 completed=2027-03-01 today=2027-03-01"
        ),
        "none",
    );
    check(
        &format!(
            "next_period_on_completion {ANNUAL_0630} period=cycle-1 completed=2027-03-01 today=2027-03-01"
        ),
        "none",
    );
}

#[test]
fn r19_the_last_countable_cycle_has_no_next_period() {
    let every = r#"{"kind":"every_months","months":6}"#;
    check(
        &format!(
            "next_period_on_completion {every} period=cycle-4294967295 completed=2027-03-01 today=2027-03-01"
        ),
        "none",
    );
}

// --- MonthDay::parse (R12) ---

#[test]
fn r12_month_day_accepts_every_real_day_of_a_leap_year() {
    check("month_day 01-01", "01-01");
    check("month_day 02-28", "02-28");
    check("month_day 02-29", "02-29");
    check("month_day 04-30", "04-30");
    check("month_day 06-30", "06-30");
    check("month_day 12-31", "12-31");
}

#[test]
fn r12_month_day_refuses_days_no_year_has() {
    check("month_day 02-30", "refused");
    check("month_day 02-31", "refused");
    check("month_day 04-31", "refused");
    check("month_day 13-01", "refused");
    check("month_day 00-10", "refused");
    check("month_day 06-00", "refused");
    check("month_day 06-32", "refused");
}

#[test]
fn r12_month_day_is_written_with_two_digits_each() {
    check("month_day 6-30", "refused");
    check("month_day 06-3", "refused");
    check("month_day 006-30", "refused");
    check("month_day 0630", "refused");
    check("month_day 06/30", "refused");
    check("month_day 06-30-", "refused");
    check("month_day 2027-06-30", "refused");
}

#[test]
fn r12_month_day_refuses_signs_that_integer_parsing_would_accept() {
    check("month_day +1-01", "refused");
    check("month_day 01-+1", "refused");
    check("month_day +2-+9", "refused");
    check("month_day -1-01", "refused");
}

#[test]
fn r12_month_day_round_trips_through_text_for_all_366_days() {
    let mut day = date("2028-01-01");
    while day.year() == 2028 {
        let text = day.strftime("%m-%d").to_string();
        let month_day = md(&text);
        assert_eq!(month_day.to_string(), text);
        assert_eq!((month_day.month, month_day.day), (day.month(), day.day()));
        day = day.tomorrow().unwrap();
    }
}

#[test]
fn r12_month_day_in_json_refuses_impossible_days() {
    assert!(serde_json::from_str::<MonthDay>(r#""02-30""#).is_err());
    assert!(serde_json::from_str::<MonthDay>(r#""6-30""#).is_err());
    assert_eq!(
        serde_json::from_str::<MonthDay>(r#""02-29""#).unwrap(),
        md("02-29")
    );
}

// --- Period::parse and Display (R14) ---

#[test]
fn r14_period_names_round_trip_through_text() {
    check("period once", "Once = once");
    check("period 2027-06-30", "Annual(2027-06-30) = 2027-06-30");
    check("period 2028-02-29", "Annual(2028-02-29) = 2028-02-29");
    check("period cycle-1", "Cycle(1) = cycle-1");
    check("period cycle-12", "Cycle(12) = cycle-12");
    check(
        "period cycle-4294967295",
        "Cycle(4294967295) = cycle-4294967295",
    );
}

#[test]
fn r14_period_refuses_unknown_names_and_impossible_dates() {
    check("period ONCE", "refused");
    check("period cycle-0", "refused");
    check("period cycle-", "refused");
    check("period cycle--1", "refused");
    check("period cycle-4294967296", "refused");
    check("period cycle-x", "refused");
    check("period 2027-02-29", "refused");
    check("period 2027-13-01", "refused");
    check("period 2027-6-30", "refused");
    check("period annual", "refused");
}

#[test]
fn r14_period_has_one_spelling_so_the_unique_key_cannot_be_aliased() {
    check("period cycle-01", "refused");
    check("period cycle-+5", "refused");
    check("period 20270630", "refused");
    check("period +002027-06-30", "refused");
    check("period 2027-06-30T10:00", "refused");
    check("period 2027-06-30[UTC]", "refused");
}

#[test]
fn r14_period_empty_text_is_refused() {
    assert_eq!(Period::parse(""), None);
    assert_eq!(Period::parse(" once"), None);
}

// --- check_auto_rule (R10, R12) ---

#[test]
fn r10_company_rule_is_valid_without_groups() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"one_time"}}"#,
        "ok",
    );
}

#[test]
fn r10_groups_scope_needs_at_least_one_group() {
    check(
        r#"check_auto_rule {"scope":"groups","group_ids":[],"recurrence":{"kind":"one_time"}}"#,
        "group_ids: scope groups needs at least one group",
    );
    check(
        r#"check_auto_rule {"scope":"groups","recurrence":{"kind":"one_time"}}"#,
        "group_ids: scope groups needs at least one group",
    );
    check(
        r#"check_auto_rule {"scope":"groups","group_ids":[3],"recurrence":{"kind":"one_time"}}"#,
        "ok",
    );
}

#[test]
fn r10_group_ids_belong_to_groups_scope_only() {
    check(
        r#"check_auto_rule {"scope":"company","group_ids":[3],"recurrence":{"kind":"one_time"}}"#,
        "group_ids: group_ids is only for scope groups",
    );
    check(
        r#"check_auto_rule {"scope":"none","group_ids":[3],"recurrence":{"kind":"one_time"}}"#,
        "group_ids: group_ids is only for scope groups",
    );
}

#[test]
fn r11_hired_after_needs_no_other_field() {
    check(
        r#"check_auto_rule {"scope":"company","hired_after":"2027-01-01","recurrence":{"kind":"one_time"}}"#,
        "ok",
    );
}

#[test]
fn r12_one_time_within_days_is_bounded() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"one_time","due":{"within_days":3650}}}"#,
        "ok",
    );
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"one_time","due":{"within_days":3651}}}"#,
        "recurrence.due.within_days: must be between 0 and 3650",
    );
}

#[test]
fn r12_one_time_on_date_is_valid() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"one_time","due":{"on_date":"2027-09-01"}}}"#,
        "ok",
    );
}

#[test]
fn r12_initial_due_days_is_refused_on_one_time_rules() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"one_time"},"initial_due_days":10}"#,
        "initial_due_days: initial_due_days applies to annual and every_months rules only",
    );
}

#[test]
fn r12_initial_due_days_is_accepted_on_annual_and_every_months_rules() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"annual","due_each_year_on":"06-30"},"initial_due_days":30}"#,
        "ok",
    );
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"every_months","months":6},"initial_due_days":0}"#,
        "ok",
    );
}

#[test]
fn r12_initial_due_days_is_bounded() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"annual","due_each_year_on":"06-30"},"initial_due_days":3651}"#,
        "initial_due_days: must be between 0 and 3650",
    );
}

#[test]
fn r12_every_months_takes_one_to_one_hundred_twenty_months() {
    let months = |n: u32| {
        format!(
            r#"check_auto_rule {{"scope":"company","recurrence":{{"kind":"every_months","months":{n}}}}}"#
        )
    };
    check(&months(0), "recurrence.months: must be between 1 and 120");
    check(&months(1), "ok");
    check(&months(120), "ok");
    check(&months(121), "recurrence.months: must be between 1 and 120");
}

#[test]
fn r12_every_error_of_a_rule_is_reported_at_once() {
    check(
        r#"check_auto_rule {"scope":"groups","recurrence":{"kind":"one_time","due":{"within_days":4000}},"initial_due_days":5000}"#,
        "group_ids: scope groups needs at least one group; \
         recurrence.due.within_days: must be between 0 and 3650; \
         initial_due_days: initial_due_days applies to annual and every_months rules only; \
         initial_due_days: must be between 0 and 3650",
    );
}

#[test]
fn r12_annual_rule_with_february_29_is_valid() {
    check(
        r#"check_auto_rule {"scope":"company","recurrence":{"kind":"annual","due_each_year_on":"02-29"}}"#,
        "ok",
    );
}

proptest::proptest! {
    #[test]
    fn r14_every_period_name_reads_back_as_the_same_period(
        period in proptest::prop_oneof![
            proptest::strategy::Just(Period::Once),
            (1u32..).prop_map(Period::Cycle),
            (0i32..3_652_059).prop_map(|offset| {
                Period::Annual(date("0000-01-01").checked_add(jiff::ToSpan::days(offset)).unwrap())
            }),
        ]
    ) {
        let text = period.to_string();
        proptest::prop_assert_eq!(Period::parse(&text), Some(period));
    }

    #[test]
    fn r14_any_text_accepted_as_a_period_is_its_own_canonical_name(text in "(cycle-)?[+0-9T:-]{0,14}|once") {
        if let Some(period) = Period::parse(&text) {
            proptest::prop_assert_eq!(period.to_string(), text);
        }
    }
}
