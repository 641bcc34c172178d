//! CLI layer: `provisioner destroy` — asks first (or needs `--yes`), then `terraform
//! destroy` of the hosts, keeping the data (Proxmox data disks, the local target's data
//! volumes) unless `--delete-data`; for the local target, a check of the local engine for
//! anything of the cluster still there, removed and reported; and the cluster's
//! known_hosts file. The load balancer's audit log is copied to this machine first, and
//! destroy's own line appended to that copy.

use std::time::Instant;

use crate::changes::{self, Holds};
use crate::exec::{docker, local};
use crate::spec::{Cluster, FileCheck, Target};

use super::context::{self, Project};
use super::{lifecycle, load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go ahead without asking (required when no terminal can answer).
    #[arg(long)]
    pub yes: bool,
    /// Also delete the data: PostgreSQL's links and Redis' counters, on the data volumes
    /// (local) or data disks (Proxmox). Back up first: `provisioner backup`.
    #[arg(long)]
    pub delete_data: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let started = Instant::now();
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::SpecOnly)?;
    let what = describe(&cluster, args.delete_data);
    if !args.yes && !context::confirm(&format!("destroy would remove {what}."))? {
        return Err(CliError::NeedsConsent(format!(
            "destroy would remove {what}. Nothing was done: run `provisioner destroy --yes` \
             to go ahead{}.",
            if args.delete_data {
                ""
            } else {
                " (add --delete-data to delete the data too)"
            }
        )));
    }
    // The workspace may never have been rendered here (destroy after a failed first up).
    context::render(&cluster, &project)?;
    let terraform = project.terraform(&cluster, &context::public_key_text(&cluster, &project))?;
    let kept = context::runtime()?.block_on(async {
        lifecycle::save_audit_log(&cluster, &project).await;
        let destroyed = async {
            terraform.init(context::terraform_line).await?;
            let state = terraform.state_list().await?;
            let keeps_data =
                !args.delete_data && state.iter().any(|a| changes::holds(a) == Holds::Data);
            if !keeps_data {
                return terraform.destroy(&[], context::terraform_line).await;
            }
            // Everything but the data storage (nothing depends on it but the hosts,
            // which go anyway).
            let targets: Vec<String> = state
                .into_iter()
                .filter(|a| changes::holds(a) != Holds::Data)
                .collect();
            if targets.is_empty() {
                return Ok(());
            }
            terraform.destroy(&targets, context::terraform_line).await
        }
        .await;
        let failure = destroyed.as_ref().err().map(ToString::to_string);
        lifecycle::record_destroy(&cluster, &project, failure.as_deref());
        let mut kept = Vec::new();
        // Swept even when terraform failed: a half-destroyed local cluster is exactly
        // what must not be left behind.
        if cluster.target == Target::Local {
            let engine = docker::connect_local().await?;
            let mut volumes: Vec<String> = cluster
                .hosts
                .iter()
                .map(|h| crate::plan::volume_name(&cluster, h))
                .collect();
            let data: Vec<String> = cluster
                .hosts
                .iter()
                .filter_map(|h| crate::plan::data_volume_name(&cluster, h))
                .collect();
            if args.delete_data {
                volumes.extend(data.iter().cloned());
            }
            let found = local::find_leftovers(&engine, &cluster.name, &volumes).await?;
            if !found.is_empty() {
                eprintln!("removing leftovers of {}: {found}", cluster.name);
                local::remove_leftovers(&engine, &found).await?;
            }
            let after = local::find_leftovers(&engine, &cluster.name, &volumes).await?;
            if !after.is_empty() {
                return Err(CliError::Leftovers(after.to_string()));
            }
            if !args.delete_data {
                kept = local::find_leftovers(&engine, &cluster.name, &data)
                    .await?
                    .volumes;
            }
        }
        destroyed?;
        Ok::<_, CliError>(kept)
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
        "destroy: done in {:.1}s; the hosts of {} are gone (containers, engine volumes, \
         network, known_hosts)",
        started.elapsed().as_secs_f64(),
        cluster.name
    );
    if args.delete_data {
        println!("destroy: the data is deleted");
    } else if kept.is_empty() {
        println!(
            "destroy: data storage kept (delete it with `provisioner destroy --yes --delete-data`)"
        );
    } else {
        println!(
            "destroy: data kept in {} (`up` reattaches it; `destroy --yes --delete-data` deletes it)",
            kept.join(", ")
        );
    }
    Ok(())
}

/// What destroy removes, in words, for the question and the refusal.
fn describe(cluster: &Cluster, delete_data: bool) -> String {
    let hosts: Vec<&str> = cluster.hosts.iter().map(|h| h.name.as_str()).collect();
    let data: Vec<&str> = cluster
        .hosts
        .iter()
        .filter(|h| h.role.holds_data())
        .map(|h| h.name.as_str())
        .collect();
    let storage = match cluster.target {
        Target::Local => "volumes",
        Target::Proxmox => "disks",
    };
    if delete_data {
        format!(
            "every host of {} ({}) AND THE DATA on the data {storage} of {}",
            cluster.name,
            hosts.join(", "),
            data.join(", ")
        )
    } else {
        format!(
            "every host of {} ({}); the data {storage} of {} are kept",
            cluster.name,
            hosts.join(", "),
            data.join(", ")
        )
    }
}
