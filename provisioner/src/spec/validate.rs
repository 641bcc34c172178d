//! Spec layer, second pass: rules that span several values (addresses inside the network,
//! unique names and ids, one host per singleton role, sane limits), reported with the place
//! of the value at fault.

use std::collections::HashMap;
use std::path::Path;

use super::reader::Locations;
use super::{Cluster, Role, SecretRef, SpecError, Target};

struct Checker<'a> {
    locations: &'a Locations,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let (line, column) = self.locations.of(&path);
        self.errors.push(SpecError {
            path,
            line,
            column,
            message: message.into(),
        });
    }

    fn label(&mut self, path: &str, text: &str, what: &str) {
        let valid = text.len() <= 32
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && !text.ends_with('-')
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            self.error(
                path,
                format!(
                    "invalid {what} {text:?}: use 1-32 lowercase letters, digits and '-', starting with a letter"
                ),
            );
        }
    }

    /// Names that end up inside HCL and YAML strings: a small alphabet keeps quoting trivial.
    fn word(&mut self, path: &str, text: &str, what: &str) {
        let ok = !text.is_empty()
            && text
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._/:@-".contains(ch));
        if !ok {
            self.error(
                path,
                format!("invalid {what} {text:?}: use letters, digits and . _ / : @ -"),
            );
        }
    }

    fn positive(&mut self, path: &str, value: u64) {
        if value == 0 {
            self.error(path, "must be greater than 0");
        }
    }
}

pub(super) fn validate(cluster: &Cluster, locations: &Locations) -> Vec<SpecError> {
    let mut c = Checker {
        locations,
        errors: Vec::new(),
    };
    c.label("name", &cluster.name, "cluster name");
    c.label("ssh.user", &cluster.ssh.user, "user name");
    network(&mut c, cluster);
    hosts(&mut c, cluster);
    roles(&mut c, cluster);

    let lb = &cluster.load_balancer;
    c.positive("load_balancer.published_port", lb.published_port.into());
    c.positive("load_balancer.max_fails", lb.max_fails.into());
    c.positive("load_balancer.fail_timeout_s", lb.fail_timeout_s.into());
    let size = &lb.client_max_body_size;
    let digits = size.trim_end_matches(['k', 'm']);
    if digits.is_empty() || !digits.chars().all(|ch| ch.is_ascii_digit()) {
        c.error(
            "load_balancer.client_max_body_size",
            format!("expected a size like 64k or 1m, found {size:?}"),
        );
    }

    let images = &cluster.images;
    for (key, image) in [
        ("vm", &images.vm),
        ("webapp", &images.webapp),
        ("redis", &images.redis),
        ("postgres", &images.postgres),
        ("nginx", &images.nginx),
    ] {
        c.word(&format!("images.{key}"), image, "an image name");
    }

    app(&mut c, cluster);
    proxmox(&mut c, cluster);
    c.errors
}

