//! Spec layer, first pass: walks the position-keeping YAML tree and builds the typed
//! [`Cluster`], reporting unknown keys, missing keys and wrong types without stopping, and
//! recording where every value came from so the semantic checks can point at it too.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use clusterlab_contract::route;
use ipnet::{IpNet, Ipv4Net};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node, Span};

use super::validate::rules;
use super::{
    defaults, Algorithm, App, Cluster, FailMode, Host, HostKind, ImageMode, Images, Limit, Limiter,
    LoadBalancer, LoadTestSpec, Network, Override, Policies, Policy, Proxmox, ProxmoxProvider,
    ProxmoxTemplate, RedisSpec, Registry, Role, SecretRef, Secrets, SentinelSpec, SpecError, Ssh,
    Target, Window,
};

/// Key path -> (line, column) of the value found there, and of its key.
#[derive(Debug, Default)]
pub(super) struct Locations {
    values: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Where the key of `path` was written (for errors about a whole list), else its value.
    pub(super) fn of_key(&self, path: &str) -> (usize, usize) {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.of(path))
    }

    /// Whether cluster.yaml wrote `path` (a default was not used).
    pub(super) fn written(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }

    /// Where `path` is, or the nearest enclosing key that was written (defaults have no place).
    pub(super) fn of(&self, path: &str) -> (usize, usize) {
        let mut path = path;
        loop {
            if let Some(&at) = self.values.get(path) {
                return at;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return self.values.get("").copied().unwrap_or((1, 1)),
            }
        }
    }
}

/// What the cross-value checks need, kept even when other parts of the spec failed to
/// parse, so those checks still report in the same run.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub target: Option<Target>,
    pub network: Option<Network>,
    /// Every host that parsed, with its index in `hosts`.
    pub hosts: Vec<(usize, Host)>,
    /// Whether every entry of `hosts` parsed (role counts are only meaningful then).
    pub hosts_complete: bool,
    pub proxmox: ProxmoxState,
    /// `redis.sentinel` parsed: `Some(quorum as written)`.
    pub sentinel: Option<Option<u32>>,
    /// `loadtest.extra_addresses` with the index of the entry each came from.
    pub extra_addresses: Vec<(usize, Ipv4Addr)>,
}

#[derive(Debug, Default)]
pub(super) enum ProxmoxState {
    #[default]
    Absent,
    /// Present and parsed.
    Parsed(ProxmoxFacts),
    /// Present but broken (already reported).
    Broken,
}

/// What the cross-value checks need from a parsed `proxmox` section.
#[derive(Debug)]
pub(super) struct ProxmoxFacts {
    pub template_vm_id: u32,
    pub provider: ProxmoxProvider,
    pub has_lxc_template: bool,
    pub builds_template: bool,
}

/// The result of the first pass.
pub(super) struct Read {
    /// The typed spec; None when any part is missing or mistyped.
    pub cluster: Option<Cluster>,
    pub parts: Parts,
    pub locations: Locations,
    pub errors: Vec<SpecError>,
}

/// Builds the typed spec, what the cross-value checks need, where each value was found, and
/// the errors of this pass.
pub(super) fn read(source: &str) -> Read {
    let mut reader = Reader {
        errors: Vec::new(),
        locations: Locations::default(),
        parts: Parts::default(),
    };
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let cluster = match marked_yaml::parse_yaml_with_options(0, source, options) {
        Ok(root) => reader.cluster(&root),
        Err(error) => {
            reader.errors.push(load_error(&error));
            None
        }
    };
    Read {
        cluster,
        parts: reader.parts,
        locations: reader.locations,
        errors: reader.errors,
    }
}

fn load_error(error: &marked_yaml::LoadError) -> SpecError {
    use marked_yaml::LoadError as E;
    let (marker, path, message) = match error {
        E::TopLevelMustBeMapping(m) => (
            Some(*m),
            String::new(),
            "cluster.yaml must be a mapping of keys".to_owned(),
        ),
        E::TopLevelMustBeSequence(m) => (Some(*m), String::new(), "unexpected sequence".into()),
        E::UnexpectedAnchor(m) => (
            Some(*m),
            String::new(),
            "YAML anchors and aliases are not supported".into(),
        ),
        E::MappingKeyMustBeScalar(m) => (Some(*m), String::new(), "keys must be plain".into()),
        E::UnexpectedTag(m) => (
            Some(*m),
            String::new(),
            "YAML tags are not supported".into(),
        ),
        E::ScanError(m, scan) => (
            Some(*m),
            String::new(),
            format!("invalid YAML: {}", scan.info()),
        ),
        E::DuplicateKey(inner) => (
            inner.key.span().start().copied(),
            inner.key.as_str().to_owned(),
            format!(
                "duplicate key `{}` (first defined at line {})",
                inner.key.as_str(),
                inner.prev_key.span().start().map_or(0, |m| m.line())
            ),
        ),
    };
    let (line, column) = marker.map_or((1, 1), |m| (m.line(), m.column()));
    SpecError {
        path,
        line,
        column,
        message,
    }
}

