//! CLI layer: the web app's kept versions. `provisioner versions` lists, per web host, the
//! versions it keeps (newest first) and the one it runs, and where `rollback` would go.
//! [`deploy_kept`] is what `deploy --version` and `rollback` share: under the deploy lock,
//! every web host must keep the version (else nothing changes), then the deploy executor
//! rolls it out one web host at a time, health-gated, like any deploy.

use futures_util::future::join_all;

use crate::exec::converge::ConvergeOptions;
use crate::exec::deploy::{self, Deployment, Images};
use crate::exec::docker;
use crate::exec::progress::Progress;
use crate::exec::ssh::RetryPolicy;
use crate::exec::versions;
use crate::plan::deploy::version_plan;
use crate::plan::lifecycle::{rfc3339, AuditEntry};
use crate::plan::services::services;
use crate::plan::versions::{previous, require_everywhere, HostVersions, Version};
use crate::spec::{Cluster, FileCheck, Host, Role};

use super::context::{self, Project};
use super::lifecycle::{self, connect_load_balancer};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    context::runtime()?.block_on(async {
        let retry = context::inspect_retry();
        let hosts = survey(&cluster, &project, &retry).await?;
        print!("{}", describe(&hosts, cluster.app.retain));
        let audit = async {
            let session = connect_load_balancer(&cluster, &project, &retry).await?;
            let entries = crate::exec::lifecycle::read_audit(&session, None).await;
            let _ = session.close().await;
            Ok::<_, CliError>(readable(entries?))
        };
        match audit.await {
            Ok(audit) => println!("{}", rollback_line(&audit, &hosts)),
            Err(error) => println!("rollback: the audit log cannot be read: {error}"),
        }
        Ok(())
    })
}

/// The audit log's entries that parse; the others are named on stderr.
pub fn readable(entries: Vec<Result<AuditEntry, String>>) -> Vec<AuditEntry> {
    entries
        .into_iter()
        .filter_map(|entry| entry.map_err(|e| eprintln!("warning: {e}")).ok())
        .collect()
}

/// Where `rollback` without a version would go, or why it cannot.
fn rollback_line(audit: &[AuditEntry], hosts: &[HostVersions]) -> String {
    let running: Vec<Option<Version>> = hosts.iter().map(|h| h.running.clone()).collect();
    match previous(audit, &running)
        .and_then(|target| require_everywhere(hosts, &target).map(|()| target))
    {
        Ok(target) => format!("`provisioner rollback` goes to {target}"),
        Err(error) => format!(
            "`provisioner rollback` cannot: {}",
            error.to_string().lines().next().unwrap_or_default()
        ),
    }
}

/// Per web host: its kept versions, newest first, the running one marked.
fn describe(hosts: &[HostVersions], retain: u32) -> String {
    let mut text = String::new();
    for host in hosts {
        text.push_str(&format!(
            "{}: {} version(s) kept (app.retain: {retain})\n",
            host.host,
            host.retained.len()
        ));
        for kept in &host.retained {
            let created = kept
                .created
                .as_ref()
                .map_or_else(|| "(time unknown)".to_owned(), rfc3339);
            let running = if host.running.as_ref() == Some(&kept.version) {
                "  running"
            } else {
                ""
            };
            text.push_str(&format!("  {}  {created}{running}\n", kept.version));
        }
        match &host.running {
            None => text.push_str("  (no web container)\n"),
            Some(version) if !host.keeps(version) => text.push_str(&format!(
                "  {version}  running, not kept (deployed before versions were kept)\n"
            )),
            Some(_) => {}
        }
    }
    text
}

/// The web container's name on `host` (the service that runs the spec's web image).
fn web_container(cluster: &Cluster, host: &Host) -> String {
    services(cluster, host)
        .into_iter()
        .find(|s| s.image == cluster.images.webapp)
        .map_or_else(|| "web".to_owned(), |s| s.container_name)
}

/// What every web host keeps, at once; an unreachable host fails it (what it keeps cannot
/// be known).
pub async fn survey(
    cluster: &Cluster,
    project: &Project,
    retry: &RetryPolicy,
) -> Result<Vec<HostVersions>, CliError> {
    let targets = context::targets(cluster, project);
    let web: Vec<&Host> = cluster.hosts_with(Role::Web).collect();
    let found = join_all(web.iter().map(|host| {
        let target = &targets[&host.name];
        async move {
            let connected = docker::connect(target, retry).await?;
            let found = versions::survey(
                &connected.docker,
                &host.name,
                &cluster.images.webapp,
                &web_container(cluster, host),
            )
            .await;
            let _ = connected.session.close().await;
            found
        }
    }))
    .await;
    found
        .into_iter()
        .map(|result| result.map_err(CliError::from))
        .collect()
}

