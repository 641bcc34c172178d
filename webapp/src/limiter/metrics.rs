//! The limiter's Prometheus series, registered into the app's shared `Registry`.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

use super::{LimiterError, Verdict};

pub struct LimiterMetrics {
    /// `ratelimit_decisions_total{policy, outcome}`; outcome is allowed, limited,
    /// fallback_allowed, fallback_limited (`fail_mode = local`), fail_open or fail_closed.
    pub decisions: IntCounterVec,
    /// `ratelimit_redis_errors_total{kind}`; kind is timeout, oom (Redis at `maxmemory`
    /// refusing the decision's write: it never evicts limiter keys) or redis.
    pub redis_errors: IntCounterVec,
    /// `ratelimit_decision_seconds`: time to a verdict, Redis round trip included.
    pub latency: Histogram,
}

impl LimiterMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let decisions = IntCounterVec::new(
            Opts::new(
                "ratelimit_decisions_total",
                "Rate-limit decisions by policy and outcome",
            ),
            &["policy", "outcome"],
        )?;
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "ratelimit_redis_errors_total",
                "Decisions Redis could not make in time, by kind",
            ),
            &["kind"],
        )?;
        // A decision is one Redis round trip: tens of microseconds to the timeout (50 ms).
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "ratelimit_decision_seconds",
                "Time to a rate-limit verdict, Redis round trip included",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(LimiterMetrics {
            decisions,
            redis_errors,
            latency,
        })
    }

    pub fn count_verdict(&self, policy: &str, verdict: &Verdict) {
        let outcome = match verdict {
            Verdict::Allowed(_) => "allowed",
            Verdict::Limited(_) => "limited",
            Verdict::Fallback(d) if d.allowed => "fallback_allowed",
            Verdict::Fallback(_) => "fallback_limited",
            Verdict::FailedOpen => "fail_open",
            Verdict::FailedClosed => "fail_closed",
        };
        self.decisions.with_label_values(&[policy, outcome]).inc();
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
