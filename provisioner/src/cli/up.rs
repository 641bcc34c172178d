//! CLI layer: `provisioner up` — validate, render, build what the hosts need, start local
//! VMs that stopped, `terraform plan` and, when it changes anything, show it and apply that
//! saved plan (never replacing a data host without consent), check the hosts terraform
//! reports against the spec, take the deploy lock, deploy every service in the planned
//! order (recorded in the audit log), and print the shortener's URL. The data stores are
//! deployed while cargo still compiles the web app.

use std::time::Instant;

use crate::changes;
use crate::exec::converge::ConvergeOptions;
use crate::exec::deploy::{self, Deployment, HostReport};
use crate::exec::progress::{HostProgress, Progress};
use crate::exec::ssh::{self, RetryPolicy};
use crate::exec::terraform::{Terraform, TerraformHost};
use crate::exec::{docker, local};
use crate::plan::deploy::{deploy_plan, DeployPlan, Scope};
use crate::spec::{Cluster, FileCheck, Role, Target};

use super::context::{self, Project};
use super::{lifecycle, load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Consent to replace or destroy this data host (postgres or redis role) when the
    /// plan needs it, e.g. after changing its IP. Its data survives on its data storage.
    /// Repeat for several hosts.
    #[arg(long = "allow-replace", value_name = "HOST")]
    pub allow_replace: Vec<String>,
    /// Why: shown to whoever finds the cluster locked meanwhile, and kept in the audit log.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let started = Instant::now();
    let project = Project::new(cli);
    // Spec-only first: the local target creates the key and secret files itself.
    let cluster = load(cli, FileCheck::SpecOnly)?;
    let runtime = context::runtime()?;
    let public_key = match cluster.target {
        Target::Local => runtime.block_on(context::prepare_local(&cluster, &project))?,
        Target::Proxmox => context::public_key_text(&cluster, &project),
    };
    let cluster = load(cli, FileCheck::RequireFiles)?;
    let changed = context::render(&cluster, &project)?;
    eprintln!("rendered files ({changed} changed)");
    runtime.block_on(up(&cluster, &project, &public_key, args))?;
    println!(
        "up: done in {:.1}s; the shortener is at {}",
        started.elapsed().as_secs_f64(),
        shortener_url(&cluster)
    );
    Ok(())
}

async fn up(
    cluster: &Cluster,
    project: &Project,
    public_key: &str,
    args: &Args,
) -> Result<(), CliError> {
    for host in &args.allow_replace {
        super::ssh::find_host(cluster, host)?;
    }
    let progress = Progress::stderr();
    let plan = deploy_plan(cluster, Scope::All);
    // The engine that builds the images, and runs the local target's VMs.
    let local = if context::builds_images(cluster) || cluster.target == Target::Local {
        Some(docker::connect_local().await?)
    } else {
        None
    };
    let local_bar = progress.host("local");
    // Side by side: the machines (the VM image, then terraform), the service images, and
    // the web app's binary by cargo, the long part on a cold run. A host problem (consent
    // needed, say) stops the builds at once; terraform is never interrupted (killed
    // mid-apply it would leave its state behind), so a failed build waits for it.
    let terraform = project.terraform(cluster, public_key)?;
    let hosts = make_hosts(
        cluster,
        project,
        &terraform,
        local.as_ref(),
        &args.allow_replace,
        &progress,
    );
    let services = async {
        match &local {
            Some(local) => {
                context::ensure_service_images(local, cluster, project, &plan, &local_bar).await
            }
            None => Ok(()),
        }
    };
    let binary = context::build_web_binary(cluster, project, &plan, &progress);
    tokio::pin!(hosts, services, binary);
    let (mut made, mut serviced, mut built) = (false, false, None);
    while !(made && serviced) {
        let failed_build = tokio::select! {
            result = &mut hosts, if !made => {
                result?;
                made = true;
                None
            }
            result = &mut services, if !serviced => {
                serviced = result.is_ok();
                result.err()
            }
            result = &mut binary, if built.is_none() => match result {
                Ok(found) => {
                    built = Some(found);
                    None
                }
                Err(error) => Some(error),
            },
        };
        if let Some(error) = failed_build {
            if !made {
                let _ = (&mut hosts).await;
            }
            return Err(error);
        }
    }

    // While cargo may still compile: the deploy lock (it lives on the load balancer host,
    // so only now can it be taken; terraform's own state lock guarded the apply), then the
    // data stores, which need nothing of the web app.
    let retry = RetryPolicy::default();
    let (data_plan, web_plan) = plan.split_before_image(&cluster.images.webapp);
    let data_stores = async {
        let lock = lifecycle::take(cluster, project, "up", args.message.clone(), &retry).await?;
        let deployed = deploy_part(
            cluster,
            project,
            local.as_ref(),
            &data_plan,
            &[],
            &retry,
            &progress,
        )
        .await;
        Ok::<_, CliError>((lock, deployed))
    };
    let (data_stores, built) = match built {
        Some(found) => (data_stores.await, Ok(found)),
        None => {
            tokio::pin!(data_stores);
            tokio::select! {
                done = &mut data_stores => match done {
                    // Nothing to build the web app for: dropping the build stops cargo.
                    Err(_) | Ok((_, Err(_))) => (done, Ok(None)),
                    Ok(_) => (done, binary.await),
                },
                // A deploy is never interrupted either: a failed build waits for it.
                found = &mut binary => (data_stores.await, found),
            }
        }
    };
    let (lock, deployed) = data_stores?;
    let mut version = None;
    let result = async {
        let earlier = deployed?;
        if let (Some(local), Some(binary)) = (local.as_ref(), built?) {
            context::ensure_web_image(local, cluster, project, &binary, &local_bar).await?;
            version = lifecycle::local_web_version(local, cluster).await?;
        }
        local_bar.finish(if context::builds_images(cluster) {
            "images ready"
        } else {
            "nothing built here: the hosts pull the images by name"
        });
        deploy_part(
            cluster,
            project,
            local.as_ref(),
            &web_plan,
            &earlier,
            &retry,
            &progress,
        )
        .await?;
        Ok(())
    }
    .await;
    lock.finish(&result, version).await;
    result
}

