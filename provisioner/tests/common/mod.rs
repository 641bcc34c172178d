//! Shared helpers for the integration tests: paths of the repository's specs, loading and
//! rendering them, running the real `provisioner` binary, ([`vm`]) VM containers and
//! ([`registry`]) a registry on this machine.

#![allow(dead_code)]

pub mod registry;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use provisioner::plan::{self, RenderedFile};
use provisioner::spec::{Cluster, FileCheck};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives inside the repository")
        .to_owned()
}

/// Whether `status`, a container's `/proc/1/status`, shows its PID 1 to be `process`
/// (the entrypoint exec'd it) with no root id among the real, effective, saved and
/// filesystem uids.
pub fn pid1_is_unprivileged(status: &str, process: &str) -> bool {
    let named = status.lines().any(|l| l == format!("Name:\t{process}"));
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"));
    named && uids.is_some_and(|ids| ids.split_whitespace().all(|id| id != "0"))
}

pub fn load(relative: &str) -> Cluster {
    let path = repo_root().join(relative);
    match Cluster::load(&path, FileCheck::SpecOnly) {
        Ok(cluster) => cluster,
        Err(e) => panic!("{relative} must be valid:\n{e}"),
    }
}

/// The Proxmox example switched to the telmate provider.
pub fn telmate() -> Cluster {
    let mut cluster = load("examples/proxmox.yaml");
    let proxmox = cluster
        .proxmox
        .as_mut()
        .expect("the example has a proxmox section");
    proxmox.provider = provisioner::spec::ProxmoxProvider::Telmate;
    cluster
}

/// The homelab example with the telmate provider, which cannot build the template from an
/// image (the template must already exist).
pub fn homelab_telmate() -> Cluster {
    let mut cluster = load("examples/proxmox-homelab.yaml");
    let proxmox = cluster
        .proxmox
        .as_mut()
        .expect("the example has a proxmox section");
    proxmox.provider = provisioner::spec::ProxmoxProvider::Telmate;
    proxmox.template.image_url = None;
    cluster
}

pub fn render(cluster: &Cluster) -> Vec<RenderedFile> {
    plan::render(cluster).expect("the spec renders")
}

/// Writes rendered files under a fresh temporary directory.
pub fn render_to_temp(cluster: &Cluster) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    provisioner::output::write_all(dir.path(), &render(cluster)).expect("write rendered files");
    dir
}

/// Runs a tool and fails loudly (never skips) when it is missing or unhappy.
pub fn run_tool(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {shown} (is it installed? scripts/setup-host.sh installs it): {e}")
    });
    assert!(
        output.status.success(),
        "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs the provisioner `command` against `spec` (from the repository, with `args`) and
/// prints its status and both streams for the test's log, whatever the outcome: the
/// caller asserts on the output.
pub fn run_provisioner(mut command: Command, spec: &Path, args: &[&str]) -> Output {
    let output = command
        .arg("--spec")
        .arg(spec)
        .arg("--project-dir")
        .arg(repo_root())
        .args(args)
        .env_remove("CLUSTERLAB_SPEC")
        .output()
        .expect("run provisioner");
    eprintln!(
        "provisioner {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The answer of `terraform console` in `dir` to one `expression` (functions only: no
/// provider, no state), its quotes taken off. The console prints only its last answer
/// when not interactive, so callers ask one expression (a list joined, if need be).
pub fn terraform_console(dir: &Path, expression: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("/usr/local/bin/terraform")
        .arg("console")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("terraform must be at /usr/local/bin/terraform (scripts/setup-host.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{expression}\n").as_bytes())
        .expect("write the expression");
    let output = child.wait_with_output().expect("terraform console");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "terraform console rejected {expression}:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.trim().trim_matches('"').to_owned()
}

/// `encoded` decoded by `base64 -d`, as UTF-8 text.
pub fn base64_decode(encoded: &str) -> String {
    let decoded =
        run_tool(Command::new("sh").args(["-c", "printf %s \"$1\" | base64 -d", "sh", encoded]));
    String::from_utf8(decoded.stdout).expect("utf-8")
}

pub fn provisioner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
}
