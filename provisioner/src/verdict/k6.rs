//! What k6 brings back, read: its `--out json` stream (one sample per HTTP request, each
//! classified into the web app's route classes and joined with the web host that answered it,
//! and every check's outcome), the thresholds its `--summary-export` marks crossed, and what
//! its exit code means.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::classify::route_class;
use super::{Sample, VerdictError};

/// One k6 run as the verdict sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K6Run {
    pub samples: Vec<Sample>,
    /// Every check the script made, by name.
    pub checks: BTreeMap<String, CheckCount>,
    /// Thresholds the summary marks crossed, as `metric: expression`.
    pub crossed: Vec<String>,
    pub exit_code: i32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCount {
    pub passes: usize,
    pub fails: usize,
}

/// The counter `k6/lib.js` adds to for every answer (`recordServer`): its `request` tag names
/// the request (the same tag is on the request's own samples), its `host` tag the answer's
/// `X-Served-By`, absent when the answer had none.
const SERVED_BY: &str = "served_by";

impl K6Run {
    /// Reads k6's outputs: the JSON stream (`samples`), its summary export when k6 wrote one,
    /// and its exit code. Requests without a `client` tag are attributed to
    /// `default_client` (scripts sending from one address); a request with no `served_by`
    /// point naming a host keeps `served_by: None`.
    pub fn read(
        samples: impl BufRead,
        summary: Option<&str>,
        exit_code: i32,
        default_client: &str,
    ) -> Result<Self, VerdictError> {
        let mut run = K6Run {
            exit_code,
            crossed: summary
                .map(crossed_thresholds)
                .transpose()?
                .unwrap_or_default(),
            ..K6Run::default()
        };
        // Each sample's `request` tag, and what the `served_by` points say of each; joined
        // at the end, since k6 writes a request's samples and its counter point in either order.
        let mut request_ids: Vec<Option<String>> = Vec::new();
        let mut hosts: HashMap<String, String> = HashMap::new();
        for (index, line) in samples.lines().enumerate() {
            let line = line?;
            let is_request = line.contains("\"http_req_duration\"");
            if !is_request && !line.contains("\"checks\"") && !line.contains(SERVED_BY) {
                continue;
            }
            let malformed = |message: String| VerdictError::Malformed {
                line: index + 1,
                message,
            };
            let parsed: Line = serde_json::from_str(&line).map_err(|e| malformed(e.to_string()))?;
            if parsed.kind != "Point" {
                continue;
            }
            match parsed.metric.as_str() {
                "http_req_duration" => {
                    let mut point: Point = serde_json::from_value(parsed.data)
                        .map_err(|e| malformed(e.to_string()))?;
                    request_ids.push(point.tags.request.take());
                    run.samples
                        .push(sample(point, default_client).map_err(|e| e.at(index + 1))?);
                }
                SERVED_BY => {
                    let point: Point = serde_json::from_value(parsed.data)
                        .map_err(|e| malformed(e.to_string()))?;
                    if let Some((request, host)) = point.tags.request.zip(point.tags.host) {
                        hosts.insert(request, host);
                    }
                }
                "checks" => {
                    let point: Point = serde_json::from_value(parsed.data)
                        .map_err(|e| malformed(e.to_string()))?;
                    let name = point.tags.check.unwrap_or_default();
                    let count = run.checks.entry(name).or_default();
                    if point.value == 0.0 {
                        count.fails += 1;
                    } else {
                        count.passes += 1;
                    }
                }
                _ => {}
            }
        }
        for (sample, request) in run.samples.iter_mut().zip(request_ids) {
            // A followed redirect gives one request several samples: all were answered by hosts
            // behind the same balancer, and the last answer's is the one the script saw.
            sample.served_by = request.and_then(|id| hosts.get(&id).cloned());
        }
        Ok(run)
    }