fn start(span: &Span) -> (usize, usize) {
    span.start().map_or((1, 1), |m| (m.line(), m.column()))
}

/// Where a node begins. A mapping's own mark lies past its first key, so use that key.
fn node_start(node: &Node) -> (usize, usize) {
    match node {
        Node::Mapping(map) => mapping_start(map),
        other => start(other.span()),
    }
}

fn mapping_start(map: &MarkedMappingNode) -> (usize, usize) {
    map.keys()
        .next()
        .map_or_else(|| start(map.span()), |key| start(key.span()))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Mapping(_) => "a mapping".to_owned(),
        Node::Sequence(_) => "a list".to_owned(),
        Node::Scalar(s) if s.as_str().is_empty() || s.as_str() == "~" => "nothing".to_owned(),
        Node::Scalar(s) => format!("{:?}", s.as_str()),
    }
}

/// The keys of one mapping, checked against what is allowed there.
struct Fields<'n> {
    map: &'n MarkedMappingNode,
    path: String,
}

struct Reader {
    errors: Vec<SpecError>,
    locations: Locations,
    parts: Parts,
}

type Parse<T> = fn(&mut Reader, &Node, &str) -> Option<T>;

impl Reader {
    fn error(&mut self, path: &str, at: (usize, usize), message: impl Into<String>) {
        self.errors.push(SpecError {
            path: path.to_owned(),
            line: at.0,
            column: at.1,
            message: message.into(),
        });
    }

    fn mapping<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Node::Mapping(map) = node else {
            self.error(
                path,
                node_start(node),
                format!("expected a mapping, found {}", describe(node)),
            );
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    &child(path, key.as_str()),
                    start(key.span()),
                    format!(
                        "unknown key `{}` (expected one of: {})",
                        key.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(Fields {
            map,
            path: path.to_owned(),
        })
    }

    fn record_key(&mut self, fields: &Fields, key: &str, path: &str) {
        if let Some((found, _)) = fields.map.get_key_value(key) {
            self.locations
                .keys
                .insert(path.to_owned(), start(found.span()));
        }
    }

    fn required<T>(&mut self, fields: &Fields, key: &str, parse: Parse<T>) -> Option<T> {
        let path = child(&fields.path, key);
        self.record_key(fields, key, &path);
        match fields.map.get_node(key) {
            Some(node) => {
                self.locations.values.insert(path.clone(), node_start(node));
                parse(self, node, &path)
            }
            None => {
                self.error(
                    &path,
                    mapping_start(fields.map),
                    format!("missing required key `{key}`"),
                );
                None
            }
        }
    }

    fn optional<T>(&mut self, fields: &Fields, key: &str, parse: Parse<T>) -> Option<Option<T>> {
        let path = child(&fields.path, key);
        self.record_key(fields, key, &path);
        match fields.map.get_node(key) {
            Some(node) => {
                self.locations.values.insert(path.clone(), node_start(node));
                parse(self, node, &path).map(Some)
            }
            None => Some(None),
        }
    }

    fn or_default<T>(
        &mut self,
        fields: &Fields,
        key: &str,
        parse: Parse<T>,
        default: fn() -> T,
    ) -> Option<T> {
        self.optional(fields, key, parse)
            .map(|value| value.unwrap_or_else(default))
    }

    fn scalar<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<&'n str> {
        match node {
            Node::Scalar(s) if !(s.as_str().is_empty() || s.as_str() == "~") => Some(s.as_str()),
            _ => {
                // An empty value has no place of its own (its mark is the next token), so
                // point at its key.
                let at = match node {
                    Node::Scalar(_) => self.locations.keys.get(path).copied(),
                    _ => None,
                };
                self.error(
                    path,
                    at.unwrap_or_else(|| node_start(node)),
                    format!("expected {what}, found {}", describe(node)),
                );
                None
            }
        }
    }

