//! Devices in the field ([`FieldStore`]): the challenges of proofs of possession. A challenge's
//! row is locked while it is marked used, so two replicas given the same nonce at once accept
//! it once.

use async_trait::async_trait;
use time::OffsetDateTime;
use touchmark_core::TokenId;
use touchmark_core::event::Sha256Hash;
use touchmark_store::{FieldStore, StoredChallenge, codec, to_millis};

use crate::PostgresStore;
use crate::error::Error;

#[async_trait]
impl FieldStore for PostgresStore {
    async fn add_challenge(
        &self,
        nonce_sha256: Sha256Hash,
        token: &TokenId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> touchmark_store::Result<()> {
        let run = async {
            sqlx::query("DELETE FROM field_challenges WHERE expires_at < $1")
                .bind(now)
                .execute(self.pool())
                .await?;
            sqlx::query(
                "INSERT INTO field_challenges (nonce_sha256, token, expires_at)
                 VALUES ($1, $2, $3)",
            )
            .bind(nonce_sha256.0.as_slice())
            .bind(token.as_str())
            .bind(to_millis(expires_at))
            .execute(self.pool())
            .await?;
            Ok::<_, Error>(())
        };
        Ok(run.await?)
    }

    async fn use_challenge(
        &self,
        nonce_sha256: Sha256Hash,
    ) -> touchmark_store::Result<Option<StoredChallenge>> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let row: Option<(String, OffsetDateTime, bool)> = sqlx::query_as(
                "SELECT token, expires_at, used FROM field_challenges
                 WHERE nonce_sha256 = $1 FOR UPDATE",
            )
            .bind(nonce_sha256.0.as_slice())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((token, expires_at, used)) = row else {
                tx.commit().await?;
                return Ok(None);
            };
            if !used {
                sqlx::query("UPDATE field_challenges SET used = true WHERE nonce_sha256 = $1")
                    .bind(nonce_sha256.0.as_slice())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, Error>(Some(StoredChallenge {
                token: TokenId::parse(&token).map_err(|e| codec::corrupt("challenge token", e))?,
                expires_at,
                used_before: used,
            }))
        };
        Ok(run.await?)
    }
}
