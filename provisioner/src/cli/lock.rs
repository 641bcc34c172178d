//! CLI layer: `provisioner lock status|release` — the deploy lock on the load balancer host
//! (see [`super::lifecycle`]): who holds it, since when, why, and whether its process still
//! runs; `release` removes it whoever holds it, without asking, and says whose it was.

use crate::exec::lifecycle;
use crate::spec::FileCheck;

use super::context::{self, Project};
use super::lifecycle::{connect_load_balancer, status_text};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Who holds the deploy lock, since when, their message, and whether it is stale.
    Status,
    /// Remove the deploy lock whoever holds it (a stale one, or one you must break).
    Release,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    context::runtime()?.block_on(async {
        let session = connect_load_balancer(&cluster, &project, &context::inspect_retry()).await?;
        let result = match args.action {
            Action::Status => lifecycle::status(&session)
                .await
                .map(|holder| println!("{}", status_text(holder.as_ref()))),
            Action::Release => lifecycle::release(&session)
                .await
                .map(|holder| match holder {
                    Some(holder) => println!("released the lock of {}", holder.describe()),
                    None => println!("the cluster was not locked"),
                }),
        };
        let _ = session.close().await;
        Ok(result?)
    })
}
