//! The web servers' clocks do not matter: a second instance runs as its own process under
//! libfaketime, an hour ahead, and the two still share one exact limit.

mod limiter_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use limiter_support::*;
use serde_json::json;
use webapp::limiter::Algorithm;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

struct Skewed {
    child: Child,
    base: String,
}

impl Drop for Skewed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `limiter-demo` under faketime (+1 hour), configured through `ROCKET_LIMITER`.
async fn spawn_skewed(limiter_toml: &str) -> Skewed {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is required (apt-get install faketime)"
    );
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_limiter-demo"))
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", "+1h")
        // Monotonic time only drives timers; leaving it alone keeps the runtime sane.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_LOG_LEVEL", "critical")
        .env("ROCKET_LIMITER", limiter_toml)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn limiter-demo");
    let skewed = Skewed {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = http();
    for _ in 0..200 {
        if client
            .get(format!("{}/healthz", skewed.base))
            .send()
            .await
            .is_ok()
        {
            return skewed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("limiter-demo under faketime did not come up");
}

async fn skewed_instance_decides_the_same(algorithm: Algorithm) {
    let prefix = unique_prefix(&format!("skew-{}", algorithm.as_str()));
    let skewed = spawn_skewed(&format!(
        "{{redis_url=\"{}\", timeout_ms=5000, fail_mode=\"closed\", algorithm=\"{}\", key_prefix=\"{prefix}\", \
         policies={{default={{limit=10, window=\"3600s\"}}}}}}",
        redis_url(),
        algorithm.as_str()
    ))
    .await;
    let app = spawn_app(json!({
        "redis_url": redis_url(),
        // Exactness is under test, not speed: a slow answer must not pass as fail-open.
        "timeout_ms": 5000,
        "fail_mode": "closed",
        "algorithm": algorithm.as_str(),
        "key_prefix": prefix,
        "policies": { "default": { "limit": 10, "window": "3600s" } },
    }))
    .await;
    let client = http();

    // Prove the child's clock really is an hour ahead: hyper stamps `Date` from it.
    let res = client
        .get(format!("{}/healthz", skewed.base))
        .send()
        .await
        .expect("healthz");
    let their_date =
        httpdate::parse_http_date(header(&res, "date").expect("Date header")).expect("HTTP date");
    let skew = their_date
        .duration_since(SystemTime::now())
        .expect("child clock ahead")
        .as_secs();
    assert!((3540..=3660).contains(&skew), "child clock skew {skew} s");

    let mut admitted = [0, 0];
    let mut resets = [Vec::new(), Vec::new()];
    for i in 0..30 {
        let base = if i % 2 == 0 { &app.base } else { &skewed.base };
        let res = client
            .get(format!("{base}/code"))
            .send()
            .await
            .expect("request");
        let (_, _, t) = parse_field(header(&res, "RateLimit").expect("RateLimit"), "r", "t");
        resets[i % 2].push(t);
        match res.status().as_u16() {
            200 => admitted[i % 2] += 1,
            429 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(
        admitted[0] + admitted[1],
        10,
        "{}: {admitted:?}",
        algorithm.as_str()
    );
    assert_eq!(
        admitted,
        [5, 5],
        "{}: the skewed instance counts alike",
        algorithm.as_str()
    );
    // Both report the same time to reset, measured on Redis' clock; a clock an hour
    // ahead would otherwise show up as an hour more (or less) here. Sliding-window `t`
    // may reach into the next window, hence two windows as the bound.
    for t in resets.iter().flatten() {
        assert!(*t <= 2 * 3600, "{}: t={t}", algorithm.as_str());
    }
    let (own, theirs) = (resets[0].last().unwrap(), resets[1].last().unwrap());
    assert!(
        own.abs_diff(*theirs) <= 1,
        "{}: t {own} vs {theirs}",
        algorithm.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_ignores_a_web_server_clock_an_hour_off() {
    skewed_instance_decides_the_same(Algorithm::SlidingLog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_ignores_a_web_server_clock_an_hour_off() {
    skewed_instance_decides_the_same(Algorithm::SlidingWindow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_ignores_a_web_server_clock_an_hour_off() {
    skewed_instance_decides_the_same(Algorithm::Gcra).await;
}
