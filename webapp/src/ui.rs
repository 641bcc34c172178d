//! `GET /`: the HTML page with the form for browsers, and the tutorial's plain
//! `URL Shortener is running!` for everything else (curl, probes, scripts).

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::content::RawHtml;
use rocket::Either;
use rocket::State;
use serde::Serialize;

use crate::api::{wants_html, Unavailable};
use crate::config::Settings;
use crate::limiter::{RateLimit, TooManyRequests};
use crate::pages::Pages;

/// Whether the client prefers HTML, as a request guard.
struct Browser(bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Browser {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Browser(wants_html(req)))
    }
}

/// The page with the form for browsers (`Accept: text/html` first); a line of text for
/// everything else.
#[utoipa::path(get, path = "/", tag = "links", responses(
    (status = 200, description = "The form, or `URL Shortener is running!`.", content(
        (String = "text/html"),
        (String = "text/plain", example = "URL Shortener is running!"),
    )),
    TooManyRequests,
    Unavailable,
))]
#[rocket::get("/")]
fn index(
    _limit: RateLimit,
    browser: Browser,
    settings: &State<Settings>,
    pages: &State<Pages>,
) -> Result<Either<RawHtml<String>, &'static str>, Status> {
    if browser.0 {
        #[derive(Serialize)]
        struct Index {
            max_url_length: usize,
            page_burst: bool,
        }
        let values = Index {
            max_url_length: settings.url_rules.max_length,
            page_burst: settings.page_burst,
        };
        Ok(Either::Left(pages.render("index.html", &values)?))
    } else {
        Ok(Either::Right("URL Shortener is running!"))
    }
}

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Web UI", |rocket| async {
        rocket
            .attach(crate::pages::stage())
            .mount("/", rocket::routes![index])
    })
}
