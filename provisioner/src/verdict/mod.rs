//! The load test's verdict: a k6 run (its `--out json` stream of per-request samples and
//! checks, its summary and exit code) judged against the limiter's policies from cluster.yaml.
//! Pure: it reads k6's outputs and returns a [`Verdict`]; running k6 on the tester host is
//! exec's job.
//!
//! Each request's limiter decision happened somewhere between the moment k6 sent it and the
//! moment the answer arrived, so every judgement here is made on those intervals: a request is
//! only called over-admitted or wrongly rejected when that is certain whatever the network delays.
//!
//! # Layout
//! - `k6`: k6's outputs read — samples, checks, crossed thresholds, exit code.
//! - `classify`: a request's route class from its method and URL, as the web app routes it.
//! - `bounds`: each algorithm's bounds, derived from its Lua script, and the sweeps (sorted
//!   once, O(n log n)) that hold a client's answers to them.

mod bounds;
mod classify;
mod k6;
mod shadow;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::spec::{Algorithm, Limiter, Policy};
use bounds::{Crowd, Interval};

pub use classify::route_class;
pub use k6::{CheckCount, K6Run};

/// What the run must also meet apart from the limits.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub p95: Duration,
}

/// One HTTP request as k6 reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub client: String,
    /// The route class of the request's method and URL ([`route_class`]).
    pub route: &'static str,
    /// When the request was sent, in microseconds since the epoch (rounded down).
    pub start: i64,
    /// When its answer arrived (rounded up).
    pub end: i64,
    /// 0 for a transport error (k6 got no answer).
    pub status: u16,
    /// The web host that answered (its `X-Served-By`); `None` when the answer named none or
    /// the script did not report it.
    pub served_by: Option<String>,
}

impl Sample {
    fn admitted(&self) -> bool {
        (200..400).contains(&self.status)
    }

    fn interval(&self) -> Interval {
        Interval {
            start: self.start,
            end: self.end,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error("reading k6 samples: {0}")]
    Io(#[from] std::io::Error),
    #[error("k6 samples line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error(
        "k6 samples line {line}: {request:?} is in none of the web app's limited route classes \
         (POST /shorten, GET /<code>, GET / and the other methods)"
    )]
    Unclassified { line: usize, request: String },
    #[error("k6 summary: {0}")]
    Summary(String),
    #[error("k6 recorded no HTTP request: the test did not reach the load balancer{0}")]
    NoRequests(String),
}

/// How one client's requests of one route class were answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientReport {
    pub client: String,
    /// The policy that applies: the route class if cluster.yaml has one, else `default`.
    pub policy: &'static str,
    /// The client is in an unlimited override's network (`limits` mean nothing then).
    pub unlimited: bool,
    /// Each limit of the policy, judged on its own (a request counts in all of them).
    pub limits: Vec<LimitReport>,
    pub requests: usize,
    pub admitted: usize,
    pub limited: usize,
    pub server_errors: usize,
    pub transport_errors: usize,
    pub other: usize,
    /// 429 answers given while the algorithm certainly had room in every limit.
    pub wrongly_limited: usize,
    /// For a policy in shadow mode (which refuses nothing): how many requests enforcing
    /// it would have refused, replayed from the request times ([`shadow::would_refuse`]).
    pub would_refuse: Option<usize>,
    /// When the answers this report fails were decided, by time; what the chart marks.
    pub problems: Vec<Problem>,
}

/// How the admissions of one client fared against one limit of its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitReport {
    pub limit: u32,
    pub window_ms: u64,
    /// Admissions counted in consecutive windows from the client's first admission.
    pub admitted_per_window: Vec<usize>,
    /// The most admissions that certainly fell inside one window.
    pub max_in_window: usize,
    /// Admissions certainly decided closer together than the algorithm allows.
    pub over_admitted: Option<Crowd>,
}

