//! Quiet hours: the local hours in which no marketing message is sent, in the recipient's
//! time zone. A message due inside them waits until they end.

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window `[start, end)` of local time; it may span midnight (21:00-08:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

impl QuietHours {
    /// `HH:MM-HH:MM`, e.g. `21:00-08:00`.
    pub fn parse(value: &str) -> Option<Self> {
        let (start, end) = value.trim().split_once('-')?;
        let start = NaiveTime::parse_from_str(start.trim(), "%H:%M").ok()?;
        let end = NaiveTime::parse_from_str(end.trim(), "%H:%M").ok()?;
        (start != end).then_some(Self { start, end })
    }

    fn contains(&self, time: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// When the quiet hours `now` falls in end, in `zone`; None when `now` is outside them.
    pub fn ends_after(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&zone).naive_local();
        if !self.contains(local.time()) {
            return None;
        }
        let mut day = local.date();
        if self.start > self.end && local.time() >= self.start {
            day = day.checked_add_days(Days::new(1))?;
        }
        let end = day.and_time(self.end);
        // A local end that a clock change skips is taken an hour later.
        let end = zone.from_local_datetime(&end).earliest().or_else(|| {
            zone.from_local_datetime(&(end + chrono::Duration::hours(1)))
                .earliest()
        })?;
        Some(end.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Europe::Paris;
    use proptest::prelude::*;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn parses_windows() {
        assert!(QuietHours::parse("21:00-08:00").is_some());
        assert!(QuietHours::parse("12:30 - 14:00").is_some());
        assert_eq!(QuietHours::parse("08:00-08:00"), None);
        assert_eq!(QuietHours::parse("25:00-08:00"), None);
        assert_eq!(QuietHours::parse("evening"), None);
    }

    #[test]
    fn a_night_window_ends_the_next_morning_in_the_recipients_zone() {
        let quiet = QuietHours::parse("21:00-08:00").unwrap_or(QuietHours {
            start: NaiveTime::MIN,
            end: NaiveTime::MIN,
        });
        // 22:30 in Paris (winter, UTC+1) waits until 08:00 Paris the next day.
        assert_eq!(
            quiet.ends_after(at("2026-01-10T21:30:00Z"), Paris),
            Some(at("2026-01-11T07:00:00Z"))
        );
        // 06:00 in Paris waits until 08:00 the same day.
        assert_eq!(
            quiet.ends_after(at("2026-01-10T05:00:00Z"), Paris),
            Some(at("2026-01-10T07:00:00Z"))
        );
        // Noon is outside.
        assert_eq!(quiet.ends_after(at("2026-01-10T11:00:00Z"), Paris), None);
        // The same instant is quiet in Tokyo and not in Paris.
        assert!(
            quiet
                .ends_after(at("2026-01-10T14:00:00Z"), chrono_tz::Asia::Tokyo)
                .is_some()
        );
        assert_eq!(quiet.ends_after(at("2026-01-10T14:00:00Z"), Paris), None);
    }

    proptest! {
        #[test]
        fn the_end_is_later_and_outside_the_window(
            seconds in 0_i64..(400 * 86_400),
            start in 0_u32..24,
            end in 0_u32..24,
            zone in prop::sample::select(vec![Paris, chrono_tz::America::New_York, chrono_tz::Asia::Kolkata, chrono_tz::UTC]),
        ) {
            prop_assume!(start != end);
            let quiet = QuietHours {
                start: NaiveTime::from_hms_opt(start, 0, 0).unwrap_or_default(),
                end: NaiveTime::from_hms_opt(end, 0, 0).unwrap_or_default(),
            };
            let now = at("2026-01-01T00:00:00Z") + chrono::Duration::seconds(seconds);
            let local = now.with_timezone(&zone).naive_local().time();
            match quiet.ends_after(now, zone) {
                None => prop_assert!(!quiet.contains(local)),
                Some(until) => {
                    prop_assert!(quiet.contains(local));
                    prop_assert!(until > now);
                    prop_assert!(until - now <= chrono::Duration::hours(25));
                    prop_assert!(!quiet.contains(until.with_timezone(&zone).naive_local().time()));
                }
            }
        }
    }
}
