//! One web host's `/metrics`, read with `prometheus-parse` and reduced to the series that
//! `status` and `top` show. The series names and label values are the contract's
//! (`clusterlab_contract::metrics`), which the web app registers them by; a series the app has not
//! exported yet (a counter vector only appears once one of its label sets was counted)
//! reads as zero.

use std::collections::BTreeMap;

pub use clusterlab_contract::metrics::outcome;
use clusterlab_contract::metrics::{
    DECISIONS, DECISION_LATENCY, HTTP_LATENCY, HTTP_REQUESTS, METRICS_ROUTE, NEAR_LIMIT,
};

/// What one web host's counters said at one moment. Counters only grow while the app
/// runs; rates come from two readings ([`super::rates`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebMetrics {
    /// Requests answered, the scrapes of `/metrics` left out.
    pub requests: f64,
    /// Of those, answered 429 Too Many Requests.
    pub too_many: f64,
    /// `ratelimit_decisions_total` by (policy, outcome).
    pub decisions: BTreeMap<(String, String), f64>,
    /// `ratelimit_near_limit_total` by policy.
    pub near_limit: BTreeMap<String, f64>,
    /// Request latency, every route but `/metrics` together.
    pub latency: Histogram,
    /// Time to a limiter verdict.
    pub decision_latency: Histogram,
}

impl WebMetrics {
    /// Reads the Prometheus text format. Lines it cannot read are skipped, as Prometheus'
    /// own readers do; what is missing counts as zero.
    pub fn parse(text: &str) -> WebMetrics {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        // `Scrape::parse` fails only when its line iterator does, and this one never does.
        let samples = prometheus_parse::Scrape::parse(lines)
            .map(|scrape| scrape.samples)
            .unwrap_or_default();
        let mut metrics = WebMetrics::default();
        for sample in samples {
            let label = |name: &str| sample.labels.get(name).unwrap_or_default().to_owned();
            let scraped = label("route") == METRICS_ROUTE;
            match (sample.metric.as_str(), &sample.value) {
                (HTTP_REQUESTS, prometheus_parse::Value::Counter(count)) if !scraped => {
                    metrics.requests += count;
                    if label("status") == "429" {
                        metrics.too_many += count;
                    }
                }
                (HTTP_LATENCY, prometheus_parse::Value::Histogram(buckets)) if !scraped => {
                    metrics.latency.add(buckets);
                }
                (DECISIONS, prometheus_parse::Value::Counter(count)) => {
                    *metrics
                        .decisions
                        .entry((label("policy"), label("outcome")))
                        .or_default() += count;
                }
                (NEAR_LIMIT, prometheus_parse::Value::Counter(count)) => {
                    *metrics.near_limit.entry(label("policy")).or_default() += count;
                }
                (DECISION_LATENCY, prometheus_parse::Value::Histogram(buckets)) => {
                    metrics.decision_latency.add(buckets);
                }
                _ => {}
            }
        }
        metrics
    }

    /// Every decision, whatever its policy and outcome.
    pub fn decisions_total(&self) -> f64 {
        self.decisions.values().sum()
    }

    /// The decisions made without Redis (fallback, fail open, fail closed).
    pub fn decisions_without_redis(&self) -> f64 {
        self.decisions
            .iter()
            .filter(|((_, outcome), _)| outcome::without_redis(outcome))
            .map(|(_, count)| count)
            .sum()
    }

    /// Every near-limit admission, whatever its policy.
    pub fn near_limit_total(&self) -> f64 {
        self.near_limit.values().sum()
    }
}

