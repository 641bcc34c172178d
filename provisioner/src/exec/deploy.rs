//! The one executor of a [`DeployPlan`]: connect to every host of the plan at once, then run
//! the stages in order, the tasks of a stage concurrently (one per host), each task's
//! actions in order. A host that cannot be reached, or whose task fails, fails the run with
//! its name and error; stages already done stay done, and the stage that failed still
//! finishes on its other hosts, so the next run has less to do.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::Docker;
use futures_util::future::join_all;

use super::converge::{self, Action as Done, ConvergeOptions, ServiceReport};
use super::docker::{self, ConnectedHost};
use super::error::{ExecError, Result};
use super::images::{self, PullSource, ShipOutcome, Via};
use super::progress::{HostProgress, Progress};
use super::ssh::{RetryPolicy, SshTarget, UploadOutcome};
use super::versions::{self, Pruned};
use crate::plan::deploy::{Action, DeployPlan, HostTask};
use crate::plan::versions::Version;
use crate::plan::{redis_cli, REDIS_PASSWORD_VAR, REDIS_PORT};

/// How images reach the hosts.
#[derive(Clone)]
pub enum Images {
    /// Exported from this engine and streamed to the hosts.
    Ship(Docker),
    /// Pushed to the cluster's registry by this run ([`PullSource::publish`]) and pulled
    /// from there by each host.
    Registry(Arc<PullSource>),
    /// Pulled by each host by the names as written (published elsewhere).
    Pull,
}

/// Everything the executor needs besides the plan.
pub struct Deployment<'a> {
    pub plan: &'a DeployPlan,
    /// How to reach each host of the plan, by host name.
    pub targets: BTreeMap<String, SshTarget>,
    /// Where the plan's relative file paths (nginx.conf) are.
    pub render_root: PathBuf,
    /// Values for the services' `${VAR}` placeholders.
    pub secrets: BTreeMap<String, String>,
    pub images: Images,
    pub converge: ConvergeOptions,
    pub retry: RetryPolicy,
}

/// What happened on one host during one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    pub host: String,
    pub services: Vec<ServiceReport>,
    /// Images that had to be shipped or pulled (absent ones).
    pub images_transferred: Vec<String>,
    /// A config upload changed the file and the service re-read it without a restart.
    pub reloaded: Option<String>,
    /// The version of the web app the host was given.
    pub version: Option<WebVersion>,
    /// What pruning the host's kept versions did.
    pub pruned: Option<Pruned>,
}

impl HostReport {
    /// The summary line: `web1: web replaced` / `lb: nginx unchanged, nginx reloaded` /
    /// `web2: clusterlab/webapp:latest transferred (version 4f2a9c81d0e3)` for an image-only
    /// task (`web1: kept version 4f2a9c81d0e3 put back` for `deploy --version`) /
    /// `web1: pruned version 1b2c3d4e5f60 (kept 4f2a9c81d0e3, 77aa00bb11cc)`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .services
            .iter()
            .map(|s| format!("{} {}", s.service, s.action))
            .collect();
        if let Some(container) = &self.reloaded {
            parts.push(format!("{container} reloaded"));
        }
        if let Some(pruned) = &self.pruned {
            let list = |versions: &[Version]| {
                let names: Vec<&str> = versions.iter().map(Version::as_str).collect();
                names.join(", ")
            };
            parts.push(match pruned.removed.as_slice() {
                [] => format!("nothing to prune (kept {})", list(&pruned.kept)),
                [_] => format!(
                    "pruned version {} (kept {})",
                    list(&pruned.removed),
                    list(&pruned.kept)
                ),
                _ => format!(
                    "pruned versions {} (kept {})",
                    list(&pruned.removed),
                    list(&pruned.kept)
                ),
            });
        }
        if parts.is_empty() {
            match &self.version {
                Some(WebVersion::PutBack(version)) => {
                    parts.push(format!("kept version {version} put back"));
                }
                tagged => {
                    parts.push(if self.images_transferred.is_empty() {
                        "images already present".to_owned()
                    } else {
                        format!("{} transferred", self.images_transferred.join(", "))
                    });
                    if let Some(WebVersion::Tagged(version)) = tagged {
                        parts.push(format!("version {version}"));
                    }
                }
            }
        }
        format!("{}: {}", self.host, parts.join(", "))
    }
}

