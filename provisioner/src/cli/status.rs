//! CLI layer: `provisioner status` — every host at once: is SSH reachable, and each
//! clusterlab container with its image, state and health (Docker's status line). Exits
//! non-zero when a host is unreachable, so scripts can wait on it.

use futures_util::future::join_all;

use crate::exec::converge::{self, ServiceStatus};
use crate::exec::docker;
use crate::spec::FileCheck;

use super::context::{self, Project};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::SpecOnly)?;
    let targets = context::targets(&cluster, &project);
    let retry = context::inspect_retry();
    let results = context::runtime()?.block_on(join_all(cluster.hosts.iter().map(|host| {
        let target = &targets[&host.name];
        let retry = &retry;
        async move {
            let connected = docker::connect(target, retry).await?;
            let statuses = converge::status(&connected.docker, &host.name).await;
            let _ = connected.session.close().await;
            statuses
        }
    })));
    let mut unreachable = 0;
    for (host, result) in cluster.hosts.iter().zip(results) {
        let title = format!("{} ({}, {})", host.name, host.role.as_str(), host.ip);
        match result {
            Ok(statuses) => {
                println!("{title}: ssh ok");
                print_containers(&statuses);
            }
            Err(error) => {
                unreachable += 1;
                println!("{title}: unreachable: {error}");
            }
        }
    }
    if unreachable == 0 {
        Ok(())
    } else {
        Err(CliError::Unreachable(unreachable))
    }
}

fn print_containers(statuses: &[ServiceStatus]) {
    if statuses.is_empty() {
        println!("  (no containers)");
    }
    let width =
        |f: fn(&ServiceStatus) -> &str| statuses.iter().map(|s| f(s).len()).max().unwrap_or(0);
    let (c, i, s) = (
        width(|s| &s.container),
        width(|s| &s.image),
        width(|s| &s.state),
    );
    for status in statuses {
        println!(
            "  {:c$}  {:i$}  {:s$}  {}",
            status.container, status.image, status.state, status.status
        );
    }
}