    fn parsed<T: FromStr>(&mut self, node: &Node, path: &str, what: &str) -> Option<T> {
        let text = self.scalar(node, path, what)?;
        match text.parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.error(
                    path,
                    node_start(node),
                    format!("expected {what}, found {text:?}"),
                );
                None
            }
        }
    }

    fn with<T>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.scalar(node, path, what)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(path, node_start(node), message);
                None
            }
        }
    }

    fn list<T>(&mut self, node: &Node, path: &str, parse: Parse<T>) -> Option<Vec<T>> {
        let Node::Sequence(items) = node else {
            self.error(
                path,
                node_start(node),
                format!("expected a list, found {}", describe(node)),
            );
            return None;
        };
        let mut out = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            self.locations.values.insert(path.clone(), node_start(item));
            match (parse(self, item, &path), out.as_mut()) {
                (Some(value), Some(list)) => list.push(value),
                _ => out = None,
            }
        }
        out
    }

    fn cluster(&mut self, root: &Node) -> Option<Cluster> {
        self.locations
            .values
            .insert(String::new(), node_start(root));
        let f = self.mapping(
            root,
            "",
            &[
                "name",
                "target",
                "network",
                "ssh",
                "hosts",
                "load_balancer",
                "images",
                "app",
                "secrets",
                "redis",
                "proxmox",
                "loadtest",
            ],
        )?;
        let name = self.required(&f, "name", cluster_name);
        let target = self.required(&f, "target", target);
        let network = self.required(&f, "network", network);
        let ssh = self.required(&f, "ssh", ssh);
        let hosts = self.required(&f, "hosts", hosts);
        let load_balancer =
            self.or_default(&f, "load_balancer", load_balancer, defaults::load_balancer);
        let images = self.required(&f, "images", images);
        let app = self.required(&f, "app", app);
        let secrets = self.required(&f, "secrets", secrets);
        let redis = self.or_default(&f, "redis", redis, RedisSpec::default);
        let proxmox = self.optional(&f, "proxmox", proxmox);
        let loadtest = self.or_default(&f, "loadtest", loadtest, LoadTestSpec::default);
        self.parts.target = target;
        self.parts.sentinel = match &redis {
            Some(spec) => spec.sentinel.as_ref().map(|s| s.quorum),
            None => None,
        };
        self.parts.network = network.clone();
        self.parts.proxmox = match &proxmox {
            Some(None) => ProxmoxState::Absent,
            Some(Some(p)) => ProxmoxState::Parsed(ProxmoxFacts {
                template_vm_id: p.template.vm_id,
                provider: p.provider,
                has_lxc_template: p.lxc_template.is_some(),
                builds_template: p.template.image_url.is_some(),
            }),
            None => ProxmoxState::Broken,
        };
        Some(Cluster {
            name: name?,
            target: target?,
            network: network?,
            ssh: ssh?,
            hosts: hosts?,
            load_balancer: load_balancer?,
            images: images?,
            app: app?,
            secrets: secrets?,
            redis: redis?,
            proxmox: proxmox?,
            loadtest: loadtest?,
        })
    }
}

/// Applies a single-value rule to a parsed value, reporting at the value. The value is kept
/// even when the rule fails: it has its type, so the cross-value checks can still run and
/// report their own errors in the same pass.
fn checked<T>(
    r: &mut Reader,
    node: &Node,
    path: &str,
    value: Option<T>,
    rule: impl FnOnce(&T) -> Result<(), String>,
) -> Option<T> {
    let value = value?;
    if let Err(message) = rule(&value) {
        r.error(path, node_start(node), message);
    }
    Some(value)
}

fn cluster_name(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::label(v, "cluster name"))
}

fn user_name(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::label(v, "user name"))
}

fn host_name(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::label(v, "host name"))
}

fn image(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::word(v, "image name"))
}

fn proxmox_word(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::proxmox_id(v))
}

fn vlan(r: &mut Reader, node: &Node, path: &str) -> Option<u16> {
    let value = r.parsed(node, path, "a VLAN tag (1-4094)");
    checked(r, node, path, value, |v| rules::vlan(*v))
}

fn tag(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::tag(v))
}

