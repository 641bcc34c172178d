//! clusterlab's URL shortener: a Rocket 0.5 app that turns long URLs into 7-character
//! codes stored in PostgreSQL and redirects them back, behind nginx on several web
//! servers at once.
//!
//! # Layout
//!
//! Each feature is a stage (an [`AdHoc`](rocket::fairing::AdHoc) fairing) attached by
//! [`rocket_from`], in an order where each stage finds what it needs in managed state:
//!
//! - [`config`]: the app's settings from the figment, validated at ignition.
//! - [`metrics`]: the shared Prometheus registry, request counts and latency, `/metrics`.
//! - [`health`]: `/healthz`, and `/readyz` with checks that later stages register.
//! - [`limiter`]: the Redis-backed global rate limiter: a request guard every route but the
//!   health and metrics ones takes first, its headers, 429/503 answers and Redis readiness.
//! - [`ui`]: `GET /`, the HTML form; [`pages`]: the Tera templates of `templates/`,
//!   compiled in, which it and the not-found page render.
//! - [`store`]: the PostgreSQL pool `shortener`, migrations, the SQL, and the timeouts and
//!   circuit breaker that answer requests at once while PostgreSQL is down.
//! - [`links`]: `POST /shorten`, `GET /<code>` and the in-process link cache.
//! - [`openapi`]: the OpenAPI 3.1 document of all of it, `GET /openapi.json`.
//! - [`api`]: error answers and catchers (JSON for programs, HTML for browsers).
//! - [`domain`]: the newtypes [`domain::ShortCode`] and [`domain::TargetUrl`].
//!
//! [`launch`] starts the binary and turns every reason it cannot start into one message.

pub mod api;
pub mod config;
pub mod domain;
pub mod health;
pub mod launch;
pub mod limiter;
pub mod links;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod store;
pub mod ui;

use clusterlab_contract::secret_env as contract_env;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// Rocket's figment (Rocket.toml and `ROCKET_*` variables) with the passwords of
/// `CLUSTERLAB_REDIS_PASSWORD` / `CLUSTERLAB_POSTGRES_PASSWORD` (or the files their
/// `*_FILE` variables name) put into its URLs.
pub fn figment_from_env() -> Result<Figment, config::ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let redis = config::secret(contract_env::REDIS_PASSWORD, env)?;
    let postgres = config::secret(contract_env::POSTGRES_PASSWORD, env)?;
    config::with_passwords(
        rocket::Config::figment(),
        redis.as_deref(),
        postgres.as_deref(),
    )
}

/// The app configured from `figment`; tests pass their own database URL and port here.
pub fn rocket_from(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(config::stage())
        .attach(metrics::stage())
        .attach(health::stage())
        .attach(limiter::stage())
        .attach(ui::stage())
        .attach(store::stage())
        .attach(links::stage())
        .attach(openapi::stage())
        .register("/", api::catchers())
}
