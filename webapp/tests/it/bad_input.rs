//! A table of bad requests to `POST /shorten` (and wrong methods): each one gets the
//! expected 4xx with a JSON `{"error": "..."}` naming the problem, never a 5xx.

use rocket::http::{ContentType, Header, Method};
use serde_json::Value;

use crate::common::{client, figment, TestDb};

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    content_encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// A fragment of the error message.
    says: &'static str,
}

fn form(name: &'static str, body: impl Into<Vec<u8>>, says: &'static str) -> Case {
    Case {
        name,
        method: Method::Post,
        path: "/shorten",
        content_type: Some("application/x-www-form-urlencoded"),
        content_encoding: None,
        body: body.into(),
        status: 400,
        says,
    }
}

fn json(name: &'static str, body: impl Into<Vec<u8>>, says: &'static str) -> Case {
    Case {
        content_type: Some("application/json"),
        ..form(name, body, says)
    }
}

fn with_status(case: Case, status: u16) -> Case {
    Case { status, ..case }
}

fn encoded(case: Case, coding: &'static str) -> Case {
    Case {
        content_encoding: Some(coding),
        status: 415,
        ..case
    }
}

fn cases() -> Vec<Case> {
    let long = format!("url=https://example.com/{}", "a".repeat(2100));
    let huge = format!("url=https://example.com/{}", "a".repeat(20 * 1024));
    let method = |name, method, path| Case {
        method,
        path,
        content_type: None,
        status: 405,
        ..form(name, "", "not allowed")
    };
    vec![
        form("empty body", "", "`url` is missing"),
        form(
            "other field only",
            "link=https%3A%2F%2Fexample.com",
            "`url` is missing",
        ),
        form("empty field", "url=", "the url is empty"),
        form("blank field", "url=+++", "the url is empty"),
        form(
            "field twice",
            "url=http://a.com&url=http://b.com",
            "more than once",
        ),
        form("plain words", "url=not+a+url", "not absolute"),
        form("no scheme", "url=example.com/path", "not absolute"),
        form("relative path", "url=%2Fpath%2Fonly", "not absolute"),
        form(
            "javascript",
            "url=javascript%3Aalert(1)",
            "scheme `javascript`",
        ),
        form(
            "data",
            "url=data%3Atext%2Fhtml%2C%3Cscript%3E",
            "scheme `data`",
        ),
        form("file", "url=file%3A%2F%2F%2Fetc%2Fpasswd", "scheme `file`"),
        form("ftp", "url=ftp%3A%2F%2Fexample.com%2Ff", "scheme `ftp`"),
        form("mailto", "url=mailto%3Aa%40example.com", "scheme `mailto`"),
        form("no host", "url=http%3A%2F%2F", "no host"),
        form("scheme only", "url=https%3A", "no host"),
        form(
            "port too big",
            "url=http%3A%2F%2Fexample.com%3A99999%2F",
            "invalid port",
        ),
        form(
            "port not a number",
            "url=http%3A%2F%2Fexample.com%3Aport%2F",
            "invalid port",
        ),
        form(
            "negative port",
            "url=http%3A%2F%2Fexample.com%3A-1%2F",
            "invalid port",
        ),
        form(
            "newline",
            "url=http%3A%2F%2Fexa%0Ample.com%2F",
            "control characters",
        ),
        form(
            "tab",
            "url=http%3A%2F%2Fexample.com%2F%09",
            "control characters",
        ),
        form(
            "nul",
            "url=http%3A%2F%2Fexample.com%2F%00",
            "control characters",
        ),
        form(
            "C1 control",
            "url=http%3A%2F%2Fexample.com%2F%C2%85",
            "control characters",
        ),
        form(
            "space in host",
            "url=http%3A%2F%2Fexa+mple.com%2F",
            "not valid",
        ),
        form("broken IPv6", "url=http%3A%2F%2F%5B%3A%3A1%2F", "not valid"),
        form("too long", long, "maximum is 2048"),
        form(
            "own host",
            "url=https%3A%2F%2Fsho.rt%2FAb3xY9z",
            "shortener itself",
        ),
        form(
            "own host, upper case with trailing dot",
            "url=https%3A%2F%2FSHO.RT.%2FAb3xY9z",
            "shortener itself",
        ),
        form(
            "own host, http on the default port",
            "url=http%3A%2F%2Fsho.rt%3A443%2FAb3xY9z",
            "shortener itself",
        ),
        form(
            "userinfo that looks like a host",
            "url=https%3A%2F%2Fpaypal.com%40evil.example%2F",
            "leads to evil.example",
        ),
        form(
            "user and password",
            "url=https%3A%2F%2Fuser%3Apw%40example.com%2F",
            "credentials are not accepted",
        ),
        encoded(
            form(
                "gzip body",
                b"\x1f\x8b\x08\x00".to_vec(),
                "Content-Encoding `gzip`",
            ),
            "gzip",
        ),
        encoded(
            json("brotli JSON", "{\"url\": \"https://example.com\"}", "`br`"),
            "identity, br",
        ),
        encoded(
            form("deflate", "url=https://example.com", "does not decode"),
            "deflate",
        ),
        form(
            "raw bytes not UTF-8",
            b"url=http://example.com/\xff\xfe".to_vec(),
            "not valid UTF-8",
        ),
        form(
            "percent-encoded bytes not UTF-8",
            "url=http%3A%2F%2Fexample.com%2F%FF",
            "not valid UTF-8",
        ),
        with_status(form("body over the limit", huge, "larger than"), 413),
        json("JSON syntax error", "{\"url\": ", "not valid JSON"),
        json("JSON array", "[\"https://example.com\"]", "JSON object"),
        json("JSON without url", "{}", "`url` is missing"),
        json("JSON null url", "{\"url\": null}", "`url` is missing"),
        json("JSON number url", "{\"url\": 42}", "must be a string"),
        json("JSON empty url", "{\"url\": \"\"}", "the url is empty"),
        json(
            "JSON javascript",
            "{\"url\": \"javascript:alert(1)\"}",
            "scheme `javascript`",
        ),
        json(
            "JSON not UTF-8",
            b"{\"url\": \"http://example.com/\xff\"}".to_vec(),
            "not valid UTF-8",
        ),
        Case {
            content_type: Some("text/plain"),
            status: 415,
            ..form(
                "text/plain",
                "https://example.com",
                "application/x-www-form-urlencoded",
            )
        },
        Case {
            content_type: None,
            status: 415,
            ..form(
                "no content type",
                "url=https://example.com",
                "application/json",
            )
        },
        Case {
            content_type: Some("multipart/form-data; boundary=x"),
            status: 415,
            ..form("multipart", "--x\r\n", "application/json")
        },
        Case {
            content_type: Some("application/xml"),
            status: 415,
            ..form("xml", "<url>https://example.com</url>", "application/json")
        },
        method("GET /shorten", Method::Get, "/shorten"),
        method("PUT /shorten", Method::Put, "/shorten"),
        method("DELETE a code", Method::Delete, "/Ab3xY9z"),
        method("PATCH /", Method::Patch, "/"),
    ]
}

