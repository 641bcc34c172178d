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

/// The rendered nginx.conf in a real nginx on loopback, in front of stand-in web hosts: the
/// spec puts the cluster on 127.0.0.0/24, so a request from 127.0.0.10 (the load balancer's
/// spec IP) comes from a cluster host and one from 127.0.0.1 (the gateway: where the local
/// target's published port arrives from) does not.
#[test]
fn nginx_serves_metrics_and_readyz_to_cluster_hosts_only() {
    let text = std::fs::read_to_string(common::repo_root().join("cluster.yaml"))
        .expect("cluster.yaml")
        .replace("10.77.0.", "127.0.0.");
    let cluster = Cluster::parse(
        &text,
        std::path::Path::new("cluster.yaml"),
        provisioner::spec::FileCheck::SpecOnly,
    )
    .expect("the loopback spec is valid");
    let web_port = provisioner::plan::WEB_PORT;
    // Stand-in web hosts: every request gets 200 "upstream".
    let _upstreams: Vec<_> = ["127.0.0.11", "127.0.0.12"]
        .into_iter()
        .map(|ip| {
            let listener = std::net::TcpListener::bind((ip, web_port)).expect("upstream port");
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                for mut stream in listener.incoming().flatten() {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream",
                    );
                }
            })
        })
        .collect();
    let dir = common::render_to_temp(&cluster);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let conf_path = dir.path().join("compose/nginx.conf");
    let conf = std::fs::read_to_string(&conf_path)
        .expect("nginx.conf")
        .replace(
            "listen 80 default_server;",
            &format!("listen 127.0.0.1:{port} default_server;"),
        )
        .replace(
            "pid /tmp/nginx.pid;",
            &format!("pid {}/nginx.pid;", dir.path().display()),
        );
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let mut nginx = Command::new("nginx")
        .args(["-g", "daemon off;", "-c"])
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("nginx");
    let status = |from: &str, path: &str| -> String {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--interface",
                from,
            ])
            .args([
                "--path-as-is",
                "--retry",
                "20",
                "--retry-connrefused",
                "--retry-delay",
                "0",
            ])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut failures = Vec::new();
    for path in [
        "/metrics",
        "/readyz",
        "//metrics",
        "/%6detrics",
        "/metrics/",
        "/readyz?x=1",
    ] {
        for (from, expected) in [
            ("127.0.0.1", "403"),
            ("127.0.0.10", "200"),
            ("127.0.0.30", "200"),
        ] {
            let got = status(from, path);
            if got != expected {
                failures.push(format!("{path} from {from}: {got}, expected {expected}"));
            }
        }
    }
    for path in ["/", "/Ab3xY9z", "/healthz", "/metricsX"] {
        let got = status("127.0.0.1", path);
        if got != "200" {
            failures.push(format!("{path} from outside: {got}, expected 200"));
        }
    }
    // TERM, not KILL: the master takes its workers down with it.
    let _ = Command::new("kill")
        .args(["-TERM", &nginx.id().to_string()])
        .status();
    let _ = nginx.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
