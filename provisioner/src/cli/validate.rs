//! CLI layer: `provisioner validate` — parse and check cluster.yaml, touching no host.

use crate::spec::FileCheck;

use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also require the SSH key files and `file:` secrets to exist (as `up` does).
    #[arg(long)]
    pub require_files: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let files = if args.require_files {
        FileCheck::RequireFiles
    } else {
        FileCheck::SpecOnly
    };
    let cluster = load(cli, files)?;
    println!(
        "{} is valid: cluster {} ({} target), {} hosts",
        cli.spec.display(),
        cluster.name,
        cluster.target.as_str(),
        cluster.hosts.len()
    );
    Ok(())
}
