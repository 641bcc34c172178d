//! The limiter's Redis keys: the client a request is billed to ([`client_id`]), the key a
//! decision for (algorithm, policy, window, client) uses ([`redis_key`]), and that key read back
//! ([`parse_redis_key`]), for the provisioner's view of the limiter's state.

use std::net::IpAddr;

use ipnet::Ipv6Net;

use crate::settings::is_policy_name;
use crate::{Algorithm, Window};

/// The name a client is billed under: an IPv4 address as is, an IPv6 address as its
/// `ipv6_prefix`-long network (`2001:db8:1:2::/64`), because one subscriber usually holds
/// a whole /64 and could otherwise rotate addresses for fresh budgets. An IPv4-mapped IPv6
/// address is the IPv4 client.
pub fn client_id(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, ipv6_prefix.min(128))
            .map(|net| net.trunc())
            .unwrap_or_else(|_| Ipv6Net::from(v6))
            .to_string(),
    }
}

/// The Redis key of one client under one limit of a policy, kept by one algorithm:
/// `<prefix>{<policy>:<client>}:<algorithm>:<window>` (`rl:{shorten:10.0.0.9}:gcra:60s`).
/// The hash tag puts every key a decision touches (all the limits of its policy) into one
/// Redis Cluster slot. The algorithm's name keeps each algorithm's state apart: after a
/// switch the new script starts on fresh keys instead of meeting another script's type
/// (WRONGTYPE, which the limiter would take for Redis failing, and fail open). The window
/// tells a policy's limits apart (no two of them share a window). The load test resets a
/// client's budget by deleting exactly these keys.
pub fn redis_key(
    prefix: &str,
    algorithm: Algorithm,
    policy: &str,
    window: Window,
    client: &dyn std::fmt::Display,
) -> String {
    format!(
        "{prefix}{{{policy}:{client}}}:{}:{window}",
        algorithm.as_str()
    )
}

/// What [`redis_key`] put into a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterKey<'a> {
    pub policy: &'a str,
    /// As [`client_id`] wrote it (`unknown` for requests without a socket peer).
    pub client: &'a str,
    pub algorithm: Algorithm,
    /// The window of the policy's limit the key counts for.
    pub window: Window,
}

/// The inverse of [`redis_key`] under `prefix`; `None` for any key it cannot have made.
/// A policy name holds no `:` and a client no `}`, so the first `:` inside the hash tag
/// ends the policy and the first `}` ends the client (an IPv6 client holds `:` itself).
pub fn parse_redis_key<'a>(prefix: &str, key: &'a str) -> Option<LimiterKey<'a>> {
    let tagged = key.strip_prefix(prefix)?.strip_prefix('{')?;
    let (inside, algorithm) = tagged.split_once('}')?;
    let (policy, client) = inside.split_once(':')?;
    let (algorithm, window) = algorithm.strip_prefix(':')?.split_once(':')?;
    let algorithm = Algorithm::from_name(algorithm)?;
    // Only the form Display writes: `60s` or `500ms`, no leading zeros.
    let window = Window::parse(window)
        .ok()
        .filter(|w| w.to_string() == window)?;
    if !is_policy_name(policy) || client.is_empty() {
        return None;
    }
    Some(LimiterKey {
        policy,
        client,
        algorithm,
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route;

    const MINUTE: Window = Window::from_millis(60_000);

    #[test]
    fn keys_are_prefixed_and_hash_tagged() {
        assert_eq!(
            redis_key(
                "rl:",
                Algorithm::Gcra,
                route::SHORTEN,
                MINUTE,
                &"203.0.113.9"
            ),
            "rl:{shorten:203.0.113.9}:gcra:60s"
        );
        // Every algorithm has keys of its own.
        let keys: std::collections::BTreeSet<String> = Algorithm::ALL
            .into_iter()
            .map(|a| redis_key("rl:", a, route::SHORTEN, MINUTE, &"203.0.113.9"))
            .collect();
        assert_eq!(keys.len(), Algorithm::ALL.len());
    }

    #[test]
    fn clients_are_named_as_the_web_app_bills_them() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(client_id(ip("192.0.2.1"), 64), "192.0.2.1");
        assert_eq!(client_id(ip("::ffff:192.0.2.1"), 64), "192.0.2.1");
        assert_eq!(
            client_id(ip("2001:db8:1:2:aaaa::1"), 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_id(ip("2001:db8::5"), 128), "2001:db8::5/128");
        assert_eq!(client_id(ip("2001:db8:ff::1"), 32), "2001:db8::/32");
    }

    #[test]
    fn every_key_reads_back_as_what_made_it() {
        let clients = [
            "203.0.113.9".to_owned(),
            client_id("2001:db8:1:2::7".parse().unwrap(), 64),
            client_id("::1".parse().unwrap(), 128),
            "unknown".to_owned(),
        ];
        for prefix in ["rl:", "", "a.b-c_d:{x}:", "rl:{shorten:1.2.3.4}:gcra"] {
            for algorithm in Algorithm::ALL {
                for policy in route::ALL.into_iter().chain(["api-v2_x"]) {
                    for (client, window) in clients.iter().zip([1, 500, 60_000, 3_600_500]) {
                        let window = Window::from_millis(window);
                        let key = redis_key(prefix, algorithm, policy, window, client);
                        assert_eq!(
                            parse_redis_key(prefix, &key),
                            Some(LimiterKey {
                                policy,
                                client,
                                algorithm,
                                window,
                            }),
                            "{key}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn keys_the_web_app_cannot_have_written_are_refused() {
        for key in [
            "rl:{shorten:1.2.3.4}:gcra",
            "rl:{shorten:1.2.3.4}:gcra:60",
            "rl:{shorten:1.2.3.4}:gcra:060s",
            "rl:{shorten:1.2.3.4}:gcra:60000ms",
            "rl:{shorten:1.2.3.4}:gcra:0s",
            "other:{shorten:1.2.3.4}:gcra:60s",
            "rl:shorten:1.2.3.4:gcra",
            "rl:{shorten:1.2.3.4}:token_bucket:60s",
            "rl:{shorten:1.2.3.4}gcra:60s",
            "rl:{shorten:1.2.3.4}:gcra:60s:extra",
            "rl:{shorten}:gcra:60s",
            "rl:{:1.2.3.4}:gcra:60s",
            "rl:{shorten:}:gcra:60s",
            "rl:{sh rten:1.2.3.4}:gcra:60s",
            "rl:{shorten:1.2.3.4:gcra:60s",
        ] {
            assert_eq!(parse_redis_key("rl:", key), None, "{key}");
        }
    }
}
