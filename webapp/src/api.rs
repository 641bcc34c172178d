//! How the app answers when it cannot do what was asked: JSON `{"error": "..."}` for
//! programs, an HTML page for browsers, and catchers so that even errors Rocket
//! produces itself (no route, a malformed request) follow that rule.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::json;
use rocket_dyn_templates::{context, Template};

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
        let body = json!({ "error": self.message }).to_string();
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
            let page = Template::render("not_found", context! { path: req.uri().path().as_str() });
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
