//! CLI layer: `provisioner deploy` — the web app only, rolled one web host at a time
//! (re-render, rebuild/ship the app image if it changed, converge each web host and wait
//! for it to be healthy before the next), under the deploy lock and recorded in the audit
//! log (see [`super::lifecycle`]). With `--version`, a version the web hosts kept instead of
//! a new build, through [`super::versions::deploy_kept`].

use std::time::Instant;

use crate::exec::converge::ConvergeOptions;
use crate::exec::deploy::{self, Deployment};
use crate::exec::docker;
use crate::exec::progress::Progress;
use crate::plan::deploy::{deploy_plan, Scope};
use crate::plan::versions::Version;
use crate::spec::{Cluster, FileCheck};

use super::context::{self, Project};
use super::versions::{deploy_kept, Wanted};
use super::{lifecycle, load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Why: shown to whoever finds the cluster locked meanwhile, and kept in the audit log.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// Deploy this version, which every web host must keep (`provisioner versions` lists
    /// them), instead of building: rolled out like any deploy.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<Version>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    if let Some(version) = &args.version {
        let wanted = Wanted::Named(version.clone());
        return deploy_kept(cli, "deploy", args.message.clone(), &wanted);
    }
    let started = Instant::now();
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    context::runtime()?.block_on(async {
        let retry = context::inspect_retry();
        let lock =
            lifecycle::take(&cluster, &project, "deploy", args.message.clone(), &retry).await?;
        let mut version = None;
        let result = deploy(&cluster, &project, &mut version).await;
        lock.finish(&result, version).await;
        result
    })?;
    println!("deploy: done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The deploy itself; `version` is set as soon as the image to deploy is known.
async fn deploy(
    cluster: &Cluster,
    project: &Project,
    version: &mut Option<String>,
) -> Result<(), CliError> {
    context::render(cluster, project)?;
    let plan = deploy_plan(cluster, Scope::App);
    let progress = Progress::stderr();
    let local = if context::builds_images(cluster) {
        let local = docker::connect_local().await?;
        context::ensure_local_images(&local, cluster, project, &plan, &progress).await?;
        *version = lifecycle::local_web_version(&local, cluster).await?;
        Some(local)
    } else {
        None
    };
    let images =
        context::image_delivery(local.as_ref(), cluster, project, &plan, &progress).await?;
    let deployment = Deployment {
        plan: &plan,
        targets: context::targets(cluster, project),
        render_root: project.spec_dir.clone(),
        secrets: context::secrets(cluster, project)?,
        images,
        converge: ConvergeOptions::default(),
        retry: context::inspect_retry(),
    };
    deploy::run(&deployment, &progress, |report| {
        println!("{}", report.summary())
    })
    .await?;
    Ok(())
}