#[tokio::test]
async fn every_bad_input_gets_a_4xx_saying_what_is_wrong() {
    let db = TestDb::create().await;
    let client = client(figment(&db).merge(("public_base_url", "https://sho.rt"))).await;
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in cases {
        let mut req = client.req(case.method, case.path).body(&case.body);
        if let Some(ct) = case.content_type {
            req = req.header(Header::new("Content-Type", ct));
        }
        if let Some(coding) = case.content_encoding {
            req = req.header(Header::new("Content-Encoding", coding));
        }
        let res = req.dispatch().await;
        let status = res.status();
        let json = res.content_type() == Some(ContentType::JSON);
        let body: Option<Value> = res.into_json().await;
        let message = body
            .as_ref()
            .and_then(|b| b["error"].as_str())
            .unwrap_or_default()
            .to_owned();
        if status.code != case.status || !json || !message.contains(case.says) {
            failures.push(format!(
                "{}: expected {} saying {:?}, got {} {:?}",
                case.name, case.status, case.says, status, message
            ));
        }
        assert!(status.code < 500, "{}: answered {status}", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let mut conn = db.connect().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM links")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a bad input was stored");
}

#[tokio::test]
async fn a_loopback_shortener_refuses_links_to_every_spelling_of_itself() {
    let db = TestDb::create().await;
    let client = client(figment(&db).merge(("public_base_url", "http://127.0.0.1:8080"))).await;
    for url in [
        "http://127.0.0.1:8080/Ab3xY9z",
        "http://localhost:8080/Ab3xY9z",
        "http://LocalHost.:8080/Ab3xY9z",
        "http://[::1]:8080/Ab3xY9z",
        "http://[::ffff:127.0.0.1]:8080/Ab3xY9z",
        "http://127.1:8080/Ab3xY9z",
        "http://0x7f000001:8080/Ab3xY9z",
        "http://0.0.0.0:8080/Ab3xY9z",
    ] {
        let res = client
            .post("/shorten")
            .json(&serde_json::json!({ "url": url }))
            .dispatch()
            .await;
        assert_eq!(res.status().code, 400, "{url}");
        let body: Value = res.into_json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("shortener itself"),
            "{url}: {body}"
        );
    }
    // Another port of this machine is another service.
    let res = client
        .post("/shorten")
        .json(&serde_json::json!({ "url": "http://localhost:9090/" }))
        .dispatch()
        .await;
    assert_eq!(res.status().code, 200);
}

#[tokio::test]
async fn userinfo_is_accepted_only_when_configured() {
    let db = TestDb::create().await;
    let client = client(figment(&db).merge(("allow_userinfo", true))).await;
    let res = client
        .post("/shorten")
        .json(&serde_json::json!({ "url": "https://user:pw@example.com/" }))
        .dispatch()
        .await;
    assert_eq!(res.status().code, 200);
    let body: Value = res.into_json().await.unwrap();
    assert_eq!(body["url"], "https://user:pw@example.com/");
}
