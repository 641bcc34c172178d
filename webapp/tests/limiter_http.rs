//! Through HTTP: who is billed (trusted proxies vs spoofed headers), which policy a route
//! gets, and header values checked against the algorithm's state in Redis.

mod limiter_support;

use clusterlab_contract::route;
use limiter_support::*;
use serde_json::{json, Value};
use webapp::limiter::{Algorithm, Window};

async fn statuses(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    times: usize,
) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..times {
        let mut req = client.get(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        out.push(req.send().await.expect("request").status().as_u16());
    }
    out
}

/// A deploy that switches the algorithm finds the previous one's state under its keys;
/// with the algorithm in the key each starts fresh instead of answering WRONGTYPE (which
/// with `fail_mode = "closed"` is a 503 and with `open` no limit at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_algorithm_starts_on_fresh_keys() {
    let prefix = unique_prefix("switch");
    let cycle = [
        Algorithm::SlidingLog,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
        Algorithm::SlidingLog,
    ];
    for (i, algorithm) in cycle.into_iter().enumerate() {
        let app = spawn_app(json!({
            "redis_url": redis_url(),
            "timeout_ms": 5000,
            "fail_mode": "closed",
            "key_prefix": prefix,
            "algorithm": algorithm.as_str(),
            "policies": { "default": { "limit": 2, "window": "60s" } },
        }))
        .await;
        let want: &[u16] = if i == 3 {
            // Back on sliding_log: its own keys, spent by the first round, are still there.
            &[429, 429, 429]
        } else {
            &[200, 200, 429]
        };
        assert_eq!(
            statuses(&http(), &app.url("/x"), &[], 3).await,
            want,
            "round {i}: {}",
            algorithm.as_str()
        );
    }
}

