//! API keys and their scopes: parsing the configured key hashes, hashing a
//! presented key and finding what it may do. Knows nothing of gRPC; the
//! transport's guard ([`crate::api::layers::guard`]) maps each method to a
//! [`Scope`] and asks [`ApiKeys::scopes_of`].
//!
//! Keys are configured only as SHA-256 hashes (hex), so that a leaked
//! configuration does not leak a usable key. A key is a long random secret,
//! so one unsalted hash is enough (there is no password to guess).

use std::{fmt, str::FromStr};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a call may do. A key holds any set of them; none implies another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// IngestService: record and import transactions, delete customers.
    Ingest,
    /// Scoring, reports, and reading or evaluating models.
    Read,
    /// FitModel, and any method not otherwise known (deny by default).
    Admin,
}

impl Scope {
    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [Scope::Ingest, Scope::Read, Scope::Admin]
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::name)
            .collect();
        f.write_str(&names.join("+"))
    }
}

/// One configured key: `<sha256 hex>:<scope>[+<scope>...]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyHash {
    hash: [u8; 32],
    scopes: Scopes,
}

impl FromStr for ApiKeyHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hex_hash, scopes) = s
            .trim()
            .split_once(':')
            .ok_or("an API key is <sha256 hex>:<scopes>, e.g. 3a7b…:ingest+read")?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex_hash, &mut hash).map_err(|_| {
            "the hash of an API key is 64 hex digits (SHA-256; see `clvd hash-key`)"
        })?;
        let mut set = Scopes::default();
        for name in scopes.split('+') {
            let scope = match name.trim() {
                "ingest" => Scope::Ingest,
                "read" => Scope::Read,
                "admin" => Scope::Admin,
                other => {
                    return Err(format!(
                        "unknown scope {other:?}: the scopes are ingest, read and admin"
                    ))
                }
            };
            set.0 |= scope.bit();
        }
        Ok(Self { hash, scopes: set })
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not a secret, but there is no reason to print it.
        write!(f, "***:{}", self.scopes)
    }
}

/// The hex SHA-256 of a key: what the configuration holds.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The configured keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKeyHash>,
}

impl ApiKeys {
    pub fn new(keys: Vec<ApiKeyHash>) -> Self {
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scopes of a presented key, or `None` when no configured key
    /// matches. Every configured hash is compared, in constant time, so the
    /// time taken says nothing about which (or whether a) key matched.
    pub fn scopes_of(&self, presented: &str) -> Option<Scopes> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = Scopes::default();
        let mut matched = subtle::Choice::from(0);
        for key in &self.keys {
            let eq = key.hash.ct_eq(&digest);
            matched |= eq;
            // Branch-free: keep this key's scopes only when it matched.
            found.0 |= key.scopes.0 & 0u8.wrapping_sub(eq.unwrap_u8());
        }
        bool::from(matched).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(entries: &[(&str, &str)]) -> ApiKeys {
        ApiKeys::new(
            entries
                .iter()
                .map(|(key, scopes)| format!("{}:{scopes}", hash_key(key)).parse().unwrap())
                .collect(),
        )
    }

    #[test]
    fn a_key_has_exactly_the_scopes_configured_for_its_hash() {
        let keys = keys(&[("k-ingest", "ingest+read"), ("k-admin", "admin")]);
        let s = keys.scopes_of("k-ingest").unwrap();
        assert!(s.contains(Scope::Ingest) && s.contains(Scope::Read));
        assert!(!s.contains(Scope::Admin));
        let s = keys.scopes_of("k-admin").unwrap();
        assert!(s.contains(Scope::Admin) && !s.contains(Scope::Read));
        assert_eq!(keys.scopes_of("k-other"), None);
        assert_eq!(keys.scopes_of(""), None);
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        // sha256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        let hash = hash_key("k");
        for (entry, says) in [
            ("nocolon".to_owned(), "<sha256 hex>:<scopes>"),
            ("abcd:read".to_owned(), "64 hex digits"),
            (format!("{hash}:write"), "unknown scope \"write\""),
        ] {
            let err = entry.parse::<ApiKeyHash>().unwrap_err();
            assert!(err.contains(says), "{entry}: {err}");
        }
    }
}