/// One entry of `loadtest.extra_addresses`: an address or an inclusive range `first-last`.
fn address_range(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Ipv4Addr>> {
    r.with(node, path, "an IPv4 address or range", rules::address_range)
}

fn positive(r: &mut Reader, node: &Node, path: &str) -> Option<u32> {
    let value = u32_value(r, node, path);
    checked(r, node, path, value, |v| rules::positive((*v).into()))
}

fn string(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    r.scalar(node, path, "a string").map(str::to_owned)
}

fn path_buf(r: &mut Reader, node: &Node, path: &str) -> Option<PathBuf> {
    let value = r.scalar(node, path, "a file path").map(str::to_owned);
    checked(r, node, path, value, |v| rules::path(v)).map(PathBuf::from)
}

fn u32_value(r: &mut Reader, node: &Node, path: &str) -> Option<u32> {
    r.parsed(node, path, "a whole number")
}

fn port(r: &mut Reader, node: &Node, path: &str) -> Option<u16> {
    let value = r.parsed(node, path, "a port number (1-65535)");
    checked(r, node, path, value, |v| rules::positive((*v).into()))
}

fn status(r: &mut Reader, node: &Node, path: &str) -> Option<u16> {
    let value = r.parsed(node, path, "an HTTP status code");
    checked(r, node, path, value, |v| rules::redirect_status(*v))
}

fn prefix_len(r: &mut Reader, node: &Node, path: &str) -> Option<u8> {
    let value = r.parsed(node, path, "a prefix length (1-128)");
    checked(r, node, path, value, |v| rules::ipv6_prefix(*v))
}

fn vm_id(r: &mut Reader, node: &Node, path: &str) -> Option<u32> {
    let value = u32_value(r, node, path);
    checked(r, node, path, value, |v| rules::vm_id(*v))
}

fn boolean(r: &mut Reader, node: &Node, path: &str) -> Option<bool> {
    r.parsed(node, path, "true or false")
}

fn ipv4(r: &mut Reader, node: &Node, path: &str) -> Option<Ipv4Addr> {
    r.parsed(node, path, "an IPv4 address")
}

fn cidr(r: &mut Reader, node: &Node, path: &str) -> Option<Ipv4Net> {
    r.with(node, path, "an IPv4 network", |text| {
        let net: Ipv4Net = text
            .parse()
            .map_err(|_| format!("expected an IPv4 network like 10.77.0.0/24, found {text:?}"))?;
        if net != net.trunc() {
            return Err(format!(
                "{text} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        Ok(net)
    })
}

fn secret(r: &mut Reader, node: &Node, path: &str) -> Option<SecretRef> {
    r.with(node, path, "a secret reference", SecretRef::parse)
}

fn window(r: &mut Reader, node: &Node, path: &str) -> Option<Window> {
    // The web app's own parser: whatever passes here, the app accepts.
    r.with(node, path, "a duration", |text| {
        Window::parse(text).map_err(|e| e.to_string())
    })
}

/// A closed set of words, with a message listing them when the text is none of them.
fn one_of<T: Copy>(
    r: &mut Reader,
    node: &Node,
    path: &str,
    what: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    r.with(node, path, what, |text| {
        choices
            .iter()
            .find(|(word, _)| *word == text)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
                format!(
                    "unknown {what} {text:?} (expected one of: {})",
                    words.join(", ")
                )
            })
    })
}

fn target(r: &mut Reader, node: &Node, path: &str) -> Option<Target> {
    one_of(
        r,
        node,
        path,
        "target",
        &[("local", Target::Local), ("proxmox", Target::Proxmox)],
    )
}

fn role(r: &mut Reader, node: &Node, path: &str) -> Option<Role> {
    let choices = Role::ALL.map(|role| (role.as_str(), role));
    one_of(r, node, path, "role", &choices)
}

fn image_mode(r: &mut Reader, node: &Node, path: &str) -> Option<ImageMode> {
    one_of(
        r,
        node,
        path,
        "image mode",
        &[("ship", ImageMode::Ship), ("pull", ImageMode::Pull)],
    )
}

fn algorithm(r: &mut Reader, node: &Node, path: &str) -> Option<Algorithm> {
    one_of(
        r,
        node,
        path,
        "algorithm",
        &Algorithm::ALL.map(|a| (a.as_str(), a)),
    )
}

fn fail_mode(r: &mut Reader, node: &Node, path: &str) -> Option<FailMode> {
    one_of(
        r,
        node,
        path,
        "fail mode",
        &FailMode::ALL.map(|m| (m.as_str(), m)),
    )
}

fn host_kind(r: &mut Reader, node: &Node, path: &str) -> Option<HostKind> {
    one_of(
        r,
        node,
        path,
        "host kind",
        &[("vm", HostKind::Vm), ("lxc", HostKind::Lxc)],
    )
}

fn provider(r: &mut Reader, node: &Node, path: &str) -> Option<ProxmoxProvider> {
    one_of(
        r,
        node,
        path,
        "provider",
        &[
            ("bpg", ProxmoxProvider::Bpg),
            ("telmate", ProxmoxProvider::Telmate),
        ],
    )
}

/// Like [`Reader::list`], but keeps every host that parsed for the cross-value checks.
fn hosts(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Host>> {
    let Node::Sequence(items) = node else {
        r.error(
            path,
            node_start(node),
            format!("expected a list, found {}", describe(node)),
        );
        return None;
    };
    let mut complete = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}[{i}]");
        r.locations.values.insert(path.clone(), node_start(item));
        match host(r, item, &path) {
            Some(parsed) => r.parts.hosts.push((i, parsed)),
            None => complete = false,
        }
    }
    r.parts.hosts_complete = complete;
    complete.then(|| r.parts.hosts.iter().map(|(_, h)| h.clone()).collect())
}

fn network(r: &mut Reader, node: &Node, path: &str) -> Option<Network> {
    let f = r.mapping(node, path, &["cidr", "gateway", "dns"])?;
    let cidr = r.required(&f, "cidr", cidr);
    let gateway = r.required(&f, "gateway", ipv4);
    let dns = r.or_default(&f, "dns", |r, n, p| r.list(n, p, ipv4), defaults::dns);
    Some(Network {
        cidr: cidr?,
        gateway: gateway?,
        dns: dns?,
    })
}

fn ssh(r: &mut Reader, node: &Node, path: &str) -> Option<Ssh> {
    let f = r.mapping(node, path, &["user", "private_key", "public_key"])?;
    let user = r.required(&f, "user", user_name);
    let private_key = r.required(&f, "private_key", path_buf);
    let public_key = r.required(&f, "public_key", path_buf);
    Some(Ssh {
        user: user?,
        private_key: private_key?,
        public_key: public_key?,
    })
}

fn host(r: &mut Reader, node: &Node, path: &str) -> Option<Host> {
    let f = r.mapping(
        node,
        path,
        &[
            "name",
            "role",
            "ip",
            "vm_id",
            "cores",
            "memory_mb",
            "disk_gb",
            "kind",
            "node",
            "vlan",
            "cpu_type",
            "data_disk_gb",
            "data_vm_id",
        ],
    )?;
    let name = r.required(&f, "name", host_name);
    let role = r.required(&f, "role", role);
    let ip = r.required(&f, "ip", ipv4);
    let vm_id = r.optional(&f, "vm_id", vm_id);
    let cores = r.or_default(&f, "cores", positive, defaults::cores);
    let memory_mb = r.or_default(
        &f,
        "memory_mb",
        |r, n, p| {
            let value = u32_value(r, n, p);
            checked(r, n, p, value, |v| rules::memory_mb(*v))
        },
        defaults::memory_mb,
    );
    let disk_gb = r.or_default(&f, "disk_gb", positive, defaults::disk_gb);
    let kind = r.or_default(&f, "kind", host_kind, defaults::kind);
    let node_name = r.optional(&f, "node", proxmox_word);
    let vlan = r.optional(&f, "vlan", vlan);
    let cpu_type = r.optional(&f, "cpu_type", proxmox_word);
    let data_disk_gb = r.or_default(&f, "data_disk_gb", positive, defaults::data_disk_gb);
    let data_vm_id = r.optional(&f, "data_vm_id", self::vm_id);
    Some(Host {
        name: name?,
        role: role?,
        ip: ip?,
        vm_id: vm_id?,
        cores: cores?,
        memory_mb: memory_mb?,
        disk_gb: disk_gb?,
        kind: kind?,
        node: node_name?,
        vlan: vlan?,
        cpu_type: cpu_type?,
        data_disk_gb: data_disk_gb?,
        data_vm_id: data_vm_id?,
    })
}

fn redis(r: &mut Reader, node: &Node, path: &str) -> Option<RedisSpec> {
    let f = r.mapping(node, path, &["sentinel"])?;
    let sentinel = r.optional(&f, "sentinel", sentinel);
    Some(RedisSpec {
        sentinel: sentinel?,
    })
}

fn sentinel(r: &mut Reader, node: &Node, path: &str) -> Option<SentinelSpec> {
    let f = r.mapping(node, path, &["master_name", "quorum", "down_after_ms"])?;
    let master_name = r.or_default(
        &f,
        "master_name",
        |r, n, p| {
            let value = string(r, n, p);
            checked(r, n, p, value, |v| rules::master_name(v))
        },
        defaults::master_name,
    );
    let quorum = r.optional(&f, "quorum", positive);
    let down_after_ms = r.or_default(
        &f,
        "down_after_ms",
        |r, n, p| {
            let value = u32_value(r, n, p);
            checked(r, n, p, value, |v| rules::down_after_ms(*v))
        },
        defaults::down_after_ms,
    );
    Some(SentinelSpec {
        master_name: master_name?,
        quorum: quorum?,
        down_after_ms: down_after_ms?,
    })
}

fn load_balancer(r: &mut Reader, node: &Node, path: &str) -> Option<LoadBalancer> {
    let f = r.mapping(
        node,
        path,
        &[
            "bind",
            "published_port",
            "client_max_body_size",
            "max_fails",
            "fail_timeout_s",
        ],
    )?;
    let bind = r.or_default(&f, "bind", ipv4, defaults::bind);
    let published_port = r.or_default(&f, "published_port", port, defaults::published_port);
    let body = r.or_default(
        &f,
        "client_max_body_size",
        |r, n, p| {
            let value = string(r, n, p);
            checked(r, n, p, value, |v| rules::body_size(v))
        },
        defaults::client_max_body_size,
    );
    let max_fails = r.or_default(&f, "max_fails", positive, defaults::max_fails);
    let fail_timeout_s = r.or_default(&f, "fail_timeout_s", positive, defaults::fail_timeout_s);
    Some(LoadBalancer {
        bind: bind?,
        published_port: published_port?,
        client_max_body_size: body?,
        max_fails: max_fails?,
        fail_timeout_s: fail_timeout_s?,
    })
}

fn images(r: &mut Reader, node: &Node, path: &str) -> Option<Images> {
    let f = r.mapping(
        node,
        path,
        &[
            "mode", "registry", "vm", "webapp", "redis", "postgres", "nginx",
        ],
    )?;
    let mode = r.or_default(&f, "mode", image_mode, defaults::image_mode);
    let registry = r.optional(&f, "registry", registry);
    let vm = r.required(&f, "vm", image);
    let webapp = r.required(&f, "webapp", image);
    let redis = r.required(&f, "redis", image);
    let postgres = r.required(&f, "postgres", image);
    let nginx = r.required(&f, "nginx", image);
    Some(Images {
        mode: mode?,
        registry: registry?,
        vm: vm?,
        webapp: webapp?,
        redis: redis?,
        postgres: postgres?,
        nginx: nginx?,
    })
}

fn registry(r: &mut Reader, node: &Node, path: &str) -> Option<Registry> {
    let f = r.mapping(
        node,
        path,
        &[
            "address",
            "push_address",
            "insecure",
            "ca_file",
            "username",
            "password",
        ],
    )?;
    let address = r.required(&f, "address", registry_address);
    let push_address = r.optional(&f, "push_address", registry_address);
    let insecure = r.or_default(&f, "insecure", boolean, || false);
    let ca_file = r.optional(&f, "ca_file", path_buf);
    let username = r.optional(&f, "username", registry_user);
    let password = r.optional(&f, "password", secret);
    // Where a key's value was, for the rules that span two keys.
    let at = |r: &Reader, key: &str| {
        r.locations
            .values
            .get(&child(path, key))
            .copied()
            .unwrap_or_else(|| node_start(node))
    };
    if insecure == Some(true) && matches!(ca_file, Some(Some(_))) {
        let at = at(r, "ca_file");
        r.error(
            &child(path, "ca_file"),
            at,
            "an insecure registry speaks plain HTTP; ca_file is for one that uses TLS (drop one of them)",
        );
    }
    match (&username, &password) {
        (Some(Some(_)), Some(None)) => {
            let at = at(r, "username");
            r.error(
                &child(path, "username"),
                at,
                "`username` needs `password` (env:NAME or file:path) beside it",
            );
        }
        (Some(None), Some(Some(_))) => {
            let at = at(r, "password");
            r.error(
                &child(path, "password"),
                at,
                "`password` needs `username` beside it",
            );
        }
        _ => {}
    }
    Some(Registry {
        address: address?,
        push_address: push_address?,
        insecure: insecure?,
        ca_file: ca_file?,
        username: username?,
        password: password?,
    })
}

fn registry_address(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::registry_address(v))
}

