//! CLI layer: `provisioner loadtest [script]` — k6 on the tester host against the load
//! balancer, its progress streamed, its outputs saved under `reports/` with a chart and a page
//! of its own, and a verdict on the limiter's exactness, errors and latency. Exits 0 only
//! when the verdict holds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::exec::ssh::{HostSession, UploadOutcome};
use crate::exec::{docker, images, loadtest};
use crate::plan::loadtest::{self as plan, LoadTestRequest, REPORT, SAMPLES, SUMMARY};
use crate::report::{self, Page, CHART, INDEX, VERDICT};
use crate::spec::{FileCheck, Role};
use crate::verdict::{self, K6Run, Thresholds};

use super::context::{self, Project};
use super::{load, Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A script under k6/: rate-test.js, burst.js, rolling.js or multi-client.js.
    #[arg(default_value = "rate-test.js")]
    pub script: String,
    /// Client addresses to send from; above 1 the tester gets extra addresses on the
    /// cluster network and k6 binds them (`--local-ips`), each with its own budget.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// A variable for the script, e.g. `-e HOLD_SECONDS=20` (repeatable).
    #[arg(short = 'e', long = "env", value_parser = key_value)]
    pub env: Vec<(String, String)>,
    /// The p95 latency the verdict allows, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub p95_ms: u64,
    /// Where the run's folder (samples, summary, HTML report, verdict) is written.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, found {text:?}")),
    }
}

pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    let request = LoadTestRequest {
        script: args.script.clone(),
        clients: args.clients,
        env: args.env.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    let test = plan::plan(&cluster, &request)?;
    let k6_dir = project.project_dir.join("k6");
    let scripts = ["lib.js", test.script.as_str()]
        .into_iter()
        .map(|name| {
            let path = k6_dir.join(name);
            std::fs::read(&path)
                .map(|bytes| (name.to_owned(), bytes))
                .map_err(|source| CliError::Io {
                    operation: format!("read {}", path.display()),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tester = cluster
        .the(Role::LoadTester)
        .expect("plan checked the tester exists");
    let password = cluster.secrets.redis_password.resolve(&project.spec_dir)?;
    let targets = context::targets(&cluster, &project);
    let k6 = images::find_k6_binary()?;
    eprintln!(
        "k6 {} on {} ({}) against the load balancer, clients: {}",
        test.script,
        tester.name,
        tester.ip,
        test.clients
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let outputs = context::runtime()?.block_on(async {
        let retry = context::inspect_retry();
        // The budgets live on the primary; a Sentinel group's replicas refuse writes.
        let redis = context::redis_primary(&cluster, &targets, &password).await?;
        let store = docker::connect(&targets[&redis.name], &retry).await?;
        let reset = loadtest::reset_budgets(&store.docker, &redis.name, &test.budget_keys).await;
        let _ = store.session.close().await;
        reset?;
        let session = HostSession::connect(&targets[&tester.name], &retry).await?;
        let outputs = async {
            if loadtest::install_k6(&session, &k6).await? == UploadOutcome::Written {
                eprintln!("{}: installed k6 at {}", tester.name, loadtest::K6_REMOTE);
            }
            loadtest::run(&session, &test, tester.ip, &scripts, |line| {
                eprintln!("  k6 | {line}")
            })
            .await
        }
        .await;
        let _ = session.close().await;
        outputs
    })?;

    let folder = args.reports.join(format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        test.script.trim_end_matches(".js")
    ));
    let mut files = vec![(SAMPLES, &outputs.samples), (SUMMARY, &outputs.summary)];
    if let Some(report) = &outputs.report {
        files.push((REPORT, report));
    }
    let run = K6Run::read(
        outputs.samples.as_bytes(),
        Some(outputs.summary.as_str()).filter(|s| !s.is_empty()),
        outputs.exit_code,
        &tester.ip.to_string(),
    )?;
    let verdict = verdict::judge(
        &run,
        &cluster.app.limiter,
        Thresholds {
            p95: Duration::from_millis(args.p95_ms),
        },
    )?;
    let text = format!("{verdict}\n");
    let chart = report::chart(&run, &cluster.app.limiter, &verdict)?;
    let run_name = folder
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let page = report::page(
        &Page {
            title: &format!("{} ({run_name})", test.script),
            chart: CHART,
            k6_report: outputs.report.is_some().then_some(REPORT),
        },
        &verdict,
    )?;
    let mut written = files;
    written.push((VERDICT, &text));
    written.push((CHART, &chart));
    written.push((INDEX, &page));
    let write_error = |path: &std::path::Path| {
        let operation = format!("write {}", path.display());
        move |source| CliError::Io { operation, source }
    };
    std::fs::create_dir_all(&folder).map_err(write_error(&folder))?;
    for (name, contents) in &written {
        let path = folder.join(name);
        std::fs::write(&path, contents).map_err(write_error(&path))?;
    }
    println!(
        "{text}reports: {}\nchart and verdict on one page: {}",
        folder.display(),
        folder.join(INDEX).display()
    );
    if outputs.report.is_none() {
        println!("(k6 wrote no HTML report of its own: the run was too short for its dashboard)");
    }
    if verdict.holds() {
        Ok(())
    } else {
        Err(CliError::VerdictFailed)
    }
}
