//! The tier policy as a pure replay: a customer's tier at any instant, from what each of their
//! orders and returns adds to the measure and the program's thresholds and retention.

use chrono::{DateTime, TimeDelta, Utc};

/// What happens when a retained tier's retention ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    /// One tier down, which is retained again unless the measure supports it.
    OneLevel,
    /// Straight to the tier the measure supports.
    ToQualified,
}

/// The rules of a program that the replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Each tier's threshold, lowest first: the first is 0, each above the one before.
    pub thresholds: Vec<i64>,
    pub window_days: u32,
    pub retain_days: u32,
    pub downgrade: Downgrade,
}

impl Policy {
    /// The highest tier whose threshold `measure` reaches; the base tier when none does.
    pub fn qualified(&self, measure: i64) -> usize {
        self.thresholds
            .iter()
            .rposition(|threshold| measure >= *threshold)
            .unwrap_or(0)
    }
}

/// What one order or return adds to the measure while it is in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    pub at: DateTime<Utc>,
    pub amount: i64,
}

/// A customer's tier at an instant, and what comes next without new orders or returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Index in the program's tiers; 0 is the base tier.
    pub tier: usize,
    /// The tier the measure supports: at most `tier`.
    pub qualified: usize,
    pub measure: i64,
    /// When the customer entered `tier`; `None` when they have been in the base tier throughout.
    pub since: Option<DateTime<Utc>>,
    /// The earliest the tier can be lost; `None` for the base tier.
    pub kept_until: Option<DateTime<Utc>>,
    /// The next instant the tier changes, and the tier from then, if nothing new happens.
    pub next_change: Option<(DateTime<Utc>, usize)>,
}

