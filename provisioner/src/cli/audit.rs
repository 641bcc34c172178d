//! CLI layer: `provisioner audit [--lines N]` — the last lines of the audit log on the load
//! balancer host, one per `up`, `deploy` and `rollback`: time, user, command, version,
//! result and message.

use crate::exec::lifecycle;
use crate::spec::FileCheck;

use super::context::{self, Project};
use super::lifecycle::connect_load_balancer;
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many of the last lines to show.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub lines: u32,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    context::runtime()?.block_on(async {
        let session = connect_load_balancer(&cluster, &project, &context::inspect_retry()).await?;
        let entries = lifecycle::read_audit(&session, Some(args.lines)).await;
        let _ = session.close().await;
        for entry in entries? {
            match entry {
                Ok(entry) => println!("{}", entry.describe()),
                Err(unreadable) => eprintln!("{unreadable}"),
            }
        }
        Ok(())
    })
}
