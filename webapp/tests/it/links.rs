//! `POST /shorten` and `GET /<code>` end to end: both body encodings, dedupe (also
//! under 50 concurrent requests to two app instances), every redirect status, the
//! cache, and two instances migrating one fresh database at the same moment.

use rocket::futures::future::join_all;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::Client;
use serde_json::Value;
use sqlx::Row;

use crate::common::{client, figment, metric, TestDb};

async fn shorten_form(client: &Client, url: &str) -> (Status, Value) {
    let body = format!(
        "url={}",
        percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC)
    );
    let res = client
        .post("/shorten")
        .header(ContentType::Form)
        .body(body)
        .dispatch()
        .await;
    (res.status(), res.into_json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn shortens_a_form_field_and_redirects_to_it() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let (status, body) = shorten_form(&client, "https://example.com/some/long/path?q=1").await;
    assert_eq!(status, Status::Ok);
    let code = body["code"].as_str().unwrap();
    assert_eq!(code.len(), 7);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(body["short_url"], format!("/{code}"));
    assert_eq!(body["url"], "https://example.com/some/long/path?q=1");
    assert_eq!(body["created"], true);

    let res = client.get(format!("/{code}")).dispatch().await;
    assert_eq!(res.status(), Status::Found);
    assert_eq!(
        res.headers().get_one("Location"),
        Some("https://example.com/some/long/path?q=1")
    );
}

#[tokio::test]
async fn shortens_json_and_shares_codes_with_the_form() {
    let db = TestDb::create().await;
    let client = client(figment(&db)).await;
    let res = client
        .post("/shorten")
        .header(ContentType::JSON)
        .body(r#"{"url": "HTTP://Example.COM"}"#)
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    let body: Value = res.into_json().await.unwrap();
    assert_eq!(body["url"], "http://example.com/");
    assert_eq!(body["created"], true);

    // Another spelling of the same URL normalises to it and gets its code back.
    let (status, again) = shorten_form(&client, "http://example.com/").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(again["code"], body["code"]);
    assert_eq!(again["created"], false);

    let (_, other) = shorten_form(&client, "http://example.com/other").await;
    assert_ne!(other["code"], body["code"]);
}

#[tokio::test]
async fn public_base_url_makes_short_urls_absolute_and_blocks_loops() {
    let db = TestDb::create().await;
    let client = client(figment(&db).merge(("public_base_url", "https://sho.rt/"))).await;
    let (status, body) = shorten_form(&client, "https://example.org/").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(
        body["short_url"],
        format!("https://sho.rt/{}", body["code"].as_str().unwrap())
    );

    let (status, body) = shorten_form(&client, "https://sho.rt/Ab3xY9z").await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(body["error"], "the url points at this shortener itself");
}

#[tokio::test]
async fn redirect_status_follows_the_configuration() {
    let db = TestDb::create().await;
    for (code, status) in [
        (301, Status::MovedPermanently),
        (302, Status::Found),
        (307, Status::TemporaryRedirect),
        (308, Status::PermanentRedirect),
    ] {
        let client = client(figment(&db).merge(("redirect_status", code))).await;
        let (_, body) = shorten_form(&client, "https://example.net/r").await;
        let res = client
            .get(format!("/{}", body["code"].as_str().unwrap()))
            .dispatch()
            .await;
        assert_eq!(res.status(), status);
        assert_eq!(
            res.headers().get_one("Location"),
            Some("https://example.net/r")
        );
    }
}

#[tokio::test]
async fn a_bad_redirect_status_stops_the_launch() {
    let db = TestDb::create().await;
    let result = Client::tracked(webapp::rocket_from(
        figment(&db).merge(("redirect_status", 200)),
    ))
    .await;
    let Err(error) = result else {
        panic!("the app ignited with redirect_status = 200");
    };
    match error.kind() {
        rocket::error::ErrorKind::FailedFairings(failed) => {
            assert!(
                failed.iter().any(|f| f.name == "App settings"),
                "{failed:?}"
            );
        }
        other => panic!("unexpected ignition error: {other}"),
    }
}

#[tokio::test]
async fn fifty_concurrent_shortens_on_two_instances_make_one_row() {
    let db = TestDb::create().await;
    // 25 requests queue for 8 connections on each instance. The race on the unique
    // constraint is the subject here, not how long a busy pool may keep a request waiting
    // (200 ms by default, which a loaded CI machine can exceed).
    let patient = || figment(&db).merge(("store.acquire_timeout_ms", 10_000));
    let (a, b) = tokio::join!(client(patient()), client(patient()));
    let url = "https://example.com/race";
    let requests = (0..50).map(|i| {
        let client = if i % 2 == 0 { &a } else { &b };
        shorten_form(client, url)
    });
    let answers = join_all(requests).await;

    assert!(answers.iter().all(|(status, _)| *status == Status::Ok));
    let first = &answers[0].1["code"];
    assert!(
        answers.iter().all(|(_, body)| &body["code"] == first),
        "{answers:?}"
    );
    let created = answers
        .iter()
        .filter(|(_, body)| body["created"] == true)
        .count();
    assert_eq!(created, 1);

    let mut conn = db.connect().await;
    let row = sqlx::query("SELECT count(*) AS n, min(code) AS code FROM links")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 1);
    assert_eq!(Some(row.get::<String, _>("code").as_str()), first.as_str());
}

