//! e2e phase: a second version of the web app, and a rollback under k6 traffic. The release
//! binary with one string changed (what a one-line code change does to it) is deployed: only
//! the image's last layer travels, under 30 MB per web host. Then `rollback`, while k6
//! (k6/rolling.js on the tester) sends steady traffic through the load balancer, puts the
//! first version back one web host at a time: k6's own check (every answer 2xx, 3xx or 429)
//! holds for the whole run, the web hosts run the first version again, and `versions` says so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{docker_lines, provisioner, tail, WEB_HOSTS};

/// The web image a web host's `web` container runs.
fn running_image(host: &str) -> String {
    docker_lines(&[
        "exec",
        &format!("clusterlab-{host}"),
        "docker",
        "inspect",
        "-f",
        "{{.Image}}",
        "web",
    ])
    .concat()
}

fn short(id: &str) -> &str {
    &id.trim_start_matches("sha256:")[..12]
}

/// A copy of the release binary with one byte of a message changed, where `deploy` finds
/// its binary (`CARGO_TARGET_DIR/release/webapp`), and a `cargo` that builds nothing.
fn changed_binary(dir: &Path) -> (PathBuf, PathBuf) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("target"));
    let mut binary = std::fs::read(target.join("release/webapp")).expect("the release web app");
    let message = b"the health stage must be attached before stages";
    let at = binary
        .windows(message.len())
        .position(|w| w == message)
        .expect("the message is in the binary");
    binary[at] = b'T';
    let release = dir.join("release");
    std::fs::create_dir_all(&release).expect("release dir");
    let changed = release.join("webapp");
    std::fs::write(&changed, binary).expect("write the changed binary");
    let cargo = dir.join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\nexit 0\n").expect("write the stand-in cargo");
    for program in [&changed, &cargo] {
        std::fs::set_permissions(program, std::fs::Permissions::from_mode(0o755))
            .expect("chmod 755");
    }
    (dir.to_owned(), cargo)
}

pub fn a_second_version_then_rollback_under_k6(spec: &Path, project_dir: &Path) {
    let first = running_image("web1");
    assert_eq!(
        running_image("web2"),
        first,
        "both web hosts run one version"
    );
    let local_first = docker_lines(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        "clusterlab/webapp:latest",
    ])
    .concat();

    // The second version: only its binary layer travels.
    let dir = tempfile::tempdir().expect("temp dir");
    let (target_dir, cargo) = changed_binary(dir.path());
    let output = provisioner(spec, project_dir)
        .args(["deploy", "-m", "e2e: a one-line change"])
        .env("CARGO", &cargo)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("run provisioner deploy");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "deploy of the second version failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        tail(&stderr, 60)
    );
    let second = running_image("web1");
    assert_ne!(second, first, "web1 runs the second version");
    assert_eq!(running_image("web2"), second);
    for (host, _) in WEB_HOSTS {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("{host} shipped clusterlab/webapp:latest:")))
            .unwrap_or_else(|| panic!("{host}'s shipped line:\n{stderr}"));
        let megabytes: f64 = line
            .split(": ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a size in {line:?}"));
        eprintln!("e2e: a one-line change shipped {megabytes} MB to {host}");
        assert!(
            megabytes < 30.0,
            "a one-line change ships only the binary's layer: {line}"
        );
    }

    // k6 steady traffic through the load balancer while the first version comes back.
    let load_seconds = 75;
    let reports = dir.path().join("reports");
    let load = provisioner(spec, project_dir)
        .args(["loadtest", "rolling.js", "-e", "RATE=20", "-e"])
        .arg(format!("DURATION_SECONDS={load_seconds}"))
        .arg("--reports")
        .arg(&reports)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the load test");
    // k6 is running on the tester once it is installed and its setup made the link.
    std::thread::sleep(Duration::from_secs(10));
    let started = Instant::now();
    let rollback = provisioner(spec, project_dir)
        .args(["rollback", "-m", "e2e: back to the first version"])
        .output()
        .expect("run provisioner rollback");
    let took = started.elapsed();
    let out = String::from_utf8_lossy(&rollback.stdout).into_owned();
    assert!(
        rollback.status.success(),
        "rollback failed:\n{out}\n{}",
        tail(&String::from_utf8_lossy(&rollback.stderr), 60)
    );
    let load = load.wait_with_output().expect("wait for the load test");
    let load_out = String::from_utf8_lossy(&load.stdout).into_owned();
    assert!(
        load.status.success(),
        "k6 saw answers other than 2xx/3xx/429 during the rollback (or its verdict failed):\n{load_out}\n{}",
        tail(&String::from_utf8_lossy(&load.stderr), 60)
    );
    assert!(
        took + Duration::from_secs(10) < Duration::from_secs(load_seconds),
        "the rollback ({took:?}) ran inside the k6 run ({load_seconds}s)"
    );
    eprintln!(
        "e2e: rollback took {:.1}s under k6 traffic",
        took.as_secs_f64()
    );
    let web1 = out
        .find("web1: web replaced")
        .unwrap_or_else(|| panic!("{out}"));
    let web2 = out
        .find("web2: web replaced")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(web1 < web2, "one web host at a time:\n{out}");
    for (host, _) in WEB_HOSTS {
        assert_eq!(
            running_image(host),
            first,
            "{host} runs the first version again"
        );
    }
    let versions = provisioner(spec, project_dir)
        .arg("versions")
        .output()
        .expect("run provisioner versions");
    let listed = String::from_utf8_lossy(&versions.stdout).into_owned();
    assert!(versions.status.success(), "{listed}");
    assert!(
        listed.contains(short(&first)) && listed.contains(short(&second)),
        "both versions are kept:\n{listed}"
    );

    // This machine's engine names the first version again, so the later phases' builds find
    // it up to date rather than rebuilding.
    let tagged = docker_lines(&["tag", &local_first, "clusterlab/webapp:latest"]);
    assert!(tagged.is_empty(), "{tagged:?}");
}
