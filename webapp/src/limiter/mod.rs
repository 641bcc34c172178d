//! The global rate limiter: every web server asks one Redis before it serves a request.
//!
//! # Layout
//! - the settings (the `limiter` table of Rocket's configuration), "N per W" policies, the
//!   route class -> policy lookup and the Redis key come from `clusterlab_contract`, the
//!   crate the provisioner writes them with.
//! - [`identity`]: which client a request is billed to (trusted proxies, IPv6 /64s).
//! - `lua/*.lua`: one script per algorithm, each ending with `decide.lua`, which checks all
//!   of a policy's limits and records in all or none; a decision is one `EVALSHA`, timed by
//!   Redis.
//! - [`connection`]: the one Redis, or the primary a Sentinel group names (followed
//!   through failovers); [`batch`]: the queue that pipelines concurrent decisions to it.
//! - this module: [`Limiter`] (one decision per call, fail mode) and [`Decision`].
//! - [`headers`]: `RateLimit-Policy`, `RateLimit`, `Retry-After` values.
//! - [`metrics`]: Prometheus counters and the latency histogram.
//! - [`guard`]: the Rocket side: `stage()`, the [`RateLimit`] request guard, catchers.
//! - [`demo`]: a tiny app using all of the above (tests, `limiter-demo`).

pub mod batch;
pub mod connection;
pub mod demo;
pub mod guard;
pub mod headers;
pub mod identity;
pub mod local;
pub mod metrics;
pub mod openapi;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::Registry;
use redis::aio::ConnectionManagerConfig;
use redis::{ErrorKind, FromRedisValue, Script, ServerErrorKind};

pub use clusterlab_contract::{
    route, Algorithm, Applies, FailMode, Limit, LimiterConfig, Network, OverrideSpec, Policy,
    PolicySet, PolicySpec, RedisUrl, Window,
};
pub use connection::RedisLink;
pub use guard::{classed, stage, RateLimit};
pub use identity::{ClientId, IdentityRules};
use metrics::LimiterMetrics;
pub use openapi::{RateLimitHeaders, TooManyRequests};

#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("invalid limiter configuration: {0}")]
    Config(String),
    #[error("limiter.redis_url is not a usable Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the rate-limit script answered {0}, expected [admitted, remaining, reset_ms, limit]")]
    BadReply(String),
    #[error("registering the limiter metrics failed: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The Lua source that makes one decision with `algorithm`: the algorithm's `check`,
/// `record` and `report`, then the driver that applies them to every limit of a policy.
pub fn script_source(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::SlidingLog => {
            concat!(
                include_str!("lua/sliding_log.lua"),
                include_str!("lua/decide.lua")
            )
        }
        Algorithm::SlidingWindow => concat!(
            include_str!("lua/sliding_window.lua"),
            include_str!("lua/decide.lua")
        ),
        Algorithm::Gcra => concat!(include_str!("lua/gcra.lua"), include_str!("lua/decide.lua")),
    }
}

/// One answer of the limiter for one request, with what the headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub policy: String,
    /// Every limit of the policy, as `RateLimit-Policy` lists them.
    pub limits: Vec<Limit>,
    /// The limit (an index into `limits`) the figures below are of: when admitted, the one
    /// closest to refusing; when refused, the refusing one that frees up last.
    pub shown: usize,
    /// Quota units left after this request.
    pub remaining: u64,
    /// Milliseconds until the next unit of quota returns (when a refused request would pass).
    pub reset_ms: u64,
}

impl Decision {
    /// The limit the figures are of.
    pub fn shown_limit(&self) -> Limit {
        self.limits[self.shown]
    }

    /// `t` of the `RateLimit` header: rounded up, so a client that waits `t` is never early.
    pub fn reset_seconds(&self) -> u64 {
        self.reset_ms.div_ceil(1000)
    }

    /// `Retry-After` of a 429: never earlier than `t`, and at least one second.
    pub fn retry_after_seconds(&self) -> u64 {
        self.reset_seconds().max(1)
    }
}

/// What the request gets once the fail mode has been applied to the Redis answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(Decision),
    Limited(Decision),
    /// Redis could not decide and `fail_mode = "local"`: this server's own decision on its
    /// share of the limit ([`local::LocalLimiter`]), served like Redis' would be.
    Fallback(Decision),
    /// Refused (by Redis or the fallback), but the policy is in shadow mode: served, and
    /// counted as what enforcing it would have refused.
    Shadowed(Decision),
    /// The client is in an unlimited override's network: served, no decision asked for.
    Exempt,
    /// Redis could not decide and `fail_mode = "open"`: serve without a decision.
    FailedOpen,
    /// Redis could not decide and `fail_mode = "closed"`: refuse with 503.
    FailedClosed,
}

