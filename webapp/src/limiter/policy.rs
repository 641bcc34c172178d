//! Policies ("N per W") and how a route class picks one; also the Redis key of a (policy, client).

use std::fmt;

use serde::Deserialize;

use super::identity::ClientId;

/// A window length, written `"60s"` or `"500ms"` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Window(u64);

impl Window {
    pub const fn from_millis(ms: u64) -> Self {
        Window(ms)
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds for the `w` parameter of `RateLimit-Policy`, rounded up so a
    /// sub-second window is never advertised as zero.
    pub fn as_header_seconds(self) -> u64 {
        self.0.div_ceil(1000)
    }
}

impl TryFrom<String> for Window {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let text = value.trim();
        let (digits, scale) = if let Some(ms) = text.strip_suffix("ms") {
            (ms, 1)
        } else if let Some(s) = text.strip_suffix('s') {
            (s, 1000)
        } else {
            return Err(format!(
                "window `{value}` needs a unit: \"60s\" or \"500ms\""
            ));
        };
        let n: u64 = digits
            .trim()
            .parse()
            .map_err(|_| format!("window `{value}` is not a whole number of s or ms"))?;
        match n.checked_mul(scale) {
            Some(ms) if ms > 0 => Ok(Window(ms)),
            Some(_) => Err(format!("window `{value}` must be longer than zero")),
            None => Err(format!("window `{value}` is too long")),
        }
    }
}

/// "`limit` requests per `window`", named after the route class it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub limit: u64,
    pub window: Window,
}

impl Policy {
    pub fn new(name: &str, limit: u64, window: Window) -> Self {
        Policy {
            name: name.to_owned(),
            limit,
            window,
        }
    }

    /// The Redis key for this client under this policy. The hash tag `{policy:client}`
    /// puts every key a decision touches into one Redis Cluster slot.
    pub fn key(&self, prefix: &str, client: &ClientId) -> String {
        format!("{prefix}{{{}:{client}}}", self.name)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} ms", self.limit, self.window.as_millis())
    }
}

/// All configured policies; route classes without an own policy share `default`.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    default: usize,
}

impl PolicySet {
    pub const DEFAULT: &'static str = "default";

    /// `policies` must contain one named [`PolicySet::DEFAULT`]; the config guarantees it.
    pub(crate) fn new(policies: Vec<Policy>) -> Self {
        let default = policies
            .iter()
            .position(|p| p.name == Self::DEFAULT)
            .unwrap_or(0);
        PolicySet { policies, default }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_seconds_and_milliseconds() {
        assert_eq!(Window::try_from("60s".to_owned()), Ok(Window(60_000)));
        assert_eq!(Window::try_from("250ms".to_owned()), Ok(Window(250)));
        assert!(Window::try_from("60".to_owned()).is_err());
        assert!(Window::try_from("0s".to_owned()).is_err());
        assert!(Window::try_from("1.5s".to_owned()).is_err());
        assert_eq!(Window(250).as_header_seconds(), 1);
        assert_eq!(Window(60_000).as_header_seconds(), 60);
    }

    #[test]
    fn keys_are_prefixed_and_hash_tagged() {
        let policy = Policy::new("shorten", 10, Window(60_000));
        let client = ClientId::from_ip("203.0.113.9".parse().unwrap(), 64);
        assert_eq!(policy.key("rl:", &client), "rl:{shorten:203.0.113.9}");
    }

    #[test]
    fn unknown_route_classes_fall_back_to_default() {
        let set = PolicySet::new(vec![
            Policy::new("shorten", 10, Window(60_000)),
            Policy::new("default", 100, Window(60_000)),
        ]);
        assert_eq!(set.for_route(Some("shorten")).limit, 10);
        assert_eq!(set.for_route(Some("redirect")).name, "default");
        assert_eq!(set.for_route(None).name, "default");
    }
}