#[tokio::test]
async fn hot_links_are_served_from_the_cache() {
    let db = TestDb::create().await;
    let writer = client(figment(&db)).await;
    let reader = client(figment(&db)).await;
    let (_, body) = shorten_form(&writer, "https://example.com/cached").await;
    let path = format!("/{}", body["code"].as_str().unwrap());

    // The instance that shortened the link knows it without asking the database.
    assert_eq!(
        writer.get(path.as_str()).dispatch().await.status(),
        Status::Found
    );
    // The other instance asks once, then remembers.
    for _ in 0..5 {
        assert_eq!(
            reader.get(path.as_str()).dispatch().await.status(),
            Status::Found
        );
    }
    let writer_metrics = writer
        .get("/metrics")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &writer_metrics,
            r#"shortener_link_lookups_total{source="database"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(
            &writer_metrics,
            r#"shortener_link_lookups_total{source="cache"}"#
        ),
        1.0
    );
    let reader_metrics = reader
        .get("/metrics")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &reader_metrics,
            r#"shortener_link_lookups_total{source="database"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &reader_metrics,
            r#"shortener_link_lookups_total{source="cache"}"#
        ),
        4.0
    );

    // With the row gone, only a cache can still answer.
    let mut conn = db.connect().await;
    sqlx::query("DELETE FROM links")
        .execute(&mut conn)
        .await
        .unwrap();
    let res = reader.get(path.as_str()).dispatch().await;
    assert_eq!(res.status(), Status::Found);
    assert_eq!(
        res.headers().get_one("Location"),
        Some("https://example.com/cached")
    );
    let fresh = client(figment(&db)).await;
    assert_eq!(
        fresh.get(path.as_str()).dispatch().await.status(),
        Status::NotFound
    );
}

#[tokio::test]
async fn two_instances_starting_at_once_on_a_fresh_database_both_come_up() {
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(
        Client::tracked(webapp::rocket_from(figment(&db))),
        Client::tracked(webapp::rocket_from(figment(&db)))
    );
    let (a, b) = (
        a.expect("first instance ignites"),
        b.expect("second instance ignites"),
    );
    let mut conn = db.connect().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, 1);
    let (_, from_a) = shorten_form(&a, "https://example.com/both").await;
    let (_, from_b) = shorten_form(&b, "https://example.com/both").await;
    assert_eq!(from_a["code"], from_b["code"]);
}

#[tokio::test]
async fn long_urls_are_deduplicated_by_hash() {
    let db = TestDb::create().await;
    let client = client(figment(&db).merge(("max_url_length", 20_000))).await;
    // Longer than a btree index row may be, which an index on the URL text would refuse.
    let url = format!("https://example.com/{}", "x".repeat(9000));
    let (status, first) = shorten_form(&client, &url).await;
    assert_eq!(status, Status::Ok, "{first}");
    let (_, second) = shorten_form(&client, &url).await;
    assert_eq!(first["code"], second["code"]);
    assert_eq!(second["created"], false);
}
