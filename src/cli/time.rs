//! Instants on the command line: RFC 3339 (`2026-10-31T12:00:00Z`), or a
//! date alone (`2026-10-31`), which means the end of that day in UTC (the
//! day's transactions included, as an analyst means "as of the 31st").

use chrono::{DateTime, NaiveDate, Utc};

/// Parses an instant flag (a clap `value_parser`).
pub fn parse_instant(s: &str) -> Result<prost_types::Timestamp, String> {
    let t: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_nano_opt(23, 59, 59, 999_999_999)
            .ok_or("not a valid date")?
            .and_utc()
    } else {
        return Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-10-31T12:00:00Z) nor a date (2026-10-31)"
        ));
    };
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_means_the_end_of_that_day() {
        let t = parse_instant("2026-10-31").unwrap();
        let end = NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!((t.seconds, t.nanos), (end - 1, 999_999_999));
        let t = parse_instant("2026-10-31T12:00:00+02:00").unwrap();
        assert_eq!(t.seconds, end - 86_400 + 10 * 3600);
        assert!(parse_instant("31/10/2026")
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
