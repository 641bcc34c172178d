//! The body of `POST /shorten`: a form field `url` (what the original tutorial and its
//! k6 script send) or JSON `{"url": "..."}`. Every way a body can be wrong becomes an
//! [`ApiError`] with a 4xx status, so the handler only ever sees a string to validate.

use percent_encoding::percent_decode;
use rocket::data::{ByteUnit, Data, FromData, Outcome};
use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::serde::json::Value;

use crate::api::ApiError;

/// Body size limit when `limits.shorten` is not configured: room for the longest URL
/// anyone should configure, percent-encoded three times over.
pub const DEFAULT_BODY_LIMIT: ByteUnit = ByteUnit::Kibibyte(16);

/// The name of the limit in Rocket's `limits` table.
pub const LIMIT_NAME: &str = "shorten";

/// How the body is encoded, from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Form,
    Json,
}

impl BodyKind {
    pub fn of(content_type: Option<&ContentType>) -> Result<Self, ApiError> {
        let unsupported = || {
            ApiError::new(
                Status::UnsupportedMediaType,
                "send the url as application/x-www-form-urlencoded or application/json",
            )
        };
        match content_type {
            Some(ct) if ct.is_form() => Ok(Self::Form),
            Some(ct) if ct.is_json() => Ok(Self::Json),
            _ => Err(unsupported()),
        }
    }
}

/// Refuses a body the app would have to decode first: it reads bytes as they arrive and
/// decodes no `Content-Encoding`, so a gzipped form must not be taken for a garbled one.
pub fn check_content_encoding<'a>(
    mut encodings: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let foreign = encodings.find_map(|header| {
        header
            .split(',')
            .map(str::trim)
            .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
    });
    match foreign {
        None => Ok(()),
        Some(coding) => Err(ApiError::new(
            Status::UnsupportedMediaType,
            format!(
                "the request body is sent with Content-Encoding `{coding}`, which this \
                 service does not decode; send it unencoded"
            ),
        )),
    }
}

/// The submitted URL, not validated yet.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ShortenInput {
    /// An absolute http or https URL of at most `max_url_length` characters (2048 by
    /// default), without a user name or password, not pointing at the shortener itself.
    /// The schema holds what every accepted URL matches (an http or https scheme, no
    /// control characters); whether the rest parses as a URL with a host is answered 400.
    #[schema(
        example = "https://example.com/some/long/path",
        max_length = 2048,
        pattern = r"^ *[Hh][Tt][Tt][Pp][Ss]?:[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub url: String,
}

impl ShortenInput {
    pub fn parse(kind: BodyKind, body: &[u8]) -> Result<Self, ApiError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
        let url = match kind {
            BodyKind::Form => form_field(text, "url")?,
            BodyKind::Json => json_field(text, "url")?,
        };
        Ok(Self { url })
    }
}

fn form_field(body: &str, name: &str) -> Result<String, ApiError> {
    let mut found = None;
    for pair in body.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_form_component(key)? != name {
            continue;
        }
        if found.is_some() {
            return Err(ApiError::bad_request(format!(
                "the form field `{name}` is given more than once"
            )));
        }
        found = Some(decode_form_component(value)?);
    }
    found.ok_or_else(|| ApiError::bad_request(format!("the form field `{name}` is missing")))
}

/// Percent-decoding is done here rather than by a lossy helper, so that bytes which
/// are not UTF-8 are refused instead of silently becoming U+FFFD.
fn decode_form_component(raw: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| ApiError::bad_request("a form field is not valid UTF-8 once decoded"))
}

