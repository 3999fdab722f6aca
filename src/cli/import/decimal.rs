//! Decimal amounts as written in a CSV cell (`12.34`) into whole units and
//! nanos, exactly.
//!
//! Hand-rolled on purpose: the grammar accepted is deliberately narrower
//! than what decimal crates parse (`rust_decimal` takes `1_000`, rounds
//! past its scale and, with `from_scientific`, exponents), and the result
//! must be google.type.Money's units + nanos, not a float or a 96-bit
//! mantissa. The grammar: optional spaces, an optional sign (`+` or `-`),
//! one or more digits, optionally a dot followed by 1 to 9 digits,
//! optional spaces. Refused: exponents (`1e3`), thousands separators
//! (`1,000`, `1 000`), a bare dot (`.5`, `5.`), more than 9 decimals, a
//! sign on zero (`-0`, `-0.00`), and more than 18 whole digits. The cap on
//! a transaction's amount (1e9 units) is the domain's
//! ([`crate::domain::Amount`]), applied after this.

/// Whole digits beyond this cannot be an amount (and would overflow).
const MAX_WHOLE_DIGITS: usize = 18;
/// google.type.Money's precision.
const MAX_DECIMALS: usize = 9;

/// `(units, nanos)` with matching signs, or why the text is not a decimal.
pub fn parse_decimal(text: &str) -> Result<(i64, i32), String> {
    let s = text.trim_matches(|c: char| c == ' ' || c == '\t');
    let refuse = |why: &str| Err(format!("{text:?} is not a decimal amount: {why}"));
    let (negative, unsigned) = match s.as_bytes().first() {
        None => return refuse("empty"),
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) {
        return refuse("expected digits, an optional dot and up to 9 decimals (12.34)");
    }
    if whole.len() > MAX_WHOLE_DIGITS {
        return refuse("too many whole digits");
    }
    let mut nanos: i64 = 0;
    if let Some(f) = fraction {
        if !digits(f) {
            return refuse("expected digits after the dot");
        }
        if f.len() > MAX_DECIMALS {
            return refuse("more than 9 decimals");
        }
        // At most 9 digits: fits i64, and padded to nanos.
        for b in f
            .bytes()
            .chain(std::iter::repeat_n(b'0', MAX_DECIMALS - f.len()))
        {
            nanos = nanos * 10 + i64::from(b - b'0');
        }
    }
    let mut units: i64 = 0;
    for b in whole.bytes() {
        // At most 18 digits: below i64::MAX.
        units = units * 10 + i64::from(b - b'0');
    }
    if negative && units == 0 && nanos == 0 {
        return refuse("a sign on zero");
    }
    // nanos < 1e9 fits i32.
    let nanos = nanos as i32;
    Ok(if negative {
        (-units, -nanos)
    } else {
        (units, nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_units_and_nanos() {
        assert_eq!(parse_decimal("12.34"), Ok((12, 340_000_000)));
        assert_eq!(parse_decimal("12"), Ok((12, 0)));
        assert_eq!(parse_decimal("0"), Ok((0, 0)));
        assert_eq!(parse_decimal("0.000000001"), Ok((0, 1)));
        assert_eq!(
            parse_decimal("999999999.999999999"),
            Ok((999_999_999, 999_999_999))
        );
        assert_eq!(parse_decimal("1000000000"), Ok((1_000_000_000, 0)));
        assert_eq!(parse_decimal("-1.5"), Ok((-1, -500_000_000)));
        assert_eq!(parse_decimal("-0.5"), Ok((0, -500_000_000)));
        assert_eq!(parse_decimal("+7.10"), Ok((7, 100_000_000)));
        assert_eq!(parse_decimal("  3.25 "), Ok((3, 250_000_000)));
        assert_eq!(parse_decimal("\t3"), Ok((3, 0)));
        assert_eq!(
            parse_decimal("999999999999999999.999999999"),
            Ok((999_999_999_999_999_999, 999_999_999))
        );
    }

    #[test]
    fn the_domain_caps_at_1e9_units_after_parsing() {
        use crate::domain::Amount;
        let ok = parse_decimal("1000000000.000000000").unwrap();
        assert!(Amount::from_units_nanos(ok.0, ok.1).is_ok());
        let over = parse_decimal("1000000000.000000001").unwrap();
        assert_eq!(
            Amount::from_units_nanos(over.0, over.1).unwrap_err().0,
            "units"
        );
        let under = parse_decimal("-1000000000.000000001").unwrap();
        assert_eq!(
            Amount::from_units_nanos(under.0, under.1).unwrap_err().0,
            "units"
        );
    }

    #[test]
    fn refuses_what_is_not_written_as_a_plain_decimal() {
        for bad in [
            "",
            " ",
            "-",
            "+",
            "1e3",
            "1E3",
            "1,000",
            "1 000",
            "1_000",
            ".5",
            "5.",
            "1.2.3",
            "0.1234567891",
            "-0",
            "-0.00",
            "--1",
            "+-1",
            "- 1",
            "12.34 USD",
            "$12",
            "NaN",
            "inf",
            "1234567890123456789",
            "١٢",
        ] {
            let e = parse_decimal(bad).unwrap_err();
            assert!(e.contains("not a decimal amount"), "{bad:?}: {e}");
        }
        assert!(parse_decimal("0.1234567891")
            .unwrap_err()
            .contains("9 decimals"));
    }
}
