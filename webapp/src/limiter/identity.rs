//! Who a request is billed to: the socket peer, or the client a trusted proxy reports.
//!
//! Forwarding headers are believed only from peers inside the trusted-proxy list, so a
//! client talking to us directly cannot buy a new budget with its own `X-Forwarded-For`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::Network;

/// The bucket a request counts against: an IPv4 address or an IPv6 prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// IPv6 clients are grouped by prefix because one subscriber usually holds a whole
    /// /64 and could otherwise rotate addresses for fresh budgets; the name is the
    /// contract's ([`clusterlab_contract::client_id`]), which the provisioner reads keys by.
    pub fn from_ip(ip: IpAddr, ipv6_prefix: u8) -> Self {
        ClientId(clusterlab_contract::client_id(ip, ipv6_prefix))
    }

    /// Requests without a socket peer (in-process test clients) share one bucket.
    pub fn unknown() -> Self {
        ClientId("unknown".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rules that turn a peer address plus headers into a [`ClientId`].
#[derive(Debug, Clone)]
pub struct IdentityRules {
    trusted: Vec<IpNet>,
    ipv6_prefix: u8,
}

impl IdentityRules {
    pub fn new(trusted: &[Network], ipv6_prefix: u8) -> Self {
        IdentityRules {
            trusted: trusted.iter().map(|t| t.0).collect(),
            ipv6_prefix,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Picks the client: the peer unless it is a trusted proxy; then `X-Real-IP`, else
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    /// `forwarded_for` holds every `X-Forwarded-For` header value in arrival order.
    pub fn client<'a>(
        &self,
        peer: Option<IpAddr>,
        real_ip: Option<&str>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> ClientId {
        self.client_of(self.address(peer, real_ip, forwarded_for))
    }

    /// The client's own address, picked as [`Self::client`] picks it (before IPv6
    /// addresses are grouped by prefix); `None` without a socket peer.
    pub fn address<'a>(
        &self,
        peer: Option<IpAddr>,
        real_ip: Option<&str>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        peer.map(|peer| self.resolve(peer, real_ip, forwarded_for))
    }

    /// The bucket of a client at `address` ([`Self::address`]).
    pub fn client_of(&self, address: Option<IpAddr>) -> ClientId {
        address.map_or_else(ClientId::unknown, |ip| {
            ClientId::from_ip(ip, self.ipv6_prefix)
        })
    }

    fn resolve<'a>(
        &self,
        peer: IpAddr,
        real_ip: Option<&str>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        if let Some(ip) = real_ip.and_then(parse_addr) {
            return ip;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect();
        // Entries are appended left to right by each proxy; only those right of the last
        // untrusted hop were written by proxies we trust, everything left of it may be forged.
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_addr(hop) {
                Some(ip) if self.is_trusted(ip) => client = ip,
                Some(ip) => return ip,
                // A hop a trusted proxy wrote but we cannot read: stop at the last one we could.
                None => return client,
            }
        }
        client
    }
}

/// Accepts `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` and `[2001:db8::1]:5678`.
fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(trusted: &[&str]) -> IdentityRules {
        let trusted: Vec<Network> = trusted
            .iter()
            .map(|t| Network::try_from(t.to_string()).unwrap())
            .collect();
        IdentityRules::new(&trusted, 64)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn untrusted_peers_are_billed_themselves_whatever_they_send() {
        let r = rules(&["10.0.0.2/32"]);
        let id = r.client(ip("198.51.100.7"), Some("1.1.1.1"), ["2.2.2.2, 3.3.3.3"]);
        assert_eq!(id.as_str(), "198.51.100.7");
    }

    #[test]
    fn trusted_proxies_are_believed_right_to_left() {
        let r = rules(&["10.0.0.0/24"]);
        assert_eq!(
            r.client(ip("10.0.0.2"), Some("203.0.113.4"), []).as_str(),
            "203.0.113.4"
        );
        // The client forged the left entry; the proxy appended the real peer.
        let id = r.client(ip("10.0.0.2"), None, ["6.6.6.6, 203.0.113.4", "10.0.0.9"]);
        assert_eq!(id.as_str(), "203.0.113.4");
        assert_eq!(
            r.client(ip("10.0.0.2"), None, ["10.0.0.7"]).as_str(),
            "10.0.0.7"
        );
        assert_eq!(
            r.client(ip("10.0.0.2"), None, ["garbage"]).as_str(),
            "10.0.0.2"
        );
        assert_eq!(
            r.client(ip("10.0.0.2"), Some("nonsense"), []).as_str(),
            "10.0.0.2"
        );
        assert_eq!(
            r.client(ip("10.0.0.2"), None, ["[2001:db8::1]:443"])
                .as_str(),
            "2001:db8::/64"
        );
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let r = rules(&[]);
        let a = r.client(ip("2001:db8:1:2:aaaa::1"), None, []);
        let b = r.client(ip("2001:db8:1:2:bbbb::2"), None, []);
        let c = r.client(ip("2001:db8:1:3::1"), None, []);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str(), "2001:db8:1:2::/64");
        let mapped = r.client(ip("::ffff:192.0.2.1"), None, []);
        assert_eq!(mapped.as_str(), "192.0.2.1");
        let fine = IdentityRules::new(&[], 128).client(ip("2001:db8::5"), None, []);
        assert_eq!(fine.as_str(), "2001:db8::5/128");
        assert_eq!(r.client(None, None, []), ClientId::unknown());
    }
}
