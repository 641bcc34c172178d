//! The load test's chart and page drawn from synthetic judged runs and read back the way the
//! e2e test reads real ones (tests/e2e/chart.rs): one series per web host and outcome, the
//! limit and trailing-window lines, the verdict's problems marked where they happened.

#[path = "e2e/chart.rs"]
mod chart_reading;

use std::time::Duration;

use chart_reading::{assert_report_charts, ChartReading, Mark};
use provisioner::report::{self, Page, UNKNOWN_HOST};
use provisioner::spec::{Algorithm, Limit, Limiter, Policies, Policy, Window};
use provisioner::verdict::{judge, K6Run, ProblemKind, Sample, Thresholds, Verdict};

const SECOND: i64 = 1_000_000;
/// A time well after the epoch, as k6's are.
const EPOCH: i64 = 1_800_000_000 * SECOND;

fn limiter() -> Limiter {
    let policy = |limit, seconds: u64| Policy::one(limit, Window::from_millis(seconds * 1000));
    Limiter::with_defaults(
        Algorithm::SlidingLog,
        Policies {
            default: policy(100, 60),
            shorten: policy(3, 10),
            redirect: policy(50, 60),
        },
    )
}

fn request(client: &str, route: &'static str, at: f64, status: u16, host: Option<&str>) -> Sample {
    let start = EPOCH + (at * SECOND as f64) as i64;
    Sample {
        client: client.into(),
        route,
        start,
        end: start + 10_000,
        status,
        served_by: host.map(str::to_owned),
    }
}

/// One shorten request a second for 30 s, answered as a sliding log with 3 per 10 s would
/// (admitted at 0-2, 10-12, 20-22 s), web1 on even seconds and web2 on odd ones.
fn exact_shortens(client: &str) -> Vec<Sample> {
    (0..30)
        .map(|t| {
            let host = if t % 2 == 0 { "web1" } else { "web2" };
            let status = if t % 10 < 3 { 200 } else { 429 };
            request(client, "shorten", f64::from(t), status, Some(host))
        })
        .collect()
}

fn judged(samples: Vec<Sample>) -> (K6Run, Verdict) {
    let run = K6Run {
        samples,
        ..K6Run::default()
    };
    let thresholds = Thresholds {
        p95: Duration::from_millis(500),
    };
    let verdict = judge(&run, &limiter(), thresholds).expect("a run to judge");
    (run, verdict)
}