    /// What went wrong by k6's own account: failed checks, crossed thresholds, its exit.
    pub fn failures(&self) -> Vec<String> {
        let mut failures: Vec<String> = self
            .checks
            .iter()
            .filter(|(_, c)| c.fails > 0)
            .map(|(name, c)| {
                format!(
                    "k6 check {name:?} failed {} of {} times",
                    c.fails,
                    c.fails + c.passes
                )
            })
            .collect();
        if self.exit_code != 0 {
            let mut text = format!(
                "k6 exited with {}: {}",
                self.exit_code,
                exit_meaning(self.exit_code)
            );
            if !self.crossed.is_empty() {
                text.push_str(&format!(" ({})", self.crossed.join(", ")));
            }
            failures.push(text);
        }
        failures
    }
}

/// k6's exit codes (`errext/exitcodes`).
fn exit_meaning(code: i32) -> &'static str {
    match code {
        99 => "thresholds crossed",
        100 => "setup() timed out",
        101 => "teardown() timed out",
        102 | 103 => "the run failed",
        104 => "invalid configuration",
        105 => "aborted from outside",
        107 => "the script threw an exception",
        108 => "the script aborted the test",
        109 => "k6 panicked",
        110 => "the script marked the test failed",
        -1 => "killed by a signal",
        _ => "the run did not complete",
    }
}

/// The legacy summary export marks each threshold `true` when it was crossed.
fn crossed_thresholds(summary: &str) -> Result<Vec<String>, VerdictError> {
    #[derive(Deserialize)]
    struct Summary {
        #[serde(default)]
        metrics: BTreeMap<String, Metric>,
    }
    #[derive(Deserialize)]
    struct Metric {
        #[serde(default)]
        thresholds: BTreeMap<String, bool>,
    }
    let summary: Summary =
        serde_json::from_str(summary).map_err(|e| VerdictError::Summary(e.to_string()))?;
    Ok(summary
        .metrics
        .iter()
        .flat_map(|(metric, m)| {
            m.thresholds
                .iter()
                .filter(|(_, crossed)| **crossed)
                .map(move |(expression, _)| format!("{metric}: {expression}"))
        })
        .collect())
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
    tags: Tags,
}

/// The tags the verdict reads; k6's `name` is free text and not among them.
#[derive(Deserialize, Default)]
struct Tags {
    status: Option<String>,
    method: Option<String>,
    url: Option<String>,
    client: Option<String>,
    check: Option<String>,
    /// Set by `k6/lib.js` on each request and on its `served_by` point.
    request: Option<String>,
    host: Option<String>,
}

/// A sample's problem, before its line number is known.
struct Unclassified(String);

impl Unclassified {
    fn at(self, line: usize) -> VerdictError {
        VerdictError::Unclassified {
            line,
            request: self.0,
        }
    }
}

