//! CLI layer: `provisioner status` — every host at once: is SSH reachable, and each
//! clusterlab container with its image, state and health (Docker's status line); then the
//! limiter's decisions by policy and outcome, summed over the web hosts with each one's
//! share, from every web host's `/metrics`. Exits non-zero when a host is unreachable, so
//! scripts can wait on it.

use futures_util::future::join_all;

use crate::exec::converge::{self, ServiceStatus};
use crate::exec::docker;
use crate::exec::ssh::HostSession;
use crate::exec::web::WebEndpoint;
use crate::exec::ExecError;
use crate::metrics::{PolicySummary, WebMetrics};
use crate::plan::WEB_PORT;
use crate::spec::{FileCheck, Host, Role};

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
            let metrics = match host.role {
                Role::Web => Some(scrape_metrics(&connected.session, host).await),
                _ => None,
            };
            let _ = connected.session.close().await;
            statuses.map(|statuses| (statuses, metrics))
        }
    })));
    let mut unreachable = 0;
    let mut scraped = Vec::new();
    let mut unscraped = Vec::new();
    for (host, result) in cluster.hosts.iter().zip(results) {
        let title = format!("{} ({}, {})", host.name, host.role.as_str(), host.ip);
        match result {
            Ok((statuses, metrics)) => {
                println!("{title}: ssh ok");
                print_containers(&statuses);
                match metrics {
                    Some(Ok(metrics)) => scraped.push((host.name.as_str(), metrics)),
                    Some(Err(error)) => unscraped.push(error),
                    None => {}
                }
            }
            Err(error) => {
                unreachable += 1;
                println!("{title}: unreachable: {error}");
            }
        }
    }
    print_policies(&scraped, &unscraped);
    if unreachable == 0 {
        Ok(())
    } else {
        Err(CliError::Unreachable(unreachable))
    }
}

/// A web host's `/metrics`, through the session `status` already has to it.
async fn scrape_metrics(session: &HostSession, host: &Host) -> Result<WebMetrics, ExecError> {
    let endpoint = WebEndpoint::connect(session, &host.ip.to_string(), WEB_PORT).await?;
    Ok(WebMetrics::parse(&endpoint.get_text("/metrics").await?))
}

/// The per-policy table of the web hosts that answered, then why the others did not.
fn print_policies(scraped: &[(&str, WebMetrics)], unscraped: &[ExecError]) {
    if !scraped.is_empty() {
        let hosts: Vec<_> = scraped
            .iter()
            .map(|(host, metrics)| (*host, metrics))
            .collect();
        let names: Vec<_> = scraped.iter().map(|(host, _)| *host).collect();
        println!(
            "limiter decisions by policy, summed over {}:",
            names.join(", ")
        );
        print!("{}", PolicySummary::gather(&hosts));
    }
    for error in unscraped {
        println!("no limiter decisions from {error}");
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
