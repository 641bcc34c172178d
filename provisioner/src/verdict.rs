//! The load test's verdict: k6's per-request samples (its `--out json` stream) judged against the
//! limiter's policies from cluster.yaml. Pure: it reads samples and returns a [`Verdict`];
//! running k6 on the tester host is exec's job.
//!
//! Each request's limiter decision happened somewhere between the moment k6 sent it and the
//! moment the answer arrived, so every judgement here is made on those intervals: a request is
//! only called over-admitted or wrongly rejected when that is certain whatever the network delays.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::spec::{Algorithm, Limiter, Policy};

/// What the run must also meet apart from the limits.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub p95: Duration,
}

/// One HTTP request as k6 reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub client: String,
    /// The route class the request was tagged with (k6 tag `name`): `shorten`, `redirect`, ...
    pub route: String,
    /// When the request was sent, in seconds since the epoch.
    pub start: f64,
    /// When its answer arrived.
    pub end: f64,
    /// 0 for a transport error (k6 got no answer).
    pub status: u16,
}

impl Sample {
    fn admitted(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error("reading k6 samples: {0}")]
    Io(#[from] std::io::Error),
    #[error("k6 samples line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("k6 recorded no HTTP request: the test did not reach the load balancer")]
    NoRequests,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    metric: String,
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct Point {
    time: DateTime<Utc>,
    value: f64,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Reads k6's JSON output (one object per line), keeping one sample per HTTP request: the
/// `http_req_duration` point, whose time is when the answer arrived. Requests without a
/// `client` tag are attributed to `default_client` (scripts sending from one address).
pub fn parse_samples(
    reader: impl BufRead,
    default_client: &str,
) -> Result<Vec<Sample>, VerdictError> {
    let mut samples = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if !line.contains("\"http_req_duration\"") {
            continue;
        }
        let malformed = |message: String| VerdictError::Malformed {
            line: index + 1,
            message,
        };
        let parsed: Line = serde_json::from_str(&line).map_err(|e| malformed(e.to_string()))?;
        if parsed.kind != "Point" || parsed.metric != "http_req_duration" {
            continue;
        }
        let point: Point =
            serde_json::from_value(parsed.data).map_err(|e| malformed(e.to_string()))?;
        let status = match point.tags.get("status") {
            Some(text) => text
                .parse()
                .map_err(|_| malformed(format!("status tag {text:?} is not a number")))?,
            None => 0,
        };
        let end = point.time.timestamp_micros() as f64 / 1e6;
        samples.push(Sample {
            client: point
                .tags
                .get("client")
                .cloned()
                .unwrap_or_else(|| default_client.to_string()),
            route: point.tags.get("name").cloned().unwrap_or_default(),
            start: end - point.value / 1000.0,
            end,
            status,
        });
    }
    Ok(samples)
}

/// How one client's requests of one route class were answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientReport {
    pub client: String,
    /// The policy that applies: the route class if cluster.yaml has one, else `default`.
    pub policy: &'static str,
    pub limit: u32,
    pub window_ms: u64,
    pub requests: usize,
    pub admitted: usize,
    pub limited: usize,
    pub server_errors: usize,
    pub transport_errors: usize,
    pub other: usize,
    /// Admissions counted in consecutive windows from the client's first admission.
    pub admitted_per_window: Vec<usize>,
    /// The most admissions that certainly fell inside one window.
    pub max_in_window: usize,
    /// 429 answers given although fewer than `limit` admissions can have been in their window.
    pub wrongly_limited: usize,
}

/// The whole judgement, printable as the table users read.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub algorithm: Algorithm,
    pub thresholds: Thresholds,
    pub clients: Vec<ClientReport>,
    pub p95: Duration,
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Judges the samples against the limiter's policies: per client and policy, no admission
/// beyond what the algorithm allows in any window and (for the exact sliding log) no
/// rejection while budget was left; for the run, no 5xx, no transport error, and p95
/// latency under its threshold.
pub fn judge(
    samples: &[Sample],
    limiter: &Limiter,
    thresholds: Thresholds,
) -> Result<Verdict, VerdictError> {
    if samples.is_empty() {
        return Err(VerdictError::NoRequests);
    }
    let mut groups: BTreeMap<(&'static str, &str), Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        let (name, _) = limiter.policies.for_route(&sample.route);
        groups
            .entry((name, &sample.client))
            .or_default()
            .push(sample);
    }
    let mut failures = Vec::new();
    let clients: Vec<ClientReport> = groups
        .into_iter()
        .map(|((name, client), mut requests)| {
            let (_, policy) = limiter.policies.for_route(name);
            requests.sort_by(|a, b| a.start.total_cmp(&b.start));
            let report = client_report(client, name, &requests, policy, limiter.algorithm);
            failures.extend(report_failures(&report, limiter.algorithm));
            report
        })
        .collect();
    let p95 = percentile_95(samples);
    if p95 > thresholds.p95 {
        failures.push(format!(
            "p95 latency {} ms is above {} ms",
            p95.as_millis(),
            thresholds.p95.as_millis()
        ));
    }
    Ok(Verdict {
        algorithm: limiter.algorithm,
        thresholds,
        clients,
        p95,
        failures,
    })
}

/// Admissions the algorithm may give in one window: the limit for the exact sliding log;
/// the weighted counters can let the previous window's count fade in (at most twice);
/// GCRA's burst of N plus one emission per W/N.
fn allowed_per_window(limit: u32, algorithm: Algorithm) -> usize {
    let limit = limit as usize;
    match algorithm {
        Algorithm::SlidingLog => limit,
        Algorithm::SlidingWindow => 2 * limit,
        Algorithm::Gcra => (2 * limit).saturating_sub(1),
    }
}

fn report_failures(r: &ClientReport, algorithm: Algorithm) -> Vec<String> {
    let who = format!("{} ({})", r.client, r.policy);
    let allowed = allowed_per_window(r.limit, algorithm);
    let mut failures = Vec::new();
    if r.max_in_window > allowed {
        failures.push(format!(
            "{who}: {} requests admitted within one {} ms window, the policy allows {allowed}",
            r.max_in_window, r.window_ms
        ));
    }
    if r.wrongly_limited > 0 {
        failures.push(format!(
            "{who}: {} requests answered 429 while fewer than {} had been admitted in their window",
            r.wrongly_limited, r.limit
        ));
    }
    for (count, what) in [
        (r.server_errors, "answers were 5xx"),
        (r.transport_errors, "requests got no answer"),
        (r.other, "answers were neither admitted nor 429"),
    ] {
        if count > 0 {
            failures.push(format!("{who}: {count} {what}"));
        }
    }
    failures
}

fn client_report(
    client: &str,
    policy_name: &'static str,
    requests: &[&Sample],
    policy: &Policy,
    algorithm: Algorithm,
) -> ClientReport {
    let window = policy.window.as_millis() as f64 / 1000.0;
    let admitted: Vec<&Sample> = requests.iter().copied().filter(|s| s.admitted()).collect();
    let count = |pred: fn(u16) -> bool| requests.iter().filter(|s| pred(s.status)).count();
    // N+1 admissions whose whole request intervals lie inside one window were certainly
    // decided within that window, whatever the network delays.
    let max_in_window = admitted
        .iter()
        .map(|first| {
            admitted
                .iter()
                .filter(|s| s.start >= first.start && s.end < first.start + window)
                .count()
        })
        .max()
        .unwrap_or(0);
    // A 429 is wrong when, even counting every admission that may have been in its
    // window, there were fewer than the limit. Only the sliding log promises this exactly.
    let wrongly_limited = if algorithm == Algorithm::SlidingLog {
        requests
            .iter()
            .filter(|r| r.status == 429)
            .filter(|r| {
                let possible = admitted
                    .iter()
                    .filter(|s| s.end > r.start - window && s.start <= r.end)
                    .count();
                possible < policy.limit as usize
            })
            .count()
    } else {
        0
    };
    ClientReport {
        client: client.to_string(),
        policy: policy_name,
        limit: policy.limit,
        window_ms: policy.window.as_millis(),
        requests: requests.len(),
        admitted: admitted.len(),
        limited: count(|s| s == 429),
        server_errors: count(|s| s >= 500),
        transport_errors: count(|s| s == 0),
        other: count(|s| s != 0 && s != 429 && !(200..400).contains(&s) && s < 500),
        admitted_per_window: per_window(requests, &admitted, window),
        max_in_window,
        wrongly_limited,
    }
}

/// Admissions in consecutive windows from the first one, each placed at the middle of its
/// request: the table a person reads ("10 10 4"), not what the verdict rests on.
fn per_window(requests: &[&Sample], admitted: &[&Sample], window: f64) -> Vec<usize> {
    let Some(first) = admitted.first() else {
        return Vec::new();
    };
    let last = requests.iter().map(|s| s.start).fold(first.start, f64::max);
    let windows = ((last - first.start) / window).floor() as usize + 1;
    let mut counts = vec![0; windows];
    for s in admitted {
        let midpoint = (s.start + s.end) / 2.0;
        let index = ((midpoint - first.start) / window).floor().max(0.0) as usize;
        counts[index.min(windows - 1)] += 1;
    }
    counts
}

fn percentile_95(samples: &[Sample]) -> Duration {
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.end - s.start).collect();
    latencies.sort_by(f64::total_cmp);
    let rank = ((latencies.len() as f64) * 0.95).ceil() as usize;
    Duration::from_secs_f64(latencies[rank.clamp(1, latencies.len()) - 1].max(0.0))
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "algorithm: {}", self.algorithm.as_str())?;
        writeln!(
            f,
            "{:<16} {:<9} {:>12} {:>8} {:>8} {:>6} {:>4} {:>6} {:>10}  admitted per window",
            "client",
            "policy",
            "limit",
            "requests",
            "admitted",
            "429",
            "5xx",
            "errors",
            "max/window"
        )?;
        for c in &self.clients {
            let windows: Vec<String> = c
                .admitted_per_window
                .iter()
                .map(|n| n.to_string())
                .collect();
            writeln!(
                f,
                "{:<16} {:<9} {:>12} {:>8} {:>8} {:>6} {:>4} {:>6} {:>10}  {}",
                c.client,
                c.policy,
                format!("{}/{}ms", c.limit, c.window_ms),
                c.requests,
                c.admitted,
                c.limited,
                c.server_errors,
                c.transport_errors,
                c.max_in_window,
                windows.join(" ")
            )?;
        }
        writeln!(
            f,
            "p95 latency: {} ms (threshold {} ms)",
            self.p95.as_millis(),
            self.thresholds.p95.as_millis()
        )?;
        if self.holds() {
            write!(f, "verdict: PASS")
        } else {
            write!(f, "verdict: FAIL")?;
            for failure in &self.failures {
                write!(f, "\n  - {failure}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{FailMode, Policies, Window};

    const FAST: Thresholds = Thresholds {
        p95: Duration::from_millis(500),
    };

    fn limiter(algorithm: Algorithm) -> Limiter {
        let policy = |limit, secs: u64| Policy {
            limit,
            window: Window::from_millis(secs * 1000),
        };
        Limiter {
            algorithm,
            fail_mode: FailMode::Open,
            timeout_ms: 50,
            ipv6_prefix: 64,
            key_prefix: "rl:".into(),
            redis_maxmemory: "256mb".into(),
            policies: Policies {
                default: policy(100, 60),
                shorten: policy(3, 10),
                redirect: policy(50, 60),
            },
        }
    }

    fn shorten_at(client: &str, start: f64, status: u16) -> Sample {
        Sample {
            client: client.into(),
            route: "shorten".into(),
            start,
            end: start + 0.01,
            status,
        }
    }

    fn at(start: f64, status: u16) -> Sample {
        shorten_at("10.0.0.9", start, status)
    }

    #[test]
    fn exact_sliding_log_passes() {
        // 1 request/s for 25 s, limit 3 per 10 s: admitted at 0,1,2 then 10,11,12 then 20,21,22.
        let samples: Vec<Sample> = (0..25)
            .map(|t| at(t as f64, if t % 10 < 3 { 200 } else { 429 }))
            .collect();
        let verdict = judge(&samples, &limiter(Algorithm::SlidingLog), FAST).unwrap();
        assert!(verdict.holds(), "{verdict}");
        assert_eq!(verdict.clients[0].policy, "shorten");
        assert_eq!(verdict.clients[0].admitted_per_window, vec![3, 3, 3]);
        assert_eq!(verdict.clients[0].max_in_window, 3);
    }

    #[test]
    fn over_admission_fails() {
        let samples: Vec<Sample> = (0..5).map(|t| at(t as f64, 200)).collect();
        let verdict = judge(&samples, &limiter(Algorithm::SlidingLog), FAST).unwrap();
        assert_eq!(
            verdict.failures,
            vec!["10.0.0.9 (shorten): 5 requests admitted within one 10000 ms window, the policy allows 3"]
        );
    }

    #[test]
    fn rejection_with_budget_left_fails() {
        let samples = vec![at(0.0, 200), at(1.0, 429)];
        let verdict = judge(&samples, &limiter(Algorithm::SlidingLog), FAST).unwrap();
        assert_eq!(verdict.clients[0].wrongly_limited, 1);
        assert!(!verdict.holds());
    }

    #[test]
    fn uncertain_boundaries_are_not_blamed() {
        // The 4th admission's interval straddles the window's end: it may have been decided
        // after the first admission left the window, so this is not over-admission.
        let mut samples = vec![at(0.0, 200), at(1.0, 200), at(2.0, 200)];
        samples.push(Sample {
            start: 9.99,
            end: 10.05,
            ..at(0.0, 200)
        });
        assert!(judge(&samples, &limiter(Algorithm::SlidingLog), FAST)
            .unwrap()
            .holds());
    }

    #[test]
    fn errors_and_slowness_fail() {
        let mut samples = vec![at(0.0, 200), at(0.1, 502), at(0.2, 0)];
        samples.push(Sample {
            start: 0.3,
            end: 2.0,
            ..at(0.0, 200)
        });
        let text = judge(&samples, &limiter(Algorithm::SlidingLog), FAST)
            .unwrap()
            .to_string();
        assert!(text.contains("1 answers were 5xx"), "{text}");
        assert!(text.contains("1 requests got no answer"), "{text}");
        assert!(
            text.contains("p95 latency 1700 ms is above 500 ms"),
            "{text}"
        );
        assert!(text.contains("verdict: FAIL"), "{text}");
    }

    #[test]
    fn clients_and_route_classes_are_judged_separately() {
        let mut samples = Vec::new();
        for client in ["a", "b"] {
            for t in 0..4 {
                samples.push(shorten_at(client, t as f64, if t < 3 { 200 } else { 429 }));
            }
        }
        // Redirects have their own, larger budget.
        for t in 0..10 {
            samples.push(Sample {
                route: "redirect".into(),
                ..shorten_at("a", t as f64, 302)
            });
        }
        let verdict = judge(&samples, &limiter(Algorithm::SlidingLog), FAST).unwrap();
        assert!(verdict.holds(), "{verdict}");
        let groups: Vec<(&str, &str)> = verdict
            .clients
            .iter()
            .map(|c| (c.client.as_str(), c.policy))
            .collect();
        assert_eq!(
            groups,
            vec![("a", "redirect"), ("a", "shorten"), ("b", "shorten")]
        );
    }

    #[test]
    fn gcra_allows_its_burst_plus_rate() {
        let gcra = limiter(Algorithm::Gcra);
        let samples: Vec<Sample> = (0..5).map(|t| at(t as f64, 200)).collect();
        assert!(judge(&samples, &gcra, FAST).unwrap().holds());
        let samples: Vec<Sample> = (0..6).map(|t| at(t as f64, 200)).collect();
        assert!(!judge(&samples, &gcra, FAST).unwrap().holds());
    }

    #[test]
    fn parses_k6_json_lines() {
        let text = r#"{"type":"Metric","data":{"name":"http_req_duration","type":"trend"},"metric":"http_req_duration"}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":500,"tags":{"status":"429","client":"10.77.0.31","name":"shorten"}}}
{"metric":"http_reqs","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":1,"tags":{"status":"429"}}}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-12-01T02:00:11Z","value":20,"tags":{"status":"0"}}}
"#;
        let samples = parse_samples(text.as_bytes(), "10.77.0.30").unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].client, "10.77.0.31");
        assert_eq!(samples[0].route, "shorten");
        assert_eq!(samples[0].status, 429);
        assert!((samples[0].end - samples[0].start - 0.5).abs() < 1e-6);
        assert_eq!(samples[1].client, "10.77.0.30");
        assert_eq!(samples[1].status, 0);
    }

    #[test]
    fn malformed_line_names_its_number() {
        let text = "{\"metric\":\"http_req_duration\",\"type\":\"Point\",\"data\":{\"time\":\"not a time\",\"value\":1}}\n";
        let err = parse_samples(text.as_bytes(), "x").unwrap_err();
        assert!(err.to_string().starts_with("k6 samples line 1:"), "{err}");
    }
}
