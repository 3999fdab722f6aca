//! Totals ([`Total`], `i128` nanos) to and from PostgreSQL `numeric`.
//!
//! They are written as binary `numeric` ([`Numeric`], for `numeric[]`
//! parameters) and read as exact decimal text (`column::text`). sqlx maps
//! no Rust integer wider than `i64`, and its decimal types are either
//! bounded below what a SQL sum can reach (rust_decimal: 96 bits) or
//! allocate per value (bigdecimal). The binary `numeric` of an integer is
//! small and fixed (PostgreSQL docs, `numeric_send`), so it is encoded
//! here ([`numeric_integer`], also used by binary `COPY`); it is exact at
//! any size, and saves the server parsing text (measured in the ingest
//! section of docs/benchmarks.md, fifth session). An integer's decimal text
//! is trivial to parse. A value the API's Money cannot carry is a
//! [`StorageError::TotalOutOfRange`] for the one call that read it.

use sqlx::{
    encode::IsNull,
    error::BoxDynError,
    postgres::{types::Oid, PgArgumentBuffer, PgHasArrayType, PgTypeInfo},
    Encode, Postgres, Type,
};

use super::StorageError;
use crate::domain::Total;

/// `pg_type` OIDs of `numeric` and `numeric[]`: built-in types, whose OIDs
/// are fixed in every PostgreSQL.
const NUMERIC_OID: Oid = Oid(1700);
const NUMERIC_ARRAY_OID: Oid = Oid(1231);

/// A total bound as a binary `numeric` parameter (alone or in a
/// `Vec<Numeric>` for `numeric[]`), exact at any size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Numeric(pub(super) Total);

impl Type<Postgres> for Numeric {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(NUMERIC_OID)
    }
}

impl PgHasArrayType for Numeric {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(NUMERIC_ARRAY_OID)
    }
}

impl Encode<'_, Postgres> for Numeric {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        numeric_integer(self.0.nanos(), buf);
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        8 + 2 * 10
    }
}

/// Appends the binary `numeric` of an integer: digit count, weight, sign,
/// display scale (0), then the base-10000 digits, most significant first,
/// trailing zero digits left out (as PostgreSQL itself writes them).
pub(super) fn numeric_integer(v: i128, out: &mut Vec<u8>) {
    // An i128 has at most 39 decimal digits: 10 base-10000 digits.
    let mut digits = [0u16; 10];
    let mut n = 0;
    let mut rest = v.unsigned_abs();
    while rest > 0 {
        digits[n] = (rest % 10_000) as u16;
        rest /= 10_000;
        n += 1;
    }
    let weight = n.saturating_sub(1) as i16;
    // digits[..n] is least significant first; drop trailing zero digits
    // (the least significant ones).
    let skip = digits[..n].iter().take_while(|d| **d == 0).count();
    let kept = &digits[skip..n];
    let sign: u16 = if v < 0 { 0x4000 } else { 0 };
    out.extend_from_slice(&(kept.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for d in kept.iter().rev() {
        out.extend_from_slice(&d.to_be_bytes());
    }
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
