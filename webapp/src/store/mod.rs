//! PostgreSQL storage of links through `rocket_db_pools` (pool `shortener`): the schema
//! is migrated at ignition ([`schema`]), [`sql`] holds the queries, and [`Store`] is how
//! requests reach it: a short wait for a connection, a bound on each answer, and a
//! [`breaker`] that refuses at once while PostgreSQL is known to be down.

pub mod breaker;
mod schema;
pub mod sql;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::{self, AdHoc};
use rocket::{Build, Rocket};
use rocket_db_pools::Database;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::config::{Settings, StoreSettings};
use crate::domain::{ShortCode, TargetUrl};
use crate::health::{self, ReadinessCheck};
use crate::launch::{refuse, skip};
use breaker::Breaker;
pub use sql::{Shortened, MAX_CODE_ATTEMPTS};

/// The pool, made by `rocket_db_pools` from `databases.shortener`; its `connect_timeout`
/// bounds how long ignition waits for PostgreSQL, never a request (see [`StoreSettings`]).
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
    #[error("no {waiting_for} from PostgreSQL within {after:?}")]
    Timeout {
        waiting_for: &'static str,
        after: Duration,
    },
    #[error("PostgreSQL is down (circuit open); not tried")]
    CircuitOpen,
    #[error("no unused short code found in {0} attempts")]
    NoFreeCode(usize),
    #[error("the database holds a malformed code {0:?}")]
    CorruptCode(String),
}

impl StoreError {
    /// Whether PostgreSQL could not be reached at all, as opposed to answering with an error.
    fn is_unreachable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::CircuitOpen => true,
            Self::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            Self::NoFreeCode(_) | Self::CorruptCode(_) => false,
        }
    }
}

/// The links in PostgreSQL as requests reach them; cheap to clone, one pool and breaker.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    breaker: Arc<Breaker>,
    settings: StoreSettings,
}

impl Store {
    pub fn new(pool: PgPool, settings: StoreSettings) -> Self {
        Self {
            pool,
            breaker: Arc::default(),
            settings,
        }
    }

    /// Gives `url` a code: its existing one, else a new one from `next_code` (see [`sql::shorten`]).
    pub async fn shorten(
        &self,
        url: &TargetUrl,
        next_code: impl FnMut() -> ShortCode,
    ) -> Result<Shortened, StoreError> {
        let mut conn = self.acquire().await?;
        let answer = self.answer(sql::shorten(&mut conn, url, next_code)).await;
        self.settle(conn, answer)
    }

    /// The URL behind `code`, if there is one.
    pub async fn lookup(&self, code: &ShortCode) -> Result<Option<String>, StoreError> {
        let mut conn = self.acquire().await?;
        let answer = self.answer(sql::lookup(&mut conn, code)).await;
        self.settle(conn, answer)
    }

    /// Seconds a client refused because the store is unavailable is asked to wait: by
    /// then the probe has looked again.
    pub fn retry_after_seconds(&self) -> u64 {
        let millis = u64::try_from(self.settings.probe_interval.as_millis()).unwrap_or(u64::MAX);
        millis.div_ceil(1000).max(1)
    }

    /// `SELECT 1` through the breaker, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.acquire().await?;
        let answer = self.answer(sql::ping(&mut conn)).await;
        self.settle(conn, answer)
    }

    /// A pooled connection, unless the breaker is open.
    async fn acquire(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        if self.breaker.is_open() {
            return Err(StoreError::CircuitOpen);
        }
        self.connect().await
    }

    /// A pooled connection within `acquire_timeout`. The pool's own timeout is ignition's
    /// (seconds); while PostgreSQL refuses connections the pool retries until it expires,
    /// so a request stops waiting here instead.
    async fn connect(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        let after = self.settings.acquire_timeout;
        let connected = match tokio::time::timeout(after, self.pool.acquire()).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => StoreError::Database(e),
            Err(_) => StoreError::Timeout {
                waiting_for: "connection",
                after,
            },
        };
        Err(self.failed(connected))
    }

    async fn answer<T>(
        &self,
        queries: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        tokio::time::timeout(self.settings.query_timeout, queries)
            .await
            .map_err(|_| StoreError::Timeout {
                waiting_for: "answer",
                after: self.settings.query_timeout,
            })
    }

    /// Reports the outcome of the queries run on `conn` to the breaker.
    fn settle<T>(
        &self,
        conn: PoolConnection<Postgres>,
        answer: Result<Result<T, StoreError>, StoreError>,
    ) -> Result<T, StoreError> {
        match answer {
            Err(timeout) => {
                // Cut off mid-query, the connection is in an unknown state; handed back, the
                // pool would ping it, which waits forever on a link that went silent. Closing
                // it frees its slot in the pool at once.
                drop(conn.detach());
                Err(self.failed(timeout))
            }
            Ok(Err(e)) if e.is_unreachable() => Err(self.failed(e)),
            Ok(result) => {
                if self.breaker.record_success() {
                    log::warn!("PostgreSQL answers again: the store takes requests");
                }
                result
            }
        }
    }

    /// Counts `error` against the breaker; the failure that opens it starts the probe.
    fn failed(&self, error: StoreError) -> StoreError {
        if self.breaker.record_failure() {
            log::error!(
                "PostgreSQL unreachable ({error}): refusing store requests at once, probing every {:?}",
                self.settings.probe_interval
            );
            self.spawn_probe();
        }
        error
    }

    /// While the breaker is open, `SELECT 1` every `probe_interval` (bypassing the breaker)
    /// until one succeeds and closes it.
    fn spawn_probe(&self) {
        let store = self.clone();
        tokio::spawn(async move {
            while store.breaker.is_open() {
                tokio::time::sleep(store.settings.probe_interval).await;
                if let Ok(mut conn) = store.connect().await {
                    let answer = store.answer(sql::ping(&mut conn)).await;
                    if let Err(e) = store.settle(conn, answer) {
                        log::debug!("PostgreSQL probe failed: {e}");
                    }
                }
            }
        });
    }
}

struct PostgresReady(Store);

#[rocket::async_trait]
impl ReadinessCheck for PostgresReady {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// sqlx's migrator holds a PostgreSQL advisory lock while it runs, so web servers
/// starting together apply the schema once and the others wait, then find it done.
async fn migrate(rocket: Rocket<Build>) -> fairing::Result {
    let (Some(db), Some(settings)) = (Shortener::fetch(&rocket), rocket.state::<Settings>()) else {
        return skip(
            rocket,
            "store stage skipped: the database pool or the settings stage failed",
        );
    };
    let store = Store::new(db.0.clone(), settings.store.clone());
    if let Err(e) = schema::migrate(&store.pool).await {
        return refuse(rocket, format!("database migrations failed: {e}"));
    }
    if let Err(e) = health::register(&rocket, PostgresReady(store.clone())) {
        return refuse(rocket, e);
    }
    Ok(rocket.manage(store))
}

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("PostgreSQL store", |rocket| async {
        rocket
            .attach(Shortener::init())
            .attach(AdHoc::try_on_ignite("Database migrations", migrate))
    })
}
