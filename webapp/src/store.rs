//! PostgreSQL storage of links through `rocket_db_pools` (pool `shortener`): the schema
//! comes from `migrations/` at ignition, and [`shorten`] / [`lookup`] are the only SQL.

use rocket::fairing::{self, AdHoc};
use rocket::{Build, Rocket};
use rocket_db_pools::Database;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::domain::{ShortCode, TargetUrl};
use crate::health::{self, ReadinessCheck};

/// Fresh codes tried before giving up; with 62^7 codes, needing a second one is
/// already rare, so reaching this limit means something other than bad luck.
pub const MAX_CODE_ATTEMPTS: usize = 8;

/// The name of the unique constraint on `links.code` in the migration.
const CODE_CONSTRAINT: &str = "links_code_key";

#[derive(Database)]
#[database("shortener")]
pub struct Shortener(PgPool);

impl Shortener {
    pub fn pool(&self) -> &PgPool {
        &self.0
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no unused short code found in {0} attempts")]
    NoFreeCode(usize),
    #[error("the database holds a malformed code {0:?}")]
    CorruptCode(String),
}

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
    pool: &PgPool,
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
        .fetch_optional(pool)
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
                        .fetch_optional(pool)
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
pub async fn lookup(pool: &PgPool, code: &ShortCode) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT url FROM links WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(pool)
        .await?)
}

struct PostgresReady(PgPool);

#[rocket::async_trait]
impl ReadinessCheck for PostgresReady {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.0)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// sqlx's migrator holds a PostgreSQL advisory lock while it runs, so web servers
/// starting together apply the schema once and the others wait, then find it done.
async fn migrate(rocket: Rocket<Build>) -> fairing::Result {
    let Some(db) = Shortener::fetch(&rocket) else {
        return Err(rocket);
    };
    let pool = db.0.clone();
    if let Err(e) = sqlx::migrate!("./migrations").run(&pool).await {
        rocket::error!("database migrations failed: {e}");
        return Err(rocket);
    }
    if let Err(e) = health::register(&rocket, PostgresReady(pool)) {
        rocket::error!("{e}");
        return Err(rocket);
    }
    Ok(rocket)
}

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("PostgreSQL store", |rocket| async {
        rocket
            .attach(Shortener::init())
            .attach(AdHoc::try_on_ignite("Database migrations", migrate))
    })
}
