//! The shortener's two operations: `POST /shorten` (URL in, code out) and `GET /<code>`
//! (code in, redirect out, served from [`cache::LinkCache`] when the link is hot), plus
//! 405 answers for the methods no route takes.

pub mod cache;
pub mod input;

use std::io::Cursor;
use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};
use rocket::fairing::AdHoc;
use rocket::http::{Header, Method, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::route::{self, Handler, Route};
use rocket::serde::json::Json;
use rocket::{Data, State};
use serde::Serialize;

use crate::api::{ApiError, NotFound};
use crate::config::Settings;
use crate::domain::{ShortCode, TargetUrl};
use crate::launch::{refuse, skip};
use crate::limiter::{classed, route as class, RateLimit};
use crate::store::{Shortened, Store};
use cache::LinkCache;
use input::ShortenInput;

/// Managed state of this stage.
pub struct Links {
    cache: LinkCache,
    lookups: IntCounterVec,
}

impl Links {
    fn new(capacity: usize, registry: &Registry) -> prometheus::Result<Self> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "shortener_link_lookups_total",
                "Lookups of well-formed codes, by where the answer came from",
            ),
            &["source"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        Ok(Self {
            cache: LinkCache::new(capacity),
            lookups,
        })
    }
}

/// The answer to `POST /shorten`.
#[derive(Debug, Serialize)]
pub struct ShortenResponse {
    pub code: String,
    pub short_url: String,
    pub url: String,
    /// `false` when the URL was shortened before and keeps its code.
    pub created: bool,
}

#[rocket::post("/shorten", data = "<input>")]
async fn shorten(
    _limit: RateLimit,
    input: Result<ShortenInput, ApiError>,
    settings: &State<Settings>,
    links: &State<Links>,
    store: &State<Store>,
) -> Result<Json<ShortenResponse>, ApiError> {
    let input = input?;
    let url = TargetUrl::parse(&input.url, &settings.url_rules)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Shortened { code, created } =
        store
            .shorten(&url, ShortCode::generate)
            .await
            .map_err(|e| {
                rocket::error!("shortening failed: {e}");
                ApiError::unavailable(store.retry_after_seconds())
            })?;
    links.cache.insert(code.clone(), url.as_str().into());
    Ok(Json(ShortenResponse {
        short_url: settings.short_url(code.as_str()),
        code: code.to_string(),
        url: url.to_string(),
        created,
    }))
}

/// A redirect with the configured status. The stored URL is the url crate's
/// serialisation (ASCII, no controls), so it is a valid `Location` as it is and is not
/// parsed again on every hit.
pub struct LinkRedirect {
    status: Status,
    location: Arc<str>,
}

impl<'r> Responder<'r, 'static> for LinkRedirect {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .status(self.status)
            .header(Header::new("Location", self.location.to_string()))
            .header(Header::new("Cache-Control", "private, max-age=90"))
            .sized_body(0, Cursor::new(Vec::new()))
            .ok()
    }
}

pub enum FollowError {
    NotFound(NotFound),
    Store(ApiError),
}

impl<'r> Responder<'r, 'static> for FollowError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Self::NotFound(not_found) => not_found.respond_to(req),
            Self::Store(error) => error.respond_to(req),
        }
    }
}

#[rocket::get("/<code>")]
async fn redirect(
    _limit: RateLimit,
    code: &str,
    settings: &State<Settings>,
    links: &State<Links>,
    store: &State<Store>,
) -> Result<LinkRedirect, FollowError> {
    // A code that cannot exist is answered before the cache or the database is asked.
    let code = ShortCode::parse(code).map_err(|_| FollowError::NotFound(NotFound))?;
    let redirect = |location| LinkRedirect {
        status: settings.redirect_status,
        location,
    };
    if let Some(url) = links.cache.get(&code) {
        links.lookups.with_label_values(&["cache"]).inc();
        return Ok(redirect(url));
    }
    links.lookups.with_label_values(&["database"]).inc();
    match store.lookup(&code).await {
        Ok(Some(url)) => {
            let url: Arc<str> = url.into();
            links.cache.insert(code, url.clone());
            Ok(redirect(url))
        }
        // Misses are not cached: the code may be handed out a moment later.
        Ok(None) => Err(FollowError::NotFound(NotFound)),
        Err(e) => {
            rocket::error!("looking up {code} failed: {e}");
            Err(FollowError::Store(ApiError::unavailable(
                store.retry_after_seconds(),
            )))
        }
    }
}

#[rocket::get("/shorten")]
fn shorten_with_get(_limit: RateLimit) -> ApiError {
    method_not_allowed(Method::Get, "POST")
}

fn method_not_allowed(method: Method, allow: &'static str) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            Status::MethodNotAllowed,
            format!("{method} is not allowed here; use {allow}"),
        )
    }
}

/// Answers 405 for any path under a method that no route of the app takes.
#[derive(Clone)]
struct MethodNotAllowed;

#[rocket::async_trait]
impl Handler for MethodNotAllowed {
    async fn handle<'r>(&self, req: &'r Request<'_>, _: Data<'r>) -> route::Outcome<'r> {
        // A hand-written handler takes its guards itself; a limited client gets its 429.
        if let rocket::outcome::Outcome::Error((status, _)) = req.guard::<RateLimit>().await {
            return route::Outcome::Error(status);
        }
        let allow = if req.uri().path().as_str() == "/shorten" {
            "POST"
        } else {
            "GET, HEAD"
        };
        route::Outcome::from(req, method_not_allowed(req.method(), allow))
    }
}

/// Ranked after every real route, so they only catch what nothing else matched.
const FALLBACK_RANK: isize = 100;

fn fallback_routes() -> Vec<Route> {
    [
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
    ]
    .into_iter()
    .map(|method| Route::ranked(FALLBACK_RANK, method, "/<_..>", MethodNotAllowed))
    .collect()
}

pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Links", |rocket| async move {
        let (Some(settings), Some(registry)) =
            (rocket.state::<Settings>(), rocket.state::<Registry>())
        else {
            return skip(
                rocket,
                "links stage skipped: the settings or metrics stage failed or is not attached before it",
            );
        };
        match Links::new(settings.link_cache_capacity, registry) {
            Ok(links) => Ok(rocket
                .manage(links)
                .mount("/", classed(class::SHORTEN, rocket::routes![shorten]))
                .mount("/", classed(class::REDIRECT, rocket::routes![redirect]))
                .mount("/", rocket::routes![shorten_with_get])
                .mount("/", fallback_routes())),
            Err(e) => refuse(rocket, format!("registering link metrics failed: {e}")),
        }
    })
}
