//! The web app's `limiter` settings as one serde type: the provisioner serializes it into
//! `ROCKET_LIMITER`, the web app reads it from its figment, and both use the defaults below.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{redis_key, route, Window};

/// Which script decides; all three share the interface and the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

    /// The algorithm [`Algorithm::as_str`] names.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra => "gcra",
        }
    }
}

/// What a request gets while Redis cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Decide in the web server's own memory, each of the `instances` allowing its share
    /// (`limit / instances`) of every policy, so the cluster as a whole stays within the
    /// limit while Redis is away. Counted in metrics as fallback decisions.
    #[default]
    Local,
    /// Serve the request unlimited; logged at most once per interval and counted in metrics.
    Open,
    /// Refuse with 503 and `Retry-After`.
    Closed,
}

impl FailMode {
    pub const ALL: [FailMode; 3] = [FailMode::Local, FailMode::Open, FailMode::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Local => "local",
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// Values a setting takes when it is left out (the spec's defaults are these too).
pub mod defaults {
    use crate::Window;

    pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
    pub const TIMEOUT_MS: u32 = 50;
    pub const IPV6_PREFIX: u8 = 64;
    pub const KEY_PREFIX: &str = "rl:";
    /// The `default` policy when the settings name none: 100 requests per minute.
    pub const POLICY_LIMIT: u32 = 100;
    pub const POLICY_WINDOW: Window = Window::from_millis(60_000);
}

/// A Redis URL whose password never reaches a log line or a `Debug` print.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Everything between the scheme and the last '@' may hold user:password.
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                write!(f, "{}://***{}", &self.0[..scheme], &self.0[at..])
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// A network (a trusted proxy's, an override's); a bare address means just that host
/// (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network(pub IpNet);

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let value = value.trim();
        if let Ok(net) = value.parse::<IpNet>() {
            return Ok(Network(net.trunc()));
        }
        value
            .parse::<std::net::IpAddr>()
            .map(|ip| Network(IpNet::from(ip)))
            .map_err(|_| format!("`{value}` is neither a CIDR (10.0.0.0/8) nor an IP address"))
    }
}

impl From<Network> for String {
    fn from(network: Network) -> String {
        network.0.to_string()
    }
}

/// "`limit` requests per `window`": one limit of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub limit: u64,
    pub window: Window,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {}", self.limit, self.window)
    }
}

/// One policy as written in the settings, with one limit (`{limit = 10, window = "60s"}`)
/// or several, all of which must admit a request (`[{limit = 10, window = "60s"}, {limit
/// = 100, window = "3600s"}]`, or `{limits = [...], shadow = true}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "PolicyForm")]
pub struct PolicySpec {
    pub limits: Vec<Limit>,
    /// Decide and count, but serve what the policy would refuse ([`LimiterConfig::shadow`]).
    pub shadow: bool,
}

impl PolicySpec {
    /// A policy of one limit, enforced.
    pub fn one(limit: u64, window: Window) -> Self {
        PolicySpec {
            limits: vec![Limit { limit, window }],
            shadow: false,
        }
    }
}

/// The forms a policy is written in, read by hand rather than as an untagged enum so a bad
/// value keeps its own message ("… is too long") instead of "did not match any variant".
impl<'de> Deserialize<'de> for PolicySpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = PolicySpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("{limit, window}, a list of them, or {limits = [...], shadow}")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<PolicySpec, A::Error> {
                let limits =
                    Vec::<Limit>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(PolicySpec {
                    limits,
                    shadow: false,
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PolicySpec, A::Error> {
                use serde::de::Error;
                let (mut limit, mut window, mut limits, mut shadow) = (None, None, None, false);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "limit" => limit = Some(map.next_value::<u64>()?),
                        "window" => window = Some(map.next_value::<Window>()?),
                        "limits" => limits = Some(map.next_value::<Vec<Limit>>()?),
                        "shadow" => shadow = map.next_value()?,
                        other => {
                            return Err(A::Error::unknown_field(
                                other,
                                &["limit", "window", "limits", "shadow"],
                            ))
                        }
                    }
                }
                let limits = match (limit, window, limits) {
                    (Some(limit), Some(window), None) => vec![Limit { limit, window }],
                    (None, None, Some(limits)) => limits,
                    (None, _, None) => return Err(A::Error::missing_field("limit")),
                    (_, None, None) => return Err(A::Error::missing_field("window")),
                    _ => {
                        return Err(A::Error::custom(
                            "give either `limit` and `window` or `limits`, not both",
                        ))
                    }
                };
                Ok(PolicySpec { limits, shadow })
            }
        }
        deserializer.deserialize_any(Form)
    }
}