impl Verdict {
    /// The decision the `RateLimit` headers report, when one was made.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Verdict::Allowed(d)
            | Verdict::Limited(d)
            | Verdict::Fallback(d)
            | Verdict::Shadowed(d) => Some(d),
            Verdict::Exempt | Verdict::FailedOpen | Verdict::FailedClosed => None,
        }
    }

    /// Whether the request is refused with 429 (by Redis or by the local fallback).
    pub fn refuses(&self) -> bool {
        match self {
            Verdict::Limited(_) => true,
            Verdict::Fallback(d) => !d.allowed,
            _ => false,
        }
    }
}

/// Seconds a client refused with 503 (fail closed) is asked to wait.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 1;

/// How often a limiter without Redis may log that it decides without it.
const FAIL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limiter a Rocket instance manages; cheap to share, one Redis connection multiplexed.
/// Pings the limiter's Redis over its shared connection.
#[derive(Clone)]
pub struct RedisProbe {
    conn: RedisLink,
    timeout: Duration,
}

impl RedisProbe {
    pub async fn ping(&self) -> Result<(), LimiterError> {
        let mut conn = self.conn.clone();
        let pong: String =
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| LimiterError::Timeout(self.timeout))??;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(LimiterError::BadReply(pong))
        }
    }
}

pub struct Limiter {
    conn: RedisLink,
    /// The decisions' way to `conn`: queued and pipelined.
    batch: batch::Batcher,
    script: Script,
    algorithm: Algorithm,
    fail_mode: FailMode,
    timeout: Duration,
    key_prefix: String,
    policies: PolicySet,
    identity: IdentityRules,
    metrics: LimiterMetrics,
    /// The decisions of `fail_mode = "local"` while Redis cannot make them.
    local: local::LocalLimiter,
    started: Instant,
    /// Milliseconds after `started` of the last fail-open log line, plus one (0 = never).
    last_fail_log: AtomicU64,
}

