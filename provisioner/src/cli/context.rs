//! CLI layer: what every command that touches hosts shares — where the spec, the project
//! (templates, the web app's workspace) and the rendered files are, the resolved secrets,
//! how to reach each host, the local target's setup, and the images built on this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use secrecy::ExposeSecret;

use crate::exec::deploy::Images;
use crate::exec::images::{self, BuildOutcome};
use crate::exec::progress::{HostProgress, Progress};
use crate::exec::ssh::{RetryPolicy, SshTarget};
use crate::exec::terraform::{Stream, Terraform};
use crate::exec::{local, ExecError};
use crate::output;
use crate::plan::{self, deploy::DeployPlan};
use crate::spec::{Cluster, Host, ImageMode, Role, SecretRef, Target};

use super::{spec_dir, Cli, CliError};

pub use crate::plan::{POSTGRES_PASSWORD_VAR, REDIS_PASSWORD_VAR};

/// The redis host that is the primary now: the one redis host, or in a Sentinel group the
/// host whose address the sentinels name (asked through each redis host's SSH session).
pub async fn redis_primary<'c>(
    cluster: &'c Cluster,
    targets: &BTreeMap<String, SshTarget>,
    password: &secrecy::SecretString,
) -> Result<&'c Host, ExecError> {
    let redis: Vec<&Host> = cluster.hosts_with(Role::Redis).collect();
    let Some(group) = plan::sentinel_group(cluster) else {
        // Without a group a valid spec has exactly one redis host.
        return redis.first().copied().ok_or_else(|| ExecError::Redis {
            host: cluster.name.clone(),
            operation: "find the redis host".into(),
            message: "cluster.yaml has no host of role redis".into(),
        });
    };
    let sentinels: Vec<(&SshTarget, String)> = redis
        .iter()
        .map(|h| (&targets[&h.name], h.ip.to_string()))
        .collect();
    let address = crate::exec::redis::sentinel_primary(
        &sentinels,
        plan::SENTINEL_PORT,
        &group.master_name,
        &inspect_retry(),
        password,
    )
    .await?;
    redis
        .into_iter()
        .find(|h| h.ip.to_string() == address)
        .ok_or_else(|| ExecError::Redis {
            host: "sentinels".into(),
            operation: format!("find the primary of {}", group.master_name),
            message: format!("they name {address}, which is no redis host of cluster.yaml"),
        })
}

/// Where things are for one invocation.
#[derive(Debug, Clone)]
pub struct Project {
    /// The directory of cluster.yaml: relative key/secret paths and rendered files.
    pub spec_dir: PathBuf,
    /// The repository: `templates/` and the web app's Cargo workspace.
    pub project_dir: PathBuf,
}

impl Project {
    pub fn new(cli: &Cli) -> Project {
        Project {
            spec_dir: spec_dir(cli).to_owned(),
            project_dir: cli.project_dir.clone(),
        }
    }

    /// Terraform in the rendered workspace, with every variable the workspace declares set
    /// from the spec: the public key, and on Proxmox the resolved API token and the key
    /// paths. Paths are absolute because terraform runs with `-chdir=terraform/`.
    pub fn terraform(&self, cluster: &Cluster, public_key: &str) -> Result<Terraform, CliError> {
        let mut terraform = Terraform::new(self.spec_dir.join("terraform"))
            .with_env("TF_VAR_ssh_public_key", public_key);
        if let (Target::Proxmox, Some(proxmox)) = (cluster.target, &cluster.proxmox) {
            let token = proxmox.api_token.resolve(&self.spec_dir)?;
            terraform = terraform
                .with_env("TF_VAR_proxmox_api_token", token.expose_secret())
                .with_env(
                    "TF_VAR_ssh_private_key_path",
                    absolute(&self.private_key(cluster)).display().to_string(),
                );
            if let Some(key) = &proxmox.ssh_private_key {
                terraform = terraform.with_env(
                    "TF_VAR_proxmox_ssh_private_key_path",
                    absolute(&self.spec_dir.join(key)).display().to_string(),
                );
            }
        }
        Ok(terraform)
    }

