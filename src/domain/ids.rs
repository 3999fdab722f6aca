//! Customer and transaction identifiers: the caller's own ids, opaque to us.

use std::fmt;

/// Longest id accepted, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = 128;

fn parse_id(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > MAX_ID_BYTES {
        return Err(format!(
            "must be at most {MAX_ID_BYTES} bytes, got {}",
            raw.len()
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(raw.to_owned())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1 to [`MAX_ID_BYTES`] bytes without control characters.
            pub fn parse(raw: &str) -> Result<Self, String> {
                parse_id(raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
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
}
