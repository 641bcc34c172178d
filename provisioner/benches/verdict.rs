//! How long the verdict takes on a million requests: k6's JSON stream read, then judged
//! under each algorithm. A timing to read, not a test: nothing here asserts a duration.

use std::time::{Duration, Instant};

use provisioner::spec::{Algorithm, Limiter, Policies, Policy, Window};
use provisioner::verdict::{judge, K6Run, Thresholds};

const REQUESTS: usize = 1_000_000;

/// 1M requests from 4 clients over 100 s, 1 to 20 ms each, half of them admitted: the
/// sweeps see 500 000 admissions and 500 000 refusals.
fn k6_stream() -> String {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut text = String::with_capacity(REQUESTS * 260);
    let epoch = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
    for i in 0..REQUESTS {
        let latency_us = 1_000 + random() % 19_000;
        let end = epoch + chrono::Duration::microseconds((i as i64) * 100 + latency_us as i64);
        let status = if random() % 2 == 0 { 200 } else { 429 };
        text.push_str(&format!(
            concat!(
                r#"{{"metric":"http_req_duration","type":"Point","data":{{"time":"{}","#,
                r#""value":{},"tags":{{"method":"POST","url":"http://10.77.0.10/shorten","#,
                r#""status":"{}","client":"10.77.0.{}"}}}}}}"#,
                "\n"
            ),
            end.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            latency_us as f64 / 1000.0,
            status,
            30 + i % 4
        ));
    }
    text
}

fn limiter(algorithm: Algorithm) -> Limiter {
    let policy = Policy::one(100_000, Window::from_millis(60_000));
    Limiter::with_defaults(
        algorithm,
        Policies {
            default: policy.clone(),
            shorten: policy.clone(),
            redirect: policy,
        },
    )
}

fn main() {
    let stream = k6_stream();
    let started = Instant::now();
    let run = K6Run::read(stream.as_bytes(), None, 0, "10.77.0.30").expect("a k6 stream");
    println!(
        "read {} k6 samples ({} MB) in {:.2?}",
        run.samples.len(),
        stream.len() / 1_000_000,
        started.elapsed()
    );
    let thresholds = Thresholds {
        p95: Duration::from_millis(500),
    };
    for algorithm in [
        Algorithm::SlidingLog,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ] {
        let started = Instant::now();
        let verdict = judge(&run, &limiter(algorithm), thresholds).expect("a verdict");
        println!(
            "judged {} samples under {} in {:.2?} ({} failures)",
            run.samples.len(),
            algorithm.as_str(),
            started.elapsed(),
            verdict.failures.len()
        );
    }
}