    /// One known_hosts file per cluster, so a re-created cluster that reuses the addresses
    /// is not refused for its new host keys once `destroy` removed the old file.
    pub fn known_hosts(&self, cluster: &Cluster) -> PathBuf {
        self.spec_dir
            .join(".clusterlab")
            .join(format!("known_hosts-{}", cluster.name))
    }

    pub fn private_key(&self, cluster: &Cluster) -> PathBuf {
        self.spec_dir.join(&cluster.ssh.private_key)
    }

    pub fn public_key(&self, cluster: &Cluster) -> PathBuf {
        self.spec_dir.join(&cluster.ssh.public_key)
    }
}

/// Asks `question` on a terminal and returns true only for an explicit "yes". Without a
/// terminal on stdin nobody can answer, so the answer is no.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    eprint!("{question}\nType yes to go ahead: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|source| CliError::Io {
            operation: "read the answer from the terminal".into(),
            source,
        })?;
    Ok(answer.trim() == "yes")
}

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// The compose placeholders and their values from the spec's secret references.
pub fn secrets(cluster: &Cluster, project: &Project) -> Result<BTreeMap<String, String>, CliError> {
    let resolve = |reference: &SecretRef| {
        reference
            .resolve(&project.spec_dir)
            .map(|secret| secret.expose_secret().to_owned())
    };
    Ok(BTreeMap::from([
        (
            REDIS_PASSWORD_VAR.to_owned(),
            resolve(&cluster.secrets.redis_password)?,
        ),
        (
            POSTGRES_PASSWORD_VAR.to_owned(),
            resolve(&cluster.secrets.postgres_password)?,
        ),
    ]))
}

/// How to log in to each host of the spec.
pub fn targets(cluster: &Cluster, project: &Project) -> BTreeMap<String, SshTarget> {
    cluster
        .hosts
        .iter()
        .map(|host| {
            let target = SshTarget {
                host: host.name.clone(),
                address: host.ip.to_string(),
                port: 22,
                user: cluster.ssh.user.clone(),
                key_path: project.private_key(cluster),
                known_hosts: project.known_hosts(cluster),
            };
            (host.name.clone(), target)
        })
        .collect()
}

/// A short retry for commands that inspect a running cluster: a host that is down should
/// be reported promptly, not waited for as if it were booting.
pub fn inspect_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(5),
    }
}

/// The local target's own setup: the key pair and the `file:` secrets, created when
/// missing. Returns the public key text (for `TF_VAR_ssh_public_key`).
pub async fn prepare_local(cluster: &Cluster, project: &Project) -> Result<String, CliError> {
    local::ensure_ignored_dir(&project.spec_dir.join(".clusterlab"))?;
    let public = local::ensure_key_pair(
        &project.private_key(cluster),
        &project.public_key(cluster),
        &format!("clusterlab-{}", cluster.name),
    )
    .await?;
    for reference in [
        &cluster.secrets.redis_password,
        &cluster.secrets.postgres_password,
    ] {
        if let SecretRef::File(path) = reference {
            let path = project.spec_dir.join(path);
            if local::ensure_secret_file(&path)? {
                eprintln!("generated secret {}", path.display());
            }
        }
    }
    Ok(public)
}

