//! Page tokens: opaque to callers, authenticated, versioned.
//!
//! A token is the unpadded base64url of `format ‖ kind ‖ payload ‖ tag`:
//! a format version byte ([`FORMAT`]), a byte naming the listing it
//! continues, the listing's position, and an HMAC-SHA256 tag over all that
//! under a key every replica shares. A token that was altered in any way,
//! truncated, made by hand or by a server with another key fails the tag
//! check and is refused before any of its content is used; a token of a
//! future format is refused by its format byte.

use std::{fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::CustomerId;

/// The format version of the tokens this code issues.
pub const FORMAT: u8 = 1;
/// Bytes of the HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;
/// Shortest key accepted, bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The secret that signs page tokens. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PageTokenKey(Vec<u8>);

/// Why a key was refused (the text follows the key's name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    #[error("must be at least {MIN_KEY_BYTES} bytes ({hex} hex digits), got {0}", hex = 2 * MIN_KEY_BYTES)]
    TooShort(usize),
    #[error("must be hex: {0}")]
    NotHex(#[from] hex::FromHexError),
}

impl PageTokenKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl FromStr for PageTokenKey {
    type Err = KeyError;

    /// A key given as hex (at least 64 digits).
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::new(hex::decode(s.trim())?)
    }
}

impl fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PageTokenKey(***)")
    }
}

/// The listing a token continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenKind {
    AtRiskCustomers = 1,
    Models = 2,
}

/// Why a token was refused (the text follows the field name `page_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("is not a page token this service issued")]
    Malformed,
    #[error("is of token format {0}, which this server does not read")]
    UnknownFormat(u8),
    #[error("was altered, or issued by a server with another key")]
    BadTag,
    #[error("was issued for another method")]
    OtherListing,
    #[error("holds a position this service never issues: {0}")]
    BadContent(String),
}

/// Signs `payload` as a token of `kind`.
pub fn seal(key: &PageTokenKey, kind: TokenKind, payload: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(2 + payload.len() + TAG_BYTES);
    bytes.push(FORMAT);
    bytes.push(kind as u8);
    bytes.extend_from_slice(payload);
    let mut mac = key.mac();
    mac.update(&bytes);
    bytes.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload of a token of `kind`, once its tag checks out (compared in
/// constant time).
pub fn open(key: &PageTokenKey, kind: TokenKind, token: &str) -> Result<Vec<u8>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| TokenError::Malformed)?;
    if bytes.len() < 2 + TAG_BYTES {
        return Err(TokenError::Malformed);
    }
    if bytes[0] != FORMAT {
        return Err(TokenError::UnknownFormat(bytes[0]));
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    let mut mac = key.mac();
    mac.update(signed);
    mac.verify_slice(tag).map_err(|_| TokenError::BadTag)?;
    if signed[1] != kind as u8 {
        return Err(TokenError::OtherListing);
    }
    Ok(signed[2..].to_vec())
}

/// A ListAtRiskCustomers position: the model version being listed, the
/// filters (a token continues only the listing it came from), and the key
/// `(value_at_risk, customer_id)` of the last customer returned.
#[derive(Debug, Clone, PartialEq)]
pub struct AtRiskCursor {
    pub version: i64,
    pub min_churn_risk: f64,
    pub min_predicted_value: f64,
    pub value_at_risk: f64,
    pub customer_id: CustomerId,
}

impl AtRiskCursor {
    pub fn seal(&self, key: &PageTokenKey) -> String {
        let id = self.customer_id.as_str().as_bytes();
        let mut payload = Vec::with_capacity(32 + id.len());
        payload.extend_from_slice(&self.version.to_be_bytes());
        for v in [
            self.min_churn_risk,
            self.min_predicted_value,
            self.value_at_risk,
        ] {
            payload.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        payload.extend_from_slice(id);
        seal(key, TokenKind::AtRiskCustomers, &payload)
    }

    /// The cursor of a genuine token, checked again as if it came from
    /// anywhere (a leaked key must not open a way to the database).
    pub fn open(key: &PageTokenKey, token: &str) -> Result<Self, TokenError> {
        let payload = open(key, TokenKind::AtRiskCustomers, token)?;
        if payload.len() < 32 {
            return Err(TokenError::Malformed);
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[8 * i..8 * i + 8]);
            b
        };
        let version = i64::from_be_bytes(word(0));
        let float = |i| f64::from_bits(u64::from_be_bytes(word(i)));
        let (min_churn_risk, min_predicted_value, value_at_risk) = (float(1), float(2), float(3));
        let bad = |what: &str| Err(TokenError::BadContent(what.to_owned()));
        if version <= 0 {
            return bad("a model version below 1");
        }
        if [min_churn_risk, min_predicted_value, value_at_risk]
            .iter()
            .any(|v| v.is_nan())
        {
            return bad("a number that is not a number");
        }
        let customer_id = std::str::from_utf8(&payload[32..])
            .map_err(|_| TokenError::BadContent("a customer id that is not UTF-8".into()))
            .and_then(|s| {
                CustomerId::from_stored(s)
                    .map_err(|e| TokenError::BadContent(format!("a customer id that {e}")))
            })?;
        Ok(Self {
            version,
            min_churn_risk,
            min_predicted_value,
            value_at_risk,
            customer_id,
        })
    }
}

/// A ListModels position: the versions before this one come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelsCursor {
    pub before: i64,
}