/// Which version [`deploy_kept`] deploys.
#[derive(Debug, Clone)]
pub enum Wanted {
    /// This one (`deploy --version V`, `rollback V`).
    Named(Version),
    /// The one deployed before the running one ([`previous`]; `rollback`).
    Previous,
}

/// Takes the deploy lock for `command`, finds the version, refuses it unless every web host
/// keeps it, rolls it out, and records the outcome (with the version) in the audit log.
pub fn deploy_kept(
    cli: &Cli,
    command: &str,
    message: Option<String>,
    wanted: &Wanted,
) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    let deployed = context::runtime()?.block_on(async {
        let retry = context::inspect_retry();
        let lock = lifecycle::take(&cluster, &project, command, message, &retry).await?;
        // Named, the version is known (and audited) even when a host cannot be surveyed.
        let mut version = match wanted {
            Wanted::Named(target) => Some(target.to_string()),
            Wanted::Previous => None,
        };
        let result = async {
            let hosts = survey(&cluster, &project, &retry).await?;
            let target = match wanted {
                Wanted::Named(target) => target.clone(),
                Wanted::Previous => {
                    let running: Vec<Option<Version>> =
                        hosts.iter().map(|h| h.running.clone()).collect();
                    previous(&lock.audit().await?, &running)?
                }
            };
            version = Some(target.to_string());
            require_everywhere(&hosts, &target)?;
            eprintln!("{command}: version {target}, one web host at a time");
            roll_out(&cluster, &project, &target).await?;
            Ok(target)
        }
        .await;
        lock.finish(&result, version).await;
        result
    })?;
    println!(
        "{command}: version {deployed} runs on every web host; done in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The version plan through the one deploy executor.
async fn roll_out(cluster: &Cluster, project: &Project, version: &Version) -> Result<(), CliError> {
    context::render(cluster, project)?;
    let plan = version_plan(cluster, version);
    let deployment = Deployment {
        plan: &plan,
        targets: context::targets(cluster, project),
        render_root: project.spec_dir.clone(),
        secrets: context::secrets(cluster, project)?,
        // The plan brings no image: every host already keeps the version.
        images: Images::Pull,
        converge: ConvergeOptions::default(),
        retry: context::inspect_retry(),
    };
    deploy::run(&deployment, &Progress::stderr(), |report| {
        println!("{}", report.summary())
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::versions::Retained;

    fn v(text: &str) -> Version {
        Version::from_tag(text).expect("version")
    }

    fn host(name: &str, kept: &[&str], running: Option<&str>) -> HostVersions {
        HostVersions {
            host: name.into(),
            retained: kept
                .iter()
                .map(|k| Retained {
                    version: v(k),
                    created: Some("2025-05-01T10:00:00Z".parse().expect("time")),
                })
                .collect(),
            running: running.map(v),
        }
    }

    const B: &str = "bbbbbbbbbbbb";
    const C: &str = "cccccccccccc";

    #[test]
    fn the_listing_marks_what_runs() {
        let hosts = [
            host("web1", &[C, B], Some(C)),
            host("web2", &[B], Some(C)),
            host("web3", &[], None),
        ];
        assert_eq!(
            describe(&hosts, 2),
            "web1: 2 version(s) kept (app.retain: 2)\n  \
             cccccccccccc  2025-05-01T10:00:00Z  running\n  \
             bbbbbbbbbbbb  2025-05-01T10:00:00Z\n\
             web2: 1 version(s) kept (app.retain: 2)\n  \
             bbbbbbbbbbbb  2025-05-01T10:00:00Z\n  \
             cccccccccccc  running, not kept (deployed before versions were kept)\n\
             web3: 0 version(s) kept (app.retain: 2)\n  (no web container)\n"
        );
    }

    #[test]
    fn the_rollback_line_says_where_or_why_not() {
        let audit = |versions: &[&str]| -> Vec<AuditEntry> {
            versions
                .iter()
                .map(|x| AuditEntry::now("a@b".into(), "deploy", Some((*x).into()), None, None))
                .collect()
        };
        let both = [
            host("web1", &[C, B], Some(C)),
            host("web2", &[C, B], Some(C)),
        ];
        assert_eq!(
            rollback_line(&audit(&[B, C]), &both),
            "`provisioner rollback` goes to bbbbbbbbbbbb"
        );
        let one = [host("web1", &[C, B], Some(C)), host("web2", &[C], Some(C))];
        assert_eq!(
            rollback_line(&audit(&[B, C]), &one),
            "`provisioner rollback` cannot: version bbbbbbbbbbbb is not retained on web2: \
             it was pruned, or never deployed there."
        );
    }
}
