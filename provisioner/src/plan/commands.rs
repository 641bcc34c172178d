//! Plan layer: the shell commands and connection strings the rendered files carry, built as
//! values from the spec so they are tested by equality (and match the deploy layer's flags).

use crate::spec::{Cluster, Host, Role};

/// The web app's port on every web host (contract with the webapp).
pub const WEB_PORT: u16 = 8000;
pub const REDIS_PORT: u16 = 6379;
pub const POSTGRES_PORT: u16 = 5432;

pub(crate) fn network_name(cluster: &Cluster) -> String {
    format!("{}-net", cluster.name)
}

pub(crate) fn container_name(cluster: &Cluster, host: &Host) -> String {
    format!("{}-{}", cluster.name, host.name)
}

pub(crate) fn volume_name(cluster: &Cluster, host: &Host) -> String {
    format!("{}-{}-docker", cluster.name, host.name)
}

/// `docker network create` for the local target's network.
pub fn network_create_command(cluster: &Cluster) -> String {
    format!(
        "docker network create --subnet {} --gateway {} {}",
        cluster.network.cidr,
        cluster.network.gateway,
        network_name(cluster)
    )
}

/// `docker run` of one local-target VM container; `public_key` is inserted as is (the
/// rendered Terraform passes `${var.ssh_public_key}` so the key never lands in the file).
pub fn vm_run_command(cluster: &Cluster, host: &Host, public_key: &str) -> String {
    let publish = if host.role == Role::LoadBalancer {
        format!("-p {}:80 ", cluster.load_balancer.published_port)
    } else {
        String::new()
    };
    format!(
        "docker run -d --name {container} --hostname {host} --network {network} --ip {ip} \
         --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
         --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' \
         --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
         -v {volume}:/var/lib/docker --label clusterlab.cluster={cluster} \
         -e SSH_USER={user} -e SSH_PUBKEY=\"{public_key}\" {publish}{image}",
        container = container_name(cluster, host),
        host = host.name,
        network = network_name(cluster),
        ip = host.ip,
        volume = volume_name(cluster, host),
        cluster = cluster.name,
        user = cluster.ssh.user,
        image = cluster.images.vm,
    )
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
