//! `TargetUrl`: where a short link points, an absolute http(s) URL that passed every
//! rule in [`UrlRules`], stored in the url crate's normalised form so that spellings of
//! one URL (`HTTP://Example.com` and `http://example.com/`) share one row.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// What the app accepts, from its configuration.
#[derive(Debug, Clone)]
pub struct UrlRules {
    /// Longest accepted URL, in characters, before and after normalisation.
    pub max_length: usize,
    /// The shortener's own public URL: links back to it would only make redirect loops.
    pub own_origin: Option<Url>,
    /// Whether `https://user:pw@host/` is accepted. Off by default: the part before `@`
    /// is what a reader takes for the host (`https://paypal.com@evil.example/`).
    pub allow_userinfo: bool,
}

/// Why a submitted URL is refused. Each message is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the url is empty")]
    Empty,
    #[error("the url is {len} characters long; the maximum is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the url contains control characters")]
    ControlCharacter,
    #[error("the url is not absolute (it needs a scheme such as https://)")]
    Relative,
    #[error("the url has an invalid port")]
    InvalidPort,
    #[error("the url has no host")]
    NoHost,
    #[error("the url is not valid: {0}")]
    Invalid(String),
    #[error("the url scheme `{0}` is not allowed; use http or https")]
    Scheme(String),
    #[error("the url points at this shortener itself")]
    OwnHost,
    #[error(
        "the url has a user name or password before its host (`{userinfo}@`): it leads to \
         {host}, not where it seems to; links with credentials are not accepted"
    )]
    Userinfo { userinfo: String, host: String },
}

/// An absolute http(s) URL with a host, within the length limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

