//! Limiter configuration: the `limiter` table of Rocket's figment, parsed once into typed values.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::policy::{Policy, PolicySet, Window};
use super::LimiterError;

/// Which script decides; all three share the interface and the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Exact: at most N admissions in any window W (a sorted set per client).
    #[default]
    SlidingLog,
    /// Two counters per client, the previous one weighted by its overlap: O(1) memory.
    SlidingWindow,
    /// Generic cell rate algorithm: one timestamp per client, bursts up to N.
    Gcra,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [
        Algorithm::SlidingLog,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra => "gcra",
        }
    }

    /// The Lua source that makes one decision with this algorithm.
    pub fn lua(self) -> &'static str {
        match self {
            Algorithm::SlidingLog => include_str!("lua/sliding_log.lua"),
            Algorithm::SlidingWindow => include_str!("lua/sliding_window.lua"),
            Algorithm::Gcra => include_str!("lua/gcra.lua"),
        }
    }
}

/// What a request gets while Redis cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Serve the request unlimited; logged at most once per interval and counted in metrics.
    #[default]
    Open,
    /// Refuse with 503 and `Retry-After`.
    Closed,
}

/// A Redis URL whose password never reaches a log line or a `Debug` print.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        RedisUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Everything between the scheme and the last '@' may hold user:password.
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                write!(f, "\"{}://***{}\"", &self.0[..scheme], &self.0[at..])
            }
            _ => write!(f, "{:?}", self.0),
        }
    }
}

/// A trusted-proxy network; a bare address means just that host (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TrustedProxy(pub IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let value = value.trim();
        if let Ok(net) = value.parse::<IpNet>() {
            return Ok(TrustedProxy(net.trunc()));
        }
        value
            .parse::<std::net::IpAddr>()
            .map(|ip| TrustedProxy(IpNet::from(ip)))
            .map_err(|_| format!("`{value}` is neither a CIDR (10.0.0.0/8) nor an IP address"))
    }
}

/// One policy as written in the configuration: `{limit = 10, window = "60s"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub limit: u64,
    pub window: Window,
}

/// The `limiter` table. Every key is optional; defaults suit a single local Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimiterConfig {
    pub redis_url: RedisUrl,
    pub algorithm: Algorithm,
    pub fail_mode: FailMode,
    pub timeout_ms: u64,
    pub trusted_proxies: Vec<TrustedProxy>,
    pub ipv6_prefix: u8,
    pub key_prefix: String,
    pub policies: BTreeMap<String, PolicySpec>,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            redis_url: RedisUrl::new("redis://127.0.0.1:6379/"),
            algorithm: Algorithm::default(),
            fail_mode: FailMode::default(),
            timeout_ms: 50,
            trusted_proxies: Vec::new(),
            ipv6_prefix: 64,
            key_prefix: "rl:".to_owned(),
            policies: BTreeMap::new(),
        }
    }
}

/// The default policy when the configuration names none: 100 requests per minute.
const DEFAULT_POLICY: PolicySpec = PolicySpec {
    limit: 100,
    window: Window::from_millis(60_000),
};