/// The form a policy is written back in: one limit as a table of its own (the form from
/// before there were several), more as `{limits = [...]}`.
#[derive(Serialize)]
#[serde(untagged)]
enum PolicyForm {
    One {
        limit: u64,
        window: Window,
        #[serde(skip_serializing_if = "is_false")]
        shadow: bool,
    },
    Many {
        limits: Vec<Limit>,
        #[serde(skip_serializing_if = "is_false")]
        shadow: bool,
    },
}

impl From<PolicySpec> for PolicyForm {
    fn from(spec: PolicySpec) -> Self {
        match spec.limits.as_slice() {
            [one] => PolicyForm::One {
                limit: one.limit,
                window: one.window,
                shadow: spec.shadow,
            },
            _ => PolicyForm::Many {
                limits: spec.limits,
                shadow: spec.shadow,
            },
        }
    }
}

/// Clients in `cidr` get other limits than everyone else: none at all (`unlimited`, e.g.
/// the monitoring host), or `policies` of their own in place of the ones of the same name
/// (route classes the override leaves out keep the usual policy). A client in several
/// overrides gets the most specific one (the longest prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    pub cidr: Network,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unlimited: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, PolicySpec>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Where a Sentinel group's sentinels listen and which primary they watch: with it, the
/// limiter asks them for the primary's address (and asks again after a failover), and
/// `redis_url` supplies only the credentials, database and TLS mode, used for the data
/// nodes and the sentinels alike (`redis://:password@ignored/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the primary by (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// `host:port` of each sentinel, asked in this order.
    pub nodes: Vec<String>,
}

/// The `limiter` table. Every key is optional; defaults suit a single local Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimiterConfig {
    pub redis_url: RedisUrl,
    /// A Sentinel group in place of the single Redis at `redis_url` ([`SentinelConfig`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    pub algorithm: Algorithm,
    pub fail_mode: FailMode,
    /// How many web servers share the limit: with `fail_mode = "local"` each allows
    /// `limit / instances` of every policy on its own.
    pub instances: u32,
    /// Shadow mode for every policy: each request is decided and counted (metrics, the
    /// `RateLimit` headers) as usual, but one the policy refuses is served anyway, so a
    /// limit can be watched before it is enforced.
    #[serde(skip_serializing_if = "is_false")]
    pub shadow: bool,
    pub timeout_ms: u64,
    pub trusted_proxies: Vec<Network>,
    pub ipv6_prefix: u8,
    pub key_prefix: String,
    pub policies: BTreeMap<String, PolicySpec>,
    /// Networks with other limits ([`OverrideSpec`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OverrideSpec>,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            redis_url: RedisUrl::new(defaults::REDIS_URL),
            sentinel: None,
            algorithm: Algorithm::default(),
            fail_mode: FailMode::default(),
            instances: 1,
            shadow: false,
            timeout_ms: defaults::TIMEOUT_MS.into(),
            trusted_proxies: Vec::new(),
            ipv6_prefix: defaults::IPV6_PREFIX,
            key_prefix: defaults::KEY_PREFIX.to_owned(),
            policies: BTreeMap::new(),
            overrides: Vec::new(),
        }
    }
}