impl TargetUrl {
    pub fn parse(raw: &str, rules: &UrlRules) -> Result<Self, UrlError> {
        // Checked before parsing so a huge body is refused without the parser's work, and
        // before trimming so the limit is on what was sent, as the API document says.
        let len = raw.chars().count();
        if len > rules.max_length {
            return Err(UrlError::TooLong {
                len,
                max: rules.max_length,
            });
        }
        let raw = raw.trim_matches(' ');
        if raw.is_empty() {
            return Err(UrlError::Empty);
        }
        // The url crate silently drops tabs and newlines; a URL that carried them was
        // most likely pasted wrong or crafted to look like another one.
        if raw.chars().any(char::is_control) {
            return Err(UrlError::ControlCharacter);
        }
        let url = Url::parse(raw).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => UrlError::Relative,
            url::ParseError::InvalidPort => UrlError::InvalidPort,
            url::ParseError::EmptyHost => UrlError::NoHost,
            other => UrlError::Invalid(other.to_string()),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        let host = match url.host() {
            None => return Err(UrlError::NoHost),
            Some(Host::Domain("")) => return Err(UrlError::NoHost),
            Some(host) => host,
        };
        if !rules.allow_userinfo && (!url.username().is_empty() || url.password().is_some()) {
            let userinfo = match url.password() {
                Some(pw) => format!("{}:{pw}", url.username()),
                None => url.username().to_owned(),
            };
            return Err(UrlError::Userinfo {
                userinfo,
                host: host.to_string(),
            });
        }
        if let Some(own) = &rules.own_origin {
            if points_at(&url, &host, own) {
                return Err(UrlError::OwnHost);
            }
        }
        // Normalisation percent-encodes and punycodes, which can lengthen the URL.
        let len = url.as_str().chars().count();
        if len > rules.max_length {
            return Err(UrlError::TooLong {
                len,
                max: rules.max_length,
            });
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Same host, and either the same port or a default port: `http://short.example/x` is
/// the shortener even when its public URL is `https://short.example`, while another
/// service on a different explicit port of that host is not. Hosts are compared by
/// [`HostIdentity`], so no spelling of the shortener's host gets past.
fn points_at(url: &Url, host: &Host<&str>, own: &Url) -> bool {
    let same_host = own
        .host()
        .is_some_and(|own_host| HostIdentity::of(host) == HostIdentity::of(&own_host));
    same_host
        && (url.port().is_none() || url.port_or_known_default() == own.port_or_known_default())
}

/// What a host name reaches, as far as the URL alone tells: the url crate has already
/// lowercased names, decoded percent-escapes and read `0x7f.1` as `127.0.0.1`; what is
/// left are spellings that differ in text but not in destination.
#[derive(Debug, PartialEq, Eq)]
enum HostIdentity {
    /// This machine: `localhost` (and `*.localhost`, RFC 6761), `127.0.0.0/8`, `::1`,
    /// the unspecified addresses (a connection to `0.0.0.0` reaches the local host) and
    /// their IPv4-mapped IPv6 forms.
    Loopback,
    /// A DNS name without its trailing root dot.
    Domain(String),
    /// An address, IPv4-mapped IPv6 (`::ffff:a.b.c.d`) read as the IPv4 it maps.
    Ip(IpAddr),
}

impl HostIdentity {
    fn of(host: &Host<&str>) -> Self {
        match host {
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    Self::Loopback
                } else {
                    Self::Domain(name)
                }
            }
            Host::Ipv4(ip) => Self::ip(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => Self::ip(ip.to_ipv4_mapped().map_or(IpAddr::V6(*ip), IpAddr::V4)),
        }
    }

    fn ip(ip: IpAddr) -> Self {
        let local = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4 == Ipv4Addr::UNSPECIFIED,
            IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST || v6 == Ipv6Addr::UNSPECIFIED,
        };
        if local {
            Self::Loopback
        } else {
            Self::Ip(ip)
        }
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> UrlRules {
        UrlRules {
            max_length: 2048,
            own_origin: Some(Url::parse("https://sho.rt").unwrap()),
            allow_userinfo: false,
        }
    }

    fn parse(raw: &str) -> Result<String, UrlError> {
        TargetUrl::parse(raw, &rules()).map(|u| u.as_str().to_owned())
    }

    #[test]
    fn accepts_and_normalises_http_urls() {
        assert_eq!(
            parse("https://example.com").unwrap(),
            "https://example.com/"
        );
        assert_eq!(
            parse("HTTP://Example.COM/a?b=c#d").unwrap(),
            "http://example.com/a?b=c#d"
        );
        assert_eq!(
            parse("  http://example.com/x  ").unwrap(),
            "http://example.com/x"
        );
        assert_eq!(
            parse("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(parse("http://[::1]:8080/").unwrap(), "http://[::1]:8080/");
        assert_eq!(
            parse("https://bücher.de/ä").unwrap(),
            "https://xn--bcher-kva.de/%C3%A4"
        );
    }

    #[test]
    fn rejects_other_schemes() {
        for (raw, scheme) in [
            ("javascript:alert(1)", "javascript"),
            ("data:text/html,hi", "data"),
            ("file:///etc/passwd", "file"),
            ("ftp://example.com/", "ftp"),
            ("mailto:a@example.com", "mailto"),
        ] {
            assert_eq!(parse(raw), Err(UrlError::Scheme(scheme.into())), "{raw}");
        }
    }

    #[test]
    fn rejects_malformed_urls() {
        assert_eq!(parse(""), Err(UrlError::Empty));
        assert_eq!(parse("   "), Err(UrlError::Empty));
        assert_eq!(parse("example.com"), Err(UrlError::Relative));
        assert_eq!(parse("/relative/path"), Err(UrlError::Relative));
        assert_eq!(parse("http://"), Err(UrlError::NoHost));
        assert_eq!(
            parse("http://example.com:99999/"),
            Err(UrlError::InvalidPort)
        );
        assert_eq!(parse("http://example.com:abc/"), Err(UrlError::InvalidPort));
        assert_eq!(
            parse("http://exa\nmple.com/"),
            Err(UrlError::ControlCharacter)
        );
        assert_eq!(
            parse("http://example.com/\u{7f}"),
            Err(UrlError::ControlCharacter)
        );
        assert!(matches!(
            parse("http://exa mple.com/"),
            Err(UrlError::Invalid(_))
        ));
    }

    #[test]
    fn enforces_the_length_limit_before_and_after_normalising() {
        let tight = UrlRules {
            max_length: 30,
            own_origin: None,
            allow_userinfo: false,
        };
        let ok = "http://example.com/0123456789";
        assert_eq!(ok.len(), 29);
        assert!(TargetUrl::parse(ok, &tight).is_ok());
        assert_eq!(
            TargetUrl::parse(&format!("{ok}ab"), &tight),
            Err(UrlError::TooLong { len: 31, max: 30 })
        );
        // The limit is on what was sent, surrounding spaces included.
        assert_eq!(
            TargetUrl::parse(&format!("  {ok}"), &tight),
            Err(UrlError::TooLong { len: 31, max: 30 })
        );
        assert!(TargetUrl::parse(&format!(" {ok}"), &tight).is_ok());
        // 22 characters typed, 37 once the umlauts are percent-encoded.
        assert!(matches!(
            TargetUrl::parse("http://example.com/äää", &tight),
            Err(UrlError::TooLong { len: 37, max: 30 })
        ));
    }

    #[test]
    fn rejects_links_to_the_shortener_itself() {
        assert_eq!(parse("https://sho.rt/abc"), Err(UrlError::OwnHost));
        assert_eq!(parse("http://SHO.RT/abc"), Err(UrlError::OwnHost));
        assert_eq!(parse("https://sho.rt.:443/abc"), Err(UrlError::OwnHost));
        assert!(parse("https://sho.rt:8443/abc").is_ok());
        assert!(parse("https://www.sho.rt/abc").is_ok());
    }

    fn parse_with_origin(origin: &str, raw: &str) -> Result<String, UrlError> {
        let rules = UrlRules {
            own_origin: Some(Url::parse(origin).unwrap()),
            ..rules()
        };
        TargetUrl::parse(raw, &rules).map(|u| u.as_str().to_owned())
    }

    #[test]
    fn rejects_every_spelling_of_a_loopback_shortener() {
        let origin = "http://127.0.0.1:8080";
        for raw in [
            "http://127.0.0.1:8080/x",
            "http://127.0.0.1.:8080/x",
            "http://localhost:8080/x",
            "http://LOCALHOST.:8080/x",
            "http://app.localhost:8080/x",
            "http://127.1:8080/x",
            "http://0x7f.0.0.1:8080/x",
            "http://2130706433:8080/x",
            "http://127.0.0.2:8080/x",
            "http://[::1]:8080/x",
            "http://[::ffff:127.0.0.1]:8080/x",
            "http://[::ffff:7f00:1]:8080/x",
            "http://0.0.0.0:8080/x",
            "http://[::]:8080/x",
            "http://%6c%6fcalhost:8080/x",
            "https://localhost/x",
        ] {
            assert_eq!(
                parse_with_origin(origin, raw),
                Err(UrlError::OwnHost),
                "{raw}"
            );
        }
        assert!(parse_with_origin(origin, "http://localhost:9090/x").is_ok());
        assert!(parse_with_origin(origin, "http://10.0.0.1:8080/x").is_ok());
        for raw in ["http://127.0.0.1:8080/x", "http://[::1]:8080/"] {
            assert_eq!(
                parse_with_origin("http://localhost:8080", raw),
                Err(UrlError::OwnHost),
                "{raw}"
            );
        }
    }

    #[test]
    fn rejects_ipv4_mapped_spellings_of_an_address_shortener() {
        let origin = "http://10.77.0.10";
        for raw in [
            "http://10.77.0.10/x",
            "http://[::ffff:10.77.0.10]/x",
            "http://[::FFFF:a4d:a]/x",
            "http://10.77.0.10.:80/x",
        ] {
            assert_eq!(
                parse_with_origin(origin, raw),
                Err(UrlError::OwnHost),
                "{raw}"
            );
        }
        assert!(parse_with_origin(origin, "http://10.77.0.11/x").is_ok());
    }

    #[test]
    fn refuses_userinfo_unless_allowed() {
        let err = parse("https://paypal.com@evil.example/login").unwrap_err();
        assert_eq!(
            err,
            UrlError::Userinfo {
                userinfo: "paypal.com".into(),
                host: "evil.example".into()
            }
        );
        assert!(err.to_string().contains("leads to evil.example"), "{err}");
        assert!(matches!(
            parse("https://user:secret@example.com/"),
            Err(UrlError::Userinfo { .. })
        ));
        assert!(matches!(
            parse("https://:pw@example.com/"),
            Err(UrlError::Userinfo { .. })
        ));
        let lenient = UrlRules {
            allow_userinfo: true,
            ..rules()
        };
        assert_eq!(
            TargetUrl::parse("https://user:pw@example.com/", &lenient)
                .unwrap()
                .as_str(),
            "https://user:pw@example.com/"
        );
    }
}