impl LimiterConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks the values serde cannot, and builds the policy set (always with a `default`).
    pub fn validate(&self) -> Result<PolicySet, LimiterError> {
        if self.timeout_ms == 0 {
            return Err(LimiterError::Config(
                "limiter.timeout_ms must be at least 1".into(),
            ));
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(LimiterError::Config(format!(
                "limiter.ipv6_prefix must be within 1..=128, got {}",
                self.ipv6_prefix
            )));
        }
        let mut policies = Vec::new();
        for (name, spec) in &self.policies {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(LimiterError::Config(format!(
                    "limiter.policies.{name}: a policy name is letters, digits, '_' or '-'"
                )));
            }
            if spec.limit == 0 {
                return Err(LimiterError::Config(format!(
                    "limiter.policies.{name}.limit must be at least 1"
                )));
            }
            policies.push(Policy::new(name, spec.limit, spec.window));
        }
        if !self.policies.contains_key(PolicySet::DEFAULT) {
            policies.push(Policy::new(
                PolicySet::DEFAULT,
                DEFAULT_POLICY.limit,
                DEFAULT_POLICY.window,
            ));
        }
        Ok(PolicySet::new(policies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::{Format, Toml};
    use rocket::figment::Figment;

    fn parse(toml: &str) -> Result<LimiterConfig, Box<rocket::figment::Error>> {
        Figment::from(Toml::string(toml))
            .extract_inner("limiter")
            .map_err(Box::new)
    }

    #[test]
    fn reads_the_documented_table() {
        let config = parse(
            r#"
            [limiter]
            redis_url = "redis://:pw@10.0.0.5:6379/"
            algorithm = "gcra"
            fail_mode = "closed"
            timeout_ms = 20
            trusted_proxies = ["10.0.0.2/32", "fd00::1"]
            ipv6_prefix = 56
            key_prefix = "x:"
            policies = { default = { limit = 100, window = "60s" }, shorten = { limit = 10, window = "500ms" } }
            "#,
        )
        .expect("valid config");
        assert_eq!(config.algorithm, Algorithm::Gcra);
        assert_eq!(config.fail_mode, FailMode::Closed);
        assert_eq!(config.timeout(), Duration::from_millis(20));
        assert_eq!(
            config.trusted_proxies[1].0,
            "fd00::1/128".parse::<IpNet>().unwrap()
        );
        let policies = config.validate().expect("valid policies");
        assert_eq!(policies.for_route(Some("shorten")).window.as_millis(), 500);
        assert_eq!(policies.for_route(Some("index")).limit, 100);
        assert_eq!(
            format!("{:?}", config.redis_url),
            "\"redis://***@10.0.0.5:6379/\""
        );
    }

    #[test]
    fn reads_the_contract_env_value() {
        // Exactly what ROCKET_LIMITER holds in the deployment contract.
        let value: rocket::figment::value::Value = r#"{redis_url="redis://:pw@10.0.0.5:6379/", algorithm="sliding_log", fail_mode="open", timeout_ms=50, trusted_proxies=["10.0.0.2/32"], ipv6_prefix=64, key_prefix="rl:", policies={default={limit=100, window="60s"}, shorten={limit=10, window="60s"}, redirect={limit=100, window="60s"}}}"#
            .parse()
            .expect("env value");
        let config: LimiterConfig = value.deserialize().expect("contract config");
        assert_eq!(config.algorithm, Algorithm::SlidingLog);
        assert_eq!(config.fail_mode, FailMode::Open);
        assert_eq!(
            config.trusted_proxies,
            [TrustedProxy("10.0.0.2/32".parse().unwrap())]
        );
        assert_eq!(config.redis_url.expose(), "redis://:pw@10.0.0.5:6379/");
        let policies = config.validate().expect("valid");
        assert_eq!(policies.for_route(Some("shorten")).limit, 10);
        assert_eq!(policies.for_route(Some("redirect")).limit, 100);
        assert_eq!(policies.for_route(Some("index")).name, "default");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(parse("[limiter]\nalgoritm = \"gcra\"").is_err());
        assert!(parse("[limiter]\nalgorithm = \"token_bucket\"").is_err());
        assert!(parse("[limiter]\ntrusted_proxies = [\"10.0.0.300/8\"]").is_err());
        let zero = parse("[limiter]\npolicies = { default = { limit = 0, window = \"1s\" } }")
            .expect("parses");
        assert!(zero.validate().is_err());
    }

    #[test]
    fn a_default_policy_always_exists() {
        let policies = LimiterConfig::default().validate().expect("valid");
        let default = policies.for_route(None);
        assert_eq!((default.name.as_str(), default.limit), ("default", 100));
    }
}
