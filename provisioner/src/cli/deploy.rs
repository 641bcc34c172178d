//! CLI layer: `provisioner deploy` — the web app only, rolled one web host at a time
//! (re-render, rebuild/ship the app image if it changed, converge each web host and wait
//! for it to be healthy before the next).

use std::time::Instant;

use crate::exec::converge::ConvergeOptions;
use crate::exec::deploy::{self, Deployment, Images};
use crate::exec::docker;
use crate::exec::progress::Progress;
use crate::plan::deploy::{deploy_plan, Scope};
use crate::spec::{FileCheck, ImageMode};

use super::context::{self, Project};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> Result<(), CliError> {
    let started = Instant::now();
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    context::render(&cluster, &project)?;
    let plan = deploy_plan(&cluster, Scope::App);
    context::runtime()?.block_on(async {
        let progress = Progress::stderr();
        let images = if cluster.images.mode == ImageMode::Ship {
            let local = docker::connect_local().await?;
            context::ensure_local_images(&local, &cluster, &project, &plan, &progress).await?;
            Images::Ship(local)
        } else {
            Images::Pull
        };
        let deployment = Deployment {
            plan: &plan,
            targets: context::targets(&cluster, &project),
            render_root: project.spec_dir.clone(),
            secrets: context::secrets(&cluster, &project)?,
            images,
            converge: ConvergeOptions::default(),
            retry: context::inspect_retry(),
        };
        deploy::run(&deployment, &progress, |report| {
            println!("{}", report.summary())
        })
        .await?;
        Ok::<_, CliError>(())
    })?;
    println!("deploy: done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