fn registry_user(r: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let value = string(r, node, path);
    checked(r, node, path, value, |v| rules::registry_user(v))
}

fn app(r: &mut Reader, node: &Node, path: &str) -> Option<App> {
    let f = r.mapping(
        node,
        path,
        &[
            "public_base_url",
            "redirect_status",
            "max_url_length",
            "database",
            "page_burst",
            "retain",
            "limiter",
        ],
    )?;
    let public_base_url = r.optional(&f, "public_base_url", |r, n, p| {
        let value = string(r, n, p);
        checked(r, n, p, value, |v| rules::base_url(v))
    });
    let redirect_status = r.or_default(&f, "redirect_status", status, defaults::redirect_status);
    let max_url_length = r.or_default(&f, "max_url_length", positive, defaults::max_url_length);
    let database = r.or_default(
        &f,
        "database",
        |r, n, p| {
            let value = string(r, n, p);
            checked(r, n, p, value, |v| rules::database(v))
        },
        defaults::database,
    );
    let page_burst = r.optional(&f, "page_burst", boolean);
    let retain = r.or_default(&f, "retain", positive, defaults::retain);
    let limiter = r.required(&f, "limiter", limiter);
    Some(App {
        public_base_url: public_base_url?,
        redirect_status: redirect_status?,
        max_url_length: max_url_length?,
        database: database?,
        page_burst: page_burst?,
        retain: retain?,
        limiter: limiter?,
    })
}

