//! The real `provisioner` binary: exit codes, no writes on an invalid spec, `render --check`
//! drift with a diff, `schema` output, and secrets staying out of rendered files.

mod common;

use std::fs;
use std::path::Path;

fn copy_default_spec(dir: &Path) {
    fs::copy(
        common::repo_root().join("cluster.yaml"),
        dir.join("cluster.yaml"),
    )
    .expect("copy cluster.yaml");
}

fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["terraform", "compose"] {
        if let Ok(entries) = fs::read_dir(dir.join(sub)) {
            for entry in entries.flatten() {
                found.push(format!("{sub}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn invalid_spec_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_default_spec(dir.path());
    let spec = dir.path().join("cluster.yaml");
    let text = fs::read_to_string(&spec).expect("read");
    fs::write(&spec, text.replace("ip: 10.77.0.12", "ip: 10.78.0.12")).expect("write");

    let output = common::provisioner()
        .current_dir(dir.path())
        .arg("render")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("10.78.0.12 is outside the network 10.77.0.0/24")
            && stderr.contains("cluster.yaml:33:"),
        "{stderr}"
    );
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));

    let validate = common::provisioner()
        .current_dir(dir.path())
        .arg("validate")
        .output()
        .expect("run");
    assert_eq!(validate.status.code(), Some(2));
}

#[test]
fn render_then_check_then_drift_shows_a_diff() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_default_spec(dir.path());
    let run = |args: &[&str]| {
        common::provisioner()
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("run")
    };

    let check = run(&["render", "--check"]);
    assert_eq!(check.status.code(), Some(1), "nothing rendered yet");
    assert!(String::from_utf8_lossy(&check.stdout).contains("missing: terraform/main.tf"));

    assert!(run(&["render"]).status.success());
    let mut expected: Vec<String> = [
        "compose/lb.yml",
        "compose/nginx.conf",
        "compose/postgres.yml",
        "compose/redis.yml",
        "compose/web1.yml",
        "compose/web2.yml",
        "terraform/main.tf",
        "terraform/outputs.tf",
        "terraform/variables.tf",
        "terraform/versions.tf",
    ]
    .map(String::from)
    .to_vec();
    expected.sort();
    assert_eq!(tree(dir.path()), expected);
    assert!(run(&["render", "--check"]).status.success());

    let conf = dir.path().join("compose/nginx.conf");
    let text = fs::read_to_string(&conf).expect("read");
    fs::write(&conf, text.replace("keepalive 64;", "keepalive 8;")).expect("write");
    let drift = run(&["render", "--check"]);
    assert_eq!(drift.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&drift.stdout);
    assert!(
        stdout.contains("-        keepalive 8;") && stdout.contains("+        keepalive 64;"),
        "{stdout}"
    );

    // Dropping a web host leaves its compose file stale: --check says so, render removes it.
    let spec = dir.path().join("cluster.yaml");
    let yaml = fs::read_to_string(&spec).expect("read");
    fs::write(
        &spec,
        yaml.replace("  - { name: web2, role: web, ip: 10.77.0.12 }\n", ""),
    )
    .expect("write");
    let stale = run(&["render", "--check"]);
    assert!(String::from_utf8_lossy(&stale.stdout)
        .contains("stale (no longer rendered): compose/web2.yml"));
    assert!(run(&["render"]).status.success());
    assert!(!dir.path().join("compose/web2.yml").exists());
    assert!(run(&["render", "--check"]).status.success());
}

#[test]
fn secrets_never_land_in_rendered_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_default_spec(dir.path());
    fs::create_dir_all(dir.path().join(".clusterlab/secrets")).expect("mkdir");
    let redis_secret = "redis-secret-4c1f9a";
    let pg_secret = "pg-secret-77b2e0";
    fs::write(
        dir.path().join(".clusterlab/secrets/redis_password"),
        redis_secret,
    )
    .expect("write");
    fs::write(
        dir.path().join(".clusterlab/secrets/postgres_password"),
        pg_secret,
    )
    .expect("write");
    let output = common::provisioner()
        .current_dir(dir.path())
        .arg("render")
        .env("CLUSTERLAB_REDIS_PASSWORD", redis_secret)
        .env("CLUSTERLAB_POSTGRES_PASSWORD", pg_secret)
        .output()
        .expect("run");
    assert!(output.status.success());
    let mut placeholders = 0;
    for file in tree(dir.path()) {
        let text = fs::read_to_string(dir.path().join(&file)).expect("read");
        assert!(
            !text.contains(redis_secret) && !text.contains(pg_secret),
            "{file}"
        );
        placeholders += text.matches("\"/run/secrets/CLUSTERLAB_").count();
    }
    assert!(
        placeholders >= 4,
        "secrets travel as files the services are pointed at"
    );
}

#[test]
fn validate_reports_missing_key_files_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_default_spec(dir.path());
    let run = |args: &[&str]| {
        common::provisioner()
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("run")
    };
    let ok = run(&["validate"]);
    assert!(ok.status.success());
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("cluster.yaml is valid: cluster clusterlab")
    );
    let strict = run(&["validate", "--require-files"]);
    assert_eq!(strict.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(
        stderr.contains("key file .clusterlab/id_ed25519 does not exist")
            && stderr.contains("secret file .clusterlab/secrets/redis_password does not exist"),
        "{stderr}"
    );
}

#[test]
fn schema_describes_cluster_yaml() {
    let output = common::provisioner().arg("schema").output().expect("run");
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let props = &schema["properties"];
    for key in [
        "name", "target", "network", "ssh", "hosts", "images", "app", "secrets", "proxmox",
    ] {
        assert!(props.get(key).is_some(), "schema lacks {key}: {schema}");
    }
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        required.contains(&"hosts") && !required.contains(&"load_balancer"),
        "{required:?}"
    );
    let text = serde_json::to_string(&schema).expect("json");
    assert!(
        text.contains("load_tester") && text.contains("sliding_window"),
        "enums listed"
    );
}

#[test]
fn render_of_the_default_spec_is_fast() {
    let start = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let status = common::provisioner()
        .current_dir(common::repo_root())
        .args(["render", "--out"])
        .arg(dir.path())
        .status()
        .expect("run");
    assert!(status.success());
    let took = start.elapsed();
    assert!(took.as_millis() < 1000, "render took {took:?}");
}
