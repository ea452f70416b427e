//! Devices in the field ([`FieldStore`]): the challenges of proofs of possession.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;
use touchmark_core::TokenId;
use touchmark_core::clock::parse_timestamp;
use touchmark_core::event::Sha256Hash;
use touchmark_store::{FieldStore, StoredChallenge, codec};

use crate::{SqliteStore, ts};

#[async_trait]
impl FieldStore for SqliteStore {
    async fn add_challenge(
        &self,
        nonce_sha256: Sha256Hash,
        token: &TokenId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> touchmark_store::Result<()> {
        let token = token.as_str().to_owned();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("DELETE FROM field_challenges WHERE expires_at < ?1")?
                .execute([ts(now)])?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO field_challenges (nonce_sha256, token, expires_at)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![nonce_sha256.0.as_slice(), token, ts(expires_at)])?;
            Ok(())
        })
        .await
    }

    async fn use_challenge(
        &self,
        nonce_sha256: Sha256Hash,
    ) -> touchmark_store::Result<Option<StoredChallenge>> {
        self.write(move |ctx| {
            let row: Option<(String, String, i64)> = ctx
                .conn
                .prepare_cached(
                    "SELECT token, expires_at, used FROM field_challenges WHERE nonce_sha256 = ?1",
                )?
                .query_row([nonce_sha256.0.as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((token, expires_at, used)) = row else {
                return Ok(None);
            };
            if used == 0 {
                ctx.conn
                    .prepare_cached("UPDATE field_challenges SET used = 1 WHERE nonce_sha256 = ?1")?
                    .execute([nonce_sha256.0.as_slice()])?;
            }
            Ok(Some(StoredChallenge {
                token: TokenId::parse(&token).map_err(|e| codec::corrupt("challenge token", e))?,
                expires_at: parse_timestamp(&expires_at)
                    .map_err(|e| codec::corrupt("challenge expiry", e))?,
                used_before: used != 0,
            }))
        })
        .await
    }
}
