//! The limiter inside the real app: every route but health and metrics answers with the
//! RateLimit headers, and a client past its budget gets the 429 of the limiter.

use rocket::http::{ContentType, Status};
use serde_json::Value;

use crate::common::{client, figment, limiter_config, TestDb};

#[tokio::test]
async fn every_route_but_health_and_metrics_is_limited() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let limited = [
        client.get("/"),
        client.get("/Ab3xY9z"),
        client.get("/not-a-code"),
        client.get("/shorten"),
        client
            .post("/shorten")
            .header(ContentType::Form)
            .body("url=https://example.com/limited"),
        client.delete("/Ab3xY9z"),
    ];
    for request in limited {
        let res = request.dispatch().await;
        let status = res.status();
        assert!(
            res.headers().get_one("RateLimit-Policy").is_some()
                && res.headers().get_one("RateLimit").is_some(),
            "a {status} answer without RateLimit headers"
        );
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let res = client.get(path).dispatch().await;
        assert_eq!(res.status(), Status::Ok, "{path}");
        assert!(
            res.headers().get_one("RateLimit").is_none(),
            "{path} must not be limited"
        );
    }
}

#[tokio::test]
async fn shortening_past_the_limit_is_429_with_retry_after() {
    let db = TestDb::create().await;
    let client = client(figment(&db).merge(("limiter", limiter_config(&db, 2)))).await;
    let shorten = |n: u32| {
        client
            .post("/shorten")
            .header(ContentType::Form)
            .body(format!("url=https://example.com/{n}"))
            .dispatch()
    };
    assert_eq!(shorten(1).await.status(), Status::Ok);
    let second = shorten(2).await;
    assert_eq!(second.status(), Status::Ok);
    assert!(
        second
            .headers()
            .get_one("RateLimit")
            .is_some_and(|v| v.contains(";r=0;")),
        "{:?}",
        second.headers().get_one("RateLimit")
    );
    let third = shorten(3).await;
    assert_eq!(third.status(), Status::TooManyRequests);
    let retry_after: u64 = third
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = serde_json::from_str(&third.into_string().await.unwrap()).unwrap();
    assert_eq!(body["error"], "Rate limit exceeded");
    assert_eq!(body["retry_after"], retry_after);
}
