//! Exactness against a real Redis: two app instances share one limit; rejected requests are
//! not recorded; requests in the same instant all count.

mod limiter_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use limiter_support::*;
use serde_json::json;
use webapp::limiter::Algorithm;

async fn exactly_the_limit_across_two_instances(algorithm: Algorithm) {
    let prefix = unique_prefix(&format!("exact-{}", algorithm.as_str()));
    // An hour-long window: GCRA's steady refill (one per 72 s) cannot add an admission
    // while the burst is in flight, so every algorithm must admit exactly the limit.
    let config = json!({
        "redis_url": redis_url(),
        // Exactness is under test, not speed: a slow answer must not pass as fail-open.
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "algorithm": algorithm.as_str(),
        "key_prefix": prefix,
        "policies": { "default": { "limit": 50, "window": "3600s" } },
    });
    let apps = [spawn_app(config.clone()).await, spawn_app(config).await];
    let client = http();
    let requests = (0..300).map(|i| {
        let url = apps[i % 2].url(&format!("/code{i}"));
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    });
    let mut tally = BTreeMap::new();
    for status in join_all(requests).await {
        *tally.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        tally,
        BTreeMap::from([(200, 50), (429, 250)]),
        "{}: statuses",
        algorithm.as_str()
    );
    if algorithm == Algorithm::SlidingLog {
        let mut conn = redis_conn(&redis_url()).await;
        let key = clusterlab_contract::redis_key(
            &prefix,
            algorithm,
            clusterlab_contract::route::DEFAULT,
            clusterlab_contract::Window::from_millis(3_600_000),
            &"127.0.0.1",
        );
        let logged: u64 = redis::cmd("ZCARD")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("ZCARD");
        assert_eq!(logged, 50, "only admissions are recorded");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(
            ttl > 3_500_000 && ttl <= 3_600_000,
            "expiry is the window: {ttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sliding_log_admits_exactly_the_limit_across_two_instances() {
    exactly_the_limit_across_two_instances(Algorithm::SlidingLog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sliding_window_admits_exactly_the_limit_across_two_instances() {
    exactly_the_limit_across_two_instances(Algorithm::SlidingWindow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_admits_exactly_the_limit_across_two_instances() {
    exactly_the_limit_across_two_instances(Algorithm::Gcra).await;
}

/// One request every 100 ms for 3 s against 5 per second. A limiter that recorded
/// rejections would admit 5 and then never again.
async fn keeps_sending(algorithm: Algorithm) -> (usize, Duration) {
    let config = json!({
        "redis_url": redis_url(),
        // Exactness is under test, not speed: a slow answer must not pass as fail-open.
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "algorithm": algorithm.as_str(),
        "key_prefix": unique_prefix(&format!("keeps-{}", algorithm.as_str())),
        "policies": { "default": { "limit": 5, "window": "1000ms" } },
    });
    let app = spawn_app(config).await;
    let client = http();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let started = Instant::now();
    let mut admitted = 0;
    let mut limited_before_readmission = false;
    let mut readmitted = false;
    for _ in 0..30 {
        ticker.tick().await;
        let status = client
            .get(app.url("/abc"))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        match status {
            200 => {
                admitted += 1;
                readmitted |= limited_before_readmission;
            }
            429 => limited_before_readmission = true,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        readmitted,
        "{}: admitted again after being limited",
        algorithm.as_str()
    );
    (admitted, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_readmits_when_the_oldest_admission_leaves_the_window() {
    let (admitted, elapsed) = keeps_sending(Algorithm::SlidingLog).await;
    // 5 in each of the three seconds; each cycle restarts when the oldest admission is
    // 1 s old, so scheduling jitter can cost at most the last one.
    assert!(
        (14..=15).contains(&admitted),
        "admitted {admitted} in {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_readmits_as_the_window_moves() {
    let (admitted, elapsed) = keeps_sending(Algorithm::SlidingWindow).await;
    // Its own definition: weighted previous + current <= 5 at every instant, so at most
    // 5 per fixed second plus 5 in the first partial one.
    let bound = 5 * (elapsed.as_millis() as usize / 1000 + 2);
    assert!(
        admitted > 5 && admitted <= bound,
        "admitted {admitted} in {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_readmits_one_per_emission_interval() {
    let (admitted, elapsed) = keeps_sending(Algorithm::Gcra).await;
    // Burst of 5, then one per 200 ms.
    let bound = 5 + elapsed.as_millis() as usize / 200 + 1;
    assert!(
        admitted > 5 && admitted <= bound,
        "admitted {admitted} in {elapsed:?}"
    );
}
