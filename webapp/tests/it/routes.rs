//! Every route answers as documented: the index for curl and for browsers, health,
//! readiness (also when PostgreSQL goes away), metrics, 404s and 405s.

use rocket::http::{Accept, ContentType, Header, Status};
use serde_json::Value;

use crate::common::{client, figment, metric, TestDb};

#[tokio::test]
async fn index_answers_curl_with_plain_text() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let res = client.get("/").header(Accept::Any).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(
        res.into_string().await.as_deref(),
        Some("URL Shortener is running!")
    );
    let res = client.get("/").dispatch().await;
    assert_eq!(
        res.into_string().await.as_deref(),
        Some("URL Shortener is running!")
    );
}

#[tokio::test]
async fn index_answers_browsers_with_the_form() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let res = client
        .get("/")
        .header(Header::new(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    let page = res.into_string().await.unwrap();
    assert!(page.contains(r#"<form id="shorten-form" method="post" action="/shorten">"#));
    assert!(page.contains(r#"maxlength="2048""#));
    assert!(page.contains(r#"id="copy""#));
}

#[tokio::test]
async fn healthz_and_readyz_answer_while_postgres_is_up() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let res = client.get("/healthz").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let body: Value = res.into_json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let res = client.get("/readyz").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let body: Value = res.into_json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn readyz_fails_when_postgres_is_gone_but_healthz_does_not() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let pool = client
        .rocket()
        .state::<webapp::store::Shortener>()
        .expect("the pool is managed")
        .pool();
    pool.close().await;

    let res = client.get("/readyz").dispatch().await;
    assert_eq!(res.status(), Status::ServiceUnavailable);
    let body: Value = res.into_json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    // Check names and ok/failing only: the driver's words (pool state, hosts, users) stay
    // in the log.
    assert_eq!(
        body,
        serde_json::json!({"status": "not ready", "checks": {"postgres": "failing", "redis": "ok"}})
    );

    assert_eq!(client.get("/healthz").dispatch().await.status(), Status::Ok);
    // A lookup that needs the database says so, without leaking internals.
    let res = client.get("/Ab3xY9z").dispatch().await;
    assert_eq!(res.status(), Status::ServiceUnavailable);
    assert_eq!(res.headers().get_one("Retry-After"), Some("1"));
    let body: Value = res.into_json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("unavailable"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_with_latency() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    for _ in 0..3 {
        client.get("/healthz").dispatch().await;
    }
    client.get("/nope1234").dispatch().await;
    client.get("/a/b/c").dispatch().await;

    let res = client.get("/metrics").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(
        res.headers().get_one("Content-Type"),
        Some("text/plain; version=0.0.4")
    );
    let text = res.into_string().await.unwrap();
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="/<code>",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"http_request_duration_seconds_count{method="GET",route="/healthz"}"#
        ),
        3.0
    );
    assert!(text.contains(
        r#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.001"}"#
    ));
}

#[tokio::test]
async fn unknown_codes_are_404_html_for_browsers_and_json_otherwise() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;

    let res = client.get("/Zz9Zz9Z").header(Accept::JSON).dispatch().await;
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    let body: Value = res.into_json().await.unwrap();
    assert_eq!(body["error"], "no link with this code");

    let res = client.get("/Zz9Zz9Z").dispatch().await;
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::JSON));

    let res = client.get("/Zz9Zz9Z").header(Accept::HTML).dispatch().await;
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    assert!(res.into_string().await.unwrap().contains("No such link"));

    // Paths that match no route at all get the same treatment from the catcher.
    let res = client
        .get("/no/such/page")
        .header(Accept::HTML)
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    let res = client.get("/no/such/page").dispatch().await;
    assert_eq!(res.status(), Status::NotFound);
    let body: Value = res.into_json().await.unwrap();
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn impossible_codes_are_404_without_a_database_lookup() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    for path in [
        "/abc",
        "/abcdefgh",
        "/abc-def",
        "/abc_def",
        "/%C3%A4bcdefg",
        "/abc%20de",
    ] {
        let res = client.get(path).dispatch().await;
        assert_eq!(res.status(), Status::NotFound, "{path}");
    }
    let text = client
        .get("/metrics")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert_eq!(
        metric(&text, r#"shortener_link_lookups_total{source="database"}"#),
        0.0
    );

    // A well-formed code does reach the database: the counter above can move.
    client.get("/abcdefg").dispatch().await;
    let text = client
        .get("/metrics")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert_eq!(
        metric(&text, r#"shortener_link_lookups_total{source="database"}"#),
        1.0
    );
}

#[tokio::test]
async fn unsupported_methods_are_405_with_allow() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let cases = [
        (client.get("/shorten"), "POST"),
        (client.put("/shorten"), "POST"),
        (client.delete("/shorten"), "POST"),
        (client.patch("/Ab3xY9z"), "GET, HEAD"),
        (client.post("/Ab3xY9z"), "GET, HEAD"),
        (client.delete("/"), "GET, HEAD"),
        (client.options("/healthz"), "GET, HEAD"),
    ];
    for (req, allow) in cases {
        let res = req.dispatch().await;
        assert_eq!(res.status(), Status::MethodNotAllowed);
        assert_eq!(res.headers().get_one("Allow"), Some(allow));
        let body: Value = res.into_json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("not allowed"));
    }
}