fn bars(chart: &ChartReading, label: &str) -> Vec<(f64, f64)> {
    chart
        .series
        .get(label)
        .map(|marks| {
            marks
                .iter()
                .filter_map(|m| match m {
                    Mark::Rect { x, width, .. } => Some((*x, x + width)),
                    Mark::Line(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_host_and_outcome_is_a_series_and_the_problem_is_marked_where_it_happened() {
    let mut samples = exact_shortens("10.0.0.9");
    // A fourth admission 0.5 s after the third of the second window: over-admitted.
    samples.push(request("10.0.0.9", "shorten", 12.5, 200, Some("web2")));
    // An answer without X-Served-By.
    samples.push(request("10.0.0.9", "shorten", 25.5, 429, None));
    // Another client's redirects, under their own policy.
    for at in [0.25, 5.25] {
        samples.push(request("10.0.0.8", "redirect", at, 302, Some("web1")));
    }
    let (run, verdict) = judged(samples);
    let problems: Vec<ProblemKind> = verdict
        .clients
        .iter()
        .flat_map(|c| c.problems.iter().map(|p| p.kind))
        .collect();
    assert_eq!(problems, vec![ProblemKind::OverAdmitted], "{verdict}");
    let chart = ChartReading::parse(&report::chart(&run, &limiter(), &verdict).unwrap());

    for title in [
        "client 10.0.0.8, policy redirect: limit 50 per 60 s (sliding_log): 2 requests, 2 admitted, 0 refused",
        "client 10.0.0.9, policy shorten: limit 3 per 10 s (sliding_log): 32 requests, 10 admitted, 22 refused",
    ] {
        assert!(chart.texts.iter().any(|t| t == title), "{title:?} in {:?}", chart.texts);
    }
    // 30 s in 500 ms steps: each request is a bar of its own.
    let unknown = format!("{UNKNOWN_HOST} refused");
    for (label, count) in [
        ("web1 admitted", 6 + 2),
        ("web2 admitted", 4),
        ("web1 refused", 9),
        ("web2 refused", 12),
        (unknown.as_str(), 1),
    ] {
        assert_eq!(bars(&chart, label).len(), count, "{label}");
    }
    assert!(!chart
        .series
        .contains_key(&format!("{UNKNOWN_HOST} admitted")));

    // The shading covers the over-admitted bar at 12.5 s, in both plots of the panel.
    let shaded = bars(&chart, "problem: over-admission");
    assert_eq!(shaded.len(), 2, "{shaded:?}");
    let at_12_5 = bars(&chart, "web2 admitted")[2];
    for (from, to) in shaded {
        assert!(
            from <= at_12_5.0 && at_12_5.1 <= to,
            "{at_12_5:?} in {from}..{to}"
        );
    }
    let redirect = chart.panel("policy redirect:");
    assert!(redirect
        .texts
        .iter()
        .any(|t| t == "verdict: no problem here"));
    assert!(!redirect.series.keys().any(|k| k.starts_with("problem")));

    // Over-admitted: the trailing window rises above the limit's line.
    let shorten = chart.panel("policy shorten:");
    let limit_y = shorten.horizontal_at("limit 3 per 10 s");
    let highest = shorten
        .series("admitted in trailing 10 s")
        .iter()
        .flat_map(|m| match m {
            Mark::Line(points) => points.clone(),
            Mark::Rect { .. } => Vec::new(),
        })
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min);
    assert!(highest < limit_y, "{highest} above {limit_y}");
    chart
        .panel("policy redirect:")
        .horizontal_at("limit 50 per 60 s");
}

/// The highest a line labelled `label` reaches, in pixels from the top (smaller is higher).
fn highest_point(chart: &ChartReading, label: &str) -> f64 {
    chart
        .series(label)
        .iter()
        .flat_map(|m| match m {
            Mark::Line(points) => points.clone(),
            Mark::Rect { .. } => Vec::new(),
        })
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn every_limit_of_a_policy_has_its_trailing_count_and_its_line() {
    // 3 per 10 s and 5 per 30 s: the exact answers of 3 per 10 s admit 9 in 30 s.
    let seconds = |s: u64| Window::from_millis(s * 1000);
    let mut limiter = limiter();
    limiter.policies.shorten = Policy {
        limits: vec![
            Limit {
                limit: 3,
                window: seconds(10),
            },
            Limit {
                limit: 5,
                window: seconds(30),
            },
        ],
        shadow: false,
    };
    let run = K6Run {
        samples: exact_shortens("10.0.0.9"),
        ..K6Run::default()
    };
    let thresholds = Thresholds {
        p95: Duration::from_millis(500),
    };
    let verdict = judge(&run, &limiter, thresholds).expect("a run to judge");
    assert!(
        !verdict.holds(),
        "9 admitted in 30 s breaks 5 per 30 s: {verdict}"
    );
    let chart = ChartReading::parse(&report::chart(&run, &limiter, &verdict).unwrap());
    let shorten = chart.panel("policy shorten:");
    assert!(
        shorten
            .texts
            .iter()
            .any(|t| t.contains("limit 3 per 10 s and 5 per 30 s")),
        "{:?}",
        shorten.texts
    );
    // The 10 s count stays on its line; the 30 s count climbs above its own.
    let (line_10, line_30) = (
        shorten.horizontal_at("limit 3 per 10 s"),
        shorten.horizontal_at("limit 5 per 30 s"),
    );
    assert!(line_30 < line_10, "5 is drawn above 3");
    let (top_10, top_30) = (
        highest_point(shorten, "admitted in trailing 10 s"),
        highest_point(shorten, "admitted in trailing 30 s"),
    );
    assert!((top_10 - line_10).abs() < 1.0, "{top_10} on {line_10}");
    assert!(top_30 < line_30, "{top_30} above {line_30}");
}

#[test]
fn a_report_folder_passes_the_e2e_reading() {
    let (run, verdict) = judged(exact_shortens("10.0.0.9"));
    assert!(verdict.holds(), "{verdict}");
    let folder = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(folder.path().join(name), text).unwrap();
    write(
        report::CHART,
        &report::chart(&run, &limiter(), &verdict).unwrap(),
    );
    let page = Page {
        title: "rate-test.js (synthetic)",
        chart: report::CHART,
        k6_report: None,
    };
    write(report::INDEX, &report::page(&page, &verdict).unwrap());
    write(report::VERDICT, &format!("{verdict}\n"));
    assert_report_charts(folder.path(), "shorten", &["web1", "web2"]);
}

#[test]
fn a_burst_is_drawn_in_steps_of_milliseconds() {
    // 300 requests within 30 ms: far too short for one bar per second.
    let samples: Vec<Sample> = (0..300)
        .map(|i| {
            let host = if i % 2 == 0 { "web1" } else { "web2" };
            let status = if i < 3 { 200 } else { 429 };
            request(
                "10.0.0.9",
                "shorten",
                f64::from(i) * 0.000_1,
                status,
                Some(host),
            )
        })
        .collect();
    let (run, verdict) = judged(samples);
    let chart = ChartReading::parse(&report::chart(&run, &limiter(), &verdict).unwrap());
    assert!(
        chart
            .texts
            .iter()
            .any(|t| t == "admitted per 1 ms (bars, by web host)"),
        "{:?}",
        chart.texts
    );
    assert_eq!(bars(&chart, "web1 admitted").len(), 1);
}
