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
use utoipa::ToSchema;

use crate::api::{ApiError, ErrorBody, NotFound, Unavailable};
use crate::config::Settings;
use crate::domain::{ShortCode, TargetUrl};
use crate::launch::{refuse, skip};
use crate::limiter::{classed, route as class, RateLimit, TooManyRequests};
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
#[derive(Debug, Serialize, ToSchema)]
pub struct ShortenResponse {
    /// The link's name: `GET /{code}` redirects to `url`.
    #[schema(pattern = "^[0-9A-Za-z]{7}$", example = "aZ3k9Qx")]
    pub code: String,
    /// The full short link: `public_base_url` + `/` + code, or `/` + code when unset.
    #[schema(example = "http://127.0.0.1:8080/aZ3k9Qx")]
    pub short_url: String,
    /// The URL as stored (normalised: `HTTP://Example.com` becomes `http://example.com/`).
    #[schema(example = "https://example.com/")]
    pub url: String,
    /// `false` when the URL was shortened before and keeps its code.
    pub created: bool,
}

/// Shortens a URL. The same URL always gets the same code.
#[utoipa::path(post, path = "/shorten", tag = "links",
    request_body(
        description = "The URL, as the form field `url` (what browsers and the tutorial's k6 \
            script send) or as JSON. At most `limits.shorten` bytes (16 KiB by default).",
        content(
            (ShortenInput = "application/x-www-form-urlencoded"),
            (ShortenInput = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "The link, new or as shortened before.",
            body = ShortenResponse,
            links(("follow" = (
                operation_id = "redirect",
                parameters(("code" = "$response.body#/code")),
                description = "The short link redirects to the URL.",
            ))),
        ),
        (status = 400, description = "The body has no usable `url`, or the URL is refused: \
            not absolute http(s), too long, with control characters or credentials, or \
            pointing at the shortener itself.", body = ErrorBody),
        (status = 413, description = "The body is larger than `limits.shorten`.", body = ErrorBody),
        (status = 415, description = "The body is neither a form nor JSON, or is sent with a \
            `Content-Encoding`.", body = ErrorBody),
        TooManyRequests,
        Unavailable,
    ),
)]
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

/// Follows a short link.
#[utoipa::path(get, path = "/{code}", tag = "links",
    params(("code" = String, Path, pattern = "^[0-9A-Za-z]{7}$", description = "The code `POST /shorten` answered. \
        (`/shorten` itself takes only POST and answers other methods with 405.)")),
    responses(
        (status = "3XX", description = "The link: a redirect with the configured \
            `redirect_status`, 302 by default, else 301, 307 or 308. No body.",
            headers(("Location" = String, description = "The URL the code stands for."))),
        (status = 404, description = "No link has this code (HTML for browsers).", content(
            (ErrorBody = "application/json"),
            (String = "text/html"),
        )),
        (status = 405, description = "`/shorten` takes only POST.", body = ErrorBody,
            headers(("Allow" = String, description = "The methods the path takes."))),
        TooManyRequests,
        Unavailable,
    ),
)]
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
        Method::Trace,
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
