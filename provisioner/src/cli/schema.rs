//! CLI layer: `provisioner schema` — the JSON Schema of cluster.yaml, for editors
//! (e.g. `# yaml-language-server: $schema=cluster.schema.json`).

use crate::spec::Cluster;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> Result<(), CliError> {
    let schema = schemars::schema_for!(Cluster);
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(())
}