/// A cumulative histogram: per upper bound (`le`), how many observations were at most
/// that, ascending, `+Inf` last. Label sets with the same bounds are added together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    pub fn from_buckets(mut buckets: Vec<(f64, f64)>) -> Histogram {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram { buckets }
    }

    fn add(&mut self, counts: &[prometheus_parse::HistogramCount]) {
        for count in counts {
            match self
                .buckets
                .binary_search_by(|(bound, _)| bound.total_cmp(&count.less_than))
            {
                Ok(at) => self.buckets[at].1 += count.count,
                Err(at) => self.buckets.insert(at, (count.less_than, count.count)),
            }
        }
    }

    /// How many observations there were in all.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, count)| *count)
    }

    /// The observations since `earlier`, bucket by bucket. A bucket that shrank means the
    /// app restarted and its counters began again: everything counted now is new.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let earlier_count = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| b.total_cmp(&bound).is_eq())
                .map_or(0.0, |(_, count)| *count)
        };
        let restarted = self
            .buckets
            .iter()
            .any(|(bound, count)| *count < earlier_count(*bound));
        if restarted {
            return self.clone();
        }
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(bound, count)| (*bound, count - earlier_count(*bound)))
                .collect(),
        }
    }

    /// The `q` quantile (0..=1), interpolated linearly inside its bucket the way
    /// Prometheus' `histogram_quantile` does; `None` without observations. An answer in the
    /// `+Inf` bucket is reported as the largest finite bound: all that is known is "more".
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &self.buckets {
            if count >= rank && count > lower.1 {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let (lower_bound, lower_count) = lower;
                return Some(
                    lower_bound
                        + (bound - lower_bound) * (rank - lower_count) / (count - lower_count),
                );
            }
            lower = (bound, count);
        }
        Some(lower.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A web host's answer as the web app's `prometheus` encoder writes it (trimmed).
    const METRICS: &str = r#"# HELP http_request_duration_seconds Time from request head to response, by route
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",route="/<code>",le="0.001"} 6
http_request_duration_seconds_bucket{method="GET",route="/<code>",le="0.01"} 9
http_request_duration_seconds_bucket{method="GET",route="/<code>",le="+Inf"} 10
http_request_duration_seconds_sum{method="GET",route="/<code>"} 0.05
http_request_duration_seconds_count{method="GET",route="/<code>"} 10
http_request_duration_seconds_bucket{method="GET",route="/metrics",le="0.001"} 0
http_request_duration_seconds_bucket{method="GET",route="/metrics",le="0.01"} 0
http_request_duration_seconds_bucket{method="GET",route="/metrics",le="+Inf"} 500
http_request_duration_seconds_sum{method="GET",route="/metrics"} 900
http_request_duration_seconds_count{method="GET",route="/metrics"} 500
http_request_duration_seconds_bucket{method="POST",route="/shorten",le="0.001"} 0
http_request_duration_seconds_bucket{method="POST",route="/shorten",le="0.01"} 10
http_request_duration_seconds_bucket{method="POST",route="/shorten",le="+Inf"} 10
http_request_duration_seconds_sum{method="POST",route="/shorten"} 0.05
http_request_duration_seconds_count{method="POST",route="/shorten"} 10
# HELP http_requests_total HTTP requests answered, by route and status
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/<code>",status="302"} 7
http_requests_total{method="GET",route="/<code>",status="429"} 3
http_requests_total{method="GET",route="/metrics",status="200"} 500
http_requests_total{method="POST",route="/shorten",status="200"} 10
# HELP ratelimit_decisions_total Rate-limit decisions by policy and outcome
# TYPE ratelimit_decisions_total counter
ratelimit_decisions_total{outcome="allowed",policy="redirect"} 7
ratelimit_decisions_total{outcome="limited",policy="redirect"} 3
ratelimit_decisions_total{outcome="allowed",policy="shorten"} 8
ratelimit_decisions_total{outcome="fallback_allowed",policy="shorten"} 2
# HELP ratelimit_near_limit_total Admissions that left the client at most 20% of its budget, by policy
# TYPE ratelimit_near_limit_total counter
ratelimit_near_limit_total{policy="redirect"} 4
# HELP ratelimit_decision_seconds Time to a rate-limit verdict, Redis round trip included
# TYPE ratelimit_decision_seconds histogram
ratelimit_decision_seconds_bucket{le="0.0005"} 15
ratelimit_decision_seconds_bucket{le="0.001"} 20
ratelimit_decision_seconds_bucket{le="+Inf"} 20
ratelimit_decision_seconds_sum 0.01
ratelimit_decision_seconds_count 20
"#;

    #[test]
    fn requests_and_429s_leave_the_scrapes_of_metrics_out() {
        let metrics = WebMetrics::parse(METRICS);
        assert_eq!(metrics.requests, 20.0);
        assert_eq!(metrics.too_many, 3.0);
    }

    #[test]
    fn decisions_are_kept_by_policy_and_outcome() {
        let metrics = WebMetrics::parse(METRICS);
        let decision = |policy: &str, outcome: &str| {
            metrics.decisions[&(policy.to_owned(), outcome.to_owned())]
        };
        assert_eq!(decision("redirect", outcome::ALLOWED), 7.0);
        assert_eq!(decision("redirect", outcome::LIMITED), 3.0);
        assert_eq!(decision("shorten", outcome::FALLBACK_ALLOWED), 2.0);
        assert_eq!(metrics.decisions_total(), 20.0);
        assert_eq!(metrics.decisions_without_redis(), 2.0);
        assert_eq!(metrics.near_limit_total(), 4.0);
    }

    #[test]
    fn latency_histograms_of_every_route_but_metrics_are_added() {
        let metrics = WebMetrics::parse(METRICS);
        assert_eq!(
            metrics.latency,
            Histogram::from_buckets(vec![(0.001, 6.0), (0.01, 19.0), (f64::INFINITY, 20.0)])
        );
        assert_eq!(
            metrics.decision_latency,
            Histogram::from_buckets(vec![(0.0005, 15.0), (0.001, 20.0), (f64::INFINITY, 20.0)])
        );
    }

    #[test]
    fn text_that_is_not_metrics_reads_as_nothing_counted() {
        assert_eq!(
            WebMetrics::parse("<html>not found</html>\n"),
            WebMetrics::default()
        );
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let histogram =
            Histogram::from_buckets(vec![(0.001, 50.0), (0.01, 90.0), (f64::INFINITY, 100.0)]);
        // rank 25 of 50 in [0, 0.001]
        assert!((histogram.quantile(0.25).unwrap() - 0.0005).abs() < 1e-12);
        // rank 70: 20 of the 40 in (0.001, 0.01]
        assert!((histogram.quantile(0.7).unwrap() - 0.0055).abs() < 1e-12);
        // rank 95 is past the last finite bound
        assert_eq!(histogram.quantile(0.95), Some(0.01));
        assert_eq!(Histogram::default().quantile(0.95), None);
    }

    #[test]
    fn a_quantile_skips_empty_buckets() {
        let histogram = Histogram::from_buckets(vec![
            (0.001, 0.0),
            (0.01, 0.0),
            (0.1, 4.0),
            (f64::INFINITY, 4.0),
        ]);
        assert!((histogram.quantile(0.5).unwrap() - 0.055).abs() < 1e-12);
    }

    #[test]
    fn since_counts_only_what_was_observed_in_between() {
        let earlier = Histogram::from_buckets(vec![(0.001, 5.0), (f64::INFINITY, 8.0)]);
        let later = Histogram::from_buckets(vec![(0.001, 7.0), (f64::INFINITY, 14.0)]);
        assert_eq!(
            later.since(&earlier),
            Histogram::from_buckets(vec![(0.001, 2.0), (f64::INFINITY, 6.0)])
        );
        // After a restart the counters began again.
        let restarted = Histogram::from_buckets(vec![(0.001, 1.0), (f64::INFINITY, 1.0)]);
        assert_eq!(restarted.since(&later), restarted);
    }
}
