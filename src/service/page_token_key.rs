//! The key that signs page tokens, the same on every replica: the
//! configured one (CLVD_PAGE_TOKEN_KEY), or else a random key that the
//! first replica to need one stores in the database and every replica then
//! reads. It is read once per process, on the first token issued or
//! checked, so that a database that is down at start-up delays nothing.

use tokio::sync::OnceCell;

use crate::{
    domain::{PageTokenKey, MIN_KEY_BYTES},
    storage::{Storage, StorageError},
};

/// The `service_settings` name of the key.
const SETTING: &str = "page_token_key";

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
    pub async fn key(&self) -> Result<&PageTokenKey, StorageError> {
        self.key
            .get_or_try_init(|| async {
                let mut candidate = [0u8; MIN_KEY_BYTES];
                getrandom::fill(&mut candidate).map_err(|e| {
                    StorageError::Database(sqlx::Error::Protocol(format!(
                        "no random bytes for the page token key: {e}"
                    )))
                })?;
                let stored = self.storage.shared_value(SETTING, &candidate).await?;
                PageTokenKey::new(stored).map_err(|e| {
                    StorageError::Database(sqlx::Error::Decode(
                        format!("the stored page token key {e}").into(),
                    ))
                })
            })
            .await
    }
}
