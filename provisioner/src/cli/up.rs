//! CLI layer: `provisioner up` — validate, render, build what the hosts need, `terraform
//! init` + `apply` (output streamed), check the hosts terraform reports against the spec,
//! deploy every service in the planned order, and print the shortener's URL.

use std::time::Instant;

use crate::exec::converge::ConvergeOptions;
use crate::exec::deploy::{self, Deployment, Images};
use crate::exec::docker;
use crate::exec::progress::Progress;
use crate::exec::ssh::RetryPolicy;
use crate::exec::terraform::TerraformHost;
use crate::plan::deploy::{deploy_plan, Scope};
use crate::spec::{Cluster, FileCheck, ImageMode, Role, Target};

use super::context::{self, Project};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> Result<(), CliError> {
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
    runtime.block_on(up(&cluster, &project, &public_key))?;
    println!(
        "up: done in {:.1}s; the shortener is at {}",
        started.elapsed().as_secs_f64(),
        shortener_url(&cluster)
    );
    Ok(())
}

async fn up(cluster: &Cluster, project: &Project, public_key: &str) -> Result<(), CliError> {
    let progress = Progress::stderr();
    let plan = deploy_plan(cluster, Scope::All);
    let ships = cluster.images.mode == ImageMode::Ship;
    let local = if ships || cluster.target == Target::Local {
        Some(docker::connect_local().await?)
    } else {
        None
    };
    if let Some(local) = &local {
        context::ensure_vm_image(local, cluster, project, &progress).await?;
        context::ensure_local_images(local, cluster, project, &plan, &progress).await?;
    }

    let terraform = project.terraform(cluster, public_key)?;
    terraform.init(context::terraform_line).await?;
    terraform.apply(context::terraform_line).await?;
    check_hosts(cluster, &terraform.output_hosts().await?)?;

    let images = match (&local, ships) {
        (Some(local), true) => Images::Ship(local.clone()),
        _ => Images::Pull,
    };
    let deployment = Deployment {
        plan: &plan,
        targets: context::targets(cluster, project),
        render_root: project.spec_dir.clone(),
        secrets: context::secrets(cluster, project)?,
        images,
        converge: ConvergeOptions::default(),
        retry: RetryPolicy::default(),
    };
    deploy::run(&deployment, &progress, |report| {
        println!("{}", report.summary())
    })
    .await?;
    Ok(())
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
