//! The web app's Prometheus series that the provisioner reads back (`status`, `top`): their
//! names and the label values that mean something. The web app registers them under these
//! names; the provisioner looks them up by the same constants.

/// `http_requests_total{method, route, status}`: every answer.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// `http_request_duration_seconds{method, route}`, a histogram.
pub const HTTP_LATENCY: &str = "http_request_duration_seconds";
/// `ratelimit_decisions_total{policy, outcome}`, outcome one of [`outcome::ALL`].
pub const DECISIONS: &str = "ratelimit_decisions_total";
/// `ratelimit_near_limit_total{policy}`: admissions that left the client at most 20% of its
/// budget.
pub const NEAR_LIMIT: &str = "ratelimit_near_limit_total";
/// `ratelimit_decision_seconds`, a histogram: time to a verdict, Redis round trip included.
pub const DECISION_LATENCY: &str = "ratelimit_decision_seconds";
/// `ratelimit_redis_errors_total{kind}`: decisions Redis could not make in time.
pub const REDIS_ERRORS: &str = "ratelimit_redis_errors_total";
/// The `route` label of `GET /metrics` itself (a reader leaves its own scrapes out).
pub const METRICS_ROUTE: &str = "/metrics";

/// The `outcome` label values of [`DECISIONS`], in the order tables show them.
pub mod outcome {
    /// Redis admitted the request.
    pub const ALLOWED: &str = "allowed";
    /// Redis refused it: a 429.
    pub const LIMITED: &str = "limited";
    /// Refused but served: the policy is in shadow mode.
    pub const SHADOW_LIMITED: &str = "shadow_limited";
    /// Redis did not answer; the web host admitted it on its own share (`fail_mode: local`).
    pub const FALLBACK_ALLOWED: &str = "fallback_allowed";
    /// Redis did not answer; the web host refused it on its own share.
    pub const FALLBACK_LIMITED: &str = "fallback_limited";
    /// The client is in an unlimited override's network: no decision was asked for.
    pub const EXEMPT: &str = "exempt";
    /// Redis did not answer; served unlimited (`fail_mode: open`).
    pub const FAIL_OPEN: &str = "fail_open";
    /// Redis did not answer; refused with 503 (`fail_mode: closed`).
    pub const FAIL_CLOSED: &str = "fail_closed";

    pub const ALL: [&str; 8] = [
        ALLOWED,
        LIMITED,
        SHADOW_LIMITED,
        FALLBACK_ALLOWED,
        FALLBACK_LIMITED,
        EXEMPT,
        FAIL_OPEN,
        FAIL_CLOSED,
    ];

    /// Whether a decision with this outcome was made without Redis.
    pub fn without_redis(outcome: &str) -> bool {
        [FALLBACK_ALLOWED, FALLBACK_LIMITED, FAIL_OPEN, FAIL_CLOSED].contains(&outcome)
    }
}
