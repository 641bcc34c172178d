//! The rendered files checked by the real tools: `terraform fmt -check` on every workspace,
//! `terraform init` + `validate` on the local one (no provider download), `nginx -t` on the
//! nginx config and Debian's `docker-compose config` on every compose file.

mod common;

use std::process::Command;

use provisioner::spec::Cluster;

const TERRAFORM: &str = "/usr/local/bin/terraform";

fn fmt_check(cluster: &Cluster) {
    let dir = common::render_to_temp(cluster);
    common::run_tool(
        Command::new(TERRAFORM)
            .args(["fmt", "-check", "-diff", "-no-color"])
            .current_dir(dir.path().join("terraform")),
    );
}

#[test]
fn local_workspace_is_formatted_and_valid() {
    let dir = common::render_to_temp(&common::load("cluster.yaml"));
    let workspace = dir.path().join("terraform");
    common::run_tool(
        Command::new(TERRAFORM)
            .args(["fmt", "-check", "-diff", "-no-color"])
            .current_dir(&workspace),
    );
    common::run_tool(
        Command::new(TERRAFORM)
            .args(["init", "-input=false", "-no-color", "-backend=false"])
            .env("TF_IN_AUTOMATION", "1")
            .current_dir(&workspace),
    );
    let validate = common::run_tool(
        Command::new(TERRAFORM)
            .args(["validate", "-no-color", "-json"])
            .current_dir(&workspace),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&validate.stdout).expect("terraform validate -json");
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["warning_count"], 0, "{report}");
}

#[test]
fn proxmox_bpg_workspace_is_formatted() {
    fmt_check(&common::load("examples/proxmox.yaml"));
}

#[test]
fn proxmox_telmate_workspace_is_formatted() {
    fmt_check(&common::telmate());
}

#[test]
fn proxmox_homelab_workspaces_are_formatted() {
    fmt_check(&common::load("examples/proxmox-homelab.yaml"));
    fmt_check(&common::homelab_telmate());
}

#[test]
fn nginx_accepts_the_load_balancer_config() {
    for cluster in [
        common::load("cluster.yaml"),
        common::load("examples/proxmox.yaml"),
    ] {
        let dir = common::render_to_temp(&cluster);
        let conf = dir.path().join("compose/nginx.conf");
        let output = common::run_tool(
            Command::new("nginx")
                .arg("-t")
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path()),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("test is successful"), "{stderr}");
    }
}

#[test]
fn docker_compose_accepts_every_compose_file() {
    for cluster in [
        common::load("cluster.yaml"),
        common::load("examples/proxmox.yaml"),
    ] {
        let dir = common::render_to_temp(&cluster);
        let files: Vec<_> = common::render(&cluster)
            .into_iter()
            .filter(|f| f.path.extension().is_some_and(|e| e == "yml"))
            .collect();
        assert_eq!(
            files.len(),
            cluster.hosts.len() - 1,
            "every host but the tester"
        );
        for file in files {
            let output = common::run_tool(
                Command::new("docker-compose")
                    .arg("-f")
                    .arg(dir.path().join(&file.path))
                    .arg("config")
                    .env("CLUSTERLAB_REDIS_PASSWORD", "redis-pw-for-config")
                    .env("CLUSTERLAB_POSTGRES_PASSWORD", "pg-pw-for-config")
                    .current_dir(dir.path()),
            );
            let resolved = String::from_utf8_lossy(&output.stdout);
            assert!(resolved.contains("network_mode: host"), "{resolved}");
            // The placeholders are what carries the secrets: compose must substitute them.
            if file.contents.contains("${CLUSTERLAB_") {
                assert!(resolved.contains("pw-for-config"), "{resolved}");
            }
        }
    }
}
