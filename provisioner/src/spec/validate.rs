//! Spec layer, checks: single-value rules (used by the reader as it parses each value, so
//! they report even when other parts of the file are broken) and the rules that span several
//! values (addresses inside the network, unique names and ids, one host per singleton role).

use std::collections::HashMap;
use std::path::Path;

use super::reader::{Locations, Parts, ProxmoxState};
use super::{Cluster, Host, Network, Role, SecretRef, SpecError, Target};

/// Rules about one value; each returns the message to report.
pub(super) mod rules {
    pub fn label(text: &str, what: &str) -> Result<(), String> {
        let valid = text.len() <= 32
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && !text.ends_with('-')
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(())
        } else {
            Err(format!(
                "invalid {what} {text:?}: use 1-32 lowercase letters, digits and '-', starting with a letter"
            ))
        }
    }

    /// Names that end up inside HCL and YAML strings: a small alphabet keeps quoting trivial.
    pub fn word(text: &str, what: &str) -> Result<(), String> {
        let ok = text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._/:@-".contains(ch));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid {what} {text:?}: use letters, digits and . _ / : @ -"
            ))
        }
    }

    pub fn positive(value: u64) -> Result<(), String> {
        if value == 0 {
            Err("must be greater than 0".to_owned())
        } else {
            Ok(())
        }
    }

    fn unquotable(ch: char) -> bool {
        ch.is_whitespace() || "\"'\\$".contains(ch)
    }

    pub fn base_url(url: &str) -> Result<(), String> {
        if (url.starts_with("http://") || url.starts_with("https://"))
            && !url.ends_with('/')
            && !url.contains(unquotable)
        {
            Ok(())
        } else {
            Err(format!(
                "expected an http(s) URL without a trailing '/', found {url:?}"
            ))
        }
    }

    pub fn endpoint(url: &str) -> Result<(), String> {
        if url.starts_with("https://") && !url.contains(unquotable) {
            Ok(())
        } else {
            Err(format!("expected an https:// URL, found {url:?}"))
        }
    }

    pub fn redirect_status(status: u16) -> Result<(), String> {
        if [301, 302, 307, 308].contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "{status} is not a redirect status (expected 301, 302, 307 or 308)"
            ))
        }
    }

    pub fn database(name: &str) -> Result<(), String> {
        let ok = name.starts_with(|ch: char| ch.is_ascii_lowercase())
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid database name {name:?}: use lowercase letters, digits and '_'"
            ))
        }
    }

    pub fn key_prefix(prefix: &str) -> Result<(), String> {
        if prefix
            .chars()
            .all(|ch| ch.is_ascii_graphic() && ch != '"' && ch != '\\' && ch != '$')
        {
            Ok(())
        } else {
            Err("must be printable ASCII without quotes, '\\' or '$'".to_owned())
        }
    }

    pub fn body_size(size: &str) -> Result<(), String> {
        let digits = size.strip_suffix(['k', 'm']).unwrap_or(size);
        if !digits.is_empty() && digits.chars().all(|ch| ch.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("expected a size like 64k or 1m, found {size:?}"))
        }
    }

    pub fn vm_id(id: u32) -> Result<(), String> {
        if (100..=999_999_999).contains(&id) {
            Ok(())
        } else {
            Err(format!("VM id {id} is outside 100-999999999"))
        }
    }

    pub fn ipv6_prefix(len: u8) -> Result<(), String> {
        if (1..=128).contains(&len) {
            Ok(())
        } else {
            Err("must be between 1 and 128".to_owned())
        }
    }

    pub fn memory_mb(mb: u32) -> Result<(), String> {
        if mb >= 256 {
            Ok(())
        } else {
            Err("must be at least 256 (MiB)".to_owned())
        }
    }
}

struct Checker<'a> {
    locations: &'a Locations,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let (line, column) = self.locations.of(&path);
        self.push(path, (line, column), message.into());
    }

    /// For errors about a whole list: point at its key rather than its first item.
    fn error_at_key(&mut self, path: &str, message: impl Into<String>) {
        let at = self.locations.of_key(path);
        self.push(path.to_owned(), at, message.into());
    }

    fn push(&mut self, path: String, (line, column): (usize, usize), message: String) {
        self.errors.push(SpecError {
            path,
            line,
            column,
            message,
        });
    }
}

/// Rules spanning several values, run on whatever parsed (see [`Parts`]).
pub(super) fn validate(parts: &Parts, locations: &Locations) -> Vec<SpecError> {
    let mut c = Checker {
        locations,
        errors: Vec::new(),
    };
    if let Some(network) = &parts.network {
        check_network(&mut c, network);
    }
    hosts(&mut c, parts);
    if parts.hosts_complete {
        roles(&mut c, &parts.hosts);
    }
    if parts.target == Some(Target::Proxmox) && matches!(parts.proxmox, ProxmoxState::Absent) {
        c.error(
            "proxmox",
            "missing required key `proxmox` (target is proxmox)",
        );
    }
    c.errors
}

