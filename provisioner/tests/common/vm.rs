//! VM containers for the tests that need real hosts: clusterlab VM containers (sshd + their
//! own dockerd) on a Docker network of the test's own, each with a random name, removed by
//! a guard even when an assertion fails.

use std::process::Command;

use provisioner::exec::images;
use rand::Rng;

pub fn docker_cli(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI must be installed (scripts/setup-host.sh)")
}

/// Containers, volumes and the network one test made; removed on drop.
pub struct TestCluster {
    pub name: String,
    network: String,
    hosts: Vec<(String, String)>,
}

impl TestCluster {
    /// A network 10.99.<random>.0/24 named after the cluster; another subnet is tried
    /// when the random one is taken by a parallel run.
    pub fn create(prefix: &str) -> TestCluster {
        let mut rng = rand::rng();
        let name = format!("{prefix}{:06x}", rng.random_range(0..0xffffff));
        let network = format!("{name}-net");
        for _ in 0..10 {
            let octet: u8 = rng.random_range(20..250);
            let out = docker_cli(&[
                "network",
                "create",
                "--subnet",
                &format!("10.99.{octet}.0/24"),
                "--gateway",
                &format!("10.99.{octet}.1"),
                "--label",
                &format!("clusterlab.cluster={name}"),
                &network,
            ]);
            if out.status.success() {
                return TestCluster {
                    name,
                    network,
                    hosts: Vec::new(),
                }
                .with_subnet(octet);
            }
        }
        panic!("could not create a test network in 10.99.0.0/16");
    }

    fn with_subnet(mut self, octet: u8) -> TestCluster {
        self.hosts.push(("subnet".into(), octet.to_string()));
        self
    }

    pub fn subnet(&self) -> String {
        self.hosts[0].1.clone()
    }

    /// Runs a VM container with the contract's flags; returns its IP.
    pub fn start_vm(&mut self, host: &str, index: u8, user: &str, public_key: &str) -> String {
        let ip = format!("10.99.{}.{}", self.subnet(), 10 + index);
        let container = format!("{}-{host}", self.name);
        let volume = format!("{container}-docker");
        self.hosts.push((container.clone(), volume.clone()));
        let engine = format!("{volume}:/var/lib/docker");
        let label = format!("clusterlab.cluster={}", self.name);
        let ssh_user = format!("SSH_USER={user}");
        let ssh_key = format!("SSH_PUBKEY={public_key}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--hostname",
            host,
            "--network",
            &self.network,
            "--ip",
            &ip,
        ];
        args.extend(provisioner::plan::DIND_VM_FLAGS);
        args.extend([
            "-v",
            &engine,
            "--label",
            &label,
            "-e",
            &ssh_user,
            "-e",
            &ssh_key,
            images::VM_IMAGE,
        ]);
        let out = docker_cli(&args);
        assert!(
            out.status.success(),
            "docker run {container}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ip
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (container, volume) in self.hosts.iter().skip(1) {
            docker_cli(&["rm", "-f", container]);
            docker_cli(&["volume", "rm", "-f", volume]);
        }
        docker_cli(&["network", "rm", &self.network]);
    }
}
