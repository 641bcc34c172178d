//! The API's OpenAPI 3.1 document, generated from the routes' `#[utoipa::path]`
//! annotations and the answers' types, served at `GET /openapi.json` and committed as
//! `webapp/openapi.json` (a test fails when the two drift apart).

use rocket::fairing::AdHoc;
use rocket::http::ContentType;
use rocket::State;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ObjectBuilder, RefOr, Response, Type};
use utoipa::{Modify, OpenApi};

use crate::launch::refuse;
use crate::limiter::RateLimitHeaders;
use crate::{api, health, links, metrics, ui};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clusterlab URL shortener",
        description = "Shortens URLs into 7-character codes stored in PostgreSQL and \
            redirects them back. Every route but the operations ones is rate limited per \
            client by a global limiter in Redis; its answers carry the RateLimit headers.\n\n\
            Any method a path does not take is answered 405 with `Allow` (a method the \
            server does not know at all, such as the QUERY draft, 400); every error is \
            JSON `{\"error\": \"...\"}` (HTML for browsers where a page is shown).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        ui::index,
        links::shorten,
        links::redirect,
        health::healthz,
        health::readyz,
        metrics::metrics,
        document,
    ),
    components(schemas(api::ErrorBody)),
    tags(
        (name = "links", description = "Shortening and following links."),
        (name = "operations", description = "Probes, metrics and this document; never limited."),
    ),
    modifiers(&RateLimitHeaders, &ServedByHeader),
)]
struct ApiDoc;

/// `X-Served-By` ([`crate::config::SERVED_BY`]) on every answer of every operation.
struct ServedByHeader;

impl Modify for ServedByHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations(openapi) {
            for response in operation.responses.responses.values_mut() {
                add_string_header(
                    response,
                    crate::config::SERVED_BY,
                    "The web server that answered (`served_by`, the host name in cluster.yaml).",
                );
            }
        }
    }
}

/// Every operation of the document, for modifiers that add to all of them.
pub(crate) fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Declares the string header `name` on `response` (inline responses only).
pub(crate) fn add_string_header(response: &mut RefOr<Response>, name: &str, description: &str) {
    let RefOr::T(response) = response else {
        return;
    };
    let header = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build();
    response.headers.insert(name.to_owned(), header.into());
}

/// The document as pretty JSON with a final newline, as committed in `webapp/openapi.json`.
pub fn json() -> serde_json::Result<String> {
    let mut text = ApiDoc::openapi().to_pretty_json()?;
    text.push('\n');
    Ok(text)
}

/// The document, serialized once at ignition.
struct Document(String);

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.",
        content_type = "application/json", body = Object)))]
#[rocket::get("/openapi.json")]
fn document(document: &State<Document>) -> (ContentType, &str) {
    (ContentType::JSON, &document.0)
}

pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("OpenAPI document", |rocket| async {
        match json() {
            Ok(text) => Ok(rocket
                .manage(Document(text))
                .mount("/", rocket::routes![document])),
            Err(e) => refuse(
                rocket,
                format!("serializing the OpenAPI document failed: {e}"),
            ),
        }
    })
}
