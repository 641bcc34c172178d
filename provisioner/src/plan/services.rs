//! Plan layer: the containers each host runs, as typed service specs. The deployer creates
//! containers from these values; `compose/<host>.yml` is serialized from the same values
//! (for people, and for `docker-compose` on a host by hand: JSON, a subset of YAML that
//! quotes every string), never parsed back.
//!
//! Secrets are `${VAR}` placeholders in the values; [`ServiceSpec::resolve`] fills them at
//! deploy time, and the rendered files only ever hold the names. A container gets each
//! secret as a file ([`ServiceSpec::secrets`]), never in its environment or command line,
//! which `docker inspect` shows to anyone who can list containers.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

use clusterlab_contract::secret_env;

use super::commands::{
    databases, env_value, limiter_config, redis_cli, sentinel_group, DATA_DIR,
    POSTGRES_PASSWORD_VAR, POSTGRES_PORT, REDIS_PASSWORD_VAR, REDIS_PORT, SENTINEL_PORT, WEB_PORT,
};
use crate::spec::{Cluster, Host, Role};

/// One container as the deployer creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    /// The compose service name (also the `clusterlab.service` label).
    pub name: String,
    pub container_name: String,
    pub image: String,
    pub network_mode: NetworkMode,
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<Mount>,
    /// Secret files by variable name, with their value (a `${VAR}` placeholder until
    /// resolved): the deployer writes each into the container before it starts, at
    /// `/run/secrets/<VAR>` ([`clusterlab_contract::secret_env::file_path`]), owned by root
    /// with mode 0444 like Docker's own secrets; the environment says where (`*_FILE`).
    pub secrets: BTreeMap<String, String>,
    pub restart: Restart,
    pub healthcheck: Option<Healthcheck>,
    pub labels: BTreeMap<String, String>,
}

impl ServiceSpec {
    /// Service `name` (also its container's name) running `image` on the host's network,
    /// restarted unless stopped, with nothing else set.
    pub fn new(name: &str, image: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            container_name: name.to_owned(),
            image: image.to_owned(),
            network_mode: NetworkMode::Host,
            command: None,
            environment: BTreeMap::new(),
            volumes: Vec::new(),
            secrets: BTreeMap::new(),
            restart: Restart::UnlessStopped,
            healthcheck: None,
            labels: BTreeMap::new(),
        }
    }
}

/// Every service runs on its VM's own address (the VM is the unit of isolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NetworkMode {
    Host,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Host => "host",
        }
    }
}

/// A host path (or named volume) mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

