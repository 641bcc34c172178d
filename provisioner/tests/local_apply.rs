//! The local target's rendered Terraform, applied and destroyed for real: `terraform apply`
//! creates the network and one "VM" container per host with the contract's flags, the
//! `hosts` output matches the spec, and `terraform destroy` removes containers, volumes and
//! network using only what triggers_replace kept. A stand-in image (sleep) replaces
//! clusterlab/vm, which belongs to the deploy layer.

mod common;

use std::net::TcpListener;
use std::process::Command;

use provisioner::spec::{Cluster, FileCheck};

const STANDIN_IMAGE: &str = "clusterlab-test/vm-standin:latest";
const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStandIn test@clusterlab";

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
            let volume = format!("{container}-docker");
            let _ = Command::new("docker")
                .args(["volume", "rm", &volume])
                .output();
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
        dir.path().join("Dockerfile"),
        "FROM debian:bookworm-slim\nCMD [\"sleep\", \"infinity\"]\n",
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
    let terraform = |args: &[&str]| {
        common::run_tool(
            Command::new("/usr/local/bin/terraform")
                .args(args)
                .env("TF_IN_AUTOMATION", "1")
                .env("TF_VAR_ssh_public_key", format!("{PUBKEY}\n"))
                .current_dir(&workspace),
        )
    };
    terraform(&["init", "-input=false", "-no-color"]);
    terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);

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
        let ports = docker(&["port", &container]);
        if host.name == "lb" {
            assert!(ports.contains(&format!(":{port}")), "{ports}");
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

    terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    let label = format!("label=clusterlab.cluster={name}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "");
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.lines().any(|n| n == format!("{name}-net")),
        "{networks}"
    );
    let volumes = docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!volumes.contains(&format!("{name}-")), "{volumes}");
}
