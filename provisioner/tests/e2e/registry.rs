//! e2e phase: the cluster in pull mode. A registry on this machine (plain HTTP with a user,
//! as a lab would run one) that the VMs reach at their network's gateway; the spec copy
//! switched to `mode: pull` with that registry; afterwards every image is in the registry
//! and every host's engine trusts it.

use std::path::Path;

use super::common::registry::{Options, TestRegistry};
use super::docker_lines;

/// The spec's network gateway, where the VMs reach this machine.
const GATEWAY: &str = "10.77.0.1";
const USER: &str = "clusterlab";
/// Quotes and a `$`: the password travels in Docker's auth header, never through a shell.
const PASSWORD: &str = "e2e 'pa$$word\"";

/// Starts the registry and rewrites the spec copy to pull from it.
pub fn pull_mode(spec: &Path, dir: &Path) -> TestRegistry {
    let registry = TestRegistry::start(Options {
        tls_for: None,
        user: Some((USER, PASSWORD)),
    });
    let secret = dir.join(".clusterlab/secrets/registry_password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).expect("write the registry password");
    let text = std::fs::read_to_string(spec).expect("read the spec copy");
    let ship = "  mode: ship\n";
    assert_eq!(text.matches(ship).count(), 1, "one images.mode line");
    let pull = format!(
        "  mode: pull\n  registry:\n    address: {GATEWAY}:{port}\n    \
         push_address: localhost:{port}\n    insecure: true\n    username: {USER}\n    \
         password: file:.clusterlab/secrets/registry_password\n",
        port = registry.port
    );
    std::fs::write(spec, text.replace(ship, &pull)).expect("write the spec copy");
    registry
}

/// Every image the cluster runs was pushed, and each VM's engine trusts the registry.
pub fn hosts_pulled_from(registry: &TestRegistry) {
    assert_eq!(
        registry.repositories(),
        [
            "clusterlab/nginx",
            "clusterlab/postgres",
            "clusterlab/redis",
            "clusterlab/webapp"
        ],
        "{}",
        registry.log()
    );
    let address = format!("{GATEWAY}:{}", registry.port);
    for vm in ["lb", "web1", "web2", "postgres"] {
        let config = docker_lines(&[
            "exec",
            &format!("clusterlab-{vm}"),
            "cat",
            "/etc/docker/daemon.json",
        ])
        .concat();
        let config: serde_json::Value =
            serde_json::from_str(&config).unwrap_or_else(|e| panic!("{vm}: {e}: {config}"));
        assert_eq!(
            config["insecure-registries"],
            serde_json::json!([address]),
            "{vm}"
        );
    }
}