/// Settings that parse but cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("limiter.timeout_ms must be at least 1")]
    Timeout,
    #[error("limiter.instances must be at least 1")]
    Instances,
    #[error("limiter.ipv6_prefix must be within 1..=128, got {0}")]
    Ipv6Prefix(u8),
    #[error("limiter.{0}: a policy name is letters, digits, '_' or '-'")]
    PolicyName(String),
    #[error("limiter.{0}.limit must be at least 1")]
    Limit(String),
    #[error("limiter.{0}: a policy needs at least one limit")]
    NoLimits(String),
    #[error("limiter.{0}: two limits have the window {1}; each limit needs a window of its own")]
    SameWindow(String, Window),
    #[error(
        "limiter.overrides.{0}: give either `unlimited = true` or `policies`, not both or neither"
    )]
    OverrideRule(usize),
    #[error("limiter.overrides.{0}: {1} is also the network of override {2}")]
    OverrideNetwork(usize, String, usize),
    #[error("limiter.sentinel: {0}")]
    Sentinel(String),
    #[error("{url} is not a usable URL: {reason}")]
    Url { url: String, reason: String },
}

impl LimiterConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks the values serde cannot, and builds the policy set (always with a `default`).
    pub fn validate(&self) -> Result<PolicySet, SettingsError> {
        if self.timeout_ms == 0 {
            return Err(SettingsError::Timeout);
        }
        if self.instances == 0 {
            return Err(SettingsError::Instances);
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(SettingsError::Ipv6Prefix(self.ipv6_prefix));
        }
        if let Some(sentinel) = &self.sentinel {
            sentinel.check()?;
        }
        let mut policies = self.policy_list(&self.policies, "policies.")?;
        if !self.policies.contains_key(route::DEFAULT) {
            let mut policy = Policy::new(
                route::DEFAULT,
                defaults::POLICY_LIMIT.into(),
                defaults::POLICY_WINDOW,
            );
            policy.shadow = self.shadow;
            policies.push(policy);
        }
        let mut overrides: Vec<Override> = Vec::new();
        for (index, spec) in self.overrides.iter().enumerate() {
            if let Some(other) = overrides.iter().position(|o| o.network == spec.cidr.0) {
                return Err(SettingsError::OverrideNetwork(
                    index,
                    spec.cidr.0.to_string(),
                    other,
                ));
            }
            let rule = match (spec.unlimited, spec.policies.is_empty()) {
                (true, true) => Rule::Unlimited,
                (false, false) => Rule::Policies(
                    self.policy_list(&spec.policies, &format!("overrides.{index}.policies."))?,
                ),
                _ => return Err(SettingsError::OverrideRule(index)),
            };
            overrides.push(Override {
                network: spec.cidr.0,
                rule,
            });
        }
        Ok(PolicySet::new(policies).with_overrides(overrides))
    }

    /// `specs` as policies, checked; `path` is where they sit under `limiter.` (for errors).
    fn policy_list(
        &self,
        specs: &BTreeMap<String, PolicySpec>,
        path: &str,
    ) -> Result<Vec<Policy>, SettingsError> {
        let mut policies = Vec::new();
        for (name, spec) in specs {
            if !is_policy_name(name) {
                return Err(SettingsError::PolicyName(format!("{path}{name}")));
            }
            let at = format!("{path}{name}");
            if spec.limits.is_empty() {
                return Err(SettingsError::NoLimits(at));
            }
            for (index, limit) in spec.limits.iter().enumerate() {
                let at = if spec.limits.len() == 1 {
                    at.clone()
                } else {
                    format!("{at}.{index}")
                };
                if limit.limit == 0 {
                    return Err(SettingsError::Limit(at));
                }
                if spec.limits[..index]
                    .iter()
                    .any(|l| l.window == limit.window)
                {
                    return Err(SettingsError::SameWindow(at, limit.window));
                }
            }
            policies.push(Policy {
                name: name.clone(),
                limits: spec.limits.clone(),
                shadow: self.shadow || spec.shadow,
            });
        }
        Ok(policies)
    }
}

impl SentinelConfig {
    /// A master name is letters, digits, `_` or `-` (what `sentinel monitor` can carry
    /// unquoted); each node is `host:port`.
    fn check(&self) -> Result<(), SettingsError> {
        if !is_master_name(&self.master_name) {
            return Err(SettingsError::Sentinel(format!(
                "master_name `{}` must be 1 to 64 letters, digits, '_' or '-'",
                self.master_name
            )));
        }
        if self.nodes.is_empty() {
            return Err(SettingsError::Sentinel(
                "nodes must name at least one sentinel".into(),
            ));
        }
        for node in &self.nodes {
            let port = node
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(port))) if !host.is_empty() && port > 0) {
                return Err(SettingsError::Sentinel(format!(
                    "node `{node}` is not host:port"
                )));
            }
        }
        Ok(())
    }
}

