//! The limiter's Prometheus series, registered into the app's shared `Registry`.

use clusterlab_contract::metrics::{self as series, outcome};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

use super::{LimiterError, Verdict};

pub struct LimiterMetrics {
    /// `ratelimit_decisions_total{policy, outcome}`, outcome one of
    /// `clusterlab_contract::metrics::outcome`.
    pub decisions: IntCounterVec,
    /// `ratelimit_redis_errors_total{kind}`; kind is timeout, oom (Redis at `maxmemory`
    /// refusing the decision's write: it never evicts limiter keys) or redis.
    pub redis_errors: IntCounterVec,
    /// `ratelimit_near_limit_total{policy}`: admissions that left the client 20% or less
    /// of its budget, the early sign of a limit about to bite.
    pub near_limit: IntCounterVec,
    /// `ratelimit_decision_seconds`: time to a verdict, Redis round trip included.
    pub latency: Histogram,
}

impl LimiterMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let decisions = IntCounterVec::new(
            Opts::new(
                series::DECISIONS,
                "Rate-limit decisions by policy and outcome",
            ),
            &["policy", "outcome"],
        )?;
        let near_limit = IntCounterVec::new(
            Opts::new(
                series::NEAR_LIMIT,
                "Admissions that left the client at most 20% of its budget, by policy",
            ),
            &["policy"],
        )?;
        let redis_errors = IntCounterVec::new(
            Opts::new(
                series::REDIS_ERRORS,
                "Decisions Redis could not make in time, by kind",
            ),
            &["kind"],
        )?;
        // A decision is one Redis round trip: tens of microseconds to the timeout (50 ms).
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                series::DECISION_LATENCY,
                "Time to a rate-limit verdict, Redis round trip included",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(near_limit.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(LimiterMetrics {
            decisions,
            redis_errors,
            near_limit,
            latency,
        })
    }

    pub fn count_verdict(&self, policy: &str, verdict: &Verdict) {
        let outcome = match verdict {
            Verdict::Allowed(_) => outcome::ALLOWED,
            Verdict::Limited(_) => outcome::LIMITED,
            Verdict::Fallback(d) if d.allowed => outcome::FALLBACK_ALLOWED,
            Verdict::Fallback(_) => outcome::FALLBACK_LIMITED,
            Verdict::Shadowed(_) => outcome::SHADOW_LIMITED,
            Verdict::Exempt => outcome::EXEMPT,
            Verdict::FailedOpen => outcome::FAIL_OPEN,
            Verdict::FailedClosed => outcome::FAIL_CLOSED,
        };
        self.decisions.with_label_values(&[policy, outcome]).inc();
        if let Verdict::Allowed(d) | Verdict::Fallback(d) = verdict {
            if d.allowed && d.remaining.saturating_mul(5) <= d.shown_limit().limit {
                self.near_limit.with_label_values(&[policy]).inc();
            }
        }
    }

    pub fn count_error(&self, error: &LimiterError) {
        let kind = match error {
            LimiterError::Timeout(_) => "timeout",
            LimiterError::Redis(e) if e.code() == Some("OOM") => "oom",
            _ => "redis",
        };
        self.redis_errors.with_label_values(&[kind]).inc();
    }
}
