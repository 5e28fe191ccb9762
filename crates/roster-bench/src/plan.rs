//! The synthetic organisation as a plan: users, groups, activities, rules
//! and post-enrollment rules drawn from a seed, before anything is written.

use jiff::ToSpan;
use jiff::civil::Date;
use roster_core::{MonthDay, OneTimeDue, Recurrence};

pub(crate) const GROUPS: usize = 500;
pub(crate) const ACTIVITIES: usize = 1_000;
pub(crate) const RULES: usize = 300;

/// A small deterministic generator (SplitMix64): the same seed gives the same
/// organisation on every machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index below `n` drawn with a power law: low indexes are popular.
    pub(crate) fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((self.unit().powf(power) * n as f64) as usize).min(n - 1)
    }

    /// `count` distinct items of `items`, in a random order.
    pub(crate) fn sample<T: Copy>(&mut self, items: &[T], count: usize) -> Vec<T> {
        let mut items = items.to_vec();
        let count = count.min(items.len());
        for index in 0..count {
            let other = index + self.below(items.len() - index);
            items.swap(index, other);
        }
        items.truncate(count);
        items
    }
}

pub(crate) struct PlannedUser {
    pub(crate) active: bool,
    pub(crate) hired_on: Option<Date>,
    pub(crate) role: &'static str,
    pub(crate) groups: Vec<usize>,
}

pub(crate) struct PlannedRule {
    /// `None` for the whole company.
    pub(crate) groups: Option<Vec<usize>>,
    pub(crate) hired_after: Option<Date>,
    pub(crate) recurrence: Recurrence,
    pub(crate) initial_due_days: Option<u32>,
}

pub(crate) struct PlannedPost {
    pub(crate) when: &'static str,
    pub(crate) delay_days: i64,
    pub(crate) targets: Vec<usize>,
    pub(crate) allow_consecutive: bool,
}

pub(crate) struct PlannedActivity {
    pub(crate) kind: &'static str,
    pub(crate) items: Vec<usize>,
    pub(crate) rule: Option<PlannedRule>,
    pub(crate) posts: Vec<PlannedPost>,
}

pub(crate) struct Plan {
    pub(crate) users: Vec<PlannedUser>,
    pub(crate) activities: Vec<PlannedActivity>,
}

fn random_date(rng: &mut Rng, from: Date, days: usize) -> Date {
    from.checked_add((rng.below(days) as i64).days())
        .unwrap_or(from)
}

impl Plan {
    /// Users with 1–5 groups each, popular groups much larger than others;
    /// 300 rules over the first 300 activities, mixing scope, hire date and
    /// recurrence; post-enrollment rules on enrollment and completion, with
    /// chains among the activities without rules.
    pub(crate) fn generate(rng: &mut Rng, users: usize, day0: Date) -> Plan {
        let epoch = Date::constant(2000, 1, 1);
        let span = (day0 - epoch).get_days().max(1) as usize;
        let users = (0..users).map(|_| planned_user(rng, epoch, span)).collect();
        let activities = (0..ACTIVITIES)
            .map(|index| {
                let kind = kind_of(index);
                let items = match kind {
                    "curriculum" => (0..2 + index % 2)
                        .map(|k| 600 + (index * 5 + k * 37) % 300)
                        .collect(),
                    "course_bundle" => (0..2).map(|k| 900 + (index * 3 + k * 11) % 60).collect(),
                    _ => Vec::new(),
                };
                PlannedActivity {
                    kind,
                    items,
                    rule: (index < RULES).then(|| planned_rule(rng, index, day0)),
                    posts: planned_posts(index),
                }
            })
            .collect();
        Plan { users, activities }
    }
}