impl Mount {
    /// Docker's `Binds` form, which is also compose's short volume syntax.
    pub fn bind_string(&self) -> String {
        let mode = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", self.source, self.target)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure { max_retries: Option<u32> },
}

impl Restart {
    /// Compose's spelling.
    pub fn compose(self) -> String {
        match self {
            Restart::No => "no".into(),
            Restart::Always => "always".into(),
            Restart::UnlessStopped => "unless-stopped".into(),
            Restart::OnFailure { max_retries: None } => "on-failure".into(),
            Restart::OnFailure {
                max_retries: Some(n),
            } => format!("on-failure:{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn placeholder(variable: &str) -> String {
    format!("${{{variable}}}")
}

/// `$` written so that compose interpolation (and [`substitute`]) leaves it a `$`.
fn literal_dollars(words: Vec<String>) -> Vec<String> {
    words.into_iter().map(|w| w.replace('$', "$$")).collect()
}

/// [`ServiceSpec::secrets`] for `variables`, each a placeholder until resolved.
fn secret_files(variables: &[&str]) -> BTreeMap<String, String> {
    variables
        .iter()
        .map(|v| ((*v).to_owned(), placeholder(v)))
        .collect()
}

fn check(test: &[&str], interval: u64, timeout: u64, retries: u32, start: u64) -> Healthcheck {
    Healthcheck {
        test: strings(test),
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(timeout),
        retries,
        start_period: Duration::from_secs(start),
    }
}

/// The services of one host, in start order (none for the load tester: k6 runs per test).
pub fn services(cluster: &Cluster, host: &Host) -> Vec<ServiceSpec> {
    let labels: BTreeMap<String, String> = [
        ("clusterlab.cluster", cluster.name.clone()),
        ("clusterlab.host", host.name.clone()),
        ("clusterlab.role", host.role.as_str().to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into();
    let service = |name: &str, image: &str| ServiceSpec {
        labels: labels.clone(),
        ..ServiceSpec::new(name, image)
    };
    let env = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let ip = host.ip.to_string();
    let db = &cluster.app.database;
    match host.role {
        Role::Redis => {
            let port = REDIS_PORT.to_string();
            // `redis-cli ping` on `port`, authenticated with the container's password file.
            let ping_check = |port: &str| {
                let ping = literal_dollars(redis_cli(&["-h", "127.0.0.1", "-p", port, "ping"]));
                let test: Vec<&str> = std::iter::once("CMD")
                    .chain(ping.iter().map(String::as_str))
                    .collect();
                check(&test, 5, 3, 5, 5)
            };
            let password_file = (
                "REDIS_PASSWORD_FILE",
                secret_env::file_path(REDIS_PASSWORD_VAR),
            );
            // The image's entrypoint turns the password file into an ACL file holding
            // only its SHA-256 (`user default on #<hex> ...`) and starts redis-server
            // with `--aclfile`: the password is on no command line.
            let mut environment = env(std::slice::from_ref(&password_file));
            let group = sentinel_group(cluster);
            if let Some(group) = &group {
                // In a group the entrypoint also asks the sentinels for the current
                // primary and starts this node as its replica unless that is itself.
                environment.extend(env(&[
                    ("REDIS_MASTER_NAME", group.master_name.clone()),
                    ("REDIS_SENTINELS", group.sentinels.join(" ")),
                    ("REDIS_INITIAL_PRIMARY", group.initial_primary.clone()),
                    ("REDIS_SELF", format!("{ip}:{port}")),
                ]));
            }
            let data = ServiceSpec {
                command: Some(strings(&[
                    "redis-server",
                    "--bind",
                    &ip,
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--appendonly",
                    "yes",
                    // Full: refuse writes (the app's fail_mode applies and counts them
                    // as oom) rather than silently evict live limiter keys, which
                    // would hand clients fresh budgets.
                    "--maxmemory",
                    &cluster.app.limiter.redis_maxmemory,
                    "--maxmemory-policy",
                    "noeviction",
                    "--dir",
                    "/data",
                ])),
                environment,
                secrets: secret_files(&[REDIS_PASSWORD_VAR]),
                volumes: vec![Mount {
                    source: format!("{DATA_DIR}/redis"),
                    target: "/data".into(),
                    read_only: false,
                }],
                healthcheck: Some(ping_check(&port)),
                ..service("redis", &cluster.images.redis)
            };
            let Some(group) = group else {
                return vec![data];
            };
            let sentinel_port = SENTINEL_PORT.to_string();
            let sentinel = ServiceSpec {
                // The entrypoint writes the config file on the first start and keeps it
                // after: the sentinel rewrites it with the current primary and epoch.
                command: Some(strings(&[
                    "redis-sentinel",
                    "/data/sentinel.conf",
                    "--bind",
                    &ip,
                    "127.0.0.1",
                    "--port",
                    &sentinel_port,
                ])),
                environment: env(&[
                    password_file,
                    ("REDIS_MASTER_NAME", group.master_name.clone()),
                    ("REDIS_INITIAL_PRIMARY", group.initial_primary.clone()),
                    ("REDIS_QUORUM", group.quorum.to_string()),
                    ("REDIS_DOWN_AFTER_MS", group.down_after_ms.to_string()),
                    (
                        "REDIS_FAILOVER_TIMEOUT_MS",
                        group.failover_timeout_ms.to_string(),
                    ),
                ]),
                secrets: secret_files(&[REDIS_PASSWORD_VAR]),
                volumes: vec![Mount {
                    source: format!("{DATA_DIR}/sentinel"),
                    target: "/data".into(),
                    read_only: false,
                }],
                healthcheck: Some(ping_check(&sentinel_port)),
                ..service("sentinel", &cluster.images.redis)
            };
            vec![data, sentinel]
        }
        Role::Postgres => {
            let port = POSTGRES_PORT.to_string();
            vec![ServiceSpec {
                command: Some(strings(&[
                    "postgres",
                    "-c",
                    &format!("listen_addresses={ip},127.0.0.1"),
                ])),
                environment: env(&[
                    ("POSTGRES_USER", db.clone()),
                    (
                        "POSTGRES_PASSWORD_FILE",
                        secret_env::file_path(POSTGRES_PASSWORD_VAR),
                    ),
                    ("POSTGRES_DB", db.clone()),
                ]),
                secrets: secret_files(&[POSTGRES_PASSWORD_VAR]),
                volumes: vec![Mount {
                    source: format!("{DATA_DIR}/postgres"),
                    target: "/var/lib/postgresql/data".into(),
                    read_only: false,
                }],
                healthcheck: Some(check(
                    &[
                        "CMD",
                        "pg_isready",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-U",
                        db,
                        "-d",
                        db,
                    ],
                    5,
                    3,
                    10,
                    10,
                )),
                ..service("postgres", &cluster.images.postgres)
            }]
        }
        Role::Web => {
            let mut environment = env(&[
                ("ROCKET_ADDRESS", "0.0.0.0".into()),
                ("ROCKET_PORT", WEB_PORT.to_string()),
                ("ROCKET_DATABASES", env_value(&databases(cluster))),
                ("ROCKET_LIMITER", env_value(&limiter_config(cluster))),
                // Files of the raw passwords: the app puts them into its URLs, percent-encoded.
                (
                    &secret_env::file_variable(REDIS_PASSWORD_VAR),
                    secret_env::file_path(REDIS_PASSWORD_VAR),
                ),
                (
                    &secret_env::file_variable(POSTGRES_PASSWORD_VAR),
                    secret_env::file_path(POSTGRES_PASSWORD_VAR),
                ),
                (
                    "ROCKET_REDIRECT_STATUS",
                    cluster.app.redirect_status.to_string(),
                ),
                (
                    "ROCKET_MAX_URL_LENGTH",
                    cluster.app.max_url_length.to_string(),
                ),
                // Every answer names the host that gave it (`X-Served-By`).
                ("ROCKET_SERVED_BY", env_value(&host.name)),
                ("ROCKET_PAGE_BURST", cluster.page_burst().to_string()),
            ]);
            if let Some(base) = &cluster.app.public_base_url {
                environment.insert("ROCKET_PUBLIC_BASE_URL".into(), env_value(base));
            }
            let readyz = format!("http://127.0.0.1:{WEB_PORT}/readyz");
            vec![ServiceSpec {
                environment,
                secrets: secret_files(&[REDIS_PASSWORD_VAR, POSTGRES_PASSWORD_VAR]),
                healthcheck: Some(check(&["CMD", "curl", "-fsS", &readyz], 5, 3, 5, 10)),
                ..service("web", &cluster.images.webapp)
            }]
        }
        Role::LoadBalancer => vec![ServiceSpec {
            volumes: vec![Mount {
                source: super::deploy::NGINX_CONF_REMOTE.into(),
                target: "/etc/nginx/nginx.conf".into(),
                read_only: true,
            }],
            // Every 5 s, as the other services: the deploy waits for the first check, and
            // at 30 s every `up` that started nginx waited half a minute for it.
            healthcheck: Some(check(&["CMD", "nginx", "-t", "-q"], 5, 5, 3, 0)),
            ..service("nginx", &cluster.images.nginx)
        }],
        Role::LoadTester => Vec::new(),
    }
}

/// A `${NAME}` placeholder had no value; the error names the first such variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub field: String,
    pub variable: String,
}

/// Substitutes `${NAME}` and `$NAME` from `variables`; `$$` is a literal `$` (compose's
/// rules, so the rendered file means the same under `docker-compose`).
pub fn substitute(text: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for next in chars.by_ref() {
                    if next == '}' {
                        closed = true;
                        break;
                    }
                    name.push(next);
                }
                if !closed || name.is_empty() {
                    return Err(format!("${{{name}"));
                }
                out.push_str(variables.get(&name).ok_or(name)?);
            }
            Some(next) if next == '_' || next.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(&next) = chars.peek() {
                    if next == '_' || next.is_ascii_alphanumeric() {
                        name.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(variables.get(&name).ok_or(name)?);
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

impl ServiceSpec {
    /// The spec with every placeholder replaced from `secrets`.
    pub fn resolve(&self, secrets: &BTreeMap<String, String>) -> Result<ServiceSpec, Unresolved> {
        let sub = |field: &str, text: &str| {
            substitute(text, secrets).map_err(|variable| Unresolved {
                field: field.to_owned(),
                variable,
            })
        };
        let mut resolved = self.clone();
        resolved.image = sub("image", &self.image)?;
        if let Some(command) = &self.command {
            resolved.command = Some(
                command
                    .iter()
                    .map(|arg| sub("command", arg))
                    .collect::<Result<_, _>>()?,
            );
        }
        for (key, value) in resolved.environment.iter_mut() {
            *value = sub(&format!("environment.{key}"), value)?;
        }
        for (key, value) in resolved.labels.iter_mut() {
            *value = sub(&format!("labels.{key}"), value)?;
        }
        for (key, value) in resolved.secrets.iter_mut() {
            *value = sub(&format!("secrets.{key}"), value)?;
        }
        for mount in resolved.volumes.iter_mut() {
            mount.source = sub("volumes", &mount.source)?;
        }
        if let Some(check) = resolved.healthcheck.as_mut() {
            check.test = check
                .test
                .iter()
                .map(|arg| sub("healthcheck.test", arg))
                .collect::<Result<_, _>>()?;
        }
        Ok(resolved)
    }
}

// --- compose, the form people read --------------------------------------------------

#[derive(Serialize)]
struct ComposeDocument<'a> {
    services: IndexMap<&'a str, ComposeService<'a>>,
    /// Compose's own secrets: each the file `secrets/<name>` beside the compose file,
    /// mounted at `/run/secrets/<name>` like the deployer's files.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<&'a str, ComposeSecret>,
}

#[derive(Serialize)]
struct ComposeSecret {
    file: String,
}

#[derive(Serialize)]
struct ComposeService<'a> {
    image: &'a str,
    container_name: &'a str,
    network_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a [String]>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<&'a str>,
    restart: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<ComposeHealthcheck<'a>>,
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ComposeHealthcheck<'a> {
    test: &'a [String],
    #[serde(serialize_with = "duration")]
    interval: Duration,
    #[serde(serialize_with = "duration")]
    timeout: Duration,
    retries: u32,
    #[serde(serialize_with = "duration", skip_serializing_if = "Duration::is_zero")]
    start_period: Duration,
}

/// Compose durations: `5s`, or `1500ms` when not whole seconds (compose refuses the
/// spaces `humantime` writes between units).
fn compose_duration(value: Duration) -> String {
    if value.subsec_millis() == 0 {
        format!("{}s", value.as_secs())
    } else {
        format!("{}ms", value.as_millis())
    }
}

fn duration<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&compose_duration(*value))
}

/// `compose/<host>.yml`: the host's services serialized as a compose file.
pub fn compose_file(header: &str, host: &Host, services: &[ServiceSpec]) -> String {
    let document = ComposeDocument {
        services: services
            .iter()
            .map(|s| {
                let service = ComposeService {
                    image: &s.image,
                    container_name: &s.container_name,
                    network_mode: s.network_mode.as_str(),
                    command: s.command.as_deref(),
                    environment: &s.environment,
                    volumes: s.volumes.iter().map(Mount::bind_string).collect(),
                    secrets: s.secrets.keys().map(String::as_str).collect(),
                    restart: s.restart.compose(),
                    healthcheck: s.healthcheck.as_ref().map(|c| ComposeHealthcheck {
                        test: &c.test,
                        interval: c.interval,
                        timeout: c.timeout,
                        retries: c.retries,
                        start_period: c.start_period,
                    }),
                    labels: &s.labels,
                };
                (s.name.as_str(), service)
            })
            .collect(),
        secrets: services
            .iter()
            .flat_map(|s| s.secrets.keys())
            .map(|name| {
                let file = format!("./secrets/{name}");
                (name.as_str(), ComposeSecret { file })
            })
            .collect(),
    };
    // JSON, which is YAML whose every string is double-quoted: a YAML emitter writes `yes`
    // plain, and docker-compose (YAML 1.1) reads that as a boolean (`--appendonly yes`).
    // Plain strings, lists and maps: serializing cannot fail.
    let yaml = serde_json::to_string_pretty(&document).expect("a compose document serializes");
    format!(
        "{header}\n# Host {} ({}, {}). This file never holds a secret: the deployer writes each\n\
         # one from the spec's secret references into its container, at /run/secrets/<NAME>.\n\
         # To run it by hand, put them in secrets/<NAME> beside this file.\n\n{yaml}",
        host.name,
        host.role.as_str(),
        host.ip
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn redis() -> ServiceSpec {
        let cluster = Cluster::repository_default();
        let host = cluster.the(Role::Redis).expect("redis host");
        services(&cluster, host).remove(0)
    }

    #[test]
    fn redis_runs_with_the_contract_flags() {
        let redis = redis();
        assert_eq!(redis.container_name, "redis");
        assert_eq!(
            redis.command.as_deref().expect("command")[..6],
            [
                "redis-server",
                "--bind",
                "10.77.0.20",
                "127.0.0.1",
                "--port",
                "6379",
            ]
        );
        // The password is a file, named by the environment: never a value there.
        assert_eq!(
            redis.secrets,
            secrets(&[("CLUSTERLAB_REDIS_PASSWORD", "${CLUSTERLAB_REDIS_PASSWORD}")])
        );
        assert_eq!(
            redis.environment,
            secrets(&[(
                "REDIS_PASSWORD_FILE",
                "/run/secrets/CLUSTERLAB_REDIS_PASSWORD"
            )])
        );
        assert_eq!(
            redis.volumes[0].bind_string(),
            "/srv/clusterlab/redis:/data"
        );
        assert_eq!(redis.restart, Restart::UnlessStopped);
        let check = redis.healthcheck.as_ref().expect("healthcheck");
        assert_eq!(check.interval, Duration::from_secs(5));
        assert_eq!(check.timeout, Duration::from_secs(3));
        assert_eq!(check.start_period, Duration::from_secs(5));
        assert_eq!(check.retries, 5);
        assert_eq!(redis.labels["clusterlab.role"], "redis");
    }

    #[test]
    fn a_sentinel_group_runs_redis_and_a_sentinel_on_each_redis_host() {
        let cluster = Cluster::sentinel_group_example();
        for host in cluster.hosts_with(Role::Redis) {
            let ip = host.ip.to_string();
            let services = services(&cluster, host);
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["redis", "sentinel"]);
            let (redis, sentinel) = (&services[0], &services[1]);
            // The same server command line as a single Redis; the entrypoint adds the
            // replication part from the environment.
            assert_eq!(
                redis.command.as_deref().expect("command")[..3],
                ["redis-server", "--bind", ip.as_str()]
            );
            assert_eq!(redis.environment["REDIS_SELF"], format!("{ip}:6379"));
            assert_eq!(
                redis.environment["REDIS_INITIAL_PRIMARY"],
                "10.77.0.20:6379"
            );
            assert_eq!(
                redis.environment["REDIS_SENTINELS"],
                "10.77.0.20:26379 10.77.0.25:26379 10.77.0.26:26379"
            );
            assert_eq!(redis.environment["REDIS_MASTER_NAME"], "clusterlab");
            assert_eq!(
                sentinel.command.as_deref().expect("command"),
                [
                    "redis-sentinel",
                    "/data/sentinel.conf",
                    "--bind",
                    ip.as_str(),
                    "127.0.0.1",
                    "--port",
                    "26379"
                ]
            );
            assert_eq!(sentinel.environment["REDIS_QUORUM"], "2");
            assert_eq!(sentinel.environment["REDIS_DOWN_AFTER_MS"], "2000");
            assert_eq!(sentinel.environment["REDIS_FAILOVER_TIMEOUT_MS"], "10000");
            assert_eq!(
                sentinel.environment["REDIS_PASSWORD_FILE"],
                redis.environment["REDIS_PASSWORD_FILE"]
            );
            assert_eq!(sentinel.secrets, redis.secrets);
            assert_eq!(
                sentinel.volumes[0].bind_string(),
                "/srv/clusterlab/sentinel:/data"
            );
            assert_eq!(sentinel.image, redis.image);
        }
        let config = limiter_config(&cluster);
        assert_eq!(
            config.sentinel,
            Some(clusterlab_contract::SentinelConfig {
                master_name: "clusterlab".into(),
                nodes: vec![
                    "10.77.0.20:26379".into(),
                    "10.77.0.25:26379".into(),
                    "10.77.0.26:26379".into()
                ],
            })
        );
        config
            .validate()
            .expect("the web app accepts the group's settings");
        // Without the group, the one Redis runs alone, with no group variables.
        let single = Cluster::repository_default();
        let host = single.the(Role::Redis).expect("redis host");
        let alone = services(&single, host);
        assert_eq!(alone.len(), 1);
        assert!(!alone[0].environment.contains_key("REDIS_MASTER_NAME"));
        assert_eq!(limiter_config(&single).sentinel, None);
    }

    #[test]
    fn resolve_substitutes_and_unescapes() {
        let mut spec = redis();
        spec.healthcheck.as_mut().expect("check").test =
            strings(&["CMD-SHELL", "redis-cli -a \"$$PW\" ping"]);
        let resolved = spec
            .resolve(&secrets(&[("CLUSTERLAB_REDIS_PASSWORD", "s3cret")]))
            .expect("resolve");
        assert_eq!(resolved.secrets["CLUSTERLAB_REDIS_PASSWORD"], "s3cret");
        assert_eq!(
            resolved.healthcheck.expect("check").test[1],
            "redis-cli -a \"$PW\" ping"
        );
    }

    #[test]
    fn unresolved_placeholder_names_field_and_variable() {
        let error = redis().resolve(&BTreeMap::new()).unwrap_err();
        assert_eq!(
            error,
            Unresolved {
                field: "secrets.CLUSTERLAB_REDIS_PASSWORD".into(),
                variable: "CLUSTERLAB_REDIS_PASSWORD".into()
            }
        );
    }

    #[test]
    fn no_service_carries_a_secret_placeholder_outside_its_secret_files() {
        let cluster = Cluster::repository_default();
        for host in &cluster.hosts {
            for mut spec in services(&cluster, host) {
                spec.secrets.clear();
                // Resolvable without any secret: no placeholder anywhere else.
                assert_eq!(spec.resolve(&BTreeMap::new()).err(), None, "{}", spec.name);
            }
        }
    }

    #[test]
    fn the_redis_healthcheck_means_the_same_after_compose_interpolation() {
        let test = redis().healthcheck.expect("check").test;
        let resolved = redis()
            .resolve(&secrets(&[("CLUSTERLAB_REDIS_PASSWORD", "pw")]))
            .expect("resolve")
            .healthcheck
            .expect("check")
            .test;
        assert_eq!(
            resolved[1..],
            redis_cli(&["-h", "127.0.0.1", "-p", "6379", "ping"])[..]
        );
        assert_ne!(test, resolved, "the plan's form escapes `$` for compose");
    }

    #[test]
    fn substitution_forms() {
        let vars = secrets(&[("A", "1"), ("B_2", "two")]);
        assert_eq!(
            substitute("x${A}y$B_2-$$A $", &vars).unwrap(),
            "x1ytwo-$A $"
        );
        assert_eq!(substitute("${MISSING}", &vars).unwrap_err(), "MISSING");
        assert_eq!(substitute("$MISSING", &vars).unwrap_err(), "MISSING");
    }

    #[test]
    fn compose_durations_and_restart_policies() {
        assert_eq!(compose_duration(Duration::from_secs(90)), "90s");
        assert_eq!(compose_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(
            Restart::OnFailure {
                max_retries: Some(3)
            }
            .compose(),
            "on-failure:3"
        );
        assert_eq!(Restart::UnlessStopped.compose(), "unless-stopped");
    }
}
