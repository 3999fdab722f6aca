//! Calendar periods of the business time zone: ISO weeks (Monday start),
//! months and quarters. A period is identified by its first day; its
//! instants are from that day's midnight in the business time zone to the
//! next period's. Reports group purchase occasions (already business days)
//! by period, so only the edges of a request need time zone arithmetic.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Most periods a report may span (cohorts in a range, and periods per
/// cohort): five years of months, over a year of weeks.
pub const MAX_PERIODS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// ISO weeks, Monday to Sunday.
    Week,
    Month,
    Quarter,
}

impl Granularity {
    /// The keyword PostgreSQL's `date_trunc` uses for the same periods
    /// (its weeks are ISO weeks).
    pub fn sql_unit(self) -> &'static str {
        match self {
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
        }
    }

    /// The code the report aggregates store the granularity under.
    pub fn code(self) -> i16 {
        match self {
            Granularity::Week => 1,
            Granularity::Month => 2,
            Granularity::Quarter => 3,
        }
    }

    /// First day of the period that contains `day`.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Granularity::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Granularity::Month => day.with_day(1).unwrap_or(day),
            Granularity::Quarter => {
                NaiveDate::from_ymd_opt(day.year(), (day.month0() / 3) * 3 + 1, 1).unwrap_or(day)
            }
        }
    }

    /// First day of the period `k` periods after the one starting at `start`.
    pub fn add(self, start: NaiveDate, k: u32) -> NaiveDate {
        match self {
            Granularity::Week => start + Days::new(7 * u64::from(k)),
            Granularity::Month => start + Months::new(k),
            Granularity::Quarter => start + Months::new(3 * k),
        }
    }

    /// How many periods from the period starting at `from` to the one
    /// starting at `to` (negative when `to` is earlier).
    pub fn periods_between(self, from: NaiveDate, to: NaiveDate) -> i64 {
        let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
        match self {
            Granularity::Week => (to - from).num_days().div_euclid(7),
            Granularity::Month => months(to) - months(from),
            Granularity::Quarter => (months(to) - months(from)).div_euclid(3),
        }
    }
}

/// The business calendar day of an instant.
pub fn business_day(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    tz.from_utc_datetime(&at.naive_utc()).date_naive()
}

/// The first instant of a business day: its midnight, or, where a time
/// zone skips midnight (a daylight saving change at 00:00), the first
/// instant that exists that day.
pub fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..48 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn iso_weeks_start_on_monday_across_a_year_end() {
        // 2027-01-01 is a Friday; its ISO week (2026-W53) starts on Monday
        // 2026-12-28.
        assert_eq!(Granularity::Week.start_of(d(2027, 1, 1)), d(2026, 12, 28));
        assert_eq!(Granularity::Week.start_of(d(2026, 12, 28)), d(2026, 12, 28));
        assert_eq!(Granularity::Week.start_of(d(2027, 1, 3)), d(2026, 12, 28));
        assert_eq!(Granularity::Week.start_of(d(2027, 1, 4)), d(2027, 1, 4));
    }

    #[test]
    fn months_and_quarters_start_on_their_first_day() {
        assert_eq!(Granularity::Month.start_of(d(2026, 2, 28)), d(2026, 2, 1));
        assert_eq!(Granularity::Quarter.start_of(d(2026, 6, 30)), d(2026, 4, 1));
        assert_eq!(
            Granularity::Quarter.start_of(d(2026, 10, 1)),
            d(2026, 10, 1)
        );
    }

    #[test]
    fn adding_and_counting_periods_agree() {
        for g in [Granularity::Week, Granularity::Month, Granularity::Quarter] {
            let start = g.start_of(d(2025, 11, 17));
            for k in [0, 1, 5, 13, 59] {
                let later = g.add(start, k);
                assert_eq!(g.start_of(later), later, "{g:?} + {k} is a period start");
                assert_eq!(g.periods_between(start, later), i64::from(k), "{g:?} {k}");
                assert_eq!(g.periods_between(later, start), -i64::from(k));
            }
        }
        assert_eq!(Granularity::Month.add(d(2026, 1, 1), 13), d(2027, 2, 1));
        assert_eq!(Granularity::Quarter.add(d(2026, 10, 1), 2), d(2027, 4, 1));
    }

    #[test]
    fn days_and_their_first_instant_follow_the_business_time_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-04-01T03:59:59Z is still March 31 in New York (EDT, UTC-4).
        let late = Utc.with_ymd_and_hms(2026, 4, 1, 3, 59, 59).unwrap();
        assert_eq!(business_day(ny, late), d(2026, 3, 31));
        assert_eq!(
            start_of_day(ny, d(2026, 4, 1)),
            Utc.with_ymd_and_hms(2026, 4, 1, 4, 0, 0).unwrap()
        );
        // Winter: UTC-5.
        assert_eq!(
            start_of_day(ny, d(2026, 1, 1)),
            Utc.with_ymd_and_hms(2026, 1, 1, 5, 0, 0).unwrap()
        );
        // Where midnight does not exist (Santiago skips 00:00-01:00 on
        // 2026-09-06), the day starts at 01:00 local.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let first = start_of_day(santiago, d(2026, 9, 6));
        assert_eq!(business_day(santiago, first), d(2026, 9, 6));
        assert_eq!(
            business_day(santiago, first - chrono::Duration::seconds(1)),
            d(2026, 9, 5)
        );
    }
}
