//! When a request must be answered: one calendar month from receipt (Art. 12(3); received on
//! 31 January, due on the last day of February), extended at most once by up to two further
//! months, and later by as many days as the requester's verification took.

use chrono::{Days, Months, NaiveDate};

/// The most months one extension may add.
pub const MAX_EXTENSION_MONTHS: u32 = 2;

/// `date` plus `months` calendar months; a day the target month lacks becomes its last day.
pub fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// The last day to answer a request received on `received`.
pub fn due_on(received: NaiveDate, paused_days: u32, extension_months: u32) -> NaiveDate {
    let month = add_months(received, 1);
    let extended = add_months(month, extension_months.min(MAX_EXTENSION_MONTHS));
    extended
        .checked_add_days(Days::new(u64::from(paused_days)))
        .unwrap_or(NaiveDate::MAX)
}

/// Whole days between the start of a pause and its end (a pause within one day costs none).
pub fn paused_days(since: NaiveDate, until: NaiveDate) -> u32 {
    u32::try_from((until - since).num_days().max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;
    use proptest::prelude::*;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn month_ends_and_leap_years() {
        assert_eq!(due_on(date(2026, 1, 31), 0, 0), date(2026, 2, 28));
        assert_eq!(due_on(date(2028, 1, 31), 0, 0), date(2028, 2, 29));
        assert_eq!(due_on(date(2026, 1, 15), 0, 0), date(2026, 2, 15));
        assert_eq!(due_on(date(2026, 12, 31), 0, 0), date(2027, 1, 31));
        // The extension runs from the first deadline: 28 February + 2 months.
        assert_eq!(due_on(date(2026, 1, 31), 0, 2), date(2026, 4, 28));
        // Verification took 3 days: 3 days more.
        assert_eq!(due_on(date(2026, 1, 31), 3, 0), date(2026, 3, 3));
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (2000_i32..2100, 1_u32..=12, 1_u32..=31).prop_map(|(y, m, d)| {
            (0..4)
                .find_map(|back| NaiveDate::from_ymd_opt(y, m, d - back))
                .unwrap_or_default()
        })
    }

    proptest! {
        #[test]
        fn one_calendar_month(received in any_date()) {
            let due = due_on(received, 0, 0);
            let days = (due - received).num_days();
            prop_assert!((28..=31).contains(&days), "{received} -> {due}");
            prop_assert_eq!((due.year() * 12 + due.month0() as i32) - (received.year() * 12 + received.month0() as i32), 1);
            // The same day of the month, or the last day when the month is shorter.
            if due.day() != received.day() {
                prop_assert!(due.day() < received.day());
                prop_assert_eq!(due.succ_opt().map(|d| d.month()), Some(due.month() % 12 + 1));
            }
        }

        #[test]
        fn a_pause_moves_the_deadline_by_its_days(received in any_date(), paused in 0_u32..400, extension in 0_u32..=2) {
            let without = due_on(received, 0, extension);
            let with = due_on(received, paused, extension);
            prop_assert_eq!((with - without).num_days(), i64::from(paused));
        }

        #[test]
        fn an_extension_adds_whole_months_and_never_more_than_two(received in any_date(), months in 0_u32..6) {
            let first = due_on(received, 0, 0);
            let extended = due_on(received, 0, months);
            let added = months.min(MAX_EXTENSION_MONTHS);
            prop_assert_eq!(
                (extended.year() * 12 + extended.month0() as i32) - (first.year() * 12 + first.month0() as i32),
                added as i32
            );
            prop_assert!(extended >= first);
            prop_assert!((extended - first).num_days() <= i64::from(added) * 31);
        }

        #[test]
        fn pauses_count_whole_days(since in any_date(), days in 0_u32..100) {
            let until = since.checked_add_days(Days::new(u64::from(days))).unwrap_or(since);
            prop_assert_eq!(paused_days(since, until), (until - since).num_days() as u32);
            prop_assert_eq!(paused_days(until, since), 0);
        }
    }
}
