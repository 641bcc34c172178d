//! Converge a host's containers to its planned services. Each container carries the hash of
//! its resolved spec plus the image ID; a matching hash means "leave it alone". A changed
//! service is replaced in place: host networking means the old and new containers cannot
//! both bind the port, so the new one is created, the old one stopped, the new one
//! started and awaited until it is healthy, and only then is the old one removed. If the
//! new one never gets healthy, the old one is started again.
//!
//! Healthy means its healthcheck passed. Docker runs the first check one `interval` after
//! the start (the VMs' Docker 20.10 has no `start_interval`), so while Docker still says
//! "starting" converge runs the same check itself, in the container, and moves on at its
//! first pass; [`await_docker_health`] then waits for Docker's own verdict, once, at the
//! end of a deploy.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ExecConfig, HealthConfig, HealthStatusEnum,
    HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RenameContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use clusterlab_contract::secret_env;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::error::{ExecError, Result};
use super::images::image_id;
use super::progress::HostProgress;
use crate::plan::services::{Healthcheck, Restart, ServiceSpec};

/// Label with the hash of the resolved spec and the image ID a container was made from.
pub const CONFIG_HASH_LABEL: &str = "clusterlab.config-hash";
/// Label naming the compose service a container belongs to.
pub const SERVICE_LABEL: &str = "clusterlab.service";

