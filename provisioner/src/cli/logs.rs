//! CLI layer: `provisioner logs <host> [service] [--follow] [--tail N]` — a container's logs from the host's
//! engine over SSH (stdout to stdout, stderr to stderr). Without a service, the host's
//! only clusterlab container is meant; with several, the error lists them.

use std::io::Write;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use crate::exec::{converge, docker, ExecError};
use crate::spec::FileCheck;

use super::context::{self, Project};
use super::ssh::find_host;
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's name in cluster.yaml.
    pub host: String,
    /// The compose service (= container name); optional when the host runs one.
    pub service: Option<String>,
    /// Keep streaming new lines (no `-f`: that is the global `--spec`).
    #[arg(long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u32>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::SpecOnly)?;
    find_host(&cluster, &args.host)?;
    let target = context::targets(&cluster, &project)
        .remove(&args.host)
        .ok_or_else(|| CliError::UnknownHost(args.host.clone(), String::new()))?;
    context::runtime()?.block_on(async {
        let connected = docker::connect(&target, &context::inspect_retry()).await?;
        let container = match &args.service {
            Some(service) => service.clone(),
            None => {
                let statuses = converge::status(&connected.docker, &args.host).await?;
                match statuses.as_slice() {
                    [only] => only.container.clone(),
                    [] => {
                        return Err(CliError::Usage(format!(
                            "{} runs no clusterlab containers",
                            args.host
                        )))
                    }
                    many => {
                        return Err(CliError::Usage(format!(
                            "{} runs several containers; name one: {}",
                            args.host,
                            many.iter()
                                .map(|s| s.container.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                }
            }
        };
        let tail = args
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(args.follow)
            .tail(&tail)
            .build();
        let mut stream = connected.docker.logs(&container, Some(options));
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ExecError::Docker {
                host: args.host.clone(),
                operation: format!("logs of {container}"),
                source: e,
            })?;
            // A closed pipe (`logs ... | head`) just ends the output.
            let written = match chunk {
                LogOutput::StdErr { message } => stderr.write_all(&message),
                other => stdout.write_all(&other.into_bytes()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = stdout.flush();
        let _ = connected.session.close().await;
        Ok::<_, CliError>(())
    })
}
