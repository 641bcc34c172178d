//! The only SQL of the app, each function on one connection that [`super::Store`] lends it.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::StoreError;
use crate::domain::{ShortCode, TargetUrl};

/// Fresh codes tried before giving up; with 62^7 codes, needing a second one is
/// already rare, so reaching this limit means something other than bad luck.
pub const MAX_CODE_ATTEMPTS: usize = 8;

/// The name of the unique constraint on `links.code` in the migration.
const CODE_CONSTRAINT: &str = "links_code_key";

/// The outcome of [`shorten`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortened {
    pub code: ShortCode,
    /// `false` when the URL had been shortened before and its code was reused.
    pub created: bool,
}

/// Gives `url` a code: its existing one if it was shortened before, else a new one
/// from `next_code`. Both races are settled by unique constraints, not by reading
/// first: concurrent requests for one URL meet at `url_hash`, a code collision fails
/// the insert on `links_code_key` and is retried with the next code.
pub async fn shorten(
    conn: &mut PgConnection,
    url: &TargetUrl,
    mut next_code: impl FnMut() -> ShortCode,
) -> Result<Shortened, StoreError> {
    let hash = Sha256::digest(url.as_str().as_bytes()).to_vec();
    for _ in 0..MAX_CODE_ATTEMPTS {
        let code = next_code();
        let inserted = sqlx::query(
            "INSERT INTO links (code, url, url_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (url_hash) DO NOTHING RETURNING id",
        )
        .bind(code.as_str())
        .bind(url.as_str())
        .bind(&hash)
        .fetch_optional(&mut *conn)
        .await;
        match inserted {
            Ok(Some(_)) => {
                return Ok(Shortened {
                    code,
                    created: true,
                })
            }
            Ok(None) => {
                // The conflicting row is committed by now: ON CONFLICT waited for it.
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT code FROM links WHERE url_hash = $1")
                        .bind(&hash)
                        .fetch_optional(&mut *conn)
                        .await?;
                // None only if the row was deleted in between; inserting again is right then.
                if let Some(existing) = existing {
                    let code = ShortCode::parse(&existing)
                        .map_err(|_| StoreError::CorruptCode(existing))?;
                    return Ok(Shortened {
                        code,
                        created: false,
                    });
                }
            }
            Err(sqlx::Error::Database(e)) if e.constraint() == Some(CODE_CONSTRAINT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::NoFreeCode(MAX_CODE_ATTEMPTS))
}

/// The URL behind `code`, if there is one.
pub async fn lookup(
    conn: &mut PgConnection,
    code: &ShortCode,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT url FROM links WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(conn)
        .await?)
}

/// One round trip: PostgreSQL answers.
pub async fn ping(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(conn).await?;
    Ok(())
}