impl ModelsCursor {
    pub fn seal(&self, key: &PageTokenKey) -> String {
        seal(key, TokenKind::Models, &self.before.to_be_bytes())
    }

    pub fn open(key: &PageTokenKey, token: &str) -> Result<Self, TokenError> {
        let payload = open(key, TokenKind::Models, token)?;
        let bytes: [u8; 8] = payload
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::Malformed)?;
        let before = i64::from_be_bytes(bytes);
        if before <= 1 {
            return Err(TokenError::BadContent("a model version below 2".into()));
        }
        Ok(Self { before })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PageTokenKey {
        PageTokenKey::new(vec![b; 32]).unwrap()
    }

    fn cursor() -> AtRiskCursor {
        AtRiskCursor {
            version: 7,
            min_churn_risk: 0.6,
            min_predicted_value: 0.0,
            value_at_risk: 123.456,
            customer_id: CustomerId::parse("naïve café").unwrap(),
        }
    }

    #[test]
    fn a_sealed_cursor_opens_to_itself() {
        let token = cursor().seal(&key(1));
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(AtRiskCursor::open(&key(1), &token).unwrap(), cursor());
    }

    #[test]
    fn another_key_or_any_changed_character_is_refused() {
        let token = cursor().seal(&key(1));
        assert_eq!(
            AtRiskCursor::open(&key(2), &token).unwrap_err(),
            TokenError::BadTag
        );
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..token.len() {
            for &c in alphabet {
                let mut altered = token.clone().into_bytes();
                if altered[i] == c {
                    continue;
                }
                altered[i] = c;
                let altered = String::from_utf8(altered).unwrap();
                assert!(AtRiskCursor::open(&key(1), &altered).is_err(), "{altered}");
            }
            assert!(AtRiskCursor::open(&key(1), &token[..i]).is_err());
        }
    }

    #[test]
    fn signed_but_impossible_content_is_refused() {
        let k = key(1);
        let mut c = cursor();
        c.version = -1;
        assert!(matches!(
            AtRiskCursor::open(&k, &c.seal(&k)),
            Err(TokenError::BadContent(_))
        ));
        let mut payload = vec![0u8; 32];
        payload[7] = 1;
        payload.push(0); // a NUL customer id
        let token = seal(&k, TokenKind::AtRiskCustomers, &payload);
        assert!(matches!(
            AtRiskCursor::open(&k, &token),
            Err(TokenError::BadContent(_))
        ));
        // A future format is named as such.
        let mut bytes = URL_SAFE_NO_PAD.decode(cursor().seal(&k)).unwrap();
        bytes[0] = 2;
        assert_eq!(
            AtRiskCursor::open(&k, &URL_SAFE_NO_PAD.encode(bytes)).unwrap_err(),
            TokenError::UnknownFormat(2)
        );
    }

    #[test]
    fn a_token_continues_only_its_own_listing() {
        let k = key(1);
        let models = ModelsCursor { before: 9 }.seal(&k);
        assert_eq!(ModelsCursor::open(&k, &models).unwrap().before, 9);
        assert_eq!(
            AtRiskCursor::open(&k, &models).unwrap_err(),
            TokenError::OtherListing
        );
        assert_eq!(
            ModelsCursor::open(&k, &cursor().seal(&k)).unwrap_err(),
            TokenError::OtherListing
        );
    }

    #[test]
    fn keys_are_hex_of_at_least_32_bytes_and_never_printed() {
        assert!("00".repeat(31).parse::<PageTokenKey>().is_err());
        assert!("zz".repeat(32).parse::<PageTokenKey>().is_err());
        let k: PageTokenKey = "ab".repeat(32).parse().unwrap();
        assert!(!format!("{k:?}").contains("ab"));
    }
}