/// How a web host got its version of the web app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebVersion {
    /// The image brought by this deploy, tagged with its version.
    Tagged(Version),
    /// A version the host kept, put back under the spec's name (`deploy --version`).
    PutBack(Version),
}

/// The run failed on some hosts; `done` is what succeeded before and beside the failures.
#[derive(Debug, thiserror::Error)]
#[error("deploy failed on {}:\n{}\nWork done on the other hosts is kept; run the command again to finish.", failed_hosts(.failures), failure_lines(.failures))]
pub struct DeployError {
    pub failures: Vec<(String, ExecError)>,
    pub done: Vec<HostReport>,
}

fn failed_hosts(failures: &[(String, ExecError)]) -> String {
    let mut hosts: Vec<&str> = failures.iter().map(|(h, _)| h.as_str()).collect();
    hosts.dedup();
    hosts.join(", ")
}

fn failure_lines(failures: &[(String, ExecError)]) -> String {
    failures
        .iter()
        .map(|(_, e)| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the plan. `on_report` sees each host's report as soon as its task is done, so the
/// caller can print summary lines while later stages run.
pub async fn run(
    deployment: &Deployment<'_>,
    progress: &Progress,
    on_report: impl FnMut(&HostReport),
) -> std::result::Result<Vec<HostReport>, DeployError> {
    run_after(deployment, &[], progress, on_report).await
}

/// [`run`] for the rest of a plan whose first part ran before (`up` deploys the data stores
/// while cargo compiles): `earlier` is what that part reported, so a host it converged is
/// not reported again for a pass that changed nothing. Returns this part's reports.
pub async fn run_after(
    deployment: &Deployment<'_>,
    earlier: &[HostReport],
    progress: &Progress,
    mut on_report: impl FnMut(&HostReport),
) -> std::result::Result<Vec<HostReport>, DeployError> {
    let hosts = deployment.plan.hosts();
    let bars: HashMap<String, HostProgress> = hosts
        .iter()
        .map(|h| (h.clone(), progress.host(h)))
        .collect();
    let connected = join_all(hosts.iter().map(|host| async {
        let result = match deployment.targets.get(host) {
            Some(target) => {
                bars[host].step(format!("connecting to {}", target.address));
                let wait = super::cloud_init::CloudInitWait::default();
                docker::connect_reporting(target, &deployment.retry, &wait, |s| bars[host].note(s))
                    .await
            }
            None => Err(ExecError::Ssh {
                host: host.clone(),
                operation: "connect".into(),
                message: "no address known for this host".into(),
            }),
        };
        (host.clone(), result)
    }))
    .await;
    let mut sessions: HashMap<String, ConnectedHost> = HashMap::new();
    let mut failures: Vec<(String, ExecError)> = Vec::new();
    for (host, result) in connected {
        match result {
            Ok(session) => {
                bars[&host].step("connected");
                sessions.insert(host, session);
            }
            Err(error) => {
                bars[&host].finish("unreachable");
                failures.push((host, error));
            }
        }
    }

    let mut done = Vec::new();
    for stage in &deployment.plan.stages {
        let runnable: Vec<&HostTask> = stage
            .tasks
            .iter()
            .filter(|t| sessions.contains_key(&t.host))
            .collect();
        let stage_blocked = runnable.len() < stage.tasks.len();
        let results = join_all(
            runnable
                .iter()
                .map(|task| run_task(deployment, task, &sessions[&task.host], &bars[&task.host])),
        )
        .await;
        let mut stage_failed = stage_blocked;
        for (task, result) in runnable.iter().zip(results) {
            match result {
                Ok(report) => {
                    if !repeats_nothing(earlier.iter().chain(&done), &report) {
                        on_report(&report);
                    }
                    done.push(report);
                }
                Err(error) => {
                    bars[&task.host].finish("failed");
                    stage_failed = true;
                    failures.push((task.host.clone(), error));
                }
            }
        }
        // Later stages depend on this one (web needs its database, nginx a healthy web).
        if stage_failed {
            break;
        }
    }
    if failures.is_empty() {
        // Stages moved on at each new container's first passing check; Docker's own verdict
        // comes an interval after the start, and is awaited once, on every host at once.
        let (done, bars) = (&done, &bars);
        let verdicts = join_all(sessions.iter().map(|(host, session)| {
            let started: Vec<&ServiceReport> = done
                .iter()
                .filter(|report| report.host == *host)
                .flat_map(|report| &report.services)
                .filter(|s| matches!(s.action, Done::Created | Done::Replaced | Done::Started))
                .collect();
            async move {
                let verdict = converge::await_docker_health(
                    &session.docker,
                    host,
                    &started,
                    &deployment.converge,
                    &bars[host],
                )
                .await;
                (host.clone(), verdict)
            }
        }))
        .await;
        for (host, verdict) in verdicts {
            if let Err(error) = verdict {
                bars[&host].finish("failed");
                failures.push((host, error));
            }
        }
    }
    for (host, session) in sessions {
        if !failures.iter().any(|(failed, _)| *failed == host) {
            bars[&host].finish("done");
        }
        // Best effort: the work is done; a master that does not exit cleanly is reaped
        // when the process ends.
        let _ = session.session.close().await;
    }
    if failures.is_empty() {
        Ok(done)
    } else {
        Err(DeployError { failures, done })
    }
}

/// A host converged a second time (Redis after the web hosts) is reported again only when
/// that second pass changed something; a web host's image-only report does not count as
/// its first. A prune is reported when it removed something.
fn repeats_nothing<'a>(
    done: impl IntoIterator<Item = &'a HostReport>,
    report: &HostReport,
) -> bool {
    let converged_before = done
        .into_iter()
        .any(|d| d.host == report.host && !d.services.is_empty());
    let pruned = report
        .pruned
        .as_ref()
        .is_some_and(|p| !p.removed.is_empty());
    converged_before && !pruned && report.services.iter().all(|s| s.action == Done::Unchanged)
}

async fn run_task(
    deployment: &Deployment<'_>,
    task: &HostTask,
    host: &ConnectedHost,
    bar: &HostProgress,
) -> Result<HostReport> {
    let name = task.host.as_str();
    let mut report = HostReport {
        host: name.to_owned(),
        services: Vec::new(),
        images_transferred: Vec::new(),
        reloaded: None,
        version: None,
        pruned: None,
    };
    let mut upload_changed = false;
    // Pull mode: whether this host's engine was made to trust the registry in this task.
    let mut trusted = false;
    for action in &task.actions {
        match action {
            Action::Image { image } => {
                let outcome = match &deployment.images {
                    Images::Ship(local) => {
                        images::ship(local, &host.docker, &host.session, image, bar).await?
                    }
                    Images::Pull => images::pull(&host.docker, name, image, bar).await?,
                    Images::Registry(source) => {
                        if !trusted {
                            source.trust(&host.session, &host.docker, bar).await?;
                            trusted = true;
                        }
                        source.fetch(&host.docker, name, image, bar).await?
                    }
                };
                match outcome {
                    ShipOutcome::AlreadyPresent { .. } => {}
                    ShipOutcome::Shipped { bytes, via, .. } => {
                        let how = match via {
                            Via::Registry => "only missing layers, through its loopback registry",
                            Via::Export => "exported whole",
                        };
                        bar.note(format!(
                            "shipped {image}: {:.1} MB sent ({how})",
                            bytes as f64 / 1e6
                        ));
                        report.images_transferred.push(image.clone());
                    }
                    ShipOutcome::Pulled { downloaded, .. } => {
                        bar.note(format!(
                            "pulled {image}: {:.1} MB downloaded (only layers it lacked)",
                            downloaded as f64 / 1e6
                        ));
                        report.images_transferred.push(image.clone());
                    }
                }
            }
            Action::TagVersion { image } => {
                let version = versions::tag_version(&host.docker, name, image).await?;
                bar.note(format!("{image} is version {version}"));
                report.version = Some(WebVersion::Tagged(version));
            }
            Action::UseVersion { image, version } => {
                bar.step(format!("putting version {version} back as {image}"));
                versions::use_version(&host.docker, name, image, version).await?;
                report.version = Some(WebVersion::PutBack(version.clone()));
            }
            Action::PruneVersions { image, retain } => {
                bar.step(format!("pruning versions beyond the newest {retain}"));
                let pruned = versions::prune(&host.docker, name, image, *retain).await?;
                for version in &pruned.removed {
                    bar.note(format!(
                        "pruned {}",
                        versions::kept_reference(image, version)
                    ));
                }
                report.pruned = Some(pruned);
            }
            Action::Upload { file, remote } => {
                let contents = read(name, &deployment.render_root, file)?;
                bar.step(format!("uploading {}", remote));
                if host.session.upload(remote, contents.as_bytes()).await? == UploadOutcome::Written
                {
                    upload_changed = true;
                }
            }
            Action::Converge {
                services,
                defer_replace,
            } => {
                let options = ConvergeOptions {
                    defer_replace: *defer_replace,
                    ..deployment.converge.clone()
                };
                let services = converge::converge(
                    &host.docker,
                    name,
                    services,
                    &deployment.secrets,
                    &options,
                    bar,
                )
                .await?;
                report.services.extend(services);
            }
            Action::AcceptRedisPassword { container } => {
                accept_redis_password(deployment, host, name, container, bar).await?;
            }
            Action::SettleAfterReplace { seconds } => {
                let restarted = report
                    .services
                    .iter()
                    .any(|s| matches!(s.action, Done::Replaced | Done::Started));
                if restarted {
                    bar.step(format!(
                        "waiting {seconds}s for the load balancer to route here again"
                    ));
                    tokio::time::sleep(std::time::Duration::from_secs(u64::from(*seconds))).await;
                }
            }
            Action::ReloadOnChange { container, command } => {
                let untouched = report
                    .services
                    .iter()
                    .any(|s| s.container == *container && s.action == Done::Unchanged);
                if upload_changed && untouched {
                    converge::exec_in(&host.docker, name, container, command).await?;
                    report.reloaded = Some(container.clone());
                }
            }
        }
    }
    bar.step(report.summary());
    Ok(report)
}

/// Adds the spec's Redis password to the running Redis' default user, keeping the one it
/// has. redis-cli runs authenticated with the container's own password file
/// ([`redis_cli`]); the new password is one argument, never shell text, and errors show
/// the command without it. Nothing to do when the running Redis already takes it.
async fn accept_redis_password(
    deployment: &Deployment<'_>,
    host: &ConnectedHost,
    name: &str,
    container: &str,
    bar: &HostProgress,
) -> Result<()> {
    if !converge::is_running_named(&host.docker, name, container).await? {
        return Ok(());
    }
    let wanted = deployment.secrets.get(REDIS_PASSWORD_VAR).ok_or_else(|| {
        ExecError::UnresolvedVariable {
            host: name.to_owned(),
            service: container.to_owned(),
            field: "password".into(),
            variable: REDIS_PASSWORD_VAR.into(),
        }
    })?;
    let port = REDIS_PORT.to_string();
    let cli = |args: &[&str]| redis_cli(&[&["-h", "127.0.0.1", "-p", &port], args].concat());
    let run = |command: Vec<String>, shown: &'static str| async move {
        converge::exec_in_shown_as(&host.docker, name, container, &command, shown).await
    };
    // redis-cli exits 0 on an error reply: only "OK" means yes.
    let takes_it = run(
        cli(&["AUTH", "default", wanted]),
        "redis-cli AUTH default (new password)",
    )
    .await?;
    if takes_it.trim() == "OK" {
        return Ok(());
    }
    bar.step("redis: accepting the new password beside the old one");
    let shown = "redis-cli ACL SETUSER default on >(new password)";
    let password = format!(">{wanted}");
    let answer = run(cli(&["ACL", "SETUSER", "default", "on", &password]), shown).await?;
    if answer.trim() == "OK" {
        Ok(())
    } else {
        Err(ExecError::Service {
            host: name.to_owned(),
            service: container.to_owned(),
            operation: shown.into(),
            message: answer.trim().to_owned(),
        })
    }
}