impl Limiter {
    /// Builds the limiter without contacting Redis: the connection is made on first use
    /// and remade after failures, so the app starts (and recovers) whether Redis is up or not.
    pub fn new(config: &LimiterConfig, registry: &Registry) -> Result<Self, LimiterError> {
        let policies = config
            .validate()
            .map_err(|e| LimiterError::Config(e.to_string()))?;
        // rediss:// needs a rustls crypto provider; keep one the embedding app chose.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.timeout()))
            .set_connection_timeout(Some(config.timeout().max(Duration::from_millis(250))))
            // Few quick retries: a request never waits for them (see `timeout`), and a
            // failed round starts again on the next request, which is how Redis coming back
            // is noticed without a restart.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let url = config.redis_url.expose();
        let conn = match &config.sentinel {
            None => RedisLink::direct(url, manager_config),
            Some(sentinel) => RedisLink::sentinel(url, sentinel, manager_config),
        }
        .map_err(LimiterError::Url)?;
        Ok(Limiter {
            batch: batch::Batcher::new(conn.clone()),
            conn,
            script: Script::new(script_source(config.algorithm)),
            algorithm: config.algorithm,
            fail_mode: config.fail_mode,
            timeout: config.timeout(),
            key_prefix: config.key_prefix.clone(),
            identity: IdentityRules::new(&config.trusted_proxies, config.ipv6_prefix),
            metrics: LimiterMetrics::register(registry)?,
            local: local::LocalLimiter::new(&policies, config.instances),
            policies,
            started: Instant::now(),
            last_fail_log: AtomicU64::new(0),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    pub fn identity(&self) -> &IdentityRules {
        &self.identity
    }

    /// The Redis keys this client's state lives in under `policy`, one per limit.
    pub fn keys(&self, policy: &Policy, client: &ClientId) -> Vec<String> {
        policy.keys(&self.key_prefix, self.algorithm, client)
    }

    /// The SHA1 the script is invoked by (`EVALSHA <sha> <n> <key>... <limit> <window_ms>...`,
    /// one key and one pair per limit).
    pub fn script_sha(&self) -> &str {
        self.script.get_hash()
    }

    /// One decision, one `EVALSHA` (the script is loaded and the decision asked again only
    /// when Redis answers NOSCRIPT, e.g. after a restart), bounded by the timeout. It
    /// travels in one pipeline with the decisions queued beside it ([`batch`]).
    pub async fn decide(
        &self,
        policy: &Policy,
        client: &ClientId,
    ) -> Result<Decision, LimiterError> {
        let keys = self.keys(policy, client);
        let evalsha = || {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.script.get_hash()).arg(keys.len()).arg(&keys);
            for limit in &policy.limits {
                cmd.arg(limit.limit).arg(limit.window.as_millis());
            }
            cmd
        };
        let asked = async {
            match self.batch.query(evalsha()).await {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    self.script.load_async(&mut self.conn.clone()).await?;
                    self.batch.query(evalsha()).await
                }
                answer => answer,
            }
        };
        let value = tokio::time::timeout(self.timeout, asked)
            .await
            .map_err(|_| LimiterError::Timeout(self.timeout))??;
        let reply = Vec::<i64>::from_redis_value(value.clone())
            .map_err(|_| LimiterError::BadReply(format!("{value:?}")))?;
        let bad = || LimiterError::BadReply(format!("{reply:?}"));
        let &[admitted, remaining, reset_ms, shown] = reply.as_slice() else {
            return Err(bad());
        };
        // The script numbers limits from 1, as Lua does.
        let shown = usize::try_from(shown - 1)
            .ok()
            .filter(|&i| i < policy.limits.len())
            .ok_or_else(bad)?;
        Ok(Decision {
            allowed: admitted == 1,
            policy: policy.name.clone(),
            limits: policy.limits.clone(),
            shown,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset_ms: u64::try_from(reset_ms).unwrap_or(0),
        })
    }

    /// A decision with the fail mode applied and everything counted in the metrics.
    pub async fn check(&self, policy: &Policy, client: &ClientId) -> Verdict {
        let started = Instant::now();
        let result = self.decide(policy, client).await;
        self.metrics
            .latency
            .observe(started.elapsed().as_secs_f64());
        let verdict = match result {
            Ok(decision) if decision.allowed => Verdict::Allowed(decision),
            Ok(decision) => Verdict::Limited(decision),
            Err(error) => {
                self.metrics.count_error(&error);
                match self.fail_mode {
                    FailMode::Local => {
                        self.log_fail(
                            &error,
                            "deciding on this server's share alone (fail_mode = local)",
                        );
                        Verdict::Fallback(self.local.decide(policy, client))
                    }
                    FailMode::Open => {
                        self.log_fail(&error, "serving unlimited (fail_mode = open)");
                        Verdict::FailedOpen
                    }
                    FailMode::Closed => {
                        log::warn!("rate limiter refusing (fail_mode = closed): {error}");
                        Verdict::FailedClosed
                    }
                }
            }
        };
        let verdict = match verdict {
            Verdict::Limited(decision) | Verdict::Fallback(decision)
                if policy.shadow && !decision.allowed =>
            {
                Verdict::Shadowed(decision)
            }
            other => other,
        };
        self.metrics.count_verdict(&policy.name, &verdict);
        verdict
    }

    /// A request from an unlimited override's network under the policy it would otherwise
    /// get: no decision, counted.
    pub fn exempt(&self, usual: &Policy) -> Verdict {
        self.metrics.count_verdict(&usual.name, &Verdict::Exempt);
        Verdict::Exempt
    }

    /// The Redis primary the sentinels named last (`None` for a single Redis).
    pub fn primary_addr(&self) -> Option<String> {
        self.conn.primary_addr()
    }

    /// For `/readyz`: Redis answers `PING` within the timeout.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        self.probe().ping().await
    }

    /// A handle that pings this limiter's Redis, for readiness checks kept apart from it.
    pub fn probe(&self) -> RedisProbe {
        RedisProbe {
            conn: self.conn.clone(),
            timeout: self.timeout,
        }
    }

    /// Deciding without Redis is worth knowing, but not once per request.
    fn log_fail(&self, error: &LimiterError, what: &str) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_fail_log.load(Ordering::Relaxed);
        let interval = FAIL_LOG_INTERVAL.as_millis() as u64;
        let due = last == 0 || now.saturating_sub(last - 1) >= interval;
        if due
            && self
                .last_fail_log
                .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "rate limiter {what}; logged at most every {}s: {error}",
                FAIL_LOG_INTERVAL.as_secs()
            );
        }
    }
}
