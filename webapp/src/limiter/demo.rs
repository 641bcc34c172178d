//! A minimal app around the limiter: the routes the shortener will have, with dummy
//! bodies. The tests, `limiter-demo` (run under faketime by a test) and the docs use it.

use prometheus::{Encoder, Registry, TextEncoder};
use rocket::figment::Figment;
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, post, routes, Build, Rocket, State};

use super::{Limiter, RateLimit};

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

#[get("/healthz")]
fn healthz() -> &'static str {
    "ok"
}

#[get("/readyz")]
async fn readyz(limiter: &State<Limiter>) -> (Status, Json<Value>) {
    match limiter.ping().await {
        Ok(()) => (Status::Ok, Json(json!({ "redis": "ok" }))),
        Err(error) => (
            Status::ServiceUnavailable,
            Json(json!({ "redis": error.to_string() })),
        ),
    }
}

#[get("/metrics")]
fn metrics(registry: &State<Registry>) -> Result<String, Status> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .map_err(|_| Status::InternalServerError)?;
    String::from_utf8(out).map_err(|_| Status::InternalServerError)
}

/// The demo app on `figment` (use `rocket::Config::figment()` for the usual sources).
pub fn rocket(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .manage(Registry::new())
        .attach(super::stage())
        .mount(
            "/",
            routes![index, redirect, shorten, healthz, readyz, metrics],
        )
}
