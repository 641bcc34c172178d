//! CLI layer: `provisioner destroy` — `terraform destroy`, then, for the local target, a
//! check of the local engine for anything of the cluster still there (VM containers, their
//! Docker volumes, the network), removed and reported; and the cluster's known_hosts file.

use std::time::Instant;

use crate::exec::{docker, local};
use crate::spec::{FileCheck, Target};

use super::context::{self, Project};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> Result<(), CliError> {
    let started = Instant::now();
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::SpecOnly)?;
    // The workspace may never have been rendered here (destroy after a failed first up).
    context::render(&cluster, &project)?;
    let terraform = project.terraform(&cluster, &context::public_key_text(&cluster, &project))?;
    context::runtime()?.block_on(async {
        let destroyed = async {
            terraform.init(context::terraform_line).await?;
            terraform.destroy(context::terraform_line).await
        }
        .await;
        // Swept even when terraform failed: a half-destroyed local cluster is exactly
        // what must not be left behind.
        if cluster.target == Target::Local {
            let engine = docker::connect_local().await?;
            let hosts: Vec<String> = cluster.hosts.iter().map(|h| h.name.clone()).collect();
            let found = local::find_leftovers(&engine, &cluster.name, &hosts).await?;
            if !found.is_empty() {
                eprintln!("removing leftovers of {}: {found}", cluster.name);
                local::remove_leftovers(&engine, &found).await?;
            }
            let after = local::find_leftovers(&engine, &cluster.name, &hosts).await?;
            if !after.is_empty() {
                return Err(CliError::Leftovers(after.to_string()));
            }
        }
        destroyed?;
        Ok::<_, CliError>(())
    })?;
    let known_hosts = project.known_hosts(&cluster);
    match std::fs::remove_file(&known_hosts) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CliError::Io {
                operation: format!("remove {}", known_hosts.display()),
                source,
            })
        }
    }
    println!(
        "destroy: done in {:.1}s; nothing of {} is left (containers, volumes, network, known_hosts)",
        started.elapsed().as_secs_f64(),
        cluster.name
    );
    Ok(())
}
