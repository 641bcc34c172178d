//! The limiter's part of the API document (`crate::openapi`): its 429 answer, and the
//! `RateLimit-Policy` / `RateLimit` headers on every answer of an operation it limits.

use utoipa::openapi::OpenApi;
use utoipa::{IntoResponses, Modify};

use super::headers::{RATELIMIT, RATELIMIT_POLICY};
use crate::api::ErrorBody;

/// A limited operation's 429: the client's budget under the route's policy is spent.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "The client's budget under this route's policy is spent.",
    headers(("Retry-After" = u64, description = "Seconds until the policy admits a request again."))
)]
pub struct TooManyRequests(pub ErrorBody);

/// Adds the limiter's headers to every answer of every operation that lists a 429, so
/// that each route states only that it is limited (by listing [`TooManyRequests`]).
pub struct RateLimitHeaders;

impl Modify for RateLimitHeaders {
    fn modify(&self, openapi: &mut OpenApi) {
        let headers = [
            (
                RATELIMIT_POLICY,
                "The policy that decided: `\"<name>\";q=<limit>;w=<window seconds>` \
                 (draft-ietf-httpapi-ratelimit-headers-11). Absent when the limiter served \
                 the request without a decision (`fail_mode = open`).",
            ),
            (
                RATELIMIT,
                "The client's budget after this request: `\"<name>\";r=<remaining>;t=<seconds \
                 until quota returns>`. Absent with `RateLimit-Policy`.",
            ),
        ];
        for operation in crate::openapi::operations(openapi) {
            let responses = &mut operation.responses.responses;
            if !responses.contains_key("429") {
                continue;
            }
            for response in responses.values_mut() {
                for (name, description) in headers {
                    crate::openapi::add_string_header(response, name, description);
                }
            }
        }
    }
}