impl ClientReport {
    /// The first limit of the policy (every policy has at least one).
    pub fn first_limit(&self) -> &LimitReport {
        &self.limits[0]
    }
}

/// A stretch of one client's run in which the verdict found answers wrong: the decisions it
/// blames certainly lie in `[from, to]` (µs since the epoch). Overlapping stretches of one
/// kind are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// More admissions than the algorithm allows in the time their decisions span.
    OverAdmitted,
    /// 429 answers while the algorithm certainly had room.
    WronglyLimited,
    /// 429 answers from a policy in shadow mode.
    RefusedInShadow,
    /// 5xx, no answer, or an answer neither admitted nor 429.
    BadAnswer,
}

impl ProblemKind {
    pub fn describe(self) -> &'static str {
        match self {
            ProblemKind::OverAdmitted => "over-admission",
            ProblemKind::WronglyLimited => "429 with room left",
            ProblemKind::RefusedInShadow => "429 in shadow mode",
            ProblemKind::BadAnswer => "5xx or no answer",
        }
    }
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

/// Judges a k6 run against the limiter's policies: k6's own account (checks, thresholds,
/// exit code); per client and policy, no admission beyond what the algorithm allows in the
/// time its decisions span and no rejection while it certainly had room; for the run, no
/// 5xx, no transport error, and p95 latency under its threshold.
pub fn judge(
    run: &K6Run,
    limiter: &Limiter,
    thresholds: Thresholds,
) -> Result<Verdict, VerdictError> {
    let mut failures = run.failures();
    if run.samples.is_empty() {
        let why = if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures.join("; "))
        };
        return Err(VerdictError::NoRequests(why));
    }
    let mut groups: BTreeMap<(&'static str, &str), Vec<&Sample>> = BTreeMap::new();
    for sample in &run.samples {
        let (name, _) = limiter.policies.for_route(sample.route);
        groups
            .entry((name, &sample.client))
            .or_default()
            .push(sample);
    }
    let clients: Vec<ClientReport> = groups
        .into_iter()
        .map(|((name, client), requests)| {
            let report = match limiter.for_client(client, name) {
                Some((_, policy)) => {
                    client_report(client, name, &requests, &policy, limiter.algorithm)
                }
                // An unlimited override: judged as if by a limit above the request count,
                // so no admission is too many and every 429 is wrong.
                None => {
                    let room = Policy::one(
                        u32::try_from(requests.len() + 1).unwrap_or(u32::MAX),
                        limiter.policies.for_route(name).1.limits[0].window,
                    );
                    ClientReport {
                        unlimited: true,
                        ..client_report(client, name, &requests, &room, limiter.algorithm)
                    }
                }
            };
            failures.extend(report_failures(&report, limiter.algorithm));
            report
        })
        .collect();
    let p95 = percentile_95(&run.samples);
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

fn report_failures(r: &ClientReport, algorithm: Algorithm) -> Vec<String> {
    let who = format!("{} ({})", r.client, r.policy);
    let mut failures = Vec::new();
    if r.would_refuse.is_some() {
        // Shadow mode: every request is served; a 429 means the policy was enforced.
        if r.limited > 0 {
            failures.push(format!(
                "{who}: {} requests answered 429 by a policy in shadow mode",
                r.limited
            ));
        }
    }
    // In shadow mode every request is served by design: admissions are no failure then.
    let enforced = r.would_refuse.is_none();
    let crowds = r
        .limits
        .iter()
        .filter_map(|l| Some((l, l.over_admitted?)))
        .filter(|_| enforced);
    for (l, crowd) in crowds {
        failures.push(match algorithm {
            Algorithm::SlidingLog => format!(
                "{who}: {} requests admitted within one {} ms window, the policy allows {}",
                crowd.count, l.window_ms, l.limit
            ),
            Algorithm::SlidingWindow | Algorithm::Gcra => format!(
                "{who}: {} requests admitted within {:.3} s ({} to {}), {} admits at most {} \
                 in that time ({} + {} x {:.3} s / {} ms)",
                crowd.count,
                crowd.span() as f64 / 1e6,
                clock(crowd.from),
                clock(crowd.to),
                algorithm.as_str(),
                bounds::rate_allowance(l.limit, window_us(l.window_ms), crowd.span()),
                l.limit,
                l.limit,
                crowd.span() as f64 / 1e6,
                l.window_ms
            ),
        });
    }
    if r.wrongly_limited > 0 && enforced {
        failures.push(format!(
            "{who}: {} requests answered 429 while {} certainly had room for them",
            r.wrongly_limited,
            algorithm.as_str()
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

/// A time of day to the millisecond, UTC, for naming a crowd of admissions.
fn clock(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || micros.to_string(),
        |t| t.format("%H:%M:%S%.3f").to_string(),
    )
}

fn window_us(window_ms: u64) -> i64 {
    i64::try_from(window_ms.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn client_report(
    client: &str,
    policy_name: &'static str,
    requests: &[&Sample],
    policy: &Policy,
    algorithm: Algorithm,
) -> ClientReport {
    let admitted: Vec<Interval> = requests
        .iter()
        .filter(|s| s.admitted())
        .map(|s| s.interval())
        .collect();
    let refused: Vec<Interval> = requests
        .iter()
        .filter(|s| s.status == 429)
        .map(|s| s.interval())
        .collect();
    let count = |pred: fn(u16) -> bool| requests.iter().filter(|s| pred(s.status)).count();
    // A 429 is wrong only if every limit certainly had room: each limit keeps those of the
    // refusals left by the one before at which it had room too.
    let wrongly_limited = policy.limits.iter().fold(refused.clone(), |left, l| {
        let window = window_us(l.window.as_millis());
        bounds::wrongly_limited(algorithm, &admitted, &left, l.limit, window)
    });
    let limits: Vec<LimitReport> = policy
        .limits
        .iter()
        .map(|l| {
            let window = window_us(l.window.as_millis());
            let in_one_window = bounds::most_in_one_window(&admitted, window);
            let over_admitted = match algorithm {
                Algorithm::SlidingLog => in_one_window.filter(|c| c.count > l.limit as usize),
                Algorithm::SlidingWindow | Algorithm::Gcra => {
                    bounds::most_over_rate(&admitted, l.limit, window)
                        .filter(|c| c.count > bounds::rate_allowance(l.limit, window, c.span()))
                }
            };
            LimitReport {
                limit: l.limit,
                window_ms: l.window.as_millis(),
                admitted_per_window: per_window(requests, &admitted, window),
                max_in_window: in_one_window.map_or(0, |c| c.count),
                over_admitted,
            }
        })
        .collect();
    // The first crowd over a limit stands for them all on the chart.
    let over_admitted = limits.iter().find_map(|l| l.over_admitted);
    ClientReport {
        client: client.to_string(),
        policy: policy_name,
        unlimited: false,
        requests: requests.len(),
        admitted: admitted.len(),
        limited: refused.len(),
        server_errors: count(|s| s >= 500),
        transport_errors: count(|s| s == 0),
        other: count(|s| s != 0 && s != 429 && !(200..400).contains(&s) && s < 500),
        wrongly_limited: wrongly_limited.len(),
        would_refuse: policy.shadow.then(|| {
            let all: Vec<Interval> = requests.iter().map(|s| s.interval()).collect();
            let limits: Vec<(u32, i64)> = policy
                .limits
                .iter()
                .map(|l| (l.limit, window_us(l.window.as_millis())))
                .collect();
            shadow::would_refuse(algorithm, &all, &limits)
        }),
        problems: problems(
            requests,
            policy.shadow,
            over_admitted,
            &refused,
            &wrongly_limited,
        ),
        limits,
    }
}

/// Where the failures `report_failures` names for one client happened: the same
/// judgements, as stretches of time.
fn problems(
    requests: &[&Sample],
    shadow: bool,
    over_admitted: Option<Crowd>,
    refused: &[Interval],
    wrongly_limited: &[Interval],
) -> Vec<Problem> {
    let stretch = |kind| move |i: &Interval| (kind, i.start, i.end);
    let mut found: Vec<(ProblemKind, i64, i64)> = if shadow {
        refused
            .iter()
            .map(stretch(ProblemKind::RefusedInShadow))
            .collect()
    } else {
        let crowd = over_admitted.map(|c| (ProblemKind::OverAdmitted, c.from, c.to));
        crowd
            .into_iter()
            .chain(
                wrongly_limited
                    .iter()
                    .map(stretch(ProblemKind::WronglyLimited)),
            )
            .collect()
    };
    found.extend(
        requests
            .iter()
            .filter(|s| !s.admitted() && s.status != 429)
            .map(|s| stretch(ProblemKind::BadAnswer)(&s.interval())),
    );
    found.sort_unstable();
    let mut merged: Vec<Problem> = Vec::new();
    for (kind, from, to) in found {
        match merged.last_mut() {
            Some(last) if last.kind == kind && from <= last.to => last.to = last.to.max(to),
            _ => merged.push(Problem { kind, from, to }),
        }
    }
    merged
}

/// Admissions in consecutive windows from the first one, each placed at the middle of its
/// request: the table a person reads ("10 10 4"), not what the verdict rests on.
fn per_window(requests: &[&Sample], admitted: &[Interval], window: i64) -> Vec<usize> {
    let Some(first) = admitted.iter().map(|a| a.start).min() else {
        return Vec::new();
    };
    let last = requests.iter().map(|s| s.start).fold(first, i64::max);
    let windows = ((last - first) / window) as usize + 1;
    let mut counts = vec![0; windows];
    for a in admitted {
        let midpoint = a.start + (a.end - a.start) / 2;
        let index = ((midpoint - first).max(0) / window) as usize;
        counts[index.min(windows - 1)] += 1;
    }
    counts
}

fn percentile_95(samples: &[Sample]) -> Duration {
    let mut latencies: Vec<i64> = samples.iter().map(|s| s.end - s.start).collect();
    latencies.sort_unstable();
    let rank = (latencies.len() * 95).div_ceil(100);
    Duration::from_micros(latencies[rank.clamp(1, latencies.len()) - 1].max(0) as u64)
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
        // One line per limit of a client's policy; the counts are the policy's.
        for (c, l) in self
            .clients
            .iter()
            .flat_map(|c| c.limits.iter().map(move |l| (c, l)))
        {
            let windows: Vec<String> = l
                .admitted_per_window
                .iter()
                .map(|n| n.to_string())
                .collect();
            writeln!(
                f,
                "{:<16} {:<9} {:>12} {:>8} {:>8} {:>6} {:>4} {:>6} {:>10}  {}",
                c.client,
                c.policy,
                if c.unlimited {
                    "unlimited".to_owned()
                } else {
                    format!("{}/{}ms", l.limit, l.window_ms)
                },
                c.requests,
                c.admitted,
                c.limited,
                c.server_errors,
                c.transport_errors,
                l.max_in_window,
                windows.join(" ")
            )?;
        }
        for c in &self.clients {
            if let Some(would) = c.would_refuse {
                writeln!(
                    f,
                    "shadow: {} ({}) would have had {would} of {} requests refused",
                    c.client, c.policy, c.requests
                )?;
            }
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
    use crate::spec::{Policies, Window};

    const FAST: Thresholds = Thresholds {
        p95: Duration::from_millis(500),
    };

    fn limiter(algorithm: Algorithm) -> Limiter {
        let policy = |limit, secs: u64| Policy::one(limit, Window::from_millis(secs * 1000));
        Limiter::with_defaults(
            algorithm,
            Policies {
                default: policy(100, 60),
                shorten: policy(3, 10),
                redirect: policy(50, 60),
            },
        )
    }

    const SECOND: i64 = 1_000_000;

    fn shorten_at(client: &str, seconds: f64, status: u16) -> Sample {
        let start = (seconds * SECOND as f64).round() as i64;
        Sample {
            client: client.into(),
            route: "shorten",
            start,
            end: start + 10_000,
            status,
            served_by: Some("web1".into()),
        }
    }

    fn at(seconds: f64, status: u16) -> Sample {
        shorten_at("10.0.0.9", seconds, status)
    }

    fn judged(samples: Vec<Sample>, algorithm: Algorithm) -> Verdict {
        let run = K6Run {
            samples,
            ..K6Run::default()
        };
        judge(&run, &limiter(algorithm), FAST).unwrap()
    }

    #[test]
    fn exact_sliding_log_passes() {
        // 1 request/s for 25 s, limit 3 per 10 s: admitted at 0,1,2 then 10,11,12 then 20,21,22.
        let samples: Vec<Sample> = (0..25)
            .map(|t| at(t as f64, if t % 10 < 3 { 200 } else { 429 }))
            .collect();
        let verdict = judged(samples, Algorithm::SlidingLog);
        assert!(verdict.holds(), "{verdict}");
        assert_eq!(verdict.clients[0].policy, "shorten");
        assert_eq!(
            verdict.clients[0].first_limit().admitted_per_window,
            vec![3, 3, 3]
        );
        assert_eq!(verdict.clients[0].first_limit().max_in_window, 3);
    }

    #[test]
    fn every_limit_of_a_policy_is_judged() {
        // shorten: 3 per 10 s and 5 per 60 s.
        let mut two = limiter(Algorithm::SlidingLog);
        two.policies.shorten.limits.push(crate::spec::Limit {
            limit: 5,
            window: Window::from_millis(60_000),
        });
        let judge_two = |statuses: &[(f64, u16)]| {
            let run = K6Run {
                samples: statuses.iter().map(|&(t, s)| at(t, s)).collect(),
                ..K6Run::default()
            };
            judge(&run, &two, FAST).unwrap()
        };
        // Exact: the minute's limit refuses the sixth although the 10 s one has room, and
        // that 429 is right.
        let exact = judge_two(&[
            (0.0, 200),
            (1.0, 200),
            (2.0, 200),
            (11.0, 200),
            (12.0, 200),
            (13.0, 429),
        ]);
        assert!(exact.holds(), "{exact}");
        assert_eq!(exact.clients[0].limits.len(), 2);
        assert_eq!(exact.to_string().matches("10.0.0.9 ").count(), 2, "{exact}");
        // Six in a minute passes the 10 s limit and breaks the minute's.
        let over = judge_two(&[
            (0.0, 200),
            (1.0, 200),
            (2.0, 200),
            (11.0, 200),
            (12.0, 200),
            (13.0, 200),
        ]);
        assert_eq!(
            over.failures,
            ["10.0.0.9 (shorten): 6 requests admitted within one 60000 ms window, the policy allows 5"],
            "{over}"
        );
        // A 429 while both limits had room is wrong.
        let wrong = judge_two(&[(0.0, 200), (11.0, 429)]);
        assert_eq!(wrong.clients[0].wrongly_limited, 1, "{wrong}");
    }

    #[test]
    fn overrides_judge_their_clients_by_their_own_rule() {
        let mut overridden = limiter(Algorithm::SlidingLog);
        overridden.overrides = vec![
            crate::spec::Override {
                cidr: "10.0.1.0/24".parse().unwrap(),
                unlimited: false,
                policies: [(
                    "shorten".to_owned(),
                    Policy::one(5, Window::from_millis(10_000)),
                )]
                .into(),
            },
            crate::spec::Override {
                cidr: "10.0.1.7/32".parse().unwrap(),
                unlimited: true,
                policies: BTreeMap::new(),
            },
        ];
        let judge_overridden = |samples: Vec<Sample>| {
            let run = K6Run {
                samples,
                ..K6Run::default()
            };
            judge(&run, &overridden, FAST).unwrap()
        };
        // Five admitted in 10 s: right for the /24's limit of 5 ...
        let five = |client: &str, sixth: u16| {
            let mut samples: Vec<Sample> =
                (0..5).map(|t| shorten_at(client, t as f64, 200)).collect();
            samples.push(shorten_at(client, 5.0, sixth));
            samples
        };
        let verdict = judge_overridden(five("10.0.1.2", 429));
        assert!(verdict.holds(), "{verdict}");
        assert_eq!(verdict.clients[0].first_limit().limit, 5);
        // ... one too many for it, and far too many for everyone else (limit 3).
        assert!(!judge_overridden(five("10.0.1.2", 200)).holds());
        assert!(!judge_overridden(five("10.0.2.2", 429)).holds());
        // The unlimited address inside the /24: anything admitted, any 429 wrong.
        let verdict = judge_overridden(five("10.0.1.7", 200));
        assert!(verdict.holds(), "{verdict}");
        assert!(verdict.to_string().contains("unlimited"), "{verdict}");
        let verdict = judge_overridden(five("10.0.1.7", 429));
        assert!(!verdict.holds(), "{verdict}");
    }

    #[test]
    fn shadow_mode_serves_everything_and_reports_what_it_would_have_refused() {
        let mut shadowed = limiter(Algorithm::SlidingLog);
        shadowed.policies.shorten.shadow = true;
        let judge_shadowed = |samples: Vec<Sample>| {
            let run = K6Run {
                samples,
                ..K6Run::default()
            };
            judge(&run, &shadowed, FAST).unwrap()
        };
        // Five served within 10 s under a limit of 3: two would have been refused.
        let verdict = judge_shadowed((0..5).map(|t| at(t as f64, 200)).collect());
        assert!(verdict.holds(), "{verdict}");
        assert_eq!(verdict.clients[0].would_refuse, Some(2));
        assert!(
            verdict
                .to_string()
                .contains("shadow: 10.0.0.9 (shorten) would have had 2 of 5 requests refused"),
            "{verdict}"
        );
        // A 429 means the policy was enforced after all.
        let verdict = judge_shadowed(vec![at(0.0, 200), at(1.0, 429)]);
        assert_eq!(
            verdict.failures,
            vec!["10.0.0.9 (shorten): 1 requests answered 429 by a policy in shadow mode"]
        );
        let kinds: Vec<ProblemKind> = verdict.clients[0].problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![ProblemKind::RefusedInShadow]);
    }

    #[test]
    fn over_admission_fails() {
        let samples: Vec<Sample> = (0..5).map(|t| at(t as f64, 200)).collect();
        let verdict = judged(samples, Algorithm::SlidingLog);
        assert_eq!(
            verdict.failures,
            vec!["10.0.0.9 (shorten): 5 requests admitted within one 10000 ms window, the policy allows 3"]
        );
        // The crowd: from the first request's start to the last one's answer.
        assert_eq!(
            verdict.clients[0].problems,
            vec![Problem {
                kind: ProblemKind::OverAdmitted,
                from: 0,
                to: 4 * SECOND + 10_000
            }]
        );
    }

    #[test]
    fn rejection_with_budget_left_fails() {
        for algorithm in [
            Algorithm::SlidingLog,
            Algorithm::SlidingWindow,
            Algorithm::Gcra,
        ] {
            let verdict = judged(vec![at(0.0, 200), at(1.0, 429)], algorithm);
            assert_eq!(verdict.clients[0].wrongly_limited, 1, "{verdict}");
            assert_eq!(
                verdict.clients[0].problems,
                vec![Problem {
                    kind: ProblemKind::WronglyLimited,
                    from: SECOND,
                    to: SECOND + 10_000
                }]
            );
            assert!(!verdict.holds());
        }
    }

    #[test]
    fn uncertain_boundaries_are_not_blamed() {
        // The 4th admission's interval straddles the window's end: it may have been decided
        // after the first admission left the window, so this is not over-admission.
        let mut samples = vec![at(0.0, 200), at(1.0, 200), at(2.0, 200)];
        samples.push(Sample {
            start: 9_990_000,
            end: 10_050_000,
            ..at(0.0, 200)
        });
        assert!(judged(samples, Algorithm::SlidingLog).holds());
    }

    #[test]
    fn errors_slowness_and_k6s_failures_fail() {
        let mut samples = vec![at(0.0, 200), at(0.1, 502), at(0.2, 0)];
        samples.push(Sample {
            start: 300_000,
            end: 2 * SECOND,
            ..at(0.0, 200)
        });
        let run = K6Run {
            samples,
            exit_code: 108,
            ..K6Run::default()
        };
        let verdict = judge(&run, &limiter(Algorithm::SlidingLog), FAST).unwrap();
        // The 5xx and the unanswered request, each where it was.
        let stretch = |from, to| Problem {
            kind: ProblemKind::BadAnswer,
            from,
            to,
        };
        assert_eq!(
            verdict.clients[0].problems,
            vec![stretch(100_000, 110_000), stretch(200_000, 210_000)]
        );
        let text = verdict.to_string();
        assert!(text.contains("1 answers were 5xx"), "{text}");
        assert!(text.contains("1 requests got no answer"), "{text}");
        assert!(
            text.contains("p95 latency 1700 ms is above 500 ms"),
            "{text}"
        );
        assert!(
            text.contains("k6 exited with 108: the script aborted the test"),
            "{text}"
        );
        assert!(text.contains("verdict: FAIL"), "{text}");
    }

    #[test]
    fn no_request_is_an_error_that_says_why_k6_stopped() {
        let run = K6Run {
            exit_code: 104,
            ..K6Run::default()
        };
        let err = judge(&run, &limiter(Algorithm::Gcra), FAST).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(k6 exited with 104: invalid configuration)"),
            "{err}"
        );
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
                route: "redirect",
                ..shorten_at("a", t as f64, 302)
            });
        }
        let verdict = judged(samples, Algorithm::SlidingLog);
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
    fn gcra_allows_its_burst_plus_one_per_emission_interval() {
        // 3 per 10 s: a burst of 3, then one each 3.33 s.
        let admitted = |times: &[f64]| times.iter().map(|&t| at(t, 200)).collect::<Vec<_>>();
        assert!(judged(admitted(&[0.0, 1.0, 2.0, 3.4]), Algorithm::Gcra).holds());
        let verdict = judged(admitted(&[0.0, 1.0, 2.0, 3.0]), Algorithm::Gcra);
        assert_eq!(
            verdict.failures,
            vec![
                "10.0.0.9 (shorten): 4 requests admitted within 3.010 s (00:00:00.000 to \
                  00:00:03.010), gcra admits at most 3 in that time (3 + 3 x 3.010 s / 10000 ms)"
            ]
        );
        assert!(!judged(admitted(&[0.0, 1.0, 2.0, 3.0, 4.0]), Algorithm::Gcra).holds());
    }

    #[test]
    fn a_burst_of_twice_the_limit_fails_every_algorithm() {
        // 300 requests at once, limit 3: 5 admitted within 50 ms is 2 too many for any of them.
        let samples: Vec<Sample> = (0..300)
            .map(|i| at(i as f64 * 0.000_1, if i < 5 { 200 } else { 429 }))
            .collect();
        for algorithm in [
            Algorithm::SlidingLog,
            Algorithm::SlidingWindow,
            Algorithm::Gcra,
        ] {
            let verdict = judged(samples.clone(), algorithm);
            assert_eq!(
                verdict.clients[0]
                    .first_limit()
                    .over_admitted
                    .map(|c| c.count),
                Some(5)
            );
            assert!(!verdict.holds(), "{verdict}");
        }
    }
}
