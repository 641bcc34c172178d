//! CLI layer: `provisioner ssh <host> [command...]` — the system `ssh` with the cluster's
//! key, user and known_hosts file, its stdio inherited; its exit code becomes ours.

use crate::plan::ssh_args;
use crate::spec::FileCheck;

use super::context::Project;
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's name in cluster.yaml.
    pub host: String,
    /// A command to run instead of a login shell.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    let host = find_host(&cluster, &args.host)?;
    let known_hosts = project.known_hosts(&cluster);
    if let Some(dir) = known_hosts.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
            operation: format!("create {}", dir.display()),
            source,
        })?;
    }
    let status = std::process::Command::new("ssh")
        .args(ssh_args(
            &cluster.ssh.user,
            &host.ip.to_string(),
            &project.private_key(&cluster),
            &known_hosts,
            &args.command,
        ))
        .status()
        .map_err(|source| CliError::Io {
            operation: "run ssh".into(),
            source,
        })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(CliError::Exit(u8::try_from(code).unwrap_or(1))),
        // Killed by a signal: ssh said nothing, so neither can we beyond failing.
        None => Err(CliError::Exit(255)),
    }
}

/// The spec's host called `name`, or an error listing the names there are.
pub fn find_host<'a>(
    cluster: &'a crate::spec::Cluster,
    name: &str,
) -> Result<&'a crate::spec::Host, CliError> {
    cluster
        .hosts
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| {
            CliError::UnknownHost(
                name.to_owned(),
                cluster
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}