fn check_network(c: &mut Checker, net: &Network) {
    if net.cidr.prefix_len() > 29 {
        c.error(
            "network.cidr",
            format!(
                "{} is too small for a cluster (use /29 or larger)",
                net.cidr
            ),
        );
    }
    let gateway = net.gateway;
    if !net.cidr.contains(&gateway) {
        c.error(
            "network.gateway",
            format!("{gateway} is outside the network {}", net.cidr),
        );
    } else if gateway == net.cidr.network() || gateway == net.cidr.broadcast() {
        c.error(
            "network.gateway",
            format!(
                "{gateway} is the network or broadcast address of {}",
                net.cidr
            ),
        );
    }
}

fn hosts(c: &mut Checker, parts: &Parts) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ips = HashMap::new();
    let mut vm_ids = HashMap::new();
    if let ProxmoxState::Parsed(template) = parts.proxmox {
        vm_ids.insert(template, "proxmox.template".to_owned());
    }
    for (i, host) in &parts.hosts {
        let at = |key: &str| format!("hosts[{i}].{key}");
        if let Some(first) = names.insert(&host.name, *i) {
            c.error(
                at("name"),
                format!("duplicate host name {:?} (also hosts[{first}])", host.name),
            );
        }

        let ip = host.ip;
        if let Some(net) = &parts.network {
            let cidr = net.cidr;
            if !cidr.contains(&ip) {
                c.error(at("ip"), format!("{ip} is outside the network {cidr}"));
            } else if ip == cidr.network() {
                c.error(at("ip"), format!("{ip} is the network address of {cidr}"));
            } else if ip == cidr.broadcast() {
                c.error(at("ip"), format!("{ip} is the broadcast address of {cidr}"));
            } else if ip == net.gateway {
                c.error(at("ip"), format!("{ip} is the gateway address"));
            }
        }
        if let Some(first) = ips.insert(ip, *i) {
            c.error(at("ip"), format!("duplicate IP {ip} (also hosts[{first}])"));
        }

        match host.vm_id {
            Some(id) => {
                if let Some(first) = vm_ids.insert(id, format!("hosts[{i}]")) {
                    c.error(at("vm_id"), format!("duplicate VM id {id} (also {first})"));
                }
            }
            None if parts.target == Some(Target::Proxmox) => {
                c.error(
                    at("vm_id"),
                    "missing required key `vm_id` (target is proxmox)",
                );
            }
            None => {}
        }
    }
}

fn roles(c: &mut Checker, hosts: &[(usize, Host)]) {
    for role in Role::ALL {
        let of_role: Vec<usize> = hosts
            .iter()
            .filter(|(_, h)| h.role == role)
            .map(|(i, _)| *i)
            .collect();
        match (role, of_role.as_slice()) {
            (Role::Web, []) => c.error_at_key("hosts", "at least one host needs role web"),
            (Role::Web, _) | (_, [_]) => {}
            (_, []) => c.error_at_key(
                "hosts",
                format!("exactly one host needs role {}, found none", role.as_str()),
            ),
            (_, [first, rest @ ..]) => {
                for i in rest {
                    c.error(
                        format!("hosts[{i}].role"),
                        format!(
                            "exactly one host may have role {} (also hosts[{first}])",
                            role.as_str()
                        ),
                    );
                }
            }
        }
    }
}

/// Files the commands that reach hosts need: SSH keys and `file:` secrets.
pub(super) fn check_files(cluster: &Cluster, locations: &Locations, base: &Path) -> Vec<SpecError> {
    let mut c = Checker {
        locations,
        errors: Vec::new(),
    };
    for (path, file) in [
        ("ssh.private_key", &cluster.ssh.private_key),
        ("ssh.public_key", &cluster.ssh.public_key),
    ] {
        if !base.join(file).is_file() {
            c.error(path, format!("key file {} does not exist", file.display()));
        }
    }
    let mut secrets = vec![
        ("secrets.redis_password", &cluster.secrets.redis_password),
        (
            "secrets.postgres_password",
            &cluster.secrets.postgres_password,
        ),
    ];
    if let Some(p) = &cluster.proxmox {
        secrets.push(("proxmox.api_token", &p.api_token));
    }
    for (path, secret) in secrets {
        if let SecretRef::File(file) = secret {
            if !base.join(file).is_file() {
                c.error(
                    path,
                    format!("secret file {} does not exist", file.display()),
                );
            }
        }
    }
    c.errors
}