fn json_field(body: &str, name: &str) -> Result<String, ApiError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(format!(
            "expected a JSON object such as {{\"{name}\": \"https://example.com\"}}"
        )));
    };
    match object.remove(name) {
        Some(Value::String(url)) => Ok(url),
        None | Some(Value::Null) => Err(ApiError::bad_request(format!(
            "the JSON field `{name}` is missing"
        ))),
        Some(_) => Err(ApiError::bad_request(format!(
            "the JSON field `{name}` must be a string"
        ))),
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for ShortenInput {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        if let Err(e) = check_content_encoding(req.headers().get("Content-Encoding")) {
            return Outcome::Error((e.status, e));
        }
        let kind = match BodyKind::of(req.content_type()) {
            Ok(kind) => kind,
            Err(e) => return Outcome::Error((e.status, e)),
        };
        let limit = req.limits().get(LIMIT_NAME).unwrap_or(DEFAULT_BODY_LIMIT);
        let body = match data.open(limit).into_bytes().await {
            Ok(body) if body.is_complete() => body.into_inner(),
            Ok(_) => {
                let e = ApiError::new(
                    Status::PayloadTooLarge,
                    format!("the request body is larger than {limit}"),
                );
                return Outcome::Error((e.status, e));
            }
            Err(e) => {
                let e = ApiError::bad_request(format!("the request body could not be read: {e}"));
                return Outcome::Error((e.status, e));
            }
        };
        match Self::parse(kind, &body) {
            Ok(input) => Outcome::Success(input),
            Err(e) => Outcome::Error((e.status, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<String, String> {
        ShortenInput::parse(BodyKind::Form, body.as_bytes())
            .map(|i| i.url)
            .map_err(|e| e.message)
    }

    fn json(body: &str) -> Result<String, String> {
        ShortenInput::parse(BodyKind::Json, body.as_bytes())
            .map(|i| i.url)
            .map_err(|e| e.message)
    }

    #[test]
    fn reads_the_form_field() {
        assert_eq!(
            form("url=https%3A%2F%2Fexample.com%2Fa%20b").unwrap(),
            "https://example.com/a b"
        );
        assert_eq!(
            form("other=1&url=http://x.org/?q=a+b").unwrap(),
            "http://x.org/?q=a b"
        );
        assert_eq!(form("url=").unwrap(), "");
        assert_eq!(form("url").unwrap(), "");
    }

    #[test]
    fn refuses_bad_forms() {
        assert!(form("").unwrap_err().contains("missing"));
        assert!(form("link=http://x.org").unwrap_err().contains("missing"));
        assert!(form("url=a&url=b").unwrap_err().contains("more than once"));
        assert!(form("url=%FF%FE").unwrap_err().contains("UTF-8"));
        let raw = ShortenInput::parse(BodyKind::Form, b"url=\xff").unwrap_err();
        assert_eq!(raw.status, Status::BadRequest);
        assert!(raw.message.contains("UTF-8"));
    }

    #[test]
    fn reads_the_json_field() {
        assert_eq!(
            json(r#"{"url": "https://example.com"}"#).unwrap(),
            "https://example.com"
        );
        assert_eq!(json(r#"{"url": "x", "extra": 1}"#).unwrap(), "x");
    }

    #[test]
    fn refuses_bad_json() {
        assert!(json("{").unwrap_err().contains("not valid JSON"));
        assert!(json("[]").unwrap_err().contains("JSON object"));
        assert!(json("{}").unwrap_err().contains("missing"));
        assert!(json(r#"{"url": null}"#).unwrap_err().contains("missing"));
        assert!(json(r#"{"url": 5}"#)
            .unwrap_err()
            .contains("must be a string"));
    }

    #[test]
    fn picks_the_body_kind_from_the_content_type() {
        assert_eq!(BodyKind::of(Some(&ContentType::Form)), Ok(BodyKind::Form));
        assert_eq!(BodyKind::of(Some(&ContentType::JSON)), Ok(BodyKind::Json));
        for ct in [
            None,
            Some(&ContentType::Plain),
            Some(&ContentType::FormData),
        ] {
            assert_eq!(
                BodyKind::of(ct).unwrap_err().status,
                Status::UnsupportedMediaType
            );
        }
    }

    #[test]
    fn refuses_content_encodings_it_does_not_decode() {
        assert!(check_content_encoding(std::iter::empty()).is_ok());
        assert!(check_content_encoding(["identity"].into_iter()).is_ok());
        assert!(check_content_encoding(["Identity, "].into_iter()).is_ok());
        for headers in [
            vec!["gzip"],
            vec!["identity, br"],
            vec!["identity", "deflate"],
        ] {
            let e = check_content_encoding(headers.clone().into_iter()).unwrap_err();
            assert_eq!(e.status, Status::UnsupportedMediaType, "{headers:?}");
            assert!(e.message.contains("does not decode"), "{}", e.message);
        }
    }
}
