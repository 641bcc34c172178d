//! The local target's rendered Terraform, applied and destroyed for real: `terraform apply`
//! creates the network and one "VM" container per host with the contract's flags (data
//! hosts with their data volume), the `hosts` output matches the spec, a new key is
//! rotated into the running VMs without replacing any, and `terraform destroy` removes
//! containers, engine volumes and network using only what triggers_replace kept, while the
//! data volumes stay. A stand-in image (sleep, and a key script that records the key)
//! replaces clusterlab/vm, which belongs to the deploy layer.

mod common;

use std::net::TcpListener;
use std::process::Command;

use provisioner::spec::{Cluster, FileCheck};

const STANDIN_IMAGE: &str = "clusterlab-test/vm-standin:latest";
const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStandIn test@clusterlab";
const ROTATED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRotated test@clusterlab";

/// Removes whatever a failed run left behind, whether or not destroy ran.
struct Cleanup {
    cluster: String,
    hosts: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for host in &self.hosts {
            let container = format!("{}-{host}", self.cluster);
            let _ = Command::new("docker")
                .args(["rm", "-f", &container])
                .output();
            for volume in [format!("{container}-docker"), format!("{container}-data")] {
                let _ = Command::new("docker")
                    .args(["volume", "rm", &volume])
                    .output();
            }
        }
        let network = format!("{}-net", self.cluster);
        let _ = Command::new("docker")
            .args(["network", "rm", &network])
            .output();
    }
}

fn docker(args: &[&str]) -> String {
    let output = common::run_tool(Command::new("docker").args(args));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn build_standin_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("authorize-key"),
        "#!/bin/sh\nprintf '%s' \"$SSH_PUBKEY\" >/authorized_key\n",
    )
    .expect("write the key script");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM debian:bookworm-slim\n\
         COPY authorize-key /usr/local/bin/clusterlab-authorize-key\n\
         RUN chmod 0755 /usr/local/bin/clusterlab-authorize-key\n\
         CMD [\"sleep\", \"infinity\"]\n",
    )
    .expect("write Dockerfile");
    common::run_tool(
        Command::new("docker")
            .args(["build", "-q", "-t", STANDIN_IMAGE, "."])
            .current_dir(dir.path()),
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

#[test]
fn local_workspace_applies_and_destroys() {
    build_standin_image();
    let pid = std::process::id();
    let name = format!("tftest{pid}");
    let net = format!("10.250.{}", pid % 250);
    let port = free_port();
    let text = std::fs::read_to_string(common::repo_root().join("cluster.yaml"))
        .expect("read cluster.yaml")
        .replace("name: clusterlab", &format!("name: {name}"))
        .replace("10.77.0.", &format!("{net}."))
        .replace("vm: clusterlab/vm:latest", &format!("vm: {STANDIN_IMAGE}"))
        .replace("published_port: 8080", &format!("published_port: {port}"));
    let cluster = Cluster::parse(&text, "cluster.yaml".as_ref(), FileCheck::SpecOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    let _cleanup = Cleanup {
        cluster: name.clone(),
        hosts: cluster.hosts.iter().map(|h| h.name.clone()).collect(),
    };

    let dir = common::render_to_temp(&cluster);
    let workspace = dir.path().join("terraform");
    let terraform_with = |key: &str, args: &[&str]| {
        common::run_tool(
            Command::new("/usr/local/bin/terraform")
                .args(args)
                .env("TF_IN_AUTOMATION", "1")
                .env("TF_VAR_ssh_public_key", format!("{key}\n"))
                .current_dir(&workspace),
        )
    };
    let terraform = |args: &[&str]| terraform_with(PUBKEY, args);
    terraform(&["init", "-input=false", "-no-color"]);
    terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let ids = |cluster: &Cluster| -> Vec<String> {
        cluster
            .hosts
            .iter()
            .map(|h| docker(&["inspect", "-f", "{{.Id}}", &format!("{name}-{}", h.name)]))
            .collect()
    };
    let created = ids(&cluster);

    for host in &cluster.hosts {
        let container = format!("{name}-{}", host.name);
        let running = docker(&["inspect", "-f", "{{.State.Running}}", &container]);
        assert_eq!(running, "true", "{container}");
        let network = format!("{name}-net");
        let ip = docker(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            &container,
        ]);
        assert_eq!(ip, host.ip.to_string());
        let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &container]);
        assert!(
            env.contains(&format!("SSH_PUBKEY={PUBKEY}\"")),
            "key passed trimmed and whole: {env}"
        );
        let mounts = docker(&["inspect", "-f", "{{json .Mounts}}", &container]);
        let data_mount = format!("\"Name\":\"{container}-data\"");
        if host.role.holds_data() {
            assert!(mounts.contains(&data_mount), "{container}: {mounts}");
            assert!(
                mounts.contains("\"Destination\":\"/srv/clusterlab\""),
                "{mounts}"
            );
        } else {
            assert!(
                !mounts.contains("-data\""),
                "{container} has no data volume: {mounts}"
            );
        }
        assert_eq!(
            docker(&["exec", &container, "cat", "/authorized_key"]),
            PUBKEY
        );
        let ports = docker(&["port", &container]);
        if host.name == "lb" {
            // Bound to load_balancer.bind's default, loopback: the listening socket's
            // address as Docker set it up, never 0.0.0.0 or [::].
            assert_eq!(ports, format!("80/tcp -> 127.0.0.1:{port}"));
            let bindings = docker(&[
                "inspect",
                "-f",
                "{{json .HostConfig.PortBindings}}",
                &container,
            ]);
            assert_eq!(
                bindings,
                format!(r#"{{"80/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]}}"#)
            );
            let listening = common::run_tool(Command::new("ss").args([
                "-Hltn",
                "sport",
                "=",
                &format!(":{port}"),
            ]));
            // `State Recv-Q Send-Q Local Peer`: every socket on the port is loopback's.
            let local: Vec<String> = String::from_utf8_lossy(&listening.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
                .collect();
            assert_eq!(local, [format!("127.0.0.1:{port}")]);
        } else {
            assert!(ports.is_empty(), "{container} publishes {ports}");
        }
    }

    let output = terraform(&["output", "-json", "hosts"]);
    let hosts: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    for host in &cluster.hosts {
        assert_eq!(hosts[&host.name]["ip"], host.ip.to_string());
        assert_eq!(hosts[&host.name]["role"], host.role.as_str());
        assert_eq!(hosts[&host.name]["name"], host.name.as_str());
    }

    // A new key is rotated into the running VMs; none is replaced.
    terraform_with(
        ROTATED,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    assert_eq!(ids(&cluster), created, "a key change replaces no VM");
    for host in &cluster.hosts {
        let container = format!("{name}-{}", host.name);
        assert_eq!(
            docker(&["exec", &container, "cat", "/authorized_key"]),
            ROTATED
        );
    }

    terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    let label = format!("label=clusterlab.cluster={name}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "");
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.lines().any(|n| n == format!("{name}-net")),
        "{networks}"
    );
    let mut volumes: Vec<String> = docker(&["volume", "ls", "--format", "{{.Name}}"])
        .lines()
        .filter(|v| v.starts_with(&format!("{name}-")))
        .map(str::to_owned)
        .collect();
    volumes.sort();
    assert_eq!(
        volumes,
        [
            format!("{name}-postgres-data"),
            format!("{name}-redis-data")
        ],
        "engine volumes go, data volumes stay"
    );
}
