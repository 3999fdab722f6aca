//! Values every replica shares (`service_settings`), such as the page token
//! signing key.

use super::{Storage, StorageError};

impl Storage {
    /// The shared value `name`: the stored one, or `candidate`, stored now,
    /// when there is none yet. Concurrent first callers on several replicas
    /// all get the one value that was stored first.
    pub async fn shared_value(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        sqlx::query(
            "INSERT INTO service_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        // A statement of its own: it sees a row another replica committed
        // while the insert above waited on it.
        Ok(
            sqlx::query_scalar("SELECT value FROM service_settings WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
