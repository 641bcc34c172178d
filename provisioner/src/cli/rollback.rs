//! CLI layer: `provisioner rollback [VERSION] [-m MESSAGE]` — back to the version deployed
//! before the running one (or to VERSION), one web host at a time, health-gated, under the
//! deploy lock and recorded in the audit log: the path of `deploy --version`
//! ([`super::versions::deploy_kept`]). Where "before" is, is
//! [`crate::plan::versions::previous`]'s rule.

use crate::plan::versions::Version;

use super::versions::{deploy_kept, Wanted};
use super::{Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The version to go back to (as `provisioner versions` lists them); default: the one
    /// deployed before the running one, from the audit log.
    pub version: Option<Version>,
    /// Why: shown to whoever finds the cluster locked meanwhile, and kept in the audit log.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let wanted = match &args.version {
        Some(version) => Wanted::Named(version.clone()),
        None => Wanted::Previous,
    };
    deploy_kept(cli, "rollback", args.message.clone(), &wanted)
}