/// `at` plus `days` days; the end of time when that is beyond what can be represented, so
/// that it never comes.
fn plus_days(at: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    at.checked_add_signed(TimeDelta::days(i64::from(days)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The replay's state, moved forward instant by instant.
struct Replay<'a> {
    policy: &'a Policy,
    /// Changes of the measure (orders entering and leaving the window), one per instant, in
    /// time order.
    changes: Vec<(DateTime<Utc>, i64)>,
    /// The first change not replayed yet.
    next: usize,
    measure: i64,
    tier: usize,
    since: Option<DateTime<Utc>>,
    /// While the measure does not support `tier`: when its retention ends.
    retained_until: Option<DateTime<Utc>>,
}

impl<'a> Replay<'a> {
    fn new(policy: &'a Policy, contributions: impl IntoIterator<Item = Contribution>) -> Self {
        let mut deltas: Vec<(DateTime<Utc>, i64)> = Vec::new();
        for c in contributions.into_iter().filter(|c| c.amount != 0) {
            deltas.push((c.at, c.amount));
            let leaves = plus_days(c.at, policy.window_days);
            // One that would leave after the end of time never leaves.
            if leaves != DateTime::<Utc>::MAX_UTC {
                deltas.push((leaves, c.amount.saturating_neg()));
            }
        }
        // Sorted on both, so the sums below do not depend on the order contributions came in.
        deltas.sort_unstable();
        let mut changes: Vec<(DateTime<Utc>, i64)> = Vec::with_capacity(deltas.len());
        for (at, delta) in deltas {
            match changes.last_mut() {
                Some((last, sum)) if *last == at => *sum = sum.saturating_add(delta),
                _ => changes.push((at, delta)),
            }
        }
        Self {
            policy,
            changes,
            next: 0,
            measure: 0,
            tier: 0,
            since: None,
            retained_until: None,
        }
    }

    /// The next instant something can happen: the measure changes or a retention ends.
    fn next_instant(&self) -> Option<DateTime<Utc>> {
        let change = self.changes.get(self.next).map(|(at, _)| *at);
        let retention = self
            .retained_until
            .filter(|until| *until != DateTime::<Utc>::MAX_UTC);
        match (change, retention) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Replays the instant `at`, which is [`Self::next_instant`]: the measure's change first,
    /// then the tier.
    fn step(&mut self, at: DateTime<Utc>) {
        if let Some((when, delta)) = self.changes.get(self.next)
            && *when == at
        {
            self.measure = self.measure.saturating_add(*delta);
            self.next += 1;
        }
        self.settle(at);
    }

    /// Replays every instant up to `until`, inclusive.
    fn advance_to(&mut self, until: DateTime<Utc>) {
        while let Some(at) = self.next_instant()
            && at <= until
        {
            self.step(at);
        }
    }

    /// The tier at `at`, given the measure then: up at once, down when retention ends.
    fn settle(&mut self, at: DateTime<Utc>) {
        loop {
            let qualified = self.policy.qualified(self.measure);
            if qualified >= self.tier {
                if qualified > self.tier {
                    self.tier = qualified;
                    self.since = Some(at);
                }
                self.retained_until = None;
                return;
            }
            let retain_days = self.policy.retain_days;
            let until = *self
                .retained_until
                .get_or_insert_with(|| plus_days(at, retain_days));
            if until > at {
                return;
            }
            self.tier = match self.policy.downgrade {
                Downgrade::OneLevel => self.tier.saturating_sub(1),
                Downgrade::ToQualified => qualified,
            };
            self.since = Some(at);
            // The lower tier's own retention, if the measure does not support it either,
            // starts now: the next turn of the loop sets it.
            self.retained_until = None;
        }
    }
}

/// Where a customer with `contributions` stands at `as_of`. Contributions after `as_of` are
/// ignored, as not yet made; their order does not matter.
pub fn standing(policy: &Policy, contributions: &[Contribution], as_of: DateTime<Utc>) -> Standing {
    let mut replay = Replay::new(
        policy,
        contributions.iter().copied().filter(|c| c.at <= as_of),
    );
    replay.advance_to(as_of);
    let tier = replay.tier;
    let measure = replay.measure;
    let since = replay.since;
    let kept_until = match (tier, replay.retained_until) {
        (0, _) => None,
        (_, Some(until)) => Some(until),
        (_, None) => Some(plus_days(as_of, policy.retain_days)),
    };
    // Replayed on with nothing new: only orders leaving the window and retentions ending.
    let mut next_change = None;
    while let Some(at) = replay.next_instant() {
        replay.step(at);
        if replay.tier != tier {
            next_change = Some((at, replay.tier));
            break;
        }
    }
    Standing {
        tier,
        qualified: policy.qualified(measure),
        measure,
        since,
        kept_until,
        next_change,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + TimeDelta::days(n)
    }

    fn orders(days: &[i64]) -> Vec<Contribution> {
        days.iter()
            .map(|d| Contribution {
                at: day(*d),
                amount: 1,
            })
            .collect()
    }

    /// White 0, Black 2, Gold 4 orders over 30 days, kept 10 days.
    fn program(downgrade: Downgrade) -> Policy {
        Policy {
            thresholds: vec![0, 2, 4],
            window_days: 30,
            retain_days: 10,
            downgrade,
        }
    }

    #[test]
    fn a_customer_without_orders_stays_in_the_base_tier() {
        let s = standing(&program(Downgrade::OneLevel), &[], day(0));
        assert_eq!(
            s,
            Standing {
                tier: 0,
                qualified: 0,
                measure: 0,
                since: None,
                kept_until: None,
                next_change: None,
            }
        );
    }

    #[test]
    fn reaching_a_threshold_upgrades_at_once() {
        let policy = program(Downgrade::OneLevel);
        let history = orders(&[0, 1, 2, 3]);
        let before = standing(&policy, &history, day(0));
        assert_eq!((before.tier, before.measure), (0, 1));
        let black = standing(&policy, &history, day(1));
        assert_eq!((black.tier, black.since), (1, Some(day(1))));
        assert_eq!(black.kept_until, Some(day(11)));
        let gold = standing(&policy, &history, day(3));
        assert_eq!((gold.tier, gold.since, gold.measure), (2, Some(day(3)), 4));
        // The first order leaves the window on day 30, retention ends on day 40.
        assert_eq!(gold.next_change, Some((day(40), 1)));
    }

    #[test]
    fn one_level_drops_a_tier_per_retention() {
        let policy = program(Downgrade::OneLevel);
        let history = orders(&[0, 1, 2, 3]);
        // Day 30: 3 orders left, below Gold: kept until day 40; none left from day 33.
        let retained = standing(&policy, &history, day(35));
        assert_eq!((retained.tier, retained.qualified), (2, 0));
        assert_eq!(retained.kept_until, Some(day(40)));
        assert_eq!(retained.next_change, Some((day(40), 1)));
        // Black from day 40, kept until day 50 as nothing supports it either.
        let black = standing(&policy, &history, day(40));
        assert_eq!((black.tier, black.qualified), (1, 0));
        assert_eq!(black.since, Some(day(40)));
        assert_eq!(black.kept_until, Some(day(50)));
        assert_eq!(black.next_change, Some((day(50), 0)));
        let white = standing(&policy, &history, day(50));
        assert_eq!(
            (white.tier, white.since, white.kept_until),
            (0, Some(day(50)), None)
        );
        assert_eq!(white.next_change, None);
    }

    #[test]
    fn to_qualified_drops_straight_to_the_supported_tier() {
        let policy = program(Downgrade::ToQualified);
        let history = orders(&[0, 1, 2, 3]);
        let gold = standing(&policy, &history, day(39));
        assert_eq!(gold.tier, 2);
        assert_eq!(gold.next_change, Some((day(40), 0)));
        let white = standing(&policy, &history, day(40));
        assert_eq!((white.tier, white.since), (0, Some(day(40))));
    }

    #[test]
    fn qualifying_again_during_retention_keeps_the_tier() {
        let policy = program(Downgrade::ToQualified);
        // Gold on day 3, below it from day 30 (3 orders, then 1 on day 33); orders on days
        // 34 to 36 bring 4 back on day 36, before retention ends on day 40.
        let history = orders(&[0, 1, 2, 3, 31, 34, 35, 36]);
        let s = standing(&policy, &history, day(45));
        assert_eq!((s.tier, s.since), (2, Some(day(3))));
        assert_eq!(s.measure, 4);
        assert_eq!(s.kept_until, Some(day(55)));
    }

    #[test]
    fn retention_ending_at_the_instant_of_requalifying_keeps_the_tier() {
        let policy = program(Downgrade::ToQualified);
        // Black on day 1, below it from day 30 (kept until day 40); two orders on day 40.
        let history = orders(&[0, 1, 40, 40]);
        let s = standing(&policy, &history, day(40));
        assert_eq!((s.tier, s.since, s.measure), (1, Some(day(1)), 2));
    }

    #[test]
    fn spend_counts_refunds_against_orders() {
        let policy = Policy {
            thresholds: vec![0, 10_000, 50_000],
            window_days: 365,
            retain_days: 0,
            downgrade: Downgrade::ToQualified,
        };
        let history = [
            Contribution {
                at: day(0),
                amount: 60_000,
            },
            Contribution {
                at: day(5),
                amount: -20_000,
            },
        ];
        assert_eq!(standing(&policy, &history, day(1)).tier, 2);
        let after = standing(&policy, &history, day(5));
        assert_eq!((after.tier, after.measure), (1, 40_000));
        // The order leaves on day 365: -20000 until the refund leaves on day 370.
        assert_eq!(after.next_change, Some((day(365), 0)));
        assert_eq!(standing(&policy, &history, day(366)).measure, -20_000);
    }

    #[test]
    fn orders_after_as_of_are_not_counted() {
        let policy = program(Downgrade::OneLevel);
        let s = standing(&policy, &orders(&[0, 1, 2, 3]), day(2));
        assert_eq!((s.tier, s.measure), (1, 3));
        // Without the order of day 3: Black until 2 orders are no longer in the window (day
        // 31) and 10 days more.
        assert_eq!(s.next_change, Some((day(41), 0)));
    }

    #[test]
    fn extreme_times_and_amounts_do_not_panic() {
        let policy = Policy {
            thresholds: vec![0, 1, i64::MAX],
            window_days: 3660,
            retain_days: 3660,
            downgrade: Downgrade::OneLevel,
        };
        let history = [
            Contribution {
                at: DateTime::<Utc>::MAX_UTC,
                amount: i64::MAX,
            },
            Contribution {
                at: DateTime::<Utc>::MAX_UTC - TimeDelta::days(1),
                amount: i64::MAX,
            },
            Contribution {
                at: DateTime::<Utc>::MIN_UTC,
                amount: i64::MIN,
            },
        ];
        let s = standing(&policy, &history, DateTime::<Utc>::MAX_UTC);
        assert!(s.tier <= 2);
        let s = standing(&policy, &history, DateTime::<Utc>::MIN_UTC);
        assert_eq!(s.tier, 0);
    }

    fn policies() -> impl Strategy<Value = Policy> {
        (
            prop::collection::btree_set(1_i64..20, 1..5),
            1_u32..20,
            0_u32..15,
            prop_oneof![Just(Downgrade::OneLevel), Just(Downgrade::ToQualified)],
        )
            .prop_map(|(above, window_days, retain_days, downgrade)| Policy {
                thresholds: std::iter::once(0).chain(above).collect(),
                window_days,
                retain_days,
                downgrade,
            })
    }

    /// Orders and refunds within 60 days, at hour granularity so instants often coincide.
    fn histories() -> impl Strategy<Value = Vec<Contribution>> {
        prop::collection::vec((0_i64..60 * 24, -3_i64..6), 0..25).prop_map(|v| {
            v.into_iter()
                .map(|(hour, amount)| Contribution {
                    at: day(0) + TimeDelta::hours(hour),
                    amount,
                })
                .collect()
        })
    }

    fn instants() -> impl Strategy<Value = DateTime<Utc>> {
        (-24_i64..100 * 24).prop_map(|hour| day(0) + TimeDelta::hours(hour))
    }

    proptest! {
        #[test]
        fn the_tier_is_never_below_the_qualified_one(
            policy in policies(), history in histories(), as_of in instants()
        ) {
            let s = standing(&policy, &history, as_of);
            prop_assert!(s.tier >= s.qualified);
            prop_assert_eq!(s.qualified, policy.qualified(s.measure));
            prop_assert!(s.tier < policy.thresholds.len());
        }

        #[test]
        fn without_retention_the_tier_is_the_qualified_one(
            mut policy in policies(), history in histories(), as_of in instants()
        ) {
            policy.retain_days = 0;
            let s = standing(&policy, &history, as_of);
            prop_assert_eq!(s.tier, s.qualified);
        }

        #[test]
        fn the_next_change_comes_after_as_of_and_changes_the_tier(
            policy in policies(), history in histories(), as_of in instants()
        ) {
            let s = standing(&policy, &history, as_of);
            let known: Vec<Contribution> =
                history.iter().copied().filter(|c| c.at <= as_of).collect();
            if let Some((at, tier)) = s.next_change {
                prop_assert!(at > as_of);
                prop_assert_ne!(tier, s.tier);
                let then = standing(&policy, &known, at);
                prop_assert_eq!(then.tier, tier);
                // No change in between.
                let just_before = at - TimeDelta::seconds(1);
                if just_before > as_of {
                    prop_assert_eq!(standing(&policy, &known, just_before).tier, s.tier);
                }
                if tier < s.tier {
                    prop_assert!(s.kept_until.is_some_and(|kept| kept <= at));
                    if policy.downgrade == Downgrade::OneLevel && policy.retain_days > 0 {
                        prop_assert_eq!(tier, s.tier - 1);
                    }
                }
            } else {
                // Nothing ahead: the tier holds however far one looks.
                let far = as_of + TimeDelta::days(200);
                prop_assert_eq!(standing(&policy, &known, far).tier, s.tier);
            }
        }

        #[test]
        fn the_order_of_the_history_does_not_matter(
            policy in policies(), history in histories(), as_of in instants(), seed in any::<u64>()
        ) {
            let mut shuffled = history.clone();
            // A deterministic shuffle from the seed.
            let len = shuffled.len();
            let mut state = seed;
            for i in (1..len).rev() {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let j = usize::try_from(state >> 33).unwrap() % (i + 1);
                shuffled.swap(i, j);
            }
            prop_assert_eq!(
                standing(&policy, &history, as_of),
                standing(&policy, &shuffled, as_of)
            );
        }

        #[test]
        fn later_orders_do_not_change_the_past(
            policy in policies(), history in histories(), as_of in instants()
        ) {
            let known: Vec<Contribution> =
                history.iter().copied().filter(|c| c.at <= as_of).collect();
            prop_assert_eq!(
                standing(&policy, &history, as_of),
                standing(&policy, &known, as_of)
            );
        }
    }
}