/// Whether `name` can name a policy (and so stand in its Redis keys): one or more of
/// `[A-Za-z0-9_-]`.
pub(crate) fn is_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `name` can be a Sentinel master name: 1 to 64 of `[A-Za-z0-9_-]`, which
/// `sentinel monitor` and every Sentinel command carry unquoted. The spec checks
/// `redis.sentinel.master_name` with it, the web app its `limiter.sentinel.master_name`.
pub fn is_master_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The limits of one route class, named after it: a request is admitted when every limit
/// has room, and then counts against all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// At least one, no two with the same window ([`LimiterConfig::validate`]).
    pub limits: Vec<Limit>,
    /// Refusals are counted and reported, not enforced.
    pub shadow: bool,
}

impl Policy {
    /// A policy of one limit.
    pub fn new(name: &str, limit: u64, window: Window) -> Self {
        Policy {
            name: name.to_owned(),
            limits: vec![Limit { limit, window }],
            shadow: false,
        }
    }

    /// The Redis key of each limit for this client, kept by `algorithm` ([`redis_key`]),
    /// in the order of [`Policy::limits`].
    pub fn keys(
        &self,
        prefix: &str,
        algorithm: Algorithm,
        client: &dyn fmt::Display,
    ) -> Vec<String> {
        self.limits
            .iter()
            .map(|l| redis_key(prefix, algorithm, &self.name, l.window, client))
            .collect()
    }

    /// The limit of this policy with `window`, as a key names it.
    pub fn limit_with_window(&self, window: Window) -> Option<&Limit> {
        self.limits.iter().find(|l| l.window == window)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, limit) in self.limits.iter().enumerate() {
            if i > 0 {
                write!(f, " and ")?;
            }
            write!(f, "{limit}")?;
        }
        if self.shadow {
            write!(f, " (shadow)")?;
        }
        Ok(())
    }
}

/// All configured policies; route classes without an own policy share `default`. Clients
/// in an [`Override`]'s network get its rule instead.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    default: usize,
    overrides: Vec<Override>,
}

/// A network whose clients get other limits ([`OverrideSpec`], validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub network: IpNet,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Never limited: no decision is asked for.
    Unlimited,
    /// These policies in place of the ones of the same name.
    Policies(Vec<Policy>),
}

/// The override a client at `address` gets: of those whose network holds it, the most
/// specific (longest prefix), like a routing table. The one rule for both programs: the
/// web app applies it, the provisioner's load-test verdict judges by it.
pub fn most_specific<T>(
    overrides: &[T],
    network: impl Fn(&T) -> IpNet,
    address: IpAddr,
) -> Option<&T> {
    let address = address.to_canonical();
    overrides
        .iter()
        .filter(|o| network(o).contains(&address))
        .max_by_key(|o| network(o).prefix_len())
}

/// What applies to one request: a policy, or nothing (an unlimited override).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies<'a> {
    Policy(&'a Policy),
    /// The client is in this unlimited network.
    Unlimited(IpNet),
}

impl PolicySet {
    /// `policies` should contain one named [`route::DEFAULT`] ([`LimiterConfig::validate`]
    /// guarantees it); otherwise the first one stands in for it.
    pub fn new(policies: Vec<Policy>) -> Self {
        let default = policies
            .iter()
            .position(|p| p.name == route::DEFAULT)
            .unwrap_or(0);
        PolicySet {
            policies,
            default,
            overrides: Vec::new(),
        }
    }

    /// This set with `overrides`, whose networks must differ ([`LimiterConfig::validate`]).
    pub fn with_overrides(mut self, overrides: Vec<Override>) -> Self {
        self.overrides = overrides;
        self
    }

