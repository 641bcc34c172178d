//! PostgreSQL going away under a served app, through a [`Proxy`] in front of the real
//! server: `POST /shorten` is answered 503 with `Retry-After` at once instead of after the
//! pool's connect timeout, cached links still redirect, `/readyz` says which check fails,
//! and once PostgreSQL is back the app serves again by itself.
//!
//! Bounds here are generous; `outage_latency_report` (ignored) measures the percentiles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{figment, serve, Served, TestDb};
use crate::proxy::{Mode, Proxy};

/// No answer may take longer than this while PostgreSQL is unreachable (the pool's own
/// timeout is 5 s, which is what the app waited before the breaker).
const UPPER_BOUND: Duration = Duration::from_millis(1500);
/// The median answer must be quicker than this.
const MEDIAN_BOUND: Duration = Duration::from_millis(500);

/// An app whose PostgreSQL is reached through a [`Proxy`] the test can turn off.
pub struct Outage {
    pub db: TestDb,
    pub proxy: Proxy,
    pub app: Served,
    pub http: reqwest::Client,
}

impl Outage {
    pub async fn start() -> Outage {
        let db = TestDb::create().await;
        let mut url = url::Url::parse(&db.url).expect("a database URL");
        let upstream: SocketAddr = tokio::net::lookup_host((
            url.host_str().expect("a host").to_owned(),
            url.port().unwrap_or(5432),
        ))
        .await
        .expect("the PostgreSQL host resolves")
        .next()
        .expect("an address");
        let proxy = Proxy::start(upstream).await;
        url.set_ip_host(proxy.addr.ip()).expect("an IP host");
        url.set_port(Some(proxy.addr.port())).expect("a port");
        let figment = figment(&db).merge(("databases.shortener.url", url.as_str()));
        let app = serve(webapp::rocket_from(figment)).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Outage {
            db,
            proxy,
            app,
            http,
        }
    }

    /// The status, `Retry-After` and how long the answer took.
    async fn shorten(&self, target: &str) -> (StatusCode, Option<String>, Duration) {
        let started = Instant::now();
        let res = self
            .http
            .post(self.app.url("/shorten"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("url={target}"))
            .send()
            .await
            .expect("the app answers");
        let elapsed = started.elapsed();
        let retry_after = res
            .headers()
            .get("Retry-After")
            .map(|v| v.to_str().expect("ASCII").to_owned());
        (res.status(), retry_after, elapsed)
    }

    async fn get(&self, path: &str) -> (reqwest::Response, Duration) {
        let started = Instant::now();
        let res = self
            .http
            .get(self.app.url(path))
            .send()
            .await
            .expect("the app answers");
        (res, started.elapsed())
    }
}

fn assert_unavailable(status: StatusCode, retry_after: Option<&str>, elapsed: Duration) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let seconds: u64 = retry_after
        .expect("a 503 carries Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    assert!(elapsed <= UPPER_BOUND, "a 503 took {elapsed:?}");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn outage_is_fast_and_recovers(mode: Mode) {
    let outage = Outage::start().await;
    let (status, _, _) = outage.shorten("https://example.com/before").await;
    assert_eq!(status, StatusCode::OK);
    let (res, _) = outage.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let created: Value = outage
        .http
        .post(outage.app.url("/shorten"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("url=https://example.com/cached")
        .send()
        .await
        .expect("the app answers")
        .json()
        .await
        .expect("JSON");
    let cached = format!("/{}", created["code"].as_str().expect("a code"));
    // Stored behind the app's back, so only the database knows it.
    let mut conn = outage.db.connect().await;
    sqlx::query("INSERT INTO links (code, url, url_hash) VALUES ('Uncach3', 'https://example.com/u', sha256('https://example.com/u'))")
        .execute(&mut conn)
        .await
        .expect("insert a link");

    outage.proxy.set(mode);

    let mut sequential = Vec::new();
    for n in 0..20 {
        let (status, retry_after, elapsed) =
            outage.shorten(&format!("https://example.com/{n}")).await;
        assert_unavailable(status, retry_after.as_deref(), elapsed);
        sequential.push(elapsed);
    }
    assert!(
        median(sequential.clone()) <= MEDIAN_BOUND,
        "503s took {sequential:?}"
    );
    let outage = &outage;
    let concurrent = futures::future::join_all(
        (0..16).map(|n| async move { outage.shorten(&format!("https://example.com/c{n}")).await }),
    )
    .await;
    for (status, retry_after, elapsed) in &concurrent {
        assert_unavailable(*status, retry_after.as_deref(), *elapsed);
    }

    let (res, _) = outage.get(&cached).await;
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "a cached link still redirects"
    );
    assert_eq!(
        res.headers().get("Location").and_then(|v| v.to_str().ok()),
        Some("https://example.com/cached")
    );
    let (res, elapsed) = outage.get("/Uncach3").await;
    let retry_after = res
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_unavailable(res.status(), retry_after.as_deref(), elapsed);

    let (res, elapsed) = outage.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(elapsed <= UPPER_BOUND, "/readyz took {elapsed:?}");
    let ready: Value = res.json().await.expect("JSON");
    assert_eq!(
        ready,
        serde_json::json!({ "status": "not ready", "checks": { "postgres": "failing", "redis": "ok" } })
    );

    outage.proxy.set(Mode::Forward);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = outage.shorten("https://example.com/after").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} 10 s after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (res, _) = outage.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = outage.get("/Uncach3").await;
    assert_eq!(res.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn refused_connections_are_answered_503_at_once_and_the_app_recovers() {
    outage_is_fast_and_recovers(Mode::Refuse).await;
}

#[tokio::test]
async fn a_silent_database_is_answered_503_at_once_and_the_app_recovers() {
    outage_is_fast_and_recovers(Mode::Blackhole).await;
}

/// `cargo test -p webapp --test it outage_latency_report -- --ignored --nocapture`:
/// the latency of `POST /shorten` from the moment PostgreSQL goes away, 8 clients at once.
#[tokio::test]
#[ignore = "a measurement; prints numbers, asserts nothing about speed"]
async fn outage_latency_report() {
    for (mode, name) in [(Mode::Refuse, "refused"), (Mode::Blackhole, "blackholed")] {
        let outage = Outage::start().await;
        let (status, _, _) = outage.shorten("https://example.com/warm").await;
        assert_eq!(status, StatusCode::OK);
        outage.proxy.set(mode);
        let mut samples = Vec::new();
        for round in 0..50 {
            let outage = &outage;
            let answers = futures::future::join_all((0..8).map(|n| async move {
                outage
                    .shorten(&format!("https://example.com/{round}/{n}"))
                    .await
            }))
            .await;
            for (status, _, elapsed) in answers {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                samples.push(elapsed);
            }
        }
        samples.sort();
        let at =
            |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).min(samples.len()) - 1];
        println!(
            "PostgreSQL {name}: {} POST /shorten, 503 latency p50 {:?} p95 {:?} p99 {:?} max {:?}",
            samples.len(),
            at(0.50),
            at(0.95),
            at(0.99),
            samples[samples.len() - 1]
        );
    }
}
