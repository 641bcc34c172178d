//! A minimal app around the limiter: the shortener's routes with dummy bodies and the real
//! health and metrics stages, no database. The tests, `limiter-demo` (run under faketime by a test) and the docs use it.

use rocket::figment::Figment;
use rocket::{get, post, routes, Build, Rocket};

use super::{route, RateLimit};

/// Policy `index` (or `default`).
#[get("/")]
fn index(_limit: RateLimit) -> &'static str {
    "index"
}

/// Policy `redirect` (or `default`).
#[get("/<code>")]
fn redirect(_limit: RateLimit, code: &str) -> String {
    format!("redirect {code}")
}

/// Policy `shorten` (or `default`).
#[post("/shorten")]
fn shorten(_limit: RateLimit) -> &'static str {
    "shorten"
}

/// The demo app on `figment` (use `rocket::Config::figment()` for the usual sources).
pub fn rocket(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(crate::metrics::stage())
        .attach(crate::health::stage())
        .attach(super::stage())
        .mount("/", routes![index])
        .mount("/", super::classed(route::REDIRECT, routes![redirect]))
        .mount("/", super::classed(route::SHORTEN, routes![shorten]))
}