    /// What limits a request of route class `route_name` from `address`: the most specific
    /// override whose network holds the address, else the usual policy ([`Self::for_route`]).
    pub fn for_client(&self, address: Option<IpAddr>, route_name: Option<&str>) -> Applies<'_> {
        let usual = || Applies::Policy(self.for_route(route_name));
        let Some(address) = address else {
            return usual();
        };
        match most_specific(&self.overrides, |o| o.network, address) {
            None => usual(),
            Some(Override {
                network,
                rule: Rule::Unlimited,
            }) => Applies::Unlimited(*network),
            Some(Override {
                rule: Rule::Policies(policies),
                ..
            }) => {
                // The override replaces the policy the request would get otherwise.
                let usual_name = &self.for_route(route_name).name;
                let named = |name: &str| policies.iter().find(|p| p.name == name);
                route_name
                    .and_then(named)
                    .or_else(|| named(usual_name))
                    .map_or_else(usual, Applies::Policy)
            }
        }
    }

    /// Every policy a decision can be made under: the usual ones, then the overrides'.
    pub fn all(&self) -> impl Iterator<Item = &Policy> {
        self.policies
            .iter()
            .chain(self.overrides.iter().flat_map(|o| match &o.rule {
                Rule::Unlimited => [].iter(),
                Rule::Policies(policies) => policies.iter(),
            }))
    }

    /// The overrides, in the order the settings list them.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// The policy for a route class (a Rocket route's name); unknown or unnamed -> `default`.
    pub fn for_route(&self, route_name: Option<&str>) -> &Policy {
        route_name
            .and_then(|name| self.policies.iter().find(|p| p.name == name))
            .unwrap_or(&self.policies[self.default])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.iter()
    }
}