/// What converging did to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    /// Hash matched and the container was running.
    Unchanged,
    /// Hash matched but the container was stopped, so it was started.
    Started,
    Replaced,
    /// The spec changed but the running container was left for a later converge
    /// ([`ConvergeOptions::defer_replace`]).
    Deferred,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Unchanged => "unchanged",
            Action::Started => "started",
            Action::Replaced => "replaced",
            Action::Deferred => "left running until the web hosts have rolled",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReport {
    pub service: String,
    pub container: String,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub struct ConvergeOptions {
    /// How long a new container may take to become healthy before it is rolled back.
    pub health_timeout: Duration,
    pub poll_interval: Duration,
    /// Seconds Docker waits after SIGTERM before SIGKILL when stopping the old container.
    pub stop_timeout_secs: i32,
    /// Leave a running container whose spec changed as it is (reported as
    /// [`Action::Deferred`]); a later converge without this flag replaces it.
    pub defer_replace: bool,
}

impl Default for ConvergeOptions {
    fn default() -> Self {
        ConvergeOptions {
            health_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
            stop_timeout_secs: 10,
            defer_replace: false,
        }
    }
}

/// The hash that decides whether a running container still matches its spec. `spec` is
/// the resolved one, so a changed secret also replaces the container.
pub fn config_hash(spec: &ServiceSpec, image_id: &str) -> String {
    let mut hasher = Sha256::new();
    // Serialising a struct of plain fields and BTreeMaps cannot fail.
    hasher.update(serde_json::to_vec(spec).unwrap_or_default());
    hasher.update([0]);
    hasher.update(image_id.as_bytes());
    hex::encode(hasher.finalize())
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The create request for a resolved spec: host networking, restart policy, binds,
/// healthcheck, and our labels on top of the file's.
pub fn container_body(spec: &ServiceSpec, hash: &str) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(SERVICE_LABEL.to_owned(), spec.name.clone());
    labels.insert(CONFIG_HASH_LABEL.to_owned(), hash.to_owned());
    let (restart, retries) = match spec.restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            max_retries.map(i64::from),
        ),
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        env: Some(
            spec.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(labels),
        healthcheck: spec.healthcheck.as_ref().map(|check| HealthConfig {
            test: Some(check.test.clone()),
            interval: Some(nanos(check.interval)),
            timeout: Some(nanos(check.timeout)),
            retries: Some(i64::from(check.retries)),
            start_period: Some(nanos(check.start_period)),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            network_mode: Some(spec.network_mode.as_str().to_owned()),
            binds: Some(spec.volumes.iter().map(|m| m.bind_string()).collect()),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: retries,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Converges the services of one host, in order, stopping at the first failure (later
/// services often depend on earlier ones).
pub async fn converge(
    docker: &Docker,
    host: &str,
    services: &[ServiceSpec],
    secrets: &BTreeMap<String, String>,
    options: &ConvergeOptions,
    progress: &HostProgress,
) -> Result<Vec<ServiceReport>> {
    // Resolve everything first: a missing secret must fail before any container changes.
    let resolved = services
        .iter()
        .map(|s| {
            s.resolve(secrets)
                .map_err(|unresolved| ExecError::UnresolvedVariable {
                    host: host.to_owned(),
                    service: s.name.clone(),
                    field: unresolved.field,
                    variable: unresolved.variable,
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut reports = Vec::with_capacity(resolved.len());
    for spec in &resolved {
        let report = converge_service(docker, host, spec, options, progress).await?;
        progress.note(format!("{}: {}", report.service, report.action));
        reports.push(report);
    }
    Ok(reports)
}

async fn inspect(
    docker: &Docker,
    host: &str,
    name: &str,
) -> Result<Option<ContainerInspectResponse>> {
    match docker.inspect_container(name, None).await {
        Ok(found) => Ok(Some(found)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(ExecError::docker(
            host,
            format!("inspect container {name}"),
            e,
        )),
    }
}

fn is_running(container: &ContainerInspectResponse) -> bool {
    container
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false)
}

async fn remove(docker: &Docker, host: &str, name: &str) -> Result<()> {
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(ExecError::docker(
            host,
            format!("remove container {name}"),
            e,
        )),
    }
}

async fn start(docker: &Docker, host: &str, name: &str) -> Result<()> {
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .map_err(|e| ExecError::docker(host, format!("start container {name}"), e))
}

/// Creates container `name` for the resolved `spec` and writes its secret files into it
/// before it ever starts: a tar extracted at `/`, each file `/run/secrets/<VAR>` owned by
/// root with mode 0444 (what Docker gives its own secrets). They live in the container's
/// own layer, so a restart keeps them and `docker inspect` shows none of them.
async fn create(
    docker: &Docker,
    host: &str,
    name: &str,
    spec: &ServiceSpec,
    hash: &str,
) -> Result<()> {
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    docker
        .create_container(Some(options), container_body(spec, hash))
        .await
        .map_err(|e| ExecError::docker(host, format!("create container {name}"), e))?;
    if spec.secrets.is_empty() {
        return Ok(());
    }
    let operation = || format!("write the secret files of {name}");
    let tar = secrets_tar(spec).map_err(|e| ExecError::io(host, operation(), e))?;
    let upload = UploadToContainerOptionsBuilder::new().path("/").build();
    docker
        .upload_to_container(name, Some(upload), bollard::body_full(tar.into()))
        .await
        .map_err(|e| ExecError::docker(host, operation(), e))
}

/// The tar of a resolved spec's secret files, rooted at `/`.
pub fn secrets_tar(spec: &ServiceSpec) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_uid(0);
    dir.set_gid(0);
    let inside = secret_env::DIR.trim_start_matches('/');
    builder.append_data(&mut dir, format!("{inside}/"), std::io::empty())?;
    for (variable, value) in &spec.secrets {
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_mode(0o444);
        file.set_size(value.len() as u64);
        file.set_uid(0);
        file.set_gid(0);
        let path = secret_env::file_path(variable);
        builder.append_data(&mut file, path.trim_start_matches('/'), value.as_bytes())?;
    }
    builder.into_inner()
}

/// Converges one resolved service.
pub async fn converge_service(
    docker: &Docker,
    host: &str,
    spec: &ServiceSpec,
    options: &ConvergeOptions,
    progress: &HostProgress,
) -> Result<ServiceReport> {
    let name = spec.container_name.as_str();
    let next = format!("{name}-next");
    let image = image_id(docker, host, &spec.image)
        .await?
        .ok_or_else(|| ExecError::Service {
            host: host.to_owned(),
            service: spec.name.clone(),
            operation: "find image".into(),
            message: format!(
                "image {} is not on the host (ship or pull it first)",
                spec.image
            ),
        })?;
    let hash = config_hash(spec, &image);
    let report = |action| ServiceReport {
        service: spec.name.clone(),
        container: name.to_owned(),
        action,
    };
    // A leftover from an interrupted replace would block the name we need.
    remove(docker, host, &next).await?;

    let Some(current) = inspect(docker, host, name).await? else {
        progress.step(format!("{}: creating {name}", spec.name));
        create(docker, host, name, spec, &hash).await?;
        start(docker, host, name).await?;
        if let Err(reason) = wait_ready(docker, host, spec, name, options, progress).await {
            let log = health_log(docker, host, name).await;
            // Nothing to roll back to; removing it keeps the next run a clean create.
            remove(docker, host, name).await?;
            return Err(ExecError::Service {
                host: host.to_owned(),
                service: spec.name.clone(),
                operation: "start new container".into(),
                message: format!("{reason}. Health log:\n{log}"),
            });
        }
        return Ok(report(Action::Created));
    };

    let current_hash = current
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(CONFIG_HASH_LABEL));
    if current_hash.map(String::as_str) == Some(hash.as_str()) {
        if is_running(&current) {
            return Ok(report(Action::Unchanged));
        }
        start(docker, host, name).await?;
        return Ok(report(Action::Started));
    }

    let was_running = is_running(&current);
    if was_running && options.defer_replace {
        return Ok(report(Action::Deferred));
    }
    progress.step(format!("{}: replacing {name}", spec.name));
    create(docker, host, &next, spec, &hash).await?;
    let stop = StopContainerOptionsBuilder::new()
        .t(options.stop_timeout_secs)
        .build();
    docker
        .stop_container(name, Some(stop))
        .await
        .map_err(|e| ExecError::docker(host, format!("stop container {name}"), e))?;
    let started = start(docker, host, &next).await;
    let ready = match started {
        Ok(()) => wait_ready(docker, host, spec, &next, options, progress).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = ready {
        let log = health_log(docker, host, &next).await;
        remove(docker, host, &next).await?;
        if was_running {
            start(docker, host, name).await?;
        }
        return Err(ExecError::RolledBack {
            host: host.to_owned(),
            service: spec.name.clone(),
            reason,
            log,
        });
    }
    remove(docker, host, name).await?;
    docker
        .rename_container(
            &next,
            RenameContainerOptionsBuilder::new().name(name).build(),
        )
        .await
        .map_err(|e| ExecError::docker(host, format!("rename container {next} to {name}"), e))?;
    Ok(report(Action::Replaced))
}

/// Waits until a new container of converge is healthy: its spec's check passed when
/// converge ran it, or Docker calls it healthy (without a check in its spec: still running
/// a moment after the start). The error is the reason, for the caller's message.
async fn wait_ready(
    docker: &Docker,
    host: &str,
    spec: &ServiceSpec,
    container: &str,
    options: &ConvergeOptions,
    progress: &HostProgress,
) -> std::result::Result<(), String> {
    let healthy = Healthy::FirstPass(spec.healthcheck.as_ref());
    wait_healthy(
        docker,
        host,
        container,
        healthy,
        options,
        progress,
        |seconds| {
            format!(
                "{}: waiting for {container} to be healthy ({seconds}s)",
                spec.name
            )
        },
    )
    .await
}

/// What ends a wait for a container's health well.
#[derive(Clone, Copy)]
enum Healthy<'a> {
    /// Converge's: the spec's check (if any) passing when converge runs it, or Docker
    /// calling the container healthy; with no check, still running one poll after the start.
    FirstPass(Option<&'a Healthcheck>),
    /// The end of a deploy's: Docker itself calling it healthy (or it having no healthcheck).
    DockerSays,
}

/// Polls `container` until it is [`Healthy`] as `healthy` says, showing `waiting` (given
/// the seconds waited) meanwhile. The error is the reason: it stopped running, Docker calls
/// it unhealthy, or the health timeout passed.
async fn wait_healthy(
    docker: &Docker,
    host: &str,
    container: &str,
    healthy: Healthy<'_>,
    options: &ConvergeOptions,
    progress: &HostProgress,
    waiting: impl Fn(u64) -> String,
) -> std::result::Result<(), String> {
    let started = Instant::now();
    loop {
        let state = inspect(docker, host, container)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| c.state)
            .ok_or_else(|| format!("container {container} disappeared"))?;
        if !state.running.unwrap_or(false) {
            return Err(format!(
                "container {container} exited with code {}",
                state.exit_code.unwrap_or(-1)
            ));
        }
        let done = match (healthy, state.health.and_then(|h| h.status)) {
            (Healthy::FirstPass(None), _) => started.elapsed() >= options.poll_interval,
            (_, Some(HealthStatusEnum::UNHEALTHY)) => {
                return Err(format!("Docker reports {container} unhealthy"))
            }
            (_, Some(HealthStatusEnum::HEALTHY)) => true,
            (Healthy::FirstPass(Some(check)), _) => {
                own_check_passes(docker, host, container, check).await
            }
            (Healthy::DockerSays, Some(HealthStatusEnum::STARTING)) => false,
            (Healthy::DockerSays, _) => true,
        };
        if done {
            return Ok(());
        }
        if started.elapsed() > options.health_timeout {
            return Err(format!(
                "{container} not healthy after {:?}",
                options.health_timeout
            ));
        }
        progress.step(waiting(started.elapsed().as_secs()));
        tokio::time::sleep(options.poll_interval).await;
    }
}

/// The healthcheck's command as `docker exec` runs it: Docker's `["CMD", args...]` is the
/// args, `["CMD-SHELL", line]` the line run by `/bin/sh -c` (as Docker runs it on Linux).
fn check_command(check: &Healthcheck) -> Option<Vec<String>> {
    match check.test.split_first() {
        Some((kind, args)) if kind == "CMD" && !args.is_empty() => Some(args.to_vec()),
        Some((kind, [line])) if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), line.clone()])
        }
        _ => None,
    }
}

/// Whether the healthcheck passes, run in the container now, within its timeout. A failure
/// decides nothing: Docker's retries do.
async fn own_check_passes(
    docker: &Docker,
    host: &str,
    container: &str,
    check: &Healthcheck,
) -> bool {
    let Some(command) = check_command(check) else {
        return false;
    };
    matches!(
        tokio::time::timeout(check.timeout, exec_in(docker, host, container, &command)).await,
        Ok(Ok(_))
    )
}

/// Waits until Docker itself calls each of `services` healthy (without a healthcheck, still
/// running). A deploy moves on as soon as a new container passes its check run by converge;
/// this, at the end, makes a finished deploy one that `status` shows healthy. Docker calling
/// a container unhealthy after its check passed is an error with the health log.
pub async fn await_docker_health(
    docker: &Docker,
    host: &str,
    services: &[&ServiceReport],
    options: &ConvergeOptions,
    progress: &HostProgress,
) -> Result<()> {
    for service in services {
        let container = service.container.as_str();
        let waiting =
            |seconds| format!("waiting for Docker to call {container} healthy ({seconds}s)");
        let verdict = wait_healthy(
            docker,
            host,
            container,
            Healthy::DockerSays,
            options,
            progress,
            waiting,
        )
        .await;
        if let Err(reason) = verdict {
            let log = health_log(docker, host, container).await;
            return Err(ExecError::Service {
                host: host.to_owned(),
                service: service.service.clone(),
                operation: "await Docker's health verdict".into(),
                message: format!(
                    "{reason}, although its check passed when it started. Health log:\n{log}"
                ),
            });
        }
    }
    Ok(())
}

/// What explains a container that never got healthy: the healthcheck outputs Docker
/// recorded (oldest first), how often it restarted, and the last lines it logged (best
/// effort: this runs while reporting another error).
async fn health_log(docker: &Docker, host: &str, container: &str) -> String {
    let Ok(Some(found)) = inspect(docker, host, container).await else {
        return "(container gone)".into();
    };
    let entries = found
        .state
        .and_then(|s| s.health)
        .and_then(|h| h.log)
        .unwrap_or_default();
    let checks = if entries.is_empty() {
        "(no healthcheck results recorded)".to_owned()
    } else {
        entries
            .iter()
            .map(|entry| {
                format!(
                    "exit {}: {}",
                    entry.exit_code.unwrap_or(-1),
                    entry.output.as_deref().unwrap_or("").trim()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let options = bollard::query_parameters::LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail("20")
        .build();
    let mut lines = Vec::new();
    let mut logs = docker.logs(container, Some(options));
    while let Some(Ok(chunk)) = logs.next().await {
        lines.push(chunk.to_string().trim_end().to_owned());
    }
    format!(
        "{checks}\nrestarts: {}\nlast log lines:\n{}",
        found.restart_count.unwrap_or(0),
        lines.join("\n")
    )
}

/// One clusterlab container on a host, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub service: String,
    pub container: String,
    pub image: String,
    /// Docker's state word: `running`, `exited`, ...
    pub state: String,
    /// Docker's status line, e.g. `Up 3 minutes (healthy)`.
    pub status: String,
}

/// The containers converge made on a host (found by their service label), by name.
pub async fn status(docker: &Docker, host: &str) -> Result<Vec<ServiceStatus>> {
    let filters = HashMap::from([("label", vec![SERVICE_LABEL])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| ExecError::docker(host, "list containers", e))?;
    let mut statuses: Vec<ServiceStatus> = containers
        .into_iter()
        .map(|c| ServiceStatus {
            service: c
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_LABEL))
                .cloned()
                .unwrap_or_default(),
            container: c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            status: c.status.unwrap_or_default(),
        })
        .collect();
    statuses.sort_by(|a, b| a.container.cmp(&b.container));
    Ok(statuses)
}

/// Whether container `name` exists and is running.
pub async fn is_running_named(docker: &Docker, host: &str, name: &str) -> Result<bool> {
    Ok(inspect(docker, host, name)
        .await?
        .is_some_and(|c| is_running(&c)))
}

/// Runs a command inside a running container (e.g. `nginx -s reload`) and returns its
/// output; a non-zero exit is an error with that output.
pub async fn exec_in<S: AsRef<str>>(
    docker: &Docker,
    host: &str,
    container: &str,
    cmd: &[S],
) -> Result<String> {
    let shown: Vec<&str> = cmd.iter().map(AsRef::as_ref).collect();
    exec_in_shown_as(docker, host, container, cmd, &shown.join(" ")).await
}

/// [`exec_in`] for a command that carries a secret: errors show `shown`, not the command.
pub async fn exec_in_shown_as<S: AsRef<str>>(
    docker: &Docker,
    host: &str,
    container: &str,
    cmd: &[S],
    shown: &str,
) -> Result<String> {
    let operation = || format!("exec `{shown}` in {container}");
    let created = docker
        .create_exec(
            container,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.iter().map(|s| s.as_ref().to_owned()).collect()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ExecError::docker(host, operation(), e))?;
    let mut text = String::new();
    match docker
        .start_exec(&created.id, None::<StartExecOptions>)
        .await
        .map_err(|e| ExecError::docker(host, operation(), e))?
    {
        StartExecResults::Attached { mut output, .. } => {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(|e| ExecError::docker(host, operation(), e))?;
                text.push_str(&chunk.to_string());
            }
        }
        StartExecResults::Detached => {}
    }
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .map_err(|e| ExecError::docker(host, operation(), e))?;
    match inspected.exit_code {
        Some(0) => Ok(text),
        code => Err(ExecError::Service {
            host: host.to_owned(),
            service: container.to_owned(),
            operation: operation(),
            message: format!("exit code {}: {}", code.unwrap_or(-1), text.trim()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthcheck_runs_in_the_container_as_docker_runs_it() {
        let with = |test: &[&str]| Healthcheck {
            test: test.iter().map(|w| (*w).to_owned()).collect(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            retries: 3,
            start_period: Duration::ZERO,
        };
        assert_eq!(
            check_command(&with(&["CMD", "pg_isready", "-h", "127.0.0.1"])),
            Some(vec!["pg_isready".into(), "-h".into(), "127.0.0.1".into()])
        );
        assert_eq!(
            check_command(&with(&["CMD-SHELL", "test \"$MODE\" = ok"])),
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "test \"$MODE\" = ok".into()
            ])
        );
        assert_eq!(check_command(&with(&["NONE"])), None);
        assert_eq!(check_command(&with(&["CMD"])), None);
    }

    fn cache() -> ServiceSpec {
        ServiceSpec {
            environment: [("A".to_owned(), "1".to_owned())].into(),
            secrets: [("PW".to_owned(), "s3cret\n".to_owned())].into(),
            restart: Restart::OnFailure {
                max_retries: Some(3),
            },
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "redis-cli ping".into()],
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(30),
                retries: 3,
                start_period: Duration::ZERO,
            }),
            labels: [("team".to_owned(), "core".to_owned())].into(),
            ..ServiceSpec::new("cache", "clusterlab/redis:7")
        }
    }

    #[test]
    fn hash_changes_with_env_and_image_id_only() {
        let spec = cache();
        let same = config_hash(&spec, "sha256:a");
        assert_eq!(same, config_hash(&spec.clone(), "sha256:a"));
        assert_ne!(same, config_hash(&spec, "sha256:b"));
        let mut changed = spec.clone();
        changed.environment.insert("A".into(), "2".into());
        assert_ne!(same, config_hash(&changed, "sha256:a"));
        // A rotated secret replaces the container too.
        let mut rotated = spec.clone();
        rotated.secrets.insert("PW".into(), "other".into());
        assert_ne!(same, config_hash(&rotated, "sha256:a"));
    }

    #[test]
    fn secret_files_are_root_owned_0444_under_run_secrets_and_nowhere_in_the_body() {
        let spec = cache();
        let tar = secrets_tar(&spec).expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64, Vec<u8>)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let mut contents = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut contents).expect("read");
                let header = e.header();
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    header.mode().expect("mode"),
                    header.uid().expect("uid"),
                    contents,
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("run/secrets/".to_owned(), 0o755, 0, Vec::new()),
                ("run/secrets/PW".to_owned(), 0o444, 0, b"s3cret\n".to_vec()),
            ]
        );
        let body = serde_json::to_string(&container_body(&spec, "abc")).expect("json");
        assert!(!body.contains("s3cret"), "{body}");
    }

    #[test]
    fn body_uses_host_network_and_carries_labels() {
        let spec = cache();
        let body = container_body(&spec, "abc");
        let host = body.host_config.expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        let restart = host.restart_policy.expect("restart");
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(3));
        let labels = body.labels.expect("labels");
        assert_eq!(labels[CONFIG_HASH_LABEL], "abc");
        assert_eq!(labels[SERVICE_LABEL], "cache");
        assert_eq!(labels["team"], "core");
        assert_eq!(body.env.expect("env"), vec!["A=1".to_owned()]);
        let check = body.healthcheck.expect("healthcheck");
        assert_eq!(
            check.test.expect("test"),
            vec!["CMD-SHELL", "redis-cli ping"]
        );
        assert_eq!(check.interval, Some(1_000_000_000));
    }
}
