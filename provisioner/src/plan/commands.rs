//! Plan layer: the shell commands and connection strings the rendered files carry, built as
//! values from the spec so they are tested by equality (and match the deploy layer's flags).

use clusterlab_contract::{
    LimiterConfig, Network, OverrideSpec, PolicySpec, RedisUrl, SentinelConfig,
};
use ipnet::IpNet;

use crate::spec::{Cluster, Host, Role};

/// The web app's port on every web host (contract with the webapp).
pub const WEB_PORT: u16 = 8000;
pub const REDIS_PORT: u16 = 6379;
/// Where each redis host of a Sentinel group runs its sentinel.
pub const SENTINEL_PORT: u16 = 26379;
pub const POSTGRES_PORT: u16 = 5432;

/// The compose placeholders the deployer fills with each secret (the rendered files hold
/// only these names, never a secret), and the names of the files containers find them in.
pub const REDIS_PASSWORD_VAR: &str = clusterlab_contract::secret_env::REDIS_PASSWORD;
pub const POSTGRES_PASSWORD_VAR: &str = clusterlab_contract::secret_env::POSTGRES_PASSWORD;

/// `redis-cli ARGS` inside the Redis container, authenticated with the password file the
/// container was given (see [`crate::plan::services::ServiceSpec::secrets`]); a container
/// from before password files still has `REDISCLI_AUTH` in its environment, which
/// redis-cli reads itself. The script is a constant and `args` are its positional
/// parameters, so no argument is ever shell text. The password is read exactly (`x`
/// guards trailing newlines against `$(...)`).
pub fn redis_cli(args: &[&str]) -> Vec<String> {
    let file = clusterlab_contract::secret_env::file_path(REDIS_PASSWORD_VAR);
    let script = format!(
        "if [ -r {file} ]; then REDISCLI_AUTH=$(cat {file}; printf x); \
         export REDISCLI_AUTH=\"${{REDISCLI_AUTH%x}}\"; fi; exec redis-cli \"$@\""
    );
    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script,
        "redis-cli".to_owned(),
    ];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    command
}

/// A Sentinel group as its nodes and the web app see it: the redis hosts in spec order, the
/// first of them the primary until the sentinels say otherwise, and a sentinel on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelGroup {
    pub master_name: String,
    /// `ip:port` of the data node the group starts with as primary.
    pub initial_primary: String,
    /// `ip:port` of every sentinel.
    pub sentinels: Vec<String>,
    pub quorum: u32,
    pub down_after_ms: u32,
    /// How long a failover may take before another sentinel may try: five times the
    /// down-after time, at least 10 s.
    pub failover_timeout_ms: u64,
}

/// The cluster's Sentinel group, when `redis.sentinel` makes its redis hosts one.
pub fn sentinel_group(cluster: &Cluster) -> Option<SentinelGroup> {
    let sentinel = cluster.redis.sentinel.as_ref()?;
    let hosts: Vec<&Host> = cluster.hosts_with(Role::Redis).collect();
    let primary = hosts.first()?;
    Some(SentinelGroup {
        master_name: sentinel.master_name.clone(),
        initial_primary: format!("{}:{REDIS_PORT}", primary.ip),
        sentinels: hosts
            .iter()
            .map(|h| format!("{}:{SENTINEL_PORT}", h.ip))
            .collect(),
        quorum: sentinel.quorum_of(hosts.len()),
        down_after_ms: sentinel.down_after_ms,
        failover_timeout_ms: (u64::from(sentinel.down_after_ms) * 5).max(10_000),
    })
}

pub(crate) fn network_name(cluster: &Cluster) -> String {
    format!("{}-net", cluster.name)
}

/// The local target's VM container of a host.
pub fn container_name(cluster: &Cluster, host: &Host) -> String {
    format!("{}-{}", cluster.name, host.name)
}

/// The local target's Terraform address of a host's VM (see [`crate::changes`] for the
/// naming rule every workspace follows).
pub fn local_host_resource(host: &str) -> String {
    format!("terraform_data.host[{host:?}]")
}

pub fn volume_name(cluster: &Cluster, host: &Host) -> String {
    format!("{}-{}-docker", cluster.name, host.name)
}

/// Where a data host keeps PostgreSQL's and Redis' files: storage whose lifetime is not the
/// VM's (the local target's `<cluster>-<host>-data` volume, a Proxmox VM's data disk). The
/// compose files bind-mount service directories below it (contract with cloud-init).
pub const DATA_DIR: &str = "/srv/clusterlab";