/// A value in the form a figment environment variable is read in: `{key="text", n=5,
/// list=["a"], table={...}}`. That is neither TOML (figment reads `'…'` as one character)
/// nor JSON (figment separates keys with `=`), so serde turns the value into a JSON tree
/// and this writes the tree in figment's syntax; every string goes through serde_json,
/// whose escapes are the ones figment understands, so any text arrives as it was sent.
pub fn env_value<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let bare = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        out.push_str(key);
                    } else {
                        out.push_str(&serde_json::Value::from(key.as_str()).to_string());
                    }
                    out.push('=');
                    write(value, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let tree = serde_json::to_value(value)?;
    let mut text = String::new();
    write(&tree, &mut text);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Env, Format, Toml};
    use figment::{Figment, Jail};

    fn parse(toml: &str) -> Result<LimiterConfig, Box<figment::Error>> {
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
        assert_eq!(
            policies.for_route(Some(route::SHORTEN)).limits,
            [Limit {
                limit: 10,
                window: Window::from_millis(500)
            }]
        );
        assert_eq!(policies.for_route(Some("index")).limits[0].limit, 100);
        assert_eq!(
            format!("{:?}", config.redis_url),
            "\"redis://***@10.0.0.5:6379/\""
        );
    }

    #[allow(clippy::result_large_err)] // figment::Error is what Jail hands back
    /// The provisioner writes ROCKET_LIMITER with [`env_value`]; Rocket reads it through
    /// figment's environment provider: what arrives is what was sent.
    #[test]
    fn the_environment_form_round_trips_through_figment() {
        let sent = LimiterConfig {
            redis_url: RedisUrl::new("redis://10.0.0.5:6379/"),
            sentinel: None,
            algorithm: Algorithm::SlidingWindow,
            fail_mode: FailMode::Closed,
            instances: 3,
            shadow: false,
            timeout_ms: 500,
            trusted_proxies: vec![Network("10.0.0.2/32".parse().unwrap())],
            ipv6_prefix: 56,
            key_prefix: "rl:\"quoted\"\\{x}=,".to_owned(),
            policies: route::ALL
                .iter()
                .zip([(100, "60s"), (10, "1500ms"), (7, "1s")])
                .map(|(name, (limit, window))| {
                    let window = Window::parse(window).unwrap();
                    let mut limits = vec![Limit { limit, window }];
                    if *name == route::REDIRECT {
                        limits.push(Limit {
                            limit: 1000,
                            window: Window::from_millis(3_600_000),
                        });
                    }
                    (
                        name.to_string(),
                        PolicySpec {
                            limits,
                            shadow: *name == route::SHORTEN,
                        },
                    )
                })
                .collect(),
            overrides: vec![
                OverrideSpec {
                    cidr: Network("10.0.0.30/32".parse().unwrap()),
                    unlimited: true,
                    policies: BTreeMap::new(),
                },
                OverrideSpec {
                    cidr: Network("2001:db8::/48".parse().unwrap()),
                    unlimited: false,
                    policies: [(
                        route::SHORTEN.to_owned(),
                        PolicySpec::one(50, Window::parse("60s").unwrap()),
                    )]
                    .into(),
                },
            ],
        };
        let text = env_value(&sent).expect("serializes");
        Jail::expect_with(|jail| {
            jail.set_env("ROCKET_LIMITER", &text);
            // Rocket's own environment provider (rocket::Config::figment()).
            let figment = Figment::from(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global());
            let received: LimiterConfig = figment.extract_inner("limiter")?;
            assert_eq!(received, sent, "{text}");
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(parse("[limiter]\nalgoritm = \"gcra\"").is_err());
        assert!(parse("[limiter]\nalgorithm = \"token_bucket\"").is_err());
        assert!(parse("[limiter]\ntrusted_proxies = [\"10.0.0.300/8\"]").is_err());
        let zero = parse("[limiter]\npolicies = { default = { limit = 0, window = \"1s\" } }")
            .expect("parses");
        assert_eq!(
            zero.validate().unwrap_err(),
            SettingsError::Limit("policies.default".into())
        );
        let long = parse(
            "[limiter]\npolicies = { default = { limit = 1, window = \"20000000000000000s\" } }",
        )
        .unwrap_err()
        .to_string();
        assert!(long.contains("too long"), "{long}");
        let alone = parse("[limiter]\ninstances = 0").expect("parses");
        assert_eq!(alone.validate().unwrap_err(), SettingsError::Instances);
    }

    #[test]
    fn a_policy_has_one_limit_or_several_with_windows_of_their_own() {
        let config = parse(
            r#"
            [limiter.policies]
            default = [{ limit = 10, window = "1s" }, { limit = 100, window = "60s" }]
            shorten = { limits = [{ limit = 5, window = "60s" }, { limit = 50, window = "3600s" }], shadow = true }
            redirect = { limit = 7, window = "2s" }
            "#,
        )
        .expect("parses");
        let set = config.validate().expect("valid");
        let windows = |route| {
            let policy = set.for_route(Some(route));
            let limits: Vec<(u64, u64)> = policy
                .limits
                .iter()
                .map(|l| (l.limit, l.window.as_millis()))
                .collect();
            (limits, policy.shadow)
        };
        assert_eq!(
            windows(route::DEFAULT),
            (vec![(10, 1000), (100, 60_000)], false)
        );
        assert_eq!(
            windows(route::SHORTEN),
            (vec![(5, 60_000), (50, 3_600_000)], true)
        );
        assert_eq!(windows(route::REDIRECT), (vec![(7, 2000)], false));
        assert_eq!(
            set.for_route(Some(route::SHORTEN)).to_string(),
            "5 per 60s and 50 per 3600s (shadow)"
        );
        let invalid = |toml: &str| parse(toml).expect("parses").validate().unwrap_err();
        assert_eq!(
            invalid("[limiter.policies]\ndefault = [{ limit = 1, window = \"1s\" }, { limit = 2, window = \"1000ms\" }]"),
            SettingsError::SameWindow("policies.default.1".into(), Window::from_millis(1000))
        );
        assert_eq!(
            invalid("[limiter.policies]\ndefault = [{ limit = 1, window = \"1s\" }, { limit = 0, window = \"2s\" }]"),
            SettingsError::Limit("policies.default.1".into())
        );
        assert_eq!(
            invalid("[limiter.policies]\ndefault = []"),
            SettingsError::NoLimits("policies.default".into())
        );
        assert!(parse("[limiter.policies]\ndefault = { limits = [], limit = 1 }").is_err());
    }

    #[test]
    fn local_fallback_is_the_default_fail_mode() {
        let config = parse("[limiter]\ninstances = 2").expect("parses");
        assert_eq!(config.fail_mode, FailMode::Local);
        assert_eq!(config.instances, 2);
        assert_eq!(LimiterConfig::default().instances, 1);
        assert_eq!(
            parse("[limiter]\nfail_mode = \"local\"").unwrap().fail_mode,
            FailMode::Local
        );
    }

    #[test]
    fn a_default_policy_always_exists() {
        let policies = LimiterConfig::default().validate().expect("valid");
        let default = policies.for_route(None);
        assert_eq!(
            (default.name.as_str(), default.limits[0].limit),
            ("default", 100)
        );
    }

    #[test]
    fn unknown_route_classes_fall_back_to_default() {
        let set = PolicySet::new(vec![
            Policy::new(route::SHORTEN, 10, Window::from_millis(60_000)),
            Policy::new(route::DEFAULT, 100, Window::from_millis(60_000)),
        ]);
        assert_eq!(set.for_route(Some(route::SHORTEN)).limits[0].limit, 10);
        assert_eq!(set.for_route(Some(route::REDIRECT)).name, "default");
        assert_eq!(set.for_route(None).name, "default");
    }

    #[test]
    fn overrides_give_their_networks_other_limits_most_specific_first() {
        let config = parse(
            r#"
            [limiter.policies]
            shorten = { limit = 10, window = "60s" }
            [[limiter.overrides]]
            cidr = "10.0.0.0/24"
            policies = { shorten = { limit = 50, window = "60s" }, default = { limit = 7, window = "1s" } }
            [[limiter.overrides]]
            cidr = "10.0.0.9"
            unlimited = true
            "#,
        )
        .expect("parses");
        let set = config.validate().expect("valid");
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let limit = |address, route| match set.for_client(address, route) {
            Applies::Policy(policy) => Some((policy.name.clone(), policy.limits[0].limit)),
            Applies::Unlimited(_) => None,
        };
        // Outside every override: the usual policies.
        assert_eq!(
            limit(ip("10.0.1.1"), Some(route::SHORTEN)),
            Some(("shorten".into(), 10))
        );
        assert_eq!(
            limit(None, Some(route::SHORTEN)),
            Some(("shorten".into(), 10))
        );
        // Inside the /24: its shorten, its default for classes that would get default ...
        assert_eq!(
            limit(ip("10.0.0.5"), Some(route::SHORTEN)),
            Some(("shorten".into(), 50))
        );
        assert_eq!(limit(ip("10.0.0.5"), None), Some(("default".into(), 7)));
        assert_eq!(
            limit(ip("10.0.0.5"), Some(route::REDIRECT)),
            Some(("default".into(), 7))
        );
        // ... and the /32 inside it is more specific, whatever order the spec lists them in.
        assert_eq!(limit(ip("10.0.0.9"), Some(route::SHORTEN)), None);
        assert_eq!(limit(ip("::ffff:10.0.0.9"), None), None);
    }

    #[test]
    fn an_override_needs_exactly_one_rule_and_a_network_of_its_own() {
        let invalid = |toml: &str| parse(toml).expect("parses").validate().unwrap_err();
        assert_eq!(
            invalid("[[limiter.overrides]]\ncidr = \"10.0.0.0/8\""),
            SettingsError::OverrideRule(0)
        );
        assert_eq!(
            invalid(
                "[[limiter.overrides]]\ncidr = \"10.0.0.0/8\"\nunlimited = true\npolicies = { default = { limit = 1, window = \"1s\" } }"
            ),
            SettingsError::OverrideRule(0)
        );
        assert_eq!(
            invalid(
                "[[limiter.overrides]]\ncidr = \"10.0.0.0/8\"\nunlimited = true\n[[limiter.overrides]]\ncidr = \"10.1.2.3/8\"\nunlimited = true"
            ),
            SettingsError::OverrideNetwork(1, "10.0.0.0/8".into(), 0)
        );
        assert_eq!(
            invalid(
                "[[limiter.overrides]]\ncidr = \"10.0.0.0/8\"\npolicies = { shorten = { limit = 0, window = \"1s\" } }"
            ),
            SettingsError::Limit("overrides.0.policies.shorten".into())
        );
        assert!(
            parse("[[limiter.overrides]]\ncidr = \"not a network\"\nunlimited = true").is_err()
        );
    }
}
