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
//! - [`ui`]: `GET /`, the HTML form (Tera templates in `templates/`).
//! - [`store`]: the PostgreSQL pool `shortener`, migrations, and the SQL.
//! - [`links`]: `POST /shorten`, `GET /<code>` and the in-process link cache.
//! - [`api`]: error answers and catchers (JSON for programs, HTML for browsers).
//! - [`domain`]: the newtypes [`domain::ShortCode`] and [`domain::TargetUrl`].

pub mod api;
pub mod config;
pub mod domain;
pub mod health;
pub mod limiter;
pub mod links;
pub mod metrics;
pub mod store;
pub mod ui;

use clusterlab_contract::secret_env as contract_env;
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

/// The app configured from Rocket.toml and `ROCKET_*` variables, with the passwords of
/// `CLUSTERLAB_REDIS_PASSWORD` / `CLUSTERLAB_POSTGRES_PASSWORD` (or the files their
/// `*_FILE` variables name) put into its URLs.
pub fn rocket() -> Rocket<Build> {
    let figment = rocket::Config::figment();
    let env = |name: &str| std::env::var(name).ok();
    let passwords = config::secret(contract_env::REDIS_PASSWORD, env).and_then(|redis| {
        let postgres = config::secret(contract_env::POSTGRES_PASSWORD, env)?;
        config::with_passwords(figment.clone(), redis.as_deref(), postgres.as_deref())
    });
    match passwords {
        Ok(figment) => rocket_from(figment),
        // Refused at ignition, with the message, like every other bad setting.
        Err(e) => {
            rocket_from(figment).attach(AdHoc::try_on_ignite("Passwords", |rocket| async move {
                rocket::error!("{e}");
                Err(rocket)
            }))
        }
    }
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
        .register("/", api::catchers())
}