fn limiter(r: &mut Reader, node: &Node, path: &str) -> Option<Limiter> {
    let f = r.mapping(
        node,
        path,
        &[
            "algorithm",
            "fail_mode",
            "shadow",
            "timeout_ms",
            "ipv6_prefix",
            "key_prefix",
            "redis_maxmemory",
            "policies",
            "overrides",
        ],
    )?;
    let algorithm = r.or_default(&f, "algorithm", algorithm, defaults::algorithm);
    let fail_mode = r.or_default(&f, "fail_mode", fail_mode, defaults::fail_mode);
    let shadow = r.or_default(&f, "shadow", boolean, || false);
    let timeout_ms = r.or_default(&f, "timeout_ms", positive, defaults::timeout_ms);
    let ipv6_prefix = r.or_default(&f, "ipv6_prefix", prefix_len, defaults::ipv6_prefix);
    let key_prefix = r.or_default(
        &f,
        "key_prefix",
        |r, n, p| {
            let value = string(r, n, p);
            checked(r, n, p, value, |v| rules::key_prefix(v))
        },
        defaults::key_prefix,
    );
    let redis_maxmemory = r.or_default(
        &f,
        "redis_maxmemory",
        |r, n, p| {
            let value = string(r, n, p);
            checked(r, n, p, value, |v| rules::memory_size(v))
        },
        defaults::redis_maxmemory,
    );
    let policies = r.required(&f, "policies", policies);
    let overrides = r.or_default(&f, "overrides", overrides, Vec::new);
    Some(Limiter {
        algorithm: algorithm?,
        fail_mode: fail_mode?,
        shadow: shadow?,
        timeout_ms: timeout_ms?,
        ipv6_prefix: ipv6_prefix?,
        key_prefix: key_prefix?,
        redis_maxmemory: redis_maxmemory?,
        policies: policies?,
        overrides: overrides?,
    })
}