fn read(host: &str, root: &Path, file: &Path) -> Result<String> {
    let path = root.join(file);
    std::fs::read_to_string(&path)
        .map_err(|e| ExecError::io(host, format!("read {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, action: Done) -> ServiceReport {
        ServiceReport {
            service: name.into(),
            container: name.into(),
            action,
        }
    }

    #[test]
    fn only_a_second_converge_that_changed_nothing_goes_unreported() {
        let report = |host: &str, services| HostReport {
            host: host.into(),
            services,
            images_transferred: Vec::new(),
            reloaded: None,
            version: None,
            pruned: None,
        };
        let images_only = report("web1", Vec::new());
        let web_unchanged = report("web1", vec![service("web", Done::Unchanged)]);
        assert!(!repeats_nothing(
            std::slice::from_ref(&images_only),
            &web_unchanged
        ));
        let redis_first = report("redis", vec![service("redis", Done::Deferred)]);
        let redis_again = report("redis", vec![service("redis", Done::Unchanged)]);
        let redis_replaced = report("redis", vec![service("redis", Done::Replaced)]);
        assert!(repeats_nothing(
            &[images_only.clone(), redis_first.clone()],
            &redis_again
        ));
        assert!(!repeats_nothing(&[redis_first], &redis_replaced));
        assert!(!repeats_nothing(&[], &redis_again));
    }

    #[test]
    fn a_prune_is_reported_when_it_removed_something() {
        let v = |t: &str| Version::from_tag(t).expect("version");
        let (a, b, c) = (v("aaaaaaaaaaaa"), v("bbbbbbbbbbbb"), v("cccccccccccc"));
        let converged = HostReport {
            host: "web1".into(),
            services: vec![service("web", Done::Replaced)],
            images_transferred: Vec::new(),
            reloaded: None,
            version: None,
            pruned: None,
        };
        let prune = |removed: Vec<Version>| HostReport {
            services: Vec::new(),
            pruned: Some(Pruned {
                removed,
                kept: vec![c.clone(), b.clone()],
            }),
            ..converged.clone()
        };
        let done = std::slice::from_ref(&converged);
        assert!(repeats_nothing(done, &prune(Vec::new())));
        assert!(!repeats_nothing(done, &prune(vec![a.clone()])));
        assert_eq!(
            prune(vec![a.clone()]).summary(),
            "web1: pruned version aaaaaaaaaaaa (kept cccccccccccc, bbbbbbbbbbbb)"
        );
        assert_eq!(
            prune(vec![a.clone(), a]).summary(),
            "web1: pruned versions aaaaaaaaaaaa, aaaaaaaaaaaa (kept cccccccccccc, bbbbbbbbbbbb)"
        );
        assert_eq!(
            prune(Vec::new()).summary(),
            "web1: nothing to prune (kept cccccccccccc, bbbbbbbbbbbb)"
        );
        let shipped = HostReport {
            services: Vec::new(),
            images_transferred: vec!["clusterlab/webapp:latest".into()],
            version: Some(WebVersion::Tagged(c.clone())),
            ..converged.clone()
        };
        assert_eq!(
            shipped.summary(),
            "web1: clusterlab/webapp:latest transferred, version cccccccccccc"
        );
        let put_back = HostReport {
            services: Vec::new(),
            version: Some(WebVersion::PutBack(c)),
            ..converged
        };
        assert_eq!(
            put_back.summary(),
            "web1: kept version cccccccccccc put back"
        );
    }

    #[test]
    fn summaries_name_the_host_and_each_service() {
        let report = HostReport {
            host: "lb".into(),
            services: vec![service("nginx", Done::Unchanged)],
            images_transferred: Vec::new(),
            reloaded: Some("nginx".into()),
            version: None,
            pruned: None,
        };
        assert_eq!(report.summary(), "lb: nginx unchanged, nginx reloaded");
        let images_only = HostReport {
            host: "web1".into(),
            services: Vec::new(),
            images_transferred: vec!["clusterlab/webapp:latest".into()],
            reloaded: None,
            version: None,
            pruned: None,
        };
        assert_eq!(
            images_only.summary(),
            "web1: clusterlab/webapp:latest transferred"
        );
    }
}