/// Deploys one part of `up`'s plan; `earlier` is what the part before reported.
async fn deploy_part(
    cluster: &Cluster,
    project: &Project,
    local: Option<&bollard::Docker>,
    part: &DeployPlan,
    earlier: &[HostReport],
    retry: &RetryPolicy,
    progress: &Progress,
) -> Result<Vec<HostReport>, CliError> {
    let deployment = Deployment {
        plan: part,
        targets: context::targets(cluster, project),
        render_root: project.spec_dir.clone(),
        secrets: context::secrets(cluster, project)?,
        images: context::image_delivery(local, cluster, project, part, progress).await?,
        converge: ConvergeOptions::default(),
        retry: retry.clone(),
    };
    let reports = deploy::run_after(&deployment, earlier, progress, |report| {
        println!("{}", report.summary())
    })
    .await?;
    Ok(reports)
}

/// The saved plan file, inside the terraform workspace (git-ignored).
const PLAN_FILE: &str = "clusterlab.tfplan";

/// The hosts the spec describes: the local target's VM image, `terraform init`, local VMs
/// that stopped started again, the plan applied (with consent where it needs it), and the
/// hosts terraform reports checked against the spec. Its lines go above the progress bars.
async fn make_hosts(
    cluster: &Cluster,
    project: &Project,
    terraform: &Terraform,
    local: Option<&bollard::Docker>,
    allowed: &[String],
    progress: &Progress,
) -> Result<(), CliError> {
    if let Some(local) = local {
        context::ensure_vm_image(local, cluster, project, progress).await?;
    }
    let log = progress.host("terraform");
    terraform.init(|_, line| log.note(line)).await?;
    // A VM that died is brought back before terraform plans: a stopped one is started; a
    // missing one is re-created (its data volume survives and is reattached).
    let gone = match local {
        Some(engine) if cluster.target == Target::Local => {
            repair_local_vms(engine, cluster, &terraform.state_list().await?, &log).await?
        }
        _ => Vec::new(),
    };
    apply(cluster, project, terraform, &gone, allowed, &log, progress).await?;
    check_hosts(cluster, &terraform.output_hosts().await?)?;
    log.finish("hosts ready");
    Ok(())
}