fn planned_user(rng: &mut Rng, epoch: Date, span: usize) -> PlannedUser {
    let active = rng.below(100) >= 2;
    let role = if rng.below(1000) == 0 {
        "integration"
    } else {
        "learner"
    };
    let hired_on = (rng.below(100) >= 5).then(|| random_date(rng, epoch, span));
    let wanted = 1 + rng.below(5);
    let mut groups = Vec::with_capacity(wanted);
    while groups.len() < wanted {
        let group = rng.skewed(GROUPS, 2.2);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    PlannedUser {
        active,
        hired_on,
        role,
        groups,
    }
}

fn kind_of(index: usize) -> &'static str {
    match index {
        295..300 | 960..980 => "curriculum",
        980..990 => "course_bundle",
        _ if index % 7 == 3 => "instructor_led",
        _ => "online_course",
    }
}

/// The rule of activity `index` (below `RULES`): the first 20 for the whole
/// company, the others for 1–3 groups; some annual ones end the day after
/// `day0`, which W3 crosses.
fn planned_rule(rng: &mut Rng, index: usize, day0: Date) -> PlannedRule {
    const ANNUAL_ENDS: [MonthDay; 5] = [
        MonthDay { month: 12, day: 31 },
        MonthDay { month: 3, day: 31 },
        MonthDay { month: 9, day: 30 },
        MonthDay { month: 1, day: 15 },
        MonthDay { month: 10, day: 1 },
    ];
    let cross = day0.tomorrow().unwrap_or(day0);
    let groups = (index >= 20).then(|| {
        let wanted = 1 + rng.below(3);
        let mut groups = Vec::new();
        while groups.len() < wanted {
            let group = rng.skewed(GROUPS, 1.6);
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        groups
    });
    let hired_after = ((10..20).contains(&index) || (index >= 20 && index % 9 == 4))
        .then(|| random_date(rng, Date::constant(2010, 1, 1), 25 * 365));
    let (recurrence, initial_due_days) = match index % 5 {
        0 | 1 => {
            let due = match (index / 5) % 3 {
                0 => None,
                1 => Some(OneTimeDue::WithinDays(30)),
                _ => Some(OneTimeDue::OnDate(
                    day0.checked_add(60.days()).unwrap_or(day0),
                )),
            };
            (Recurrence::OneTime { due }, None)
        }
        2 | 3 => {
            let end = if (index / 5).is_multiple_of(6) && index >= 20 {
                MonthDay {
                    month: cross.month(),
                    day: cross.day(),
                }
            } else {
                ANNUAL_ENDS[(index / 5) % ANNUAL_ENDS.len()]
            };
            (
                Recurrence::Annual {
                    due_each_year_on: end,
                },
                index.is_multiple_of(3).then_some(30),
            )
        }
        _ => (
            Recurrence::EveryMonths {
                months: [6, 12, 24][(index / 5) % 3],
            },
            index.is_multiple_of(2).then_some(60),
        ),
    };
    PlannedRule {
        groups,
        hired_after,
        recurrence,
        initial_due_days,
    }
}

/// The post-enrollment rules of activity `index`.
fn planned_posts(index: usize) -> Vec<PlannedPost> {
    let mut posts = Vec::new();
    if index < RULES && index % 10 == 7 {
        // A follow-up two weeks after every enrollment: the sweep
        // writes one job per enrollment it creates here.
        posts.push(PlannedPost {
            when: "enrolled",
            delay_days: 14,
            targets: vec![300 + (index * 7) % 300],
            allow_consecutive: false,
        });
    }
    if index < RULES && (index.is_multiple_of(10) || index % 10 == 2) {
        let mut targets = vec![300 + index % 40];
        if index.is_multiple_of(20) {
            targets.push(340 + (index * 3) % 200);
        }
        posts.push(PlannedPost {
            when: "completed",
            delay_days: if (index / 10).is_multiple_of(2) { 0 } else { 1 },
            targets,
            allow_consecutive: index.is_multiple_of(4),
        });
    }
    if (300..321).contains(&index) {
        // Chains (R38): 300..320 lead on to 320..340, and 320 back to
        // 300, a cycle that R2 ends.
        posts.push(PlannedPost {
            when: "enrolled",
            delay_days: 0,
            targets: vec![if index == 320 { 300 } else { index + 20 }],
            allow_consecutive: false,
        });
    }
    posts
}
