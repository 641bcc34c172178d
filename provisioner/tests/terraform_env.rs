//! `up` and `destroy` on Proxmox hand terraform what the rendered workspace needs: the API
//! token resolved from its reference and the key paths made absolute (terraform runs with
//! `-chdir=terraform/`). The provider cannot run here, so `terraform` is a stand-in first on
//! PATH that records its arguments and environment and fails; the real binary does the rest.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const TOKEN: &str = "clusterlab@pve!provisioner=0b6e1a2c-7d3f-4e8a-9c51-3f2d8e7a6b90";

/// A Proxmox spec in `dir` whose token and keys live in files next to it.
fn proxmox_spec(dir: &Path, provider: &str) -> std::path::PathBuf {
    let text = fs::read_to_string(common::repo_root().join("examples/proxmox.yaml"))
        .expect("read the example")
        .replace("../.clusterlab/id_ed25519", "keys/id_ed25519")
        .replace("provider: bpg", &format!("provider: {provider}"))
        .replace(
            "api_token: env:PROXMOX_VE_API_TOKEN",
            "api_token: file:secrets/pve-token\n  ssh_private_key: keys/pve_node",
        );
    assert!(text.contains("ssh_private_key: keys/pve_node"), "{text}");
    fs::create_dir_all(dir.join("keys")).expect("mkdir");
    fs::create_dir_all(dir.join("secrets")).expect("mkdir");
    for key in ["id_ed25519", "pve_node"] {
        fs::write(dir.join("keys").join(key), "not a real key\n").expect("write key");
    }
    fs::write(
        dir.join("keys/id_ed25519.pub"),
        "ssh-ed25519 AAAAtest clusterlab\n",
    )
    .expect("pub");
    fs::write(dir.join("secrets/pve-token"), format!("{TOKEN}\n")).expect("token");
    let spec = dir.join("cluster.yaml");
    fs::write(&spec, text).expect("write spec");
    spec
}

/// A `terraform` that appends its arguments and TF_VAR_* environment to `record`, then fails.
fn fake_terraform(bin: &Path, record: &Path) {
    fs::create_dir_all(bin).expect("mkdir bin");
    let script = bin.join("terraform");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"args: $*\"; env | grep '^TF_VAR_' | sort; echo --; }} >> '{}'\n\
             echo 'stand-in terraform: no provider here' >&2\nexit 1\n",
            record.display()
        ),
    )
    .expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn run(dir: &Path, bin: &Path, command: &[&str]) -> std::process::Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    common::provisioner()
        .current_dir(dir)
        .env("PATH", path)
        .env("CLUSTERLAB_REDIS_PASSWORD", "r")
        .env("CLUSTERLAB_POSTGRES_PASSWORD", "p")
        .env_remove("PROXMOX_VE_API_TOKEN")
        .args(["--spec", "cluster.yaml", "--project-dir"])
        .arg(common::repo_root())
        .args(command)
        .output()
        .expect("run provisioner")
}

fn rendered_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for sub in ["terraform", "compose"] {
        for entry in fs::read_dir(dir.join(sub)).expect("rendered dir").flatten() {
            if entry.path().is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

#[test]
fn up_and_destroy_pass_the_token_and_absolute_key_paths_to_terraform() {
    for provider in ["bpg", "telmate"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path().canonicalize().expect("canonical tempdir");
        proxmox_spec(&dir, provider);
        let bin = dir.join("fake-bin");
        let record = dir.join("terraform-calls.txt");
        fake_terraform(&bin, &record);

        for command in [&["up"][..], &["destroy", "--yes"]] {
            fs::write(&record, "").expect("reset record");
            let output = run(&dir, &bin, command);
            let command = command[0];
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{provider} {command}: {stderr}"
            );
            assert!(
                stderr.contains("stand-in terraform: no provider here"),
                "{provider} {command} must fail at terraform's own error: {stderr}"
            );
            assert!(
                !stderr.contains(TOKEN),
                "the token leaked to stderr: {stderr}"
            );
            let calls = fs::read_to_string(&record).expect("terraform was run");
            let first = calls.split("--\n").next().expect("one call");
            // The spec is given relative to the working directory, and so is the workspace;
            // the key paths must not be.
            assert!(
                first.starts_with("args: -chdir=./terraform init "),
                "{provider} {command}: {first}"
            );
            for line in [
                format!("TF_VAR_proxmox_api_token={TOKEN}"),
                format!(
                    "TF_VAR_ssh_private_key_path={}",
                    dir.join("keys/id_ed25519").display()
                ),
                format!(
                    "TF_VAR_proxmox_ssh_private_key_path={}",
                    dir.join("keys/pve_node").display()
                ),
                "TF_VAR_ssh_public_key=ssh-ed25519 AAAAtest clusterlab".to_owned(),
            ] {
                assert!(
                    first.lines().any(|l| l == line),
                    "{provider} {command}: {line:?} not passed:\n{first}"
                );
            }
        }
        let files = rendered_files(&dir);
        assert!(files.iter().any(|f| f.ends_with("variables.tf")));
        for file in files {
            let text = fs::read_to_string(&file).expect("read rendered file");
            assert!(!text.contains(TOKEN), "{} holds the token", file.display());
            assert!(
                !text.contains("0b6e1a2c"),
                "{} holds the token secret",
                file.display()
            );
        }
    }
}

#[test]
fn an_unresolvable_token_stops_before_terraform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("canonical tempdir");
    proxmox_spec(&dir, "bpg");
    fs::remove_file(dir.join("secrets/pve-token")).expect("remove token");
    let bin = dir.join("fake-bin");
    let record = dir.join("terraform-calls.txt");
    fake_terraform(&bin, &record);
    let output = run(&dir, &bin, &["destroy", "--yes"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("pve-token"), "{stderr}");
    assert!(!record.exists(), "terraform ran without a token");
}
