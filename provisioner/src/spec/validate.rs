//! Spec layer, checks: single-value rules (used by the reader as it parses each value, so
//! they report even when other parts of the file are broken) and the rules that span several
//! values (addresses inside the network, unique names and ids, one host per singleton role).

use std::collections::HashMap;
use std::path::Path;

use super::reader::{Locations, Parts, ProxmoxState};
use super::{
    Cluster, Host, HostKind, ImageMode, Network, ProxmoxProvider, Role, SecretRef, SpecError,
    Target, DATA_VM_ID_OFFSET,
};

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

    /// Image references end up inside HCL and YAML strings and as the last word of
    /// `docker run`: a small alphabet keeps quoting trivial, and a first character that is
    /// a lowercase letter or digit (as Docker requires) keeps it from being read as an option.
    pub fn word(text: &str, what: &str) -> Result<(), String> {
        let ok = text.len() <= 255
            && text.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            // A trailing `:` would make a YAML plain scalar a mapping key (found by the
            // hostile-string property test); Docker references end in a name, tag or digest.
            && text.ends_with(|ch: char| ch.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._/:@-".contains(ch));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid {what} {text:?}: use letters, digits and . _ / : @ -, starting with a lowercase letter or digit and ending with a letter or digit"
            ))
        }
    }

    /// Characters a file path of the spec may not hold. Paths reach Terraform variables, the
    /// shell of `local-exec` and ssh's command line; none of these characters has a place in
    /// a key or secret file name, and each can end a quoted string in one of them.
    const PATH_FORBIDDEN: &str = "\"'`\\$";

    /// A file path: no control characters (a newline would end an HCL or YAML line), no
    /// quotes, backslash, backtick or `$`, and no `%{` (an HCL template directive).
    pub fn path(text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Err("a file path cannot be empty".to_owned());
        }
        if let Some(ch) = text
            .chars()
            .find(|ch| ch.is_control() || PATH_FORBIDDEN.contains(*ch))
        {
            return Err(format!(
                "invalid file path {text:?}: {ch:?} is not allowed (no control characters, quotes, '\\', '`' or '$')"
            ));
        }
        if text.contains("%{") {
            return Err(format!(
                "invalid file path {text:?}: \"%{{\" is not allowed"
            ));
        }
        Ok(())
    }

    /// Proxmox identifiers that reach HCL unquoted-safe: node, storage, bridge, template and
    /// CPU type names.
    pub fn proxmox_id(text: &str) -> Result<(), String> {
        if !text.is_empty()
            && text
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        {
            Ok(())
        } else {
            Err(format!(
                "invalid Proxmox name {text:?}: use letters, digits and . _ -"
            ))
        }
    }

    pub fn vlan(tag: u16) -> Result<(), String> {
        if (1..=4094).contains(&tag) {
            Ok(())
        } else {
            Err(format!("VLAN tag {tag} is outside 1-4094"))
        }
    }

    /// Proxmox tags as telmate's validator accepts them (bpg and Proxmox accept more).
    pub fn tag(text: &str) -> Result<(), String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with('-')
            && text
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "_-".contains(ch));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid tag {text:?}: use 1-64 lowercase letters, digits, '_' and '-', not starting with '-'"
            ))
        }
    }

    /// A PAM login on the Proxmox node.
    pub fn pam_user(text: &str) -> Result<(), String> {
        let ok = text.len() <= 32
            && text.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '_')
            && text
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "_-".contains(ch));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid user name {text:?}: use 1-32 lowercase letters, digits, '_' and '-'"
            ))
        }
    }

    /// `<storage>:vztmpl/<file>`, the form `pveam`/`pvesm list` show.
    pub fn lxc_template(text: &str) -> Result<(), String> {
        let word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        };
        match text.split_once(":vztmpl/") {
            Some((storage, file)) if word(storage) && word(file) => Ok(()),
            _ => Err(format!(
                "expected <storage>:vztmpl/<file> (e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst), found {text:?}"
            )),
        }
    }

    /// A cloud image URL: http(s), no characters that need quoting, and a file name with an
    /// image extension (Proxmox imports by extension).
    pub fn image_url(url: &str) -> Result<(), String> {
        let file = url.rsplit('/').next().unwrap_or_default();
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url
                .chars()
                .all(|ch| ch.is_ascii_graphic() && !"\"'\\$`{}<>".contains(ch))
            && [".qcow2", ".img", ".raw"]
                .iter()
                .any(|ext| file.ends_with(ext));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected an http(s) URL of a .qcow2, .img or .raw cloud image, found {url:?}"
            ))
        }
    }

    /// A registry's `host[:port]` as Docker names it in an image reference: DNS labels or an
    /// IPv4 address, an optional port, no scheme and no path. It becomes part of image names,
    /// a file path (/etc/docker/certs.d/<address>/) and a JSON string, so nothing else fits.
    pub fn registry_address(text: &str) -> Result<(), String> {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if host_ok && port_ok {
            Ok(())
        } else {
            Err(format!(
                "expected a registry address host[:port] like 10.50.0.5:5000 or registry.lan (lowercase, no scheme or path), found {text:?}"
            ))
        }
    }

    /// A registry user name: it travels in Docker's auth header, never through a shell, but
    /// a small alphabet keeps it readable in messages.
    pub fn registry_user(text: &str) -> Result<(), String> {
        let ok = !text.is_empty()
            && text.len() <= 128
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid registry user {text:?}: use letters, digits and . _ @ -"
            ))
        }
    }

    /// Most addresses one `loadtest.extra_addresses` range may hold.
    pub const MAX_RANGE: u32 = 1024;

    /// `a.b.c.d` or `a.b.c.d-a.b.c.e` (inclusive).
    pub fn address_range(text: &str) -> Result<Vec<std::net::Ipv4Addr>, String> {
        use std::net::Ipv4Addr;
        let parse = |t: &str| {
            t.trim().parse::<Ipv4Addr>().map_err(|_| {
                format!(
                    "expected an IPv4 address or a range like 10.0.0.50-10.0.0.59, found {text:?}"
                )
            })
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let one = parse(text)?;
                (one, one)
            }
        };
        let (lo, hi) = (u32::from(first), u32::from(last));
        if lo > hi {
            return Err(format!("range {text:?} ends before it starts"));
        }
        if hi - lo >= MAX_RANGE {
            return Err(format!(
                "range {text:?} has {} addresses (at most {MAX_RANGE})",
                u64::from(hi - lo) + 1
            ));
        }
        Ok((lo..=hi).map(Ipv4Addr::from).collect())
    }

    pub fn positive(value: u64) -> Result<(), String> {
        if value == 0 {
            Err("must be greater than 0".to_owned())
        } else {
            Ok(())
        }
    }

    /// Characters a URL of the spec may not hold: beyond ASCII's printable set, anything
    /// that quotes, escapes or templates in HCL, YAML, TOML or a shell.
    fn unquotable(ch: char) -> bool {
        !ch.is_ascii_graphic() || "\"'\\$`{}<>^|".contains(ch)
    }

    /// `scheme://` followed by at least a host.
    fn has_host(url: &str) -> bool {
        url.split_once("://")
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default())
            .is_some_and(|host| !host.is_empty())
    }

    pub fn base_url(url: &str) -> Result<(), String> {
        // The web app refuses a query or fragment in its base URL at launch; so does this.
        if (url.starts_with("http://") || url.starts_with("https://"))
            && has_host(url)
            && !url.ends_with('/')
            && !url.contains(unquotable)
            && !url.contains(['?', '#', '@'])
        {
            Ok(())
        } else {
            Err(format!(
                "expected an http(s) URL with a host, without a trailing '/', query, fragment, credentials, spaces or quotes, found {url:?}"
            ))
        }
    }

    pub fn endpoint(url: &str) -> Result<(), String> {
        if url.starts_with("https://") && has_host(url) && !url.contains(unquotable) {
            Ok(())
        } else {
            Err(format!(
                "expected an https:// URL with a host and no spaces or quotes, found {url:?}"
            ))
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

    /// Also the app's PostgreSQL role: an identifier that needs no quoting, within
    /// PostgreSQL's 63 bytes.
    pub fn database(name: &str) -> Result<(), String> {
        let ok = name.len() <= 63
            && name != "postgres"
            && name.starts_with(|ch: char| ch.is_ascii_lowercase())
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid database name {name:?}: use 1-63 lowercase letters, digits and '_', starting with a letter (not `postgres`, the superuser)"
            ))
        }
    }

    pub fn key_prefix(prefix: &str) -> Result<(), String> {
        if (1..=64).contains(&prefix.len())
            && prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ":_.-".contains(ch))
        {
            Ok(())
        } else {
            Err(format!(
                "invalid key prefix {prefix:?}: use 1-64 letters, digits and : _ . -"
            ))
        }
    }

    /// Redis `maxmemory`: a whole number of megabytes or gigabytes, at least 1mb.
    pub fn memory_size(size: &str) -> Result<(), String> {
        let digits = size.strip_suffix("mb").or_else(|| size.strip_suffix("gb"));
        let ok = digits.is_some_and(|d| {
            (1..=6).contains(&d.len())
                && !d.starts_with('0')
                && d.chars().all(|ch| ch.is_ascii_digit())
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected a memory size like 256mb or 1gb, found {size:?}"
            ))
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

    /// `redis.sentinel.master_name`: the contract's rule, which the web app checks too.
    pub fn master_name(name: &str) -> Result<(), String> {
        if clusterlab_contract::is_master_name(name) {
            Ok(())
        } else {
            Err(format!(
                "master_name `{name}` must be 1 to 64 letters, digits, '_' or '-'"
            ))
        }
    }

    /// `redis.sentinel.down_after_ms`: shorter would call a primary down between two pings.
    pub fn down_after_ms(ms: u32) -> Result<(), String> {
        if ms >= 100 {
            Ok(())
        } else {
            Err(format!("down_after_ms must be at least 100, got {ms}"))
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
        roles(&mut c, &parts.hosts, parts.sentinel.is_some());
        if let Some(quorum) = parts.sentinel {
            sentinel_group(&mut c, &parts.hosts, quorum);
        }
    }
    if parts.target == Some(Target::Proxmox) && matches!(parts.proxmox, ProxmoxState::Absent) {
        c.error(
            "proxmox",
            "missing required key `proxmox` (target is proxmox)",
        );
    }
    proxmox_hosts(&mut c, parts);
    extra_addresses(&mut c, parts);
    c.errors
}

/// The Proxmox-only host keys: which roles and providers they make sense for.
fn proxmox_hosts(c: &mut Checker, parts: &Parts) {
    let facts = match &parts.proxmox {
        ProxmoxState::Parsed(facts) => Some(facts),
        _ => None,
    };
    if let Some(facts) = facts {
        if facts.builds_template && facts.provider == ProxmoxProvider::Telmate {
            c.error(
                "proxmox.template.image_url",
                "building the template from an image needs provider bpg (telmate cannot download images); create the template by hand or use bpg",
            );
        }
    }
    for (i, host) in &parts.hosts {
        let at = |key: &str| format!("hosts[{i}].{key}");
        if !host.has_data_disk() {
            for key in ["data_disk_gb", "data_vm_id"] {
                if c.locations.written(&at(key)) {
                    c.error(
                        at(key),
                        format!(
                            "only postgres and redis hosts have a data disk ({} is {})",
                            host.name,
                            host.role.as_str()
                        ),
                    );
                }
            }
        }
        if host.kind == HostKind::Lxc {
            if !host.has_data_disk() {
                c.error(
                    at("kind"),
                    format!(
                        "only postgres and redis hosts may be lxc ({} is {})",
                        host.name,
                        host.role.as_str()
                    ),
                );
            }
            if c.locations.written(&at("data_vm_id")) {
                c.error(
                    at("data_vm_id"),
                    "an lxc host keeps its data on a mount point, not in a data VM",
                );
            }
            if c.locations.written(&at("cpu_type")) {
                c.error(at("cpu_type"), "an lxc host has no emulated CPU");
            }
            if let Some(facts) = facts {
                if !facts.has_lxc_template {
                    c.error(
                        at("kind"),
                        "an lxc host needs `proxmox.lxc_template` (e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst)",
                    );
                }
            }
        }
    }
}

/// `loadtest.extra_addresses` must be free addresses of the cluster network.
fn extra_addresses(c: &mut Checker, parts: &Parts) {
    let mut seen = HashMap::new();
    for (i, ip) in &parts.extra_addresses {
        let at = format!("loadtest.extra_addresses[{i}]");
        if let Some(net) = &parts.network {
            let cidr = net.cidr;
            if !cidr.contains(ip) || *ip == cidr.network() || *ip == cidr.broadcast() {
                c.error(
                    &at,
                    format!("{ip} is not a host address of the network {cidr}"),
                );
                continue;
            }
            if *ip == net.gateway {
                c.error(&at, format!("{ip} is the gateway address"));
                continue;
            }
        }
        if let Some((h, host)) = parts.hosts.iter().find(|(_, h)| h.ip == *ip) {
            c.error(
                &at,
                format!("{ip} is the address of {} (hosts[{h}])", host.name),
            );
            continue;
        }
        if let Some(first) = seen.insert(*ip, *i) {
            c.error(
                &at,
                format!("{ip} is listed twice (also loadtest.extra_addresses[{first}])"),
            );
        }
    }
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
    if let ProxmoxState::Parsed(facts) = &parts.proxmox {
        vm_ids.insert(facts.template_vm_id, "proxmox.template".to_owned());
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
        // Only bpg keeps data disks in a VM of their own.
        let data_vm = match &parts.proxmox {
            ProxmoxState::Parsed(facts) if facts.provider == ProxmoxProvider::Bpg => {
                host.data_vm_id()
            }
            _ => None,
        };
        if let Some(id) = data_vm {
            let key = if c.locations.written(&at("data_vm_id")) {
                "data_vm_id"
            } else {
                "vm_id"
            };
            if id > 999_999_999 {
                c.error(
                    at(key),
                    format!("data VM id {id} is outside 100-999999999 (vm_id + {DATA_VM_ID_OFFSET}); set data_vm_id"),
                );
            } else if let Some(first) = vm_ids.insert(id, format!("hosts[{i}].data_vm_id")) {
                c.error(
                    at(key),
                    format!(
                        "data VM id {id} of {} is already used by {first}; set data_vm_id",
                        host.name
                    ),
                );
            }
        }
    }
}

/// A Sentinel group needs three sentinels (one per redis host) to survive losing one, and
/// a quorum it can reach.
fn sentinel_group(c: &mut Checker, hosts: &[(usize, Host)], quorum: Option<u32>) {
    let count = hosts.iter().filter(|(_, h)| h.role == Role::Redis).count();
    if count < 3 {
        c.error(
            "redis.sentinel",
            format!(
                "a Sentinel group needs at least 3 hosts with role redis (a primary, 2 replicas, a sentinel on each), found {count}"
            ),
        );
    }
    if let Some(quorum) = quorum {
        if usize::try_from(quorum).unwrap_or(usize::MAX) > count {
            c.error(
                "redis.sentinel.quorum",
                format!("quorum {quorum} exceeds the {count} sentinels (one per redis host)"),
            );
        }
    }
}

fn roles(c: &mut Checker, hosts: &[(usize, Host)], sentinel: bool) {
    for role in Role::ALL {
        let of_role: Vec<usize> = hosts
            .iter()
            .filter(|(_, h)| h.role == role)
            .map(|(i, _)| *i)
            .collect();
        match (role, of_role.as_slice()) {
            (Role::Web, []) => c.error_at_key("hosts", "at least one host needs role web"),
            (Role::Web, _) | (_, [_]) => {}
            (Role::Redis, [_, ..]) if sentinel => {}
            (Role::Redis, [first, rest @ ..]) => {
                for i in rest {
                    c.error(
                        format!("hosts[{i}].role"),
                        format!(
                            "exactly one host may have role redis (also hosts[{first}]) unless redis.sentinel makes them a Sentinel group"
                        ),
                    );
                }
            }
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
    let mut keys = vec![
        ("ssh.private_key", &cluster.ssh.private_key),
        ("ssh.public_key", &cluster.ssh.public_key),
    ];
    if let Some(key) = cluster
        .proxmox
        .as_ref()
        .and_then(|p| p.ssh_private_key.as_ref())
    {
        keys.push(("proxmox.ssh_private_key", key));
    }
    for (path, file) in keys {
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
    let registry = cluster
        .images
        .registry
        .as_ref()
        .filter(|_| cluster.images.mode == ImageMode::Pull);
    if let Some(registry) = registry {
        if let Some(password) = &registry.password {
            secrets.push(("images.registry.password", password));
        }
        if let Some(ca) = &registry.ca_file {
            if !base.join(ca).is_file() {
                c.error(
                    "images.registry.ca_file",
                    format!("CA file {} does not exist", ca.display()),
                );
            }
        }
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