/// The local target's data volume of a data host (none for the other roles).
pub fn data_volume_name(cluster: &Cluster, host: &Host) -> Option<String> {
    host.role
        .holds_data()
        .then(|| format!("{}-{}-data", cluster.name, host.name))
}

/// `docker network create` for the local target's network, as an argument array.
pub fn network_create_args(cluster: &Cluster) -> Vec<String> {
    [
        "docker",
        "network",
        "create",
        "--subnet",
        &cluster.network.cidr.to_string(),
        "--gateway",
        &cluster.network.gateway.to_string(),
        &network_name(cluster),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// What a Docker-in-Docker "VM" container needs to run its own dockerd on this kind of
/// machine (`--privileged` is refused here: DESIGN.md, "The CI machine"). Every VM the
/// project starts, the local target's and the tests', runs with these.
pub const DIND_VM_FLAGS: &[&str] = &[
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--device-cgroup-rule",
    "a *:* rwm",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/tmp",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
];

/// `docker run` of one local-target VM container, as an argument array. The public key is
/// not in it: `-e SSH_PUBKEY` passes the variable from the caller's environment, so a key
/// never becomes part of a command line.
pub fn vm_run_args(cluster: &Cluster, host: &Host) -> Vec<String> {
    let mut args: Vec<String> = [
        "docker",
        "run",
        "-d",
        "--name",
        &container_name(cluster, host),
        "--hostname",
        &host.name,
        "--network",
        &network_name(cluster),
        "--ip",
        &host.ip.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(DIND_VM_FLAGS.iter().map(|f| f.to_string()));
    args.extend([
        "-v".to_owned(),
        format!("{}:/var/lib/docker", volume_name(cluster, host)),
    ]);
    if let Some(data) = data_volume_name(cluster, host) {
        args.extend(["-v".to_owned(), format!("{data}:{DATA_DIR}")]);
    }
    args.extend([
        "--label".to_owned(),
        format!("clusterlab.cluster={}", cluster.name),
        "-e".to_owned(),
        format!("SSH_USER={}", cluster.ssh.user),
        "-e".to_owned(),
        "SSH_PUBKEY".to_owned(),
    ]);
    if host.role == Role::LoadBalancer {
        // Bound to `load_balancer.bind` (loopback unless the spec says otherwise), never
        // Docker's default of every interface.
        let lb = &cluster.load_balancer;
        args.extend([
            "-p".to_owned(),
            format!("{}:{}:80", lb.bind, lb.published_port),
        ]);
    }
    // The VM image runs with nearly every capability: it must be the one `up` built (or
    // one already on this engine), never a namesake pulled from a public registry.
    args.extend(["--pull=never".to_owned(), cluster.images.vm.clone()]);
    args
}

/// The arguments of the system `ssh` that logs in to `address` as the cluster's user with
/// its key, recording the host key in the cluster's own known_hosts file on first contact.
pub fn ssh_args(
    user: &str,
    address: &str,
    key: &std::path::Path,
    known_hosts: &std::path::Path,
    command: &[String],
) -> Vec<String> {
    let mut args = vec![
        "-i".to_owned(),
        key.display().to_string(),
        "-o".to_owned(),
        "IdentitiesOnly=yes".to_owned(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".to_owned(),
        "StrictHostKeyChecking=accept-new".to_owned(),
        "-l".to_owned(),
        user.to_owned(),
        address.to_owned(),
    ];
    if !command.is_empty() {
        // ssh joins the words with spaces for the remote shell; `--` keeps a command
        // starting with `-` from being read as an ssh option.
        args.insert(args.len() - 1, "--".to_owned());
        args.extend(command.iter().cloned());
    }
    args
}

/// The web app's database settings, as `ROCKET_DATABASES` carries them: `{<name> = {url}}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Databases {
    #[serde(rename = "shortener")]
    pub app: DatabaseUrl,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DatabaseUrl {
    pub url: String,
}

/// A `scheme://user@ip:port/path` URL, built by the URL library (which percent-encodes the
/// user and path). The password is not in it: the app adds it from its own variable.
fn service_url(
    scheme: &str,
    user: &str,
    ip: Option<std::net::Ipv4Addr>,
    port: u16,
    path: &str,
) -> String {
    let mut url = url::Url::parse(&format!("{scheme}://host/")).expect("a scheme is a URL");
    let host = ip.map_or_else(String::new, |ip| ip.to_string());
    // An absent host (a spec without that role) leaves the URL without one; validation
    // refuses such specs before anything is rendered.
    let _ = url.set_host(Some(&host));
    let _ = url.set_port(Some(port));
    let _ = url.set_username(user);
    url.set_path(path);
    url.into()
}

/// `ROCKET_DATABASES` for the web app.
pub fn databases(cluster: &Cluster) -> Databases {
    let db = &cluster.app.database;
    let ip = cluster.the(Role::Postgres).map(|h| h.ip);
    Databases {
        app: DatabaseUrl {
            url: service_url("postgres", db, ip, POSTGRES_PORT, db),
        },
    }
}

/// `ROCKET_LIMITER` for the web app: the contract's settings type, filled from the spec.
pub fn limiter_config(cluster: &Cluster) -> LimiterConfig {
    let limiter = &cluster.app.limiter;
    let ip = cluster.the(Role::Redis).map(|h| h.ip);
    LimiterConfig {
        redis_url: RedisUrl::new(service_url("redis", "", ip, REDIS_PORT, "/")),
        // With a Sentinel group the URL's address is only the initial primary: the web app
        // asks the sentinels for the current one, and takes the password from the URL.
        sentinel: sentinel_group(cluster).map(|group| SentinelConfig {
            master_name: group.master_name,
            nodes: group.sentinels,
        }),
        algorithm: limiter.algorithm,
        fail_mode: limiter.fail_mode,
        // Each web host's share of a limit when it decides alone (fail_mode = local).
        instances: u32::try_from(cluster.hosts_with(Role::Web).count()).unwrap_or(u32::MAX),
        shadow: limiter.shadow,
        timeout_ms: limiter.timeout_ms.into(),
        trusted_proxies: cluster
            .hosts_with(Role::LoadBalancer)
            .map(|h| Network(IpNet::from(std::net::IpAddr::V4(h.ip))))
            .collect(),
        ipv6_prefix: limiter.ipv6_prefix,
        key_prefix: limiter.key_prefix.clone(),
        policies: limiter
            .policies
            .named()
            .into_iter()
            .map(|(name, policy)| (name.to_owned(), policy_spec(policy)))
            .collect(),
        overrides: limiter
            .overrides
            .iter()
            .map(|o| OverrideSpec {
                cidr: Network(o.cidr),
                unlimited: o.unlimited,
                policies: o
                    .policies
                    .iter()
                    .map(|(name, policy)| (name.clone(), policy_spec(policy)))
                    .collect(),
            })
            .collect(),
    }
}

fn policy_spec(policy: &crate::spec::Policy) -> PolicySpec {
    PolicySpec {
        limits: policy
            .limits
            .iter()
            .map(|l| clusterlab_contract::Limit {
                limit: l.limit.into(),
                window: l.window,
            })
            .collect(),
        shadow: policy.shadow,
    }
}

/// A settings value in the environment form the web app's figment reads.
pub fn env_value<T: serde::Serialize>(value: &T) -> String {
    // Plain data (strings, numbers, maps with string keys): serializing cannot fail.
    clusterlab_contract::env_value(value).expect("settings serialize")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn vm_containers_run_with_the_contract_flags() {
        let cluster = Cluster::repository_default();
        let lb = cluster.the(Role::LoadBalancer).expect("lb");
        assert_eq!(
            vm_run_args(&cluster, lb).join(" "),
            "docker run -d --name clusterlab-lb --hostname lb --network clusterlab-net \
             --ip 10.77.0.10 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
             --security-opt apparmor=unconfined --device-cgroup-rule a *:* rwm --tmpfs /run \
             --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-lb-docker:/var/lib/docker \
             --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY \
             -p 127.0.0.1:8080:80 --pull=never clusterlab/vm:latest"
        );
        let web = cluster.hosts_with(Role::Web).next().expect("web");
        let run = vm_run_args(&cluster, web);
        assert!(
            !run.contains(&"-p".to_owned()),
            "only the load balancer publishes a port: {run:?}"
        );
        assert!(
            !run.iter().any(|a| a.ends_with(DATA_DIR)),
            "web hosts keep no data: {run:?}"
        );
        let postgres = cluster.the(Role::Postgres).expect("postgres");
        let run = vm_run_args(&cluster, postgres);
        let data = run
            .iter()
            .position(|a| a == "clusterlab-postgres-data:/srv/clusterlab");
        assert_eq!(run[data.expect("the data volume is mounted") - 1], "-v");
        assert_eq!(
            network_create_args(&cluster).join(" "),
            "docker network create --subnet 10.77.0.0/24 --gateway 10.77.0.1 clusterlab-net"
        );
    }

    #[test]
    fn ssh_uses_the_cluster_key_user_and_known_hosts() {
        let key = Path::new("/p/.clusterlab/id_ed25519");
        let known = Path::new("/p/.clusterlab/known_hosts-clusterlab");
        assert_eq!(
            ssh_args("clusterlab", "10.77.0.11", key, known, &[]),
            [
                "-i",
                "/p/.clusterlab/id_ed25519",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "UserKnownHostsFile=/p/.clusterlab/known_hosts-clusterlab",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-l",
                "clusterlab",
                "10.77.0.11"
            ]
        );
        let with_command = ssh_args(
            "u",
            "h",
            key,
            known,
            &["docker".to_owned(), "ps".to_owned()],
        );
        assert_eq!(
            with_command[with_command.len() - 4..],
            ["--", "h", "docker", "ps"]
        );
    }

    #[test]
    fn a_policy_of_several_limits_reaches_the_web_app_whole() {
        use crate::spec::FileCheck;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.yaml");
        let source = std::fs::read_to_string(&path).unwrap().replace(
            "shorten: { limit: 10, window: 60s }",
            "shorten: [{ limit: 10, window: 60s }, { limit: 100, window: 3600s }]",
        );
        let cluster = Cluster::parse(&source, &path, FileCheck::SpecOnly).unwrap();
        let config = limiter_config(&cluster);
        let env = clusterlab_contract::env_value(&config).unwrap();
        assert!(
            env.contains(
                "shorten={limits=[{limit=10, window=\"60s\"}, {limit=100, window=\"3600s\"}]}"
            ),
            "{env}"
        );
        let policies = config.validate().unwrap();
        let windows: Vec<u64> = policies
            .for_route(Some("shorten"))
            .limits
            .iter()
            .map(|l| l.window.as_millis())
            .collect();
        assert_eq!(windows, [60_000, 3_600_000]);
    }

    #[test]
    fn shadow_mode_reaches_the_web_app_for_one_policy_or_all() {
        use crate::spec::FileCheck;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.yaml");
        let source = std::fs::read_to_string(&path).unwrap();
        let parse = |text: &str| Cluster::parse(text, &path, FileCheck::SpecOnly).unwrap();
        let one = parse(&source.replace(
            "shorten: { limit: 10, window: 60s }",
            "shorten: { limit: 10, window: 60s, shadow: true }",
        ));
        let config = limiter_config(&one);
        assert!(!config.shadow);
        assert!(config.policies["shorten"].shadow);
        assert!(!config.policies["redirect"].shadow);
        let env = clusterlab_contract::env_value(&config).unwrap();
        assert!(
            env.contains("shorten={limit=10, shadow=true, window=\"60s\"}"),
            "{env}"
        );
        let all = parse(&source.replace("    shadow: false\n", "    shadow: true\n"));
        let policies = limiter_config(&all).validate().unwrap();
        assert!(policies.iter().all(|p| p.shadow));
    }

    #[test]
    fn web_app_settings_follow_the_contract() {
        let cluster = Cluster::repository_default();
        let window = clusterlab_contract::Window::from_millis(60_000);
        let policy = |limit| PolicySpec::one(limit, window);
        assert_eq!(
            limiter_config(&cluster),
            LimiterConfig {
                redis_url: RedisUrl::new("redis://10.77.0.20:6379/"),
                sentinel: None,
                algorithm: clusterlab_contract::Algorithm::SlidingLog,
                fail_mode: clusterlab_contract::FailMode::Local,
                instances: 2,
                shadow: false,
                timeout_ms: 500,
                trusted_proxies: vec![Network("10.77.0.10/32".parse().unwrap())],
                ipv6_prefix: 64,
                key_prefix: "rl:".into(),
                policies: [
                    ("default".to_owned(), policy(100)),
                    ("shorten".to_owned(), policy(10)),
                    ("redirect".to_owned(), policy(100)),
                ]
                .into(),
                overrides: Vec::new(),
            }
        );
        assert_eq!(
            databases(&cluster).app.url,
            "postgres://shortener@10.77.0.21:5432/shortener"
        );
        assert_eq!(
            env_value(&databases(&cluster)),
            "{shortener={url=\"postgres://shortener@10.77.0.21:5432/shortener\"}}"
        );
    }
}
