//! Plan layer: the shell commands and connection strings the rendered files carry, built as
//! values from the spec so they are tested by equality (and match the deploy layer's flags).

use crate::spec::{Cluster, Host, Role};

/// The web app's port on every web host (contract with the webapp).
pub const WEB_PORT: u16 = 8000;
pub const REDIS_PORT: u16 = 6379;
pub const POSTGRES_PORT: u16 = 5432;

/// The compose placeholders the deployer fills with each secret (the rendered files hold
/// only these names, never a secret).
pub const REDIS_PASSWORD_VAR: &str = "CLUSTERLAB_REDIS_PASSWORD";
pub const POSTGRES_PASSWORD_VAR: &str = "CLUSTERLAB_POSTGRES_PASSWORD";

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
        "-v",
        &format!("{}:/var/lib/docker", volume_name(cluster, host)),
    ]
    .map(str::to_owned)
    .to_vec();
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

/// `ROCKET_DATABASES` for the web app; the password stays a compose `${VAR}` placeholder.
pub fn rocket_databases(cluster: &Cluster) -> String {
    let host = cluster
        .the(Role::Postgres)
        .map_or_else(String::new, |h| h.ip.to_string());
    let db = &cluster.app.database;
    format!(
        "{{shortener={{url=\"postgres://{db}:${{CLUSTERLAB_POSTGRES_PASSWORD}}@{host}:{POSTGRES_PORT}/{db}\"}}}}"
    )
}

/// `ROCKET_LIMITER` for the web app, in the contract's figment dictionary syntax.
pub fn rocket_limiter(cluster: &Cluster) -> String {
    let limiter = &cluster.app.limiter;
    let redis = cluster
        .the(Role::Redis)
        .map_or_else(String::new, |h| h.ip.to_string());
    let proxies: Vec<String> = cluster
        .hosts_with(Role::LoadBalancer)
        .map(|h| format!("\"{}/32\"", h.ip))
        .collect();
    let p = &limiter.policies;
    format!(
        "{{redis_url=\"redis://:${{CLUSTERLAB_REDIS_PASSWORD}}@{redis}:{REDIS_PORT}/\", \
         algorithm=\"{algorithm}\", fail_mode=\"{fail_mode}\", timeout_ms={timeout}, \
         trusted_proxies=[{proxies}], ipv6_prefix={ipv6}, key_prefix=\"{prefix}\", \
         policies={{default={{limit={dl}, window=\"{dw}\"}}, shorten={{limit={sl}, window=\"{sw}\"}}, \
         redirect={{limit={rl}, window=\"{rw}\"}}}}}}",
        algorithm = limiter.algorithm.as_str(),
        fail_mode = limiter.fail_mode.as_str(),
        timeout = limiter.timeout_ms,
        proxies = proxies.join(", "),
        ipv6 = limiter.ipv6_prefix,
        prefix = limiter.key_prefix,
        dl = p.default.limit,
        dw = p.default.window,
        sl = p.shorten.limit,
        sw = p.shorten.window,
        rl = p.redirect.limit,
        rw = p.redirect.window,
    )
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
    fn web_app_settings_follow_the_contract() {
        let cluster = Cluster::repository_default();
        assert_eq!(
            rocket_databases(&cluster),
            "{shortener={url=\"postgres://shortener:${CLUSTERLAB_POSTGRES_PASSWORD}@10.77.0.21:5432/shortener\"}}"
        );
        assert_eq!(
            rocket_limiter(&cluster),
            "{redis_url=\"redis://:${CLUSTERLAB_REDIS_PASSWORD}@10.77.0.20:6379/\", \
             algorithm=\"sliding_log\", fail_mode=\"open\", timeout_ms=500, \
             trusted_proxies=[\"10.77.0.10/32\"], ipv6_prefix=64, key_prefix=\"rl:\", \
             policies={default={limit=100, window=\"60s\"}, shorten={limit=10, window=\"60s\"}, \
             redirect={limit=100, window=\"60s\"}}}"
        );
    }
}
