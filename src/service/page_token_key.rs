//! The key that signs page tokens, the same on every replica: the
//! configured one (CLVD_PAGE_TOKEN_KEY), or else a random key that the
//! first replica to need one stores in the database and every replica then
//! reads. It is read once per process, on the first token issued or
//! checked, so that a database that is down at start-up delays nothing.

use tokio::sync::OnceCell;

use crate::{
    domain::{KeyError, PageTokenKey, MIN_KEY_BYTES},
    storage::{Storage, StorageError},
};

/// The `service_settings` name of the key.
const SETTING: &str = "page_token_key";

/// Why there is no key to sign or check tokens with.
#[derive(Debug, thiserror::Error)]
pub enum PageTokenKeyError {
    /// The system gave no random bytes for a first key (INTERNAL).
    #[error("no random bytes for the page token key")]
    NoRandomness(#[source] getrandom::Error),
    /// The key stored in the database is unusable (INTERNAL).
    #[error("the stored page token key {0}")]
    StoredKeyUnusable(#[source] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct PageTokenKeys {
    storage: Storage,
    key: OnceCell<PageTokenKey>,
}

impl PageTokenKeys {
    pub fn new(storage: Storage, configured: Option<PageTokenKey>) -> Self {
        Self {
            storage,
            key: OnceCell::new_with(configured),
        }
    }

    /// The key, read (or first stored) on the first call.
    pub async fn key(&self) -> Result<&PageTokenKey, PageTokenKeyError> {
        self.key
            .get_or_try_init(|| async {
                let mut candidate = [0u8; MIN_KEY_BYTES];
                getrandom::fill(&mut candidate).map_err(PageTokenKeyError::NoRandomness)?;
                let stored = self.storage.shared_value(SETTING, &candidate).await?;
                PageTokenKey::new(stored).map_err(PageTokenKeyError::StoredKeyUnusable)
            })
            .await
    }
}