/// A policy in shadow mode decides and reports (headers, metrics) but serves everything;
/// the other policies keep enforcing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_serves_what_it_would_refuse_and_counts_it() {
    let app = spawn_app(json!({
        "redis_url": redis_url(),
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "key_prefix": unique_prefix("shadow"),
        "policies": {
            "default": { "limit": 2, "window": "60s" },
            "redirect": { "limit": 2, "window": "60s", "shadow": true },
        },
    }))
    .await;
    let client = http();
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let res = client.get(app.url("/abc")).send().await.expect("request");
        assert_eq!(res.status().as_u16(), 200, "shadow mode serves");
        assert!(header(&res, "Retry-After").is_none());
        let (_, r, _) = parse_field(header(&res, "RateLimit").expect("RateLimit"), "r", "t");
        remaining.push(r);
    }
    assert_eq!(remaining, [1, 0, 0, 0], "the headers tell the truth");
    // The default policy is not in shadow mode.
    assert_eq!(
        statuses(&client, &app.url("/"), &[], 3).await,
        [200, 200, 429]
    );
    let metrics = metrics_text(&client, &app).await;
    let value = |series: &str| series_value(&metrics, series);
    let decisions = "ratelimit_decisions_total";
    assert_eq!(
        value(&format!(
            "{decisions}{{outcome=\"shadow_limited\",policy=\"redirect\"}}"
        )),
        2.0
    );
    assert_eq!(
        value(&format!(
            "{decisions}{{outcome=\"allowed\",policy=\"redirect\"}}"
        )),
        2.0
    );
    assert_eq!(
        value(&format!(
            "{decisions}{{outcome=\"limited\",policy=\"default\"}}"
        )),
        1.0
    );
    // 1 of 2 left is above 20%; 0 of 2 is near the limit (once per policy here).
    assert_eq!(
        value("ratelimit_near_limit_total{policy=\"redirect\"}"),
        1.0
    );
    assert_eq!(value("ratelimit_near_limit_total{policy=\"default\"}"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let app = spawn_app(json!({
        "redis_url": redis_url(),
        // Exactness is under test, not speed: a slow answer must not pass as fail-open.
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "key_prefix": unique_prefix("spoof"),
        // The peer (127.0.0.1) is not in this list.
        "trusted_proxies": ["10.0.0.0/8"],
        "policies": { "default": { "limit": 3, "window": "60s" } },
    }))
    .await;
    let client = http();
    let mut seen = Vec::new();
    for i in 0..6 {
        let forged = format!("198.51.100.{i}");
        let res = client
            .get(app.url("/x"))
            .header("X-Forwarded-For", &forged)
            .header("X-Real-IP", &forged)
            .send()
            .await
            .expect("request");
        seen.push(res.status().as_u16());
    }
    assert_eq!(seen, [200, 200, 200, 429, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_proxy_are_honoured() {
    let prefix = unique_prefix("trusted");
    let app = spawn_app(json!({
        "redis_url": redis_url(),
        // Exactness is under test, not speed: a slow answer must not pass as fail-open.
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "key_prefix": prefix,
        "trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"],
        "policies": { "default": { "limit": 2, "window": "60s" } },
    }))
    .await;
    let client = http();
    let url = app.url("/x");
    let a = [("X-Forwarded-For", "203.0.113.1")];
    assert_eq!(statuses(&client, &url, &a, 3).await, [200, 200, 429]);
    // Client A prepends a fresh address; the proxy appended its real one (and a
    // trusted inner proxy its own): still A's bucket.
    let forged = [("X-Forwarded-For", "192.0.2.77, 203.0.113.1, 10.0.0.3")];
    assert_eq!(statuses(&client, &url, &forged, 1).await, [429]);
    let b = [("X-Real-IP", "203.0.113.2")];
    assert_eq!(statuses(&client, &url, &b, 3).await, [200, 200, 429]);
    let v6 = [("X-Real-IP", "2001:db8:7:7::1")];
    let v6_same_64 = [("X-Real-IP", "2001:db8:7:7:ffff::2")];
    assert_eq!(statuses(&client, &url, &v6, 1).await, [200]);
    assert_eq!(statuses(&client, &url, &v6_same_64, 2).await, [200, 429]);

    let mut conn = redis_conn(&redis_url()).await;
    for client in ["203.0.113.1", "203.0.113.2", "2001:db8:7:7::/64"] {
        let exists: bool = redis::cmd("EXISTS")
            .arg(clusterlab_contract::redis_key(
                &prefix,
                Algorithm::default(),
                route::DEFAULT,
                Window::from_millis(60_000),
                &client,
            ))
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(exists, "a bucket for {client}");
    }
}

/// Overrides, as the provisioner renders them from cluster.yaml: a network with a policy of
/// its own (its own limit, in its own headers), and inside it one address never limited
/// (no decision, no headers, counted as exempt). Everyone else keeps the usual policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_give_a_network_its_own_limit_and_exempt_an_address() {
    let prefix = unique_prefix("overrides");
    let app = spawn_app(json!({
        "redis_url": redis_url(),
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "key_prefix": prefix,
        "trusted_proxies": ["127.0.0.1/32"],
        "policies": { "default": { "limit": 2, "window": "60s" } },
        "overrides": [
            { "cidr": "203.0.113.0/24", "policies": { "default": { "limit": 4, "window": "60s" } } },
            { "cidr": "203.0.113.9", "unlimited": true },
        ],
    }))
    .await;
    let client = http();
    let url = app.url("/x");
    let usual = [("X-Real-IP", "192.0.2.1")];
    assert_eq!(statuses(&client, &url, &usual, 3).await, [200, 200, 429]);
    let partner = [("X-Real-IP", "203.0.113.5")];
    assert_eq!(
        statuses(&client, &url, &partner, 5).await,
        [200, 200, 200, 200, 429]
    );
    let res = client
        .get(&url)
        .header("X-Real-IP", "203.0.113.6")
        .send()
        .await
        .expect("request");
    assert_eq!(
        header(&res, "RateLimit-Policy"),
        Some("\"default\";q=4;w=60")
    );
    let monitoring = [("X-Real-IP", "203.0.113.9")];
    assert_eq!(statuses(&client, &url, &monitoring, 10).await, [200; 10]);
    let res = client
        .get(&url)
        .header("X-Real-IP", "203.0.113.9")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert!(header(&res, "RateLimit").is_none());
    assert!(header(&res, "RateLimit-Policy").is_none());

    let mut conn = redis_conn(&redis_url()).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(clusterlab_contract::redis_key(
            &prefix,
            Algorithm::default(),
            route::DEFAULT,
            Window::from_millis(60_000),
            &"203.0.113.9",
        ))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(!exists, "an exempt client leaves no state in Redis");
    let metrics = metrics_text(&client, &app).await;
    assert_eq!(
        series_value(
            &metrics,
            "ratelimit_decisions_total{outcome=\"exempt\",policy=\"default\"}"
        ),
        11.0
    );
}

/// What the algorithm's state in Redis says `r` and `t` (in ms) must be right now.
async fn expected_from_state(
    conn: &mut redis::aio::MultiplexedConnection,
    algorithm: Algorithm,
    key: &str,
    limit: u64,
    window_ms: u64,
) -> (u64, f64) {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.expect("TIME");
    let now_us = (secs * 1_000_000 + micros) as f64;
    let w_us = (window_ms * 1000) as f64;
    match algorithm {
        Algorithm::SlidingLog => {
            let log: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(conn)
                .await
                .expect("ZRANGE");
            let live: Vec<f64> = log
                .iter()
                .map(|(_, s)| *s)
                .filter(|s| *s > now_us - w_us)
                .collect();
            let t = live
                .first()
                .map_or(0.0, |oldest| (oldest + w_us - now_us) / 1000.0);
            (limit - live.len() as u64, t)
        }
        Algorithm::Gcra => {
            let stored: String = redis::cmd("GET")
                .arg(key)
                .query_async(conn)
                .await
                .expect("GET");
            let (tat, rem) = stored.split_once(':').expect("tat:rem");
            let tat: f64 = tat.parse::<f64>().unwrap() + rem.parse::<f64>().unwrap() / limit as f64;
            let backlog = (tat - now_us).max(0.0);
            let interval = w_us / limit as f64;
            let remaining = ((w_us - backlog) / interval).floor().max(0.0);
            let t = (backlog - (w_us - (remaining + 1.0) * interval)).max(0.0) / 1000.0;
            (remaining as u64, t)
        }
        Algorithm::SlidingWindow => {
            let (w, c, p): (u64, f64, f64) = redis::cmd("HMGET")
                .arg(key)
                .arg("w")
                .arg("c")
                .arg("p")
                .query_async(conn)
                .await
                .expect("HMGET");
            let now_ms = now_us / 1000.0;
            let window = window_ms as f64;
            let (c, p, elapsed) = match (now_ms / window).floor() as u64 {
                i if i == w => (c, p, now_ms - i as f64 * window),
                i if i == w + 1 => (0.0, c, now_ms - i as f64 * window),
                i => (0.0, 0.0, now_ms - i as f64 * window),
            };
            let used = p * (window - elapsed) / window + c;
            let remaining = (limit as f64 - used).floor().max(0.0);
            let target = (limit as f64 - remaining - 1.0).max(0.0);
            let t = if used <= target {
                0.0
            } else if target >= c {
                (used - target) * window / p
            } else {
                (window - elapsed) + (c - target) * window / c
            };
            (remaining as u64, t)
        }
    }
}

async fn headers_follow_the_state(algorithm: Algorithm) {
    let prefix = unique_prefix(&format!("headers-{}", algorithm.as_str()));
    let app = spawn_app(json!({
        "redis_url": redis_url(),
        // Exactness is under test, not speed: a slow answer must not pass as fail-open.
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "algorithm": algorithm.as_str(),
        "key_prefix": prefix,
        "policies": {
            "default": { "limit": 100, "window": "60s" },
            "redirect": { "limit": 4, "window": "10s" },
        },
    }))
    .await;
    let client = http();
    let mut conn = redis_conn(&redis_url()).await;
    let key = clusterlab_contract::redis_key(
        &prefix,
        algorithm,
        route::REDIRECT,
        Window::from_millis(10_000),
        &"127.0.0.1",
    );
    for i in 0..6u64 {
        let res = client.get(app.url("/abc")).send().await.expect("request");
        let status = res.status().as_u16();
        let what = format!("{} request {i}", algorithm.as_str());
        let policy = header(&res, "RateLimit-Policy").expect("RateLimit-Policy");
        assert_eq!(
            parse_field(policy, "q", "w"),
            ("redirect".into(), 4, 10),
            "{what}"
        );
        let (name, r, t) = parse_field(header(&res, "RateLimit").expect("RateLimit"), "r", "t");
        assert_eq!(name, "redirect");
        let (want_r, want_t_ms) = expected_from_state(&mut conn, algorithm, &key, 4, 10_000).await;
        assert_eq!(r, want_r, "{what}: r");
        assert_eq!(r, 4u64.saturating_sub(i + 1), "{what}: r by count");
        // t is rounded up to seconds and the state was read a moment later.
        let want_t = want_t_ms / 1000.0;
        assert!(
            t as f64 >= want_t - 0.2 && (t as f64) < want_t + 1.0 + 0.2,
            "{what}: t={t}, state says {want_t:.3} s"
        );
        if i < 4 {
            assert_eq!(status, 200, "{what}");
            assert!(header(&res, "Retry-After").is_none(), "{what}");
        } else {
            assert_eq!(status, 429, "{what}");
            let retry: u64 = header(&res, "Retry-After")
                .expect("Retry-After")
                .parse()
                .expect("seconds");
            assert!(
                retry >= t && retry >= 1,
                "{what}: Retry-After {retry} < t {t}"
            );
            let body: Value = res.json().await.expect("json body");
            assert_eq!(
                body,
                json!({ "error": "Rate limit exceeded", "retry_after": retry }),
                "{what}"
            );
        }
    }
    // Another route class has its own policy and budget; health routes are not limited.
    let res = client.get(app.url("/")).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        header(&res, "RateLimit-Policy"),
        Some("\"default\";q=100;w=60")
    );
    let (name, r, _) = parse_field(header(&res, "RateLimit").expect("RateLimit"), "r", "t");
    assert_eq!((name.as_str(), r), ("default", 99));
    let res = client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert!(header(&res, "RateLimit").is_none() && header(&res, "RateLimit-Policy").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_headers_follow_the_log() {
    headers_follow_the_state(Algorithm::SlidingLog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_headers_follow_the_counters() {
    headers_follow_the_state(Algorithm::SlidingWindow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_headers_follow_the_arrival_time() {
    headers_follow_the_state(Algorithm::Gcra).await;
}
