//! Rates between two readings of one source: what its counters grew by, divided by the
//! time between the readings. A counter that shrank means the source restarted and
//! counted from zero again, so all of its current value is new (Prometheus' `rate` reads
//! counter resets the same way).

use std::time::Duration;

use super::redis_info::RedisInfo;
use super::web::WebMetrics;

/// A web host's traffic per second between two readings, and its latencies over them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebRates {
    pub requests: f64,
    pub too_many: f64,
    pub decisions: f64,
    /// Decisions made without Redis: fallback, fail open, fail closed.
    pub without_redis: f64,
    pub near_limit: f64,
    /// p95 of the requests answered in between, in seconds; `None` when there were none.
    pub latency_p95: Option<f64>,
    /// p95 of the limiter's decisions in between, in seconds.
    pub decision_p95: Option<f64>,
}

impl WebRates {
    pub fn between(earlier: &WebMetrics, later: &WebMetrics, elapsed: Duration) -> WebRates {
        let rate = |of: fn(&WebMetrics) -> f64| per_second(of(earlier), of(later), elapsed);
        WebRates {
            requests: rate(|m| m.requests),
            too_many: rate(|m| m.too_many),
            decisions: rate(WebMetrics::decisions_total),
            without_redis: rate(WebMetrics::decisions_without_redis),
            near_limit: rate(WebMetrics::near_limit_total),
            latency_p95: later.latency.since(&earlier.latency).quantile(0.95),
            decision_p95: later
                .decision_latency
                .since(&earlier.decision_latency)
                .quantile(0.95),
        }
    }
}

/// Redis between two `INFO`s: commands per second, and memory and clients as of the later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisRates {
    pub ops: f64,
    pub used_memory: u64,
    pub maxmemory: u64,
    pub connected_clients: u64,
}

impl RedisRates {
    pub fn between(earlier: &RedisInfo, later: &RedisInfo, elapsed: Duration) -> RedisRates {
        RedisRates {
            ops: per_second(
                earlier.total_commands_processed as f64,
                later.total_commands_processed as f64,
                elapsed,
            ),
            used_memory: later.used_memory,
            maxmemory: later.maxmemory,
            connected_clients: later.connected_clients,
        }
    }
}

/// How fast a counter grew from `earlier` to `later`; an empty interval has no growth.
fn per_second(earlier: f64, later: f64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    let grown = if later < earlier {
        later
    } else {
        later - earlier
    };
    grown / seconds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::web::{outcome, Histogram};

    fn reading(requests: f64, too_many: f64, fallback: f64, latency: Histogram) -> WebMetrics {
        WebMetrics {
            requests,
            too_many,
            decisions: [
                (
                    ("redirect".into(), outcome::ALLOWED.into()),
                    requests - too_many,
                ),
                (("redirect".into(), outcome::LIMITED.into()), too_many),
                (
                    ("shorten".into(), outcome::FALLBACK_LIMITED.into()),
                    fallback,
                ),
            ]
            .into(),
            near_limit: [("redirect".into(), too_many)].into(),
            latency,
            decision_latency: Histogram::default(),
        }
    }

    #[test]
    fn web_rates_are_growth_per_second() {
        let earlier = reading(
            100.0,
            10.0,
            0.0,
            Histogram::from_buckets(vec![(0.01, 100.0), (0.1, 100.0), (f64::INFINITY, 100.0)]),
        );
        let later = reading(
            140.0,
            30.0,
            4.0,
            Histogram::from_buckets(vec![(0.01, 100.0), (0.1, 100.0), (f64::INFINITY, 140.0)]),
        );
        let rates = WebRates::between(&earlier, &later, Duration::from_secs(2));
        assert_eq!(rates.requests, 20.0);
        assert_eq!(rates.too_many, 10.0);
        assert_eq!(rates.decisions, 22.0);
        assert_eq!(rates.without_redis, 2.0);
        assert_eq!(rates.near_limit, 10.0);
        // Every request in between took more than the largest bound, 100 ms.
        assert_eq!(rates.latency_p95, Some(0.1));
        assert_eq!(rates.decision_p95, None);
    }

    #[test]
    fn a_restarted_source_counts_from_zero() {
        let earlier = reading(500.0, 0.0, 0.0, Histogram::default());
        let later = reading(30.0, 0.0, 0.0, Histogram::default());
        let rates = WebRates::between(&earlier, &later, Duration::from_secs(3));
        assert_eq!(rates.requests, 10.0);
    }

    #[test]
    fn redis_ops_come_from_commands_processed() {
        let info = |commands, memory| RedisInfo {
            total_commands_processed: commands,
            instantaneous_ops_per_sec: 7,
            used_memory: memory,
            maxmemory: 0,
            connected_clients: 3,
        };
        let rates = RedisRates::between(
            &info(1_000, 10),
            &info(1_500, 20),
            Duration::from_millis(500),
        );
        assert_eq!(rates.ops, 1_000.0);
        assert_eq!(rates.used_memory, 20);
        assert_eq!(
            RedisRates::between(&info(1, 1), &info(9, 1), Duration::ZERO).ops,
            0.0
        );
    }
}
