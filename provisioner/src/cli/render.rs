//! CLI layer: `provisioner render [--check]` — plan the files from the spec, then write them
//! atomically or compare them with what is on disk. Touches no host.

use std::path::PathBuf;

use crate::output::{self, Drift};
use crate::plan;
use crate::spec::FileCheck;

use super::{load, spec_dir, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write nothing; exit non-zero and show a diff when the files on disk differ.
    #[arg(long)]
    pub check: bool,
    /// Root under which terraform/ and compose/ are written (default: the spec's directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let cluster = load(cli, FileCheck::SpecOnly)?;
    let files = plan::render(&cluster)?;
    let root = args.out.clone().unwrap_or_else(|| spec_dir(cli).to_owned());
    if args.check {
        let drift = output::check(&root, &files)?;
        for item in &drift {
            match item {
                Drift::Missing(path) => println!("missing: {}", path.display()),
                Drift::Stale(path) => println!("stale (no longer rendered): {}", path.display()),
                Drift::Changed { diff, .. } => print!("{diff}"),
            }
        }
        if drift.is_empty() {
            println!("{} rendered files are up to date", files.len());
            Ok(())
        } else {
            Err(CliError::Drift(drift.len()))
        }
    } else {
        let report = output::write_all(&root, &files)?;
        let shown = |path: &std::path::Path| root.join(path).display().to_string();
        for path in &report.written {
            println!("wrote {}", shown(path).trim_start_matches("./"));
        }
        for path in &report.removed {
            println!("removed stale {}", shown(path).trim_start_matches("./"));
        }
        println!(
            "{} files rendered ({} changed, {} unchanged)",
            files.len(),
            report.written.len(),
            report.unchanged.len()
        );
        Ok(())
    }
}
