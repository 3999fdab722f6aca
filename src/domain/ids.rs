//! Customer and transaction identifiers: the caller's own ids, opaque to us.
//!
//! An id is 1 to [`MAX_ID_BYTES`] bytes of UTF-8, not blank (not only
//! white space), without invisible or direction-changing characters:
//! Unicode general categories Cc (controls), Cf (format characters: zero
//! width spaces and joiners, the bidirectional embeddings, overrides and
//! isolates U+202A–U+202E and U+2066–U+2069, the byte order mark, the soft
//! hyphen), Zl and Zp (line and paragraph separators). Two ids that look
//! the same on screen are then the same id, and an id cannot reorder the
//! text it is shown in.
//!
//! Ids stored before that rule (which only refused controls) are read back
//! as they are ([`CustomerId::from_stored`]); they are not migrated.

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest id accepted, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = 128;

/// Why a character may not appear in an id, or `None` when it may.
fn refused(ch: char) -> Option<&'static str> {
    match ch.general_category() {
        GeneralCategory::Control => Some("control character"),
        GeneralCategory::Format => Some("invisible format character"),
        GeneralCategory::LineSeparator => Some("line separator"),
        GeneralCategory::ParagraphSeparator => Some("paragraph separator"),
        _ => None,
    }
}

fn parse_id(raw: &str) -> Result<String, String> {
    check_length(raw)?;
    if raw.chars().all(char::is_whitespace) {
        return Err("must not be blank (only white space)".into());
    }
    check_characters(raw, refused)?;
    Ok(raw.to_owned())
}

/// The rules every id ever stored meets: 1 to [`MAX_ID_BYTES`] bytes, no
/// control characters.
fn parse_stored_id(raw: &str) -> Result<String, String> {
    check_length(raw)?;
    check_characters(raw, |ch| ch.is_control().then_some("control character"))?;
    Ok(raw.to_owned())
}

fn check_length(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > MAX_ID_BYTES {
        return Err(format!(
            "must be at most {MAX_ID_BYTES} bytes, got {}",
            raw.len()
        ));
    }
    Ok(())
}

/// The first character `refused` names, with its position (in characters,
/// from 0) and code point.
fn check_characters(
    raw: &str,
    refused: impl Fn(char) -> Option<&'static str>,
) -> Result<(), String> {
    match raw
        .chars()
        .enumerate()
        .find_map(|(i, ch)| refused(ch).map(|what| (i, ch, what)))
    {
        Some((position, ch, what)) => Err(format!(
            "has the {what} U+{:04X} at character position {position}; \
             invisible and bidirectional control characters are not allowed",
            u32::from(ch)
        )),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Accepts input by the rules of this module: 1 to
            /// [`MAX_ID_BYTES`] bytes, not blank, no invisible or
            /// bidirectional control characters.
            pub fn parse(raw: &str) -> Result<Self, String> {
                parse_id(raw).map(Self)
            }

            /// An id read back from the database or from a token this
            /// service issued: held to the rules ids were ever stored
            /// under (1 to [`MAX_ID_BYTES`] bytes without control
            /// characters), so that ids stored before the current rules
            /// stay readable.
            pub fn from_stored(raw: &str) -> Result<Self, String> {
                parse_stored_id(raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, without a copy.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A customer, as the calling systems name it.
    CustomerId
);
id_type!(
    /// A transaction, unique within its customer.
    TransactionId
);
id_type!(
    /// The caller's idempotency key of a feedback answer (unique within its
    /// customer) or of an acquisition spend record.
    IdempotencyKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_oversize_and_control_characters() {
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse(&"x".repeat(MAX_ID_BYTES + 1)).is_err());
        assert!(CustomerId::parse("a\nb").is_err());
        assert_eq!(
            CustomerId::parse(&"x".repeat(MAX_ID_BYTES))
                .unwrap()
                .as_str()
                .len(),
            MAX_ID_BYTES
        );
    }

    #[test]
    fn rejects_invisible_and_bidirectional_characters_naming_them() {
        for (raw, code_point, position) in [
            ("ab\u{202E}c", "U+202E", 2),
            ("\u{200B}x", "U+200B", 0),
            ("x\u{200D}", "U+200D", 1),
            ("\u{FEFF}x", "U+FEFF", 0),
            ("a\u{2066}b\u{2069}", "U+2066", 1),
            ("é\u{2028}", "U+2028", 1),
            ("a\u{2029}", "U+2029", 1),
            ("a\u{00AD}b", "U+00AD", 1),
            ("a\u{0}", "U+0000", 1),
        ] {
            let e = TransactionId::parse(raw).unwrap_err();
            assert!(e.contains(code_point), "{raw:?}: {e}");
            assert!(e.contains(&format!("position {position}")), "{raw:?}: {e}");
        }
    }

    #[test]
    fn rejects_blank_ids_but_not_inner_spaces() {
        for raw in [" ", "\t", "\u{3000}", "\u{00A0} "] {
            assert!(
                IdempotencyKey::parse(raw).unwrap_err().contains("blank"),
                "{raw:?}"
            );
        }
        for raw in ["a b", " a", "naïve café", "顧客 42", "שלום"] {
            assert_eq!(CustomerId::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn stored_ids_from_before_the_rule_stay_readable() {
        assert!(CustomerId::parse("a\u{200B}b").is_err());
        assert_eq!(
            CustomerId::from_stored("a\u{200B}b").unwrap().as_str(),
            "a\u{200B}b"
        );
        assert!(CustomerId::from_stored("a\u{0}").is_err());
        assert!(CustomerId::from_stored("").is_err());
    }
}
