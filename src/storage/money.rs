//! Totals ([`Total`], `i128` nanos) to and from PostgreSQL `numeric`.
//!
//! They cross the wire as exact decimal text (`$n::text[]::numeric[]` in,
//! `column::text` out). sqlx maps no Rust integer wider than `i64`, and
//! its decimal types are either bounded below what a SQL sum can reach
//! (rust_decimal: 96 bits) or allocate per value (bigdecimal); text is
//! exact at any size, and an integer's decimal text is trivial to parse.
//! A value the API's Money cannot carry is a [`StorageError::TotalOutOfRange`]
//! for the one call that read it.

use super::StorageError;
use crate::domain::Total;

/// A total as decimal text, for a `text[]` parameter cast to `numeric[]`.
pub(super) fn text(total: Total) -> String {
    total.nanos().to_string()
}

/// A total read as text (`column::text AS name`) into a row's
/// `Option<String>`; NULL (an empty sum) is 0. `column` names it in errors.
pub(super) fn total(column: &str, text: Option<&str>) -> Result<Total, StorageError> {
    let Some(text) = text else {
        return Ok(Total::ZERO);
    };
    parse(text).map_err(|e| match e {
        Parse::OutOfRange => StorageError::TotalOutOfRange {
            column: column.to_owned(),
        },
        Parse::NotAnInteger => StorageError::corrupt(
            column,
            format!("{text:?} is not an integer number of nanos"),
        ),
    })
}

enum Parse {
    OutOfRange,
    NotAnInteger,
}

fn parse(text: &str) -> Result<Total, Parse> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Parse::NotAnInteger);
    }
    // Only digits: a failure here is a value past i128.
    let nanos: i128 = text.parse().map_err(|_| Parse::OutOfRange)?;
    Total::from_nanos(nanos).map_err(|_| Parse::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MAX_TOTAL_NANOS;

    #[test]
    fn parses_exact_integers_and_refuses_the_rest() {
        assert_eq!(
            parse("-10000000000000000000").ok().map(Total::nanos),
            Some(-10_000_000_000_000_000_000)
        );
        assert_eq!(
            parse(&MAX_TOTAL_NANOS.to_string()).ok().map(Total::nanos),
            Some(MAX_TOTAL_NANOS)
        );
        assert!(matches!(
            parse(&(MAX_TOTAL_NANOS + 1).to_string()),
            Err(Parse::OutOfRange)
        ));
        assert!(matches!(parse(&"9".repeat(60)), Err(Parse::OutOfRange)));
        for bad in ["", "-", "1.5", "1e3", " 1"] {
            assert!(matches!(parse(bad), Err(Parse::NotAnInteger)), "{bad:?}");
        }
    }
}