/// Plans; when the plan changes anything, shows it, stops for consent where it would
/// replace or destroy a data host (or delete data), applies exactly that plan and forgets
/// the old host keys of every host it re-created.
async fn apply(
    cluster: &Cluster,
    project: &Project,
    terraform: &Terraform,
    gone: &[String],
    allowed: &[String],
    log: &HostProgress,
    progress: &Progress,
) -> Result<(), CliError> {
    let replace: Vec<String> = gone
        .iter()
        .map(|h| crate::plan::local_host_resource(h))
        .collect();
    log.step("terraform plan (reading the hosts' state)");
    if !terraform.plan(PLAN_FILE, &replace, |_, _| {}).await? {
        log.note("no changes to the hosts");
        return Ok(());
    }
    let changes = changes::parse_plan(&terraform.show_plan(PLAN_FILE).await?)
        .map_err(CliError::TerraformPlan)?;
    log.note(format!("plan: {}", changes::summary(&changes)));
    for change in &changes {
        log.note(format!("  {}", changes::describe(change)));
    }
    // A VM that is already gone is re-created, not taken away: its data is on its volume.
    let mut allowed = allowed.to_vec();
    allowed.extend(gone.iter().cloned());
    let blocked = changes::needing_consent(cluster, &changes, &allowed, false);
    if !blocked.is_empty() {
        // A host may have several blocked changes (its machine and its data disk).
        let mut hosts: Vec<String> = blocked.iter().filter_map(|c| c.host.clone()).collect();
        hosts.sort();
        hosts.dedup();
        let question = format!(
            "This would replace or destroy data host(s) {}:\n{}\nTheir data is kept on storage \
             that outlives the VM, but the services stop while it happens.",
            hosts.join(", "),
            blocked
                .iter()
                .map(|c| format!("  {}", changes::describe(c)))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let deletes_data = blocked.iter().any(|c| c.holds == changes::Holds::Data);
        if deletes_data || !progress.suspend(|| context::confirm(&question))? {
            return Err(CliError::NeedsConsent(format!(
                "{question}\nNo host was changed. {}",
                if deletes_data {
                    "`up` never deletes data storage: back it up (`provisioner backup`) and \
                     remove it with `provisioner destroy --delete-data`."
                        .to_owned()
                } else {
                    format!(
                        "To go ahead, back up first (`provisioner backup`) and run `provisioner up {}`.",
                        hosts
                            .iter()
                            .map(|h| format!("--allow-replace {h}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            )));
        }
    }
    terraform
        .apply_plan(PLAN_FILE, |_, line| log.note(line))
        .await?;
    let known_hosts = project.known_hosts(cluster);
    for name in changes::new_machines(&changes) {
        if let Some(host) = cluster.hosts.iter().find(|h| h.name == name) {
            ssh::forget_host_key(&known_hosts, &host.ip.to_string()).await?;
        }
    }
    Ok(())
}

/// Starts stopped VM containers and returns the hosts whose container is gone although
/// terraform's state has it (they must be re-created).
async fn repair_local_vms(
    engine: &bollard::Docker,
    cluster: &Cluster,
    state: &[String],
    log: &HostProgress,
) -> Result<Vec<String>, CliError> {
    let mut gone = Vec::new();
    for host in &cluster.hosts {
        if !state.contains(&crate::plan::local_host_resource(&host.name)) {
            continue;
        }
        let container = crate::plan::container_name(cluster, host);
        match local::vm_state(engine, &container).await? {
            local::VmState::Running => {}
            local::VmState::Stopped => {
                log.note(format!("{}: the VM was stopped; starting it", host.name));
                local::start_vm(engine, &container).await?;
            }
            local::VmState::Missing => {
                log.note(format!(
                    "{}: the VM is gone; terraform re-creates it",
                    host.name
                ));
                gone.push(host.name.clone());
            }
        }
    }
    Ok(gone)
}

/// Terraform made the hosts from the spec, so any difference means the state and the spec
/// disagree (an edited spec not applied, a hand-changed state): deploying then would go
/// to the wrong machines.
fn check_hosts(cluster: &Cluster, made: &[TerraformHost]) -> Result<(), CliError> {
    let mut problems = Vec::new();
    for host in &cluster.hosts {
        match made.iter().find(|m| m.name == host.name) {
            None => problems.push(format!("{} is missing", host.name)),
            Some(m) if m.ip != host.ip.to_string() => {
                problems.push(format!("{} has {} (spec: {})", host.name, m.ip, host.ip))
            }
            Some(_) => {}
        }
    }
    for m in made {
        if !cluster.hosts.iter().any(|h| h.name == m.name) {
            problems.push(format!("{} is not in the spec", m.name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::HostMismatch(problems.join("; ")))
    }
}

/// Where a browser reaches the shortener: the published port on this machine for the
/// local target, the load balancer's address otherwise.
pub fn shortener_url(cluster: &Cluster) -> String {
    match (cluster.target, cluster.the(Role::LoadBalancer)) {
        (Target::Local, _) | (_, None) => {
            format!("http://127.0.0.1:{}/", cluster.load_balancer.published_port)
        }
        (Target::Proxmox, Some(lb)) => format!("http://{}/", lb.ip),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn made(cluster: &Cluster) -> Vec<TerraformHost> {
        cluster
            .hosts
            .iter()
            .map(|h| TerraformHost {
                name: h.name.clone(),
                role: h.role.as_str().to_owned(),
                ip: h.ip.to_string(),
            })
            .collect()
    }

    #[test]
    fn terraform_hosts_must_match_the_spec() {
        let cluster = Cluster::repository_default();
        let mut hosts = made(&cluster);
        assert!(check_hosts(&cluster, &hosts).is_ok());
        hosts[1].ip = "10.77.0.99".into();
        hosts.retain(|h| h.name != "tester");
        hosts.push(TerraformHost {
            name: "stray".into(),
            role: "web".into(),
            ip: "10.77.0.50".into(),
        });
        let error = check_hosts(&cluster, &hosts).expect_err("mismatch");
        assert_eq!(
            error.to_string(),
            "terraform's hosts differ from cluster.yaml: web1 has 10.77.0.99 (spec: 10.77.0.11); \
             tester is missing; stray is not in the spec"
        );
    }

    #[test]
    fn the_local_shortener_is_on_the_published_port() {
        assert_eq!(
            shortener_url(&Cluster::repository_default()),
            "http://127.0.0.1:8080/"
        );
    }
}