/// `limiter.overrides`: each network once (a client must know which override is its).
fn overrides(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Override>> {
    let list = r.list(node, path, limiter_override)?;
    for (i, entry) in list.iter().enumerate() {
        if let Some(first) = list[..i].iter().position(|o| o.cidr == entry.cidr) {
            let at = format!("{path}[{i}].cidr");
            let location = r.locations.values.get(&format!("{path}[{i}]")).copied();
            r.error(
                &at,
                location.unwrap_or_else(|| node_start(node)),
                format!("{} is already the network of {path}[{first}]", entry.cidr),
            );
        }
    }
    Some(list)
}

fn limiter_override(r: &mut Reader, node: &Node, path: &str) -> Option<Override> {
    let f = r.mapping(node, path, &["cidr", "unlimited", "policies"])?;
    let cidr = r.required(&f, "cidr", any_network);
    let unlimited = r.or_default(&f, "unlimited", boolean, || false);
    let reported = r.errors.len();
    let policies = r.or_default(&f, "policies", override_policies, BTreeMap::new);
    let (cidr, unlimited, policies) = (cidr?, unlimited?, policies?);
    // (`policies` with only a mistake in it has said so already.)
    if unlimited != policies.is_empty() && r.errors.len() == reported {
        r.error(
            path,
            node_start(node),
            "give either `unlimited: true` or `policies` of its own (not both, not neither)",
        );
    }
    Some(Override {
        cidr,
        unlimited,
        policies,
    })
}

fn override_policies(r: &mut Reader, node: &Node, path: &str) -> Option<BTreeMap<String, Policy>> {
    let f = r.mapping(node, path, &route::ALL)?;
    let mut policies = Some(BTreeMap::new());
    for name in route::ALL {
        match (r.optional(&f, name, policy), policies.as_mut()) {
            (Some(Some(policy)), Some(map)) => {
                map.insert(name.to_owned(), policy);
            }
            (Some(None), _) => {}
            _ => policies = None,
        }
    }
    policies
}

/// An IPv4 or IPv6 network, or one address (its /32 or /128).
fn any_network(r: &mut Reader, node: &Node, path: &str) -> Option<IpNet> {
    r.with(node, path, "a network or an address", |text| {
        if let Ok(address) = text.parse::<std::net::IpAddr>() {
            return Ok(IpNet::from(address));
        }
        let net: IpNet = text.parse().map_err(|_| {
            format!("expected a network like 10.77.0.64/26 or 2001:db8::/48, or an address, found {text:?}")
        })?;
        if net != net.trunc() {
            return Err(format!("{text} has host bits set; did you mean {}?", net.trunc()));
        }
        Ok(net)
    })
}

fn policies(r: &mut Reader, node: &Node, path: &str) -> Option<Policies> {
    let f = r.mapping(node, path, &route::ALL)?;
    let default = r.required(&f, route::DEFAULT, policy);
    let shorten = r.required(&f, route::SHORTEN, policy);
    let redirect = r.required(&f, route::REDIRECT, policy);
    Some(Policies {
        default: default?,
        shorten: shorten?,
        redirect: redirect?,
    })
}

/// `{limit, window, shadow?}`, a list of `{limit, window}`, or `{limits: [...], shadow?}`.
fn policy(r: &mut Reader, node: &Node, path: &str) -> Option<Policy> {
    if let Node::Sequence(_) = node {
        let limits = limits(r, node, path)?;
        return Some(Policy {
            limits,
            shadow: false,
        });
    }
    let f = r.mapping(node, path, &["limit", "window", "limits", "shadow"])?;
    let shadow = r.or_default(&f, "shadow", boolean, || false);
    let limits = if f.map.get_node("limits").is_some() {
        let single = ["limit", "window"]
            .into_iter()
            .find_map(|k| f.map.get_key_value(k));
        if let Some((key, _)) = single {
            r.error(
                &child(path, key.as_str()),
                start(key.span()),
                "give either `limit` and `window` or `limits`, not both",
            );
            return None;
        }
        r.required(&f, "limits", limits)
    } else {
        one_limit(r, &f).map(|limit| vec![limit])
    };
    Some(Policy {
        limits: limits?,
        shadow: shadow?,
    })
}

/// A list of limits: at least one, each with a window of its own.
fn limits(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Limit>> {
    let list = r.list(node, path, |r, node, path| {
        let f = r.mapping(node, path, &["limit", "window"])?;
        one_limit(r, &f)
    })?;
    if list.is_empty() {
        r.error(path, node_start(node), "a policy needs at least one limit");
        return None;
    }
    let mut fine = true;
    for (i, limit) in list.iter().enumerate() {
        if let Some(first) = list[..i].iter().position(|l| l.window == limit.window) {
            let at = format!("{path}[{i}].window");
            let location = r.locations.values.get(&format!("{path}[{i}]")).copied();
            r.error(
                &at,
                location.unwrap_or_else(|| node_start(node)),
                format!(
                    "{path}[{first}] has the window {} already; each limit needs a window of its own",
                    limit.window
                ),
            );
            fine = false;
        }
    }
    fine.then_some(list)
}

fn one_limit(r: &mut Reader, f: &Fields) -> Option<Limit> {
    let limit = r.required(f, "limit", positive);
    let window = r.required(f, "window", window);
    Some(Limit {
        limit: limit?,
        window: window?,
    })
}

fn secrets(r: &mut Reader, node: &Node, path: &str) -> Option<Secrets> {
    let f = r.mapping(node, path, &["redis_password", "postgres_password"])?;
    let redis_password = r.required(&f, "redis_password", secret);
    let postgres_password = r.required(&f, "postgres_password", secret);
    Some(Secrets {
        redis_password: redis_password?,
        postgres_password: postgres_password?,
    })
}

fn proxmox(r: &mut Reader, node: &Node, path: &str) -> Option<Proxmox> {
    let f = r.mapping(
        node,
        path,
        &[
            "endpoint",
            "insecure",
            "node",
            "template",
            "storage",
            "snippets_storage",
            "bridge",
            "provider",
            "api_token",
            "ssh_user",
            "ssh_private_key",
            "vlan",
            "cpu_type",
            "onboot",
            "tags",
            "lxc_template",
        ],
    )?;
    let endpoint = r.required(&f, "endpoint", |r, n, p| {
        let value = string(r, n, p);
        checked(r, n, p, value, |v| rules::endpoint(v))
    });
    let insecure = r.or_default(&f, "insecure", boolean, || false);
    let node_name = r.required(&f, "node", proxmox_word);
    let template = r.required(&f, "template", template);
    let storage = r.required(&f, "storage", proxmox_word);
    let snippets_storage = r.or_default(
        &f,
        "snippets_storage",
        proxmox_word,
        defaults::snippets_storage,
    );
    let bridge = r.required(&f, "bridge", proxmox_word);
    let provider = r.or_default(&f, "provider", provider, defaults::provider);
    let api_token = r.required(&f, "api_token", secret);
    let ssh_user = r.or_default(
        &f,
        "ssh_user",
        |r, n, p| {
            let value = string(r, n, p);
            checked(r, n, p, value, |v| rules::pam_user(v))
        },
        defaults::proxmox_ssh_user,
    );
    let ssh_private_key = r.optional(&f, "ssh_private_key", path_buf);
    let vlan = r.optional(&f, "vlan", vlan);
    let cpu_type = r.or_default(&f, "cpu_type", proxmox_word, defaults::cpu_type);
    let onboot = r.or_default(&f, "onboot", boolean, defaults::onboot);
    let tags = r.or_default(&f, "tags", |r, n, p| r.list(n, p, tag), Vec::new);
    let lxc_template = r.optional(&f, "lxc_template", |r, n, p| {
        let value = string(r, n, p);
        checked(r, n, p, value, |v| rules::lxc_template(v))
    });
    Some(Proxmox {
        endpoint: endpoint?,
        insecure: insecure?,
        node: node_name?,
        template: template?,
        storage: storage?,
        snippets_storage: snippets_storage?,
        bridge: bridge?,
        provider: provider?,
        api_token: api_token?,
        ssh_user: ssh_user?,
        ssh_private_key: ssh_private_key?,
        vlan: vlan?,
        cpu_type: cpu_type?,
        onboot: onboot?,
        tags: tags?,
        lxc_template: lxc_template?,
    })
}

fn template(r: &mut Reader, node: &Node, path: &str) -> Option<ProxmoxTemplate> {
    let f = r.mapping(node, path, &["name", "vm_id", "image_url"])?;
    let name = r.required(&f, "name", proxmox_word);
    let vm_id = r.required(&f, "vm_id", vm_id);
    let image_url = r.optional(&f, "image_url", |r, n, p| {
        let value = string(r, n, p);
        checked(r, n, p, value, |v| rules::image_url(v))
    });
    Some(ProxmoxTemplate {
        name: name?,
        vm_id: vm_id?,
        image_url: image_url?,
    })
}

fn loadtest(r: &mut Reader, node: &Node, path: &str) -> Option<LoadTestSpec> {
    let f = r.mapping(node, path, &["extra_addresses"])?;
    let ranges = r.or_default(
        &f,
        "extra_addresses",
        |r, n, p| r.list(n, p, address_range),
        Vec::new,
    )?;
    let mut extra_addresses = Vec::new();
    for (i, range) in ranges.into_iter().enumerate() {
        for address in range {
            r.parts.extra_addresses.push((i, address));
            extra_addresses.push(address);
        }
    }
    Some(LoadTestSpec { extra_addresses })
}
