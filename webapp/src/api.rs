//! How the app answers when it cannot do what was asked: JSON `{"error": "..."}` for
//! programs, an HTML page for browsers, and catchers so that even errors Rocket
//! produces itself (no route, a malformed request) follow that rule.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person to read.
    pub error: String,
    /// On 429 and 503: seconds after which trying again may succeed (as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    pub fn json(&self) -> String {
        // A struct of a string and an integer always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"error"}"#.to_owned())
    }
}

/// A 4xx or 5xx with a message saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: Status,
    pub message: String,
    /// For 405: the methods the path does accept.
    pub allow: Option<&'static str>,
    /// For 503: seconds after which trying again may succeed.
    pub retry_after: Option<u64>,
}

/// A 503 of any route that needs the link store or the rate limiter.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "PostgreSQL or Redis (with `fail_mode = closed`) is unavailable; the answer \
        comes at once while it is known to be down.",
    headers(("Retry-After" = u64, description = "Seconds after which trying again may succeed."))
)]
pub struct Unavailable(pub ErrorBody);

impl ApiError {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            allow: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Status::BadRequest, message)
    }

    /// Details of a server-side failure go to the log, not to the client.
    pub fn unavailable(retry_after_seconds: u64) -> Self {
        Self {
            retry_after: Some(retry_after_seconds),
            ..Self::new(
                Status::ServiceUnavailable,
                "the link store is unavailable; try again",
            )
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = ErrorBody {
            error: self.message,
            retry_after: self.retry_after,
        }
        .json();
        let mut response = Response::build();
        response
            .status(self.status)
            .header(ContentType::JSON)
            .sized_body(body.len(), Cursor::new(body));
        if let Some(allow) = self.allow {
            response.header(Header::new("Allow", allow));
        }
        if let Some(seconds) = self.retry_after {
            response.header(Header::new("Retry-After", seconds.to_string()));
        }
        response.ok()
    }
}

/// Whether the client would rather read HTML: browsers put `text/html` first in
/// `Accept`, while curl's `*/*` and API clients do not.
pub fn wants_html(req: &Request<'_>) -> bool {
    req.accept()
        .map(|accept| accept.preferred().media_type().is_html())
        .unwrap_or(false)
}

/// "No such link" (or no such page), shaped for whoever asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

impl<'r> Responder<'r, 'static> for NotFound {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if wants_html(req) {
            #[derive(Serialize)]
            struct Page<'a> {
                path: &'a str,
            }
            let path = req.uri().path();
            let page = crate::pages::Pages::of(req)?.render(
                "not_found.html",
                &Page {
                    path: path.as_str(),
                },
            )?;
            let mut response = page.respond_to(req)?;
            response.set_status(Status::NotFound);
            Ok(response)
        } else {
            ApiError::new(Status::NotFound, "no link with this code").respond_to(req)
        }
    }
}

#[rocket::catch(404)]
fn not_found() -> NotFound {
    NotFound
}

#[rocket::catch(default)]
fn default_catcher(status: Status, _: &Request<'_>) -> ApiError {
    let message = match status.code {
        400 => "the request is malformed",
        413 => "the request body is too large",
        415 => "unsupported content type",
        422 => "the request could not be understood",
        _ => status.reason().unwrap_or("error"),
    };
    ApiError::new(status, message)
}

pub fn catchers() -> Vec<rocket::Catcher> {
    rocket::catchers![not_found, default_catcher]
}