fn network(c: &mut Checker, cluster: &Cluster) {
    let net = &cluster.network;
    if net.cidr.prefix_len() > 29 {
        c.error(
            "network.cidr",
            format!("{} is too small for a cluster (use /29 or larger)", net.cidr),
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

fn hosts(c: &mut Checker, cluster: &Cluster) {
    let net = &cluster.network;
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ips = HashMap::new();
    let mut vm_ids = HashMap::new();
    if let Some(template) = cluster.proxmox.as_ref().map(|p| p.template.vm_id) {
        vm_ids.insert(template, "proxmox.template".to_owned());
    }
    for (i, host) in cluster.hosts.iter().enumerate() {
        let at = |key: &str| format!("hosts[{i}].{key}");
        c.label(&at("name"), &host.name, "host name");
        if let Some(first) = names.insert(&host.name, i) {
            c.error(
                at("name"),
                format!(
                    "duplicate host name {:?} (also hosts[{first}])",
                    host.name
                ),
            );
        }

        let ip = host.ip;
        if !net.cidr.contains(&ip) {
            c.error(at("ip"), format!("{ip} is outside the network {}", net.cidr));
        } else if ip == net.cidr.network() {
            c.error(at("ip"), format!("{ip} is the network address of {}", net.cidr));
        } else if ip == net.cidr.broadcast() {
            c.error(at("ip"), format!("{ip} is the broadcast address of {}", net.cidr));
        } else if ip == net.gateway {
            c.error(at("ip"), format!("{ip} is the gateway address"));
        }
        if let Some(first) = ips.insert(ip, i) {
            c.error(at("ip"), format!("duplicate IP {ip} (also hosts[{first}])"));
        }

        c.positive(&at("cores"), host.cores.into());
        if host.memory_mb < 256 {
            c.error(at("memory_mb"), "must be at least 256 (MiB)");
        }
        c.positive(&at("disk_gb"), host.disk_gb.into());

        match host.vm_id {
            Some(id) if !(100..=999_999_999).contains(&id) => {
                c.error(at("vm_id"), format!("VM id {id} is outside 100-999999999"));
            }
            Some(id) => {
                if let Some(first) = vm_ids.insert(id, format!("hosts[{i}]")) {
                    c.error(at("vm_id"), format!("duplicate VM id {id} (also {first})"));
                }
            }
            None if cluster.target == Target::Proxmox => {
                c.error(at("vm_id"), "missing required key `vm_id` (target is proxmox)");
            }
            None => {}
        }
    }
}

fn roles(c: &mut Checker, cluster: &Cluster) {
    for role in Role::ALL {
        let of_role: Vec<usize> = cluster
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.role == role)
            .map(|(i, _)| i)
            .collect();
        match (role, of_role.as_slice()) {
            (Role::Web, []) => c.error("hosts", "at least one host needs role web"),
            (Role::Web, _) | (_, [_]) => {}
            (_, []) => c.error(
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

fn app(c: &mut Checker, cluster: &Cluster) {
    let app = &cluster.app;
    if ![301, 302, 307, 308].contains(&app.redirect_status) {
        c.error(
            "app.redirect_status",
            format!(
                "{} is not a redirect status (expected 301, 302, 307 or 308)",
                app.redirect_status
            ),
        );
    }
    c.positive("app.max_url_length", app.max_url_length.into());
    if let Some(url) = &app.public_base_url {
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && !url.ends_with('/')
            && !url
                .chars()
                .any(|ch| ch.is_whitespace() || "\"'\\$".contains(ch));
        if !ok {
            c.error(
                "app.public_base_url",
                format!("expected an http(s) URL without a trailing '/', found {url:?}"),
            );
        }
    }
    let db = &app.database;
    let db_ok = db.starts_with(|ch: char| ch.is_ascii_lowercase())
        && db
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
    if !db_ok {
        c.error(
            "app.database",
            format!("invalid database name {db:?}: use lowercase letters, digits and '_'"),
        );
    }

    let limiter = &app.limiter;
    c.positive("app.limiter.timeout_ms", limiter.timeout_ms.into());
    if !(1..=128).contains(&limiter.ipv6_prefix) {
        c.error("app.limiter.ipv6_prefix", "must be between 1 and 128");
    }
    let prefix_ok = !limiter.key_prefix.is_empty()
        && limiter
            .key_prefix
            .chars()
            .all(|ch| ch.is_ascii_graphic() && ch != '"' && ch != '\\' && ch != '$');
    if !prefix_ok {
        c.error(
            "app.limiter.key_prefix",
            "must be non-empty printable ASCII without quotes, '\\' or '$'",
        );
    }
    let policies = &limiter.policies;
    for (name, policy) in [
        ("default", &policies.default),
        ("shorten", &policies.shorten),
        ("redirect", &policies.redirect),
    ] {
        let path = format!("app.limiter.policies.{name}");
        c.positive(&format!("{path}.limit"), policy.limit.into());
        c.positive(&format!("{path}.window"), policy.window.millis);
    }
}

fn proxmox(c: &mut Checker, cluster: &Cluster) {
    match (&cluster.proxmox, cluster.target) {
        (None, Target::Proxmox) => {
            c.error("proxmox", "missing required key `proxmox` (target is proxmox)");
        }
        (Some(p), _) => {
            let bad = |ch: char| ch.is_whitespace() || "\"'\\$".contains(ch);
            if !p.endpoint.starts_with("https://") || p.endpoint.contains(bad) {
                c.error(
                    "proxmox.endpoint",
                    format!("expected an https:// URL, found {:?}", p.endpoint),
                );
            }
            c.word("proxmox.node", &p.node, "a node name");
            c.word("proxmox.template.name", &p.template.name, "a template name");
            c.word("proxmox.storage", &p.storage, "a datastore");
            c.word("proxmox.snippets_storage", &p.snippets_storage, "a datastore");
            c.word("proxmox.bridge", &p.bridge, "a bridge");
            if !(100..=999_999_999).contains(&p.template.vm_id) {
                c.error(
                    "proxmox.template.vm_id",
                    format!("VM id {} is outside 100-999999999", p.template.vm_id),
                );
            }
        }
        (None, Target::Local) => {}
    }
}

/// Files the commands that reach hosts need: SSH keys and `file:` secrets.
pub(super) fn check_files(
    cluster: &Cluster,
    locations: &Locations,
    base: &Path,
) -> Vec<SpecError> {
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
                c.error(path, format!("secret file {} does not exist", file.display()));
            }
        }
    }
    c.errors
}