/// The `http_req_duration` point of a request: its time is when the answer arrived, its
/// value (ms) how long sending, waiting and receiving took, so the request's limiter decision
/// lies in [time - value, time]; widened to whole microseconds, never narrowed.
fn sample(point: Point, default_client: &str) -> Result<Sample, Unclassified> {
    let tags = point.tags;
    let request = format!(
        "{} {}",
        tags.method.as_deref().unwrap_or("(no method tag)"),
        tags.url.as_deref().unwrap_or("(no url tag)")
    );
    let route = tags
        .method
        .as_deref()
        .zip(tags.url.as_deref())
        .and_then(|(method, url)| route_class(method, url))
        .ok_or_else(|| Unclassified(request.clone()))?;
    let status = match tags.status.as_deref() {
        None => 0,
        Some(text) => text
            .parse()
            .map_err(|_| Unclassified(format!("{request} with status {text:?}")))?,
    };
    let end_ns = i128::from(point.time.timestamp_micros()) * 1000
        + i128::from(point.time.timestamp_subsec_nanos() % 1000);
    let start_ns = end_ns - (point.value.max(0.0) * 1e6).ceil() as i128;
    Ok(Sample {
        client: tags.client.unwrap_or_else(|| default_client.to_owned()),
        route,
        start: start_ns.div_euclid(1000) as i64,
        end: (end_ns + 999).div_euclid(1000) as i64,
        status,
        served_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"{"type":"Metric","data":{"name":"http_req_duration","type":"trend"},"metric":"http_req_duration"}
{"metric":"served_by","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":1,"tags":{"request":"3.1","host":"web2"}}}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":500,"tags":{"status":"429","client":"10.77.0.31","method":"POST","url":"http://10.77.0.10/shorten","name":"shorten","request":"3.1"}}}
{"metric":"http_reqs","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":1,"tags":{"status":"429"}}}
{"metric":"checks","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":0,"tags":{"check":"status is 200 or 429"}}}
{"metric":"checks","type":"Point","data":{"time":"2026-12-01T02:00:10.5Z","value":1,"tags":{"check":"status is 200 or 429"}}}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-12-01T02:00:11.0000015Z","value":0.0005,"tags":{"status":"0","method":"GET","url":"http://10.77.0.10/Ab3xY9z","request":"4.1"}}}
{"metric":"served_by","type":"Point","data":{"time":"2026-12-01T02:00:11.0000015Z","value":1,"tags":{"request":"4.1"}}}
"#;

    #[test]
    fn reads_requests_and_checks() {
        let run = K6Run::read(STREAM.as_bytes(), None, 0, "10.77.0.30").unwrap();
        assert_eq!(run.samples.len(), 2);
        let [first, second] = [&run.samples[0], &run.samples[1]];
        assert_eq!(
            (first.client.as_str(), first.route, first.status),
            ("10.77.0.31", "shorten", 429)
        );
        assert_eq!(first.end - first.start, 500_000);
        assert_eq!(
            (second.client.as_str(), second.route),
            ("10.77.0.30", "redirect")
        );
        // Joined on the `request` tag, whichever came first; no `host` tag, no host.
        assert_eq!(
            (first.served_by.as_deref(), second.served_by.as_deref()),
            (Some("web2"), None)
        );
        // 1.5 µs after the second, 0.5 µs long: widened to [1 µs, 2 µs].
        assert_eq!(second.end - second.start, 1);
        assert_eq!(
            run.checks["status is 200 or 429"],
            CheckCount {
                passes: 1,
                fails: 1
            }
        );
        assert_eq!(
            run.failures(),
            vec!["k6 check \"status is 200 or 429\" failed 1 of 2 times"]
        );
    }

    #[test]
    fn a_request_of_no_route_class_is_an_error_that_names_it() {
        for (tags, named) in [
            (
                r#"{"status":"200","method":"GET","url":"http://10.77.0.10/healthz"}"#,
                "GET http://10.77.0.10/healthz",
            ),
            (
                r#"{"status":"200","method":"POST","url":"shorten"}"#,
                "POST shorten",
            ),
            (
                r#"{"status":"200","name":"shorten"}"#,
                "(no method tag) (no url tag)",
            ),
        ] {
            let line = format!(
                r#"{{"metric":"http_req_duration","type":"Point","data":{{"time":"2026-12-01T02:00:10Z","value":1,"tags":{tags}}}}}"#
            );
            let err = K6Run::read(format!("\n{line}\n").as_bytes(), None, 0, "x").unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("k6 samples line 2: "), "{text}");
            assert!(text.contains(&format!("{named:?}")), "{text}");
        }
    }

    #[test]
    fn a_failed_exit_names_the_crossed_thresholds() {
        let summary = r#"{"metrics":{"checks":{"passes":1,"fails":1,"thresholds":{"rate==1":true}},
            "http_req_duration":{"thresholds":{"p(95)<500":false}}}}"#;
        let run = K6Run::read(&b""[..], Some(summary), 99, "x").unwrap();
        assert_eq!(
            run.failures(),
            vec!["k6 exited with 99: thresholds crossed (checks: rate==1)"]
        );
        let run = K6Run::read(&b""[..], None, 107, "x").unwrap();
        assert_eq!(
            run.failures(),
            vec!["k6 exited with 107: the script threw an exception"]
        );
    }

    #[test]
    fn malformed_line_names_its_number() {
        let text = "{\"metric\":\"http_req_duration\",\"type\":\"Point\",\"data\":{\"time\":\"not a time\",\"value\":1}}\n";
        let err = K6Run::read(text.as_bytes(), None, 0, "x").unwrap_err();
        assert!(err.to_string().starts_with("k6 samples line 1:"), "{err}");
    }
}