/// The public key text terraform needs (apply and destroy); empty when the file is gone,
/// which is enough for destroy.
pub fn public_key_text(cluster: &Cluster, project: &Project) -> String {
    std::fs::read_to_string(project.public_key(cluster))
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// Writes the rendered files next to the spec; returns how many changed.
pub fn render(cluster: &Cluster, project: &Project) -> Result<usize, CliError> {
    let files = plan::render(cluster)?;
    let report = output::write_all(&project.spec_dir, &files)?;
    Ok(report.written.len() + report.removed.len())
}

/// Streams terraform's lines to stderr, prefixed so they stand apart from ours.
pub fn terraform_line(stream: Stream, line: &str) {
    let _ = stream;
    eprintln!("terraform: {line}");
}

/// Makes sure the local engine holds every image the plan brings to the hosts (shipped or
/// pushed to the registry): the service images built from `templates/images/` while cargo
/// compiles the web app, then the web app's from that release binary. Each build is skipped
/// when its context is unchanged. `up` runs the parts itself, to deploy the data stores
/// while cargo compiles.
pub async fn ensure_local_images(
    local: &Docker,
    cluster: &Cluster,
    project: &Project,
    plan: &DeployPlan,
    progress: &Progress,
) -> Result<(), CliError> {
    if !builds_images(cluster) {
        return Ok(());
    }
    let bar = progress.host("local");
    // The service images (Docker, mostly unpacking packages) build while cargo compiles
    // the web app: on a fresh machine the two overlap instead of adding up.
    let (services, binary) = tokio::join!(
        ensure_service_images(local, cluster, project, plan, &bar),
        build_web_binary(cluster, project, plan, progress)
    );
    services?;
    if let Some(binary) = binary? {
        ensure_web_image(local, cluster, project, &binary, &bar).await?;
    }
    bar.finish("images ready");
    Ok(())
}

/// The service images `plan` needs, and the web app image's first steps (its packages), so
/// that after cargo only the binary's steps are left.
pub async fn ensure_service_images(
    local: &Docker,
    cluster: &Cluster,
    project: &Project,
    plan: &DeployPlan,
    bar: &HostProgress,
) -> Result<(), CliError> {
    if !builds_images(cluster) {
        return Ok(());
    }
    let wanted = plan.images();
    let templates = project.project_dir.join("templates");
    for (dir, tag) in images::SERVICE_IMAGES {
        if wanted.iter().any(|image| image == tag) {
            let context = images::service_context(&templates, dir)?;
            build(local, tag, &context, bar).await?;
        }
    }
    if wanted.contains(&cluster.images.webapp) {
        let context = images::webapp_steps_context(&templates)?;
        let tag = images::WEBAPP_STEPS_IMAGE;
        build(local, tag, &context, bar).await?;
    }
    Ok(())
}

/// The web app's release binary, when this machine builds the web app image of `plan`.
pub async fn build_web_binary(
    cluster: &Cluster,
    project: &Project,
    plan: &DeployPlan,
    progress: &Progress,
) -> Result<Option<PathBuf>, CliError> {
    if !builds_images(cluster) {
        return Ok(None);
    }
    let bar = progress.host("cargo");
    if !plan.images().contains(&cluster.images.webapp) {
        bar.finish("no web app in this plan");
        return Ok(None);
    }
    let binary = build_webapp_binary(project, &bar).await?;
    bar.finish("web app built");
    Ok(Some(binary))
}

/// The web app image from its binary, on the steps [`ensure_service_images`] built.
pub async fn ensure_web_image(
    local: &Docker,
    cluster: &Cluster,
    project: &Project,
    binary: &Path,
    bar: &HostProgress,
) -> Result<(), CliError> {
    let context = images::webapp_context(&project.project_dir.join("templates"), binary)?;
    let tag = cluster.images.webapp.as_str();
    build(local, tag, &context, bar).await?;
    Ok(())
}

fn needs_engine(local: Option<&Docker>) -> Result<&Docker, CliError> {
    local
        .ok_or_else(|| CliError::Usage("building images needs this machine's Docker engine".into()))
}

/// Whether this machine builds the images the hosts run: in ship mode, and in pull mode
/// with a registry to push them to (without one, the hosts pull published names).
pub fn builds_images(cluster: &Cluster) -> bool {
    cluster.images.mode == ImageMode::Ship || cluster.images.registry.is_some()
}

/// How this run's images reach the hosts: ship mode sends them from `local` host by host;
/// pull mode with a registry pushes them there now, and each host pulls from there.
pub async fn image_delivery(
    local: Option<&Docker>,
    cluster: &Cluster,
    project: &Project,
    plan: &DeployPlan,
    progress: &Progress,
) -> Result<Images, CliError> {
    let registry = match (&cluster.images.mode, &cluster.images.registry) {
        (ImageMode::Ship, _) => return Ok(Images::Ship(needs_engine(local)?.clone())),
        (ImageMode::Pull, Some(registry)) => registry.clone(),
        (ImageMode::Pull, None) => return Ok(Images::Pull),
    };
    let ca = match &registry.ca_file {
        Some(file) => {
            let path = project.spec_dir.join(file);
            Some(std::fs::read(&path).map_err(|e| {
                CliError::Usage(format!(
                    "images.registry.ca_file: cannot read {}: {e}",
                    path.display()
                ))
            })?)
        }
        None => None,
    };
    let password = match &registry.password {
        Some(reference) => Some(
            reference
                .resolve(&project.spec_dir)?
                .expose_secret()
                .to_owned(),
        ),
        None => None,
    };
    let source = images::PullSource::publish(
        needs_engine(local)?,
        registry,
        ca,
        password,
        &plan.images(),
        &progress.host("local"),
    )
    .await?;
    Ok(Images::Registry(std::sync::Arc::new(source)))
}

/// The local target's VM image, built when missing or stale.
pub async fn ensure_vm_image(
    local: &Docker,
    cluster: &Cluster,
    project: &Project,
    progress: &Progress,
) -> Result<(), CliError> {
    if cluster.target != Target::Local {
        return Ok(());
    }
    let bar = progress.host("vm image");
    let outcome =
        images::ensure_vm_image(local, &project.project_dir.join("templates"), &bar).await?;
    report_build(&bar, images::VM_IMAGE, outcome);
    bar.finish("VM image ready");
    Ok(())
}

fn report_build(bar: &HostProgress, tag: &str, outcome: BuildOutcome) {
    if let BuildOutcome::Built { .. } = outcome {
        bar.note(format!("built {tag}"));
    }
}

/// [`images::ensure_built`], noting on `bar` when it built.
async fn build(
    local: &Docker,
    tag: &str,
    context: &images::BuildContext,
    bar: &HostProgress,
) -> Result<(), CliError> {
    report_build(
        bar,
        tag,
        images::ensure_built(local, tag, context, bar).await?,
    );
    Ok(())
}

/// The packages both release builds name, this one of the web app and the provisioner's
/// own in `scripts/provisioner.sh`: cargo resolves features for the packages a build names,
/// so with the same names both see one resolution and compile the dependencies they share
/// once (the script says what that saved).
const PACKAGES: [&str; 4] = ["-p", "provisioner", "-p", "webapp"];

/// `cargo build --release --bin webapp` in the project, returning the binary's path; cargo
/// itself makes this a no-op when nothing changed. Only the `webapp` binary: the package's
/// benchmarks and demos are not what the image runs.
async fn build_webapp_binary(project: &Project, bar: &HostProgress) -> Result<PathBuf, CliError> {
    bar.step("cargo build --release --bin webapp");
    let output =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--locked"])
            .args(PACKAGES)
            .args(["--bin", "webapp"])
            .current_dir(&project.project_dir)
            .stdin(std::process::Stdio::null())
            // `up` stops waiting when the hosts fail meanwhile; cargo stops with it.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| CliError::Io {
                operation: "run cargo build --release --bin webapp".into(),
                source: e,
            })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(CliError::Build(
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project.project_dir.join("target"));
    let binary = absolute(&target_dir.join("release").join("webapp"));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(CliError::Build(format!(
            "cargo built the web app but {} does not exist",
            binary.display()
        )))
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl From<crate::spec::SecretError> for CliError {
    fn from(error: crate::spec::SecretError) -> Self {
        CliError::Secret(error)
    }
}

impl From<ExecError> for CliError {
    fn from(error: ExecError) -> Self {
        CliError::Exec(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::PACKAGES;

    /// The two builds share their dependencies only while they name the same packages.
    #[test]
    fn the_provisioner_script_names_the_same_packages() {
        let script = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/provisioner.sh"),
        )
        .expect("read scripts/provisioner.sh");
        let names = PACKAGES.join(" ");
        assert!(
            script.contains(&format!("{names} --bin provisioner")),
            "scripts/provisioner.sh must build with `{names}`:\n{script}"
        );
    }
}
