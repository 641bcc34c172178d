//! CLI layer: the `provisioner` command line. One enum of subcommands, one module per
//! command; each command returns `Result<(), CliError>` and [`run`] maps that to an exit code.
//! The commands that touch hosts (`up`, `deploy`, `status`, `top`, `logs`, `ssh`,
//! `destroy`) share [`context`]; those that change the cluster (`up`, `deploy`, `rollback`)
//! take the deploy lock and write the audit log through [`lifecycle`]; `deploy --version` and
//! `rollback` deploy a version the web hosts kept through [`versions`].

mod audit;
mod backup;
mod context;
mod deploy;
mod destroy;
mod lifecycle;
mod limiter;
mod loadtest;
mod lock;
mod logs;
mod render;
mod rollback;
mod schema;
mod ssh;
mod status;
mod top;
mod up;
mod validate;
mod versions;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::OutputError;
use crate::plan::PlanError;
use crate::spec::{Cluster, FileCheck, LoadError};

/// Exit code for an invalid cluster.yaml (usage errors from clap use it too).
pub const EXIT_INVALID_SPEC: u8 = 2;
/// Exit code when a destructive step was refused for lack of consent (nothing changed).
pub const EXIT_NEEDS_CONSENT: u8 = 3;
/// Exit code when the deploy lock is held by someone else (nothing changed).
pub const EXIT_LOCKED: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "provisioner",
    version,
    about = "clusterlab: cluster.yaml -> Terraform -> services over SSH"
)]
pub struct Cli {
    /// The cluster spec; rendered files go next to it unless --out says otherwise.
    #[arg(
        long,
        short = 'f',
        global = true,
        default_value = "cluster.yaml",
        env = "CLUSTERLAB_SPEC"
    )]
    pub spec: PathBuf,

    /// The clusterlab repository: `templates/` and the web app's Cargo workspace.
    #[arg(
        long,
        global = true,
        default_value = ".",
        env = "CLUSTERLAB_PROJECT_DIR"
    )]
    pub project_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check cluster.yaml and report every problem with its line:column.
    Validate(validate::Args),
    /// Render terraform/*.tf, compose/*.yml and compose/nginx.conf from cluster.yaml.
    Render(render::Args),
    /// Print the JSON Schema of cluster.yaml (for editor completion).
    Schema(schema::Args),
    /// Create the hosts with terraform and deploy every service; prints the shortener's URL.
    Up(up::Args),
    /// Roll the web app out again (after an app change), one web host at a time; with
    /// `--version`, a version the web hosts kept.
    Deploy(deploy::Args),
    /// Back to the version deployed before the running one (or to VERSION), one web host
    /// at a time, under the deploy lock.
    Rollback(rollback::Args),
    /// The web app's versions each web host keeps, the one it runs, and where `rollback` goes.
    Versions(versions::Args),
    /// Per host: SSH reachable, and each container with image, state and health.
    Status(status::Args),
    /// A live view of the running cluster: per web host requests/s, 429s/s, limiter
    /// decisions and fallbacks, p95 latency; Redis ops/s and memory. `q` quits.
    Top(top::Args),
    /// A container's logs on a host.
    Logs(logs::Args),
    /// Log in to a host (or run a command there) with the cluster's key and user.
    Ssh(ssh::Args),
    /// terraform destroy, then remove whatever of the cluster is left on this machine.
    Destroy(destroy::Args),
    /// Run a k6 script from k6/ on the tester host against the load balancer and judge it.
    Loadtest(loadtest::Args),
    /// The limiter's keys in Redis: each client's budget per policy and the keys' TTLs;
    /// `reset` deletes them.
    Limiter(limiter::Args),
    /// Write a pg_dump of the links database to a local file.
    Backup(backup::BackupArgs),
    /// Load a dump from `backup` into the cluster's database.
    Restore(backup::RestoreArgs),
    /// The deploy lock on the load balancer host: `status` (who, since when, why, stale or
    /// not) and `release`.
    Lock(lock::Args),
    /// The last lines of the audit log on the load balancer host: one per up, deploy and
    /// rollback, with time, user, version and result.
    Audit(audit::Args),
}

/// Why a command failed; each variant knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{0} rendered file(s) differ from cluster.yaml; run `provisioner render`")]
    Drift(usize),
    #[error("cannot print: {0}")]
    Print(#[from] serde_json::Error),
    #[error(transparent)]
    Exec(Box<crate::exec::ExecError>),
    #[error(transparent)]
    Deploy(#[from] crate::exec::deploy::DeployError),
    #[error(transparent)]
    Version(#[from] crate::plan::versions::VersionError),
    #[error(transparent)]
    LoadTest(#[from] crate::plan::loadtest::LoadTestError),
    #[error(transparent)]
    Verdict(#[from] crate::verdict::VerdictError),
    #[error("the load test's verdict is FAIL")]
    VerdictFailed,
    #[error(transparent)]
    Chart(#[from] crate::report::ChartError),
    #[error("rendering the load test's index.html: {0}")]
    Page(#[from] tera::Error),
    #[error("secret: {0}")]
    Secret(crate::spec::SecretError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{operation}: {source}")]
    Io {
        operation: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building the web app failed:\n{0}")]
    Build(String),
    #[error("terraform's hosts differ from cluster.yaml: {0}")]
    HostMismatch(String),
    #[error("no host {0:?} in cluster.yaml (hosts: {1})")]
    UnknownHost(String, String),
    #[error("{0}")]
    Usage(String),
    #[error("{0} host(s) unreachable")]
    Unreachable(usize),
    #[error("cannot read terraform's plan: {0}")]
    TerraformPlan(String),
    /// Something destructive was asked for without consent; says what and how to consent.
    #[error("{0}")]
    NeedsConsent(String),
    /// Another command holds the deploy lock; says who, since when, and their message.
    #[error("{}", lifecycle::refusal(.0))]
    Locked(Box<crate::plan::lifecycle::LockHolder>),
    #[error("leftovers of the cluster remain after destroy: {0}")]
    Leftovers(String),
    /// A child process (e.g. `ssh`) ended with this code; it has said why itself.
    #[error("exit code {0}")]
    Exit(u8),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Load(LoadError::Invalid(_)) => EXIT_INVALID_SPEC,
            CliError::NeedsConsent(_) => EXIT_NEEDS_CONSENT,
            CliError::Locked(_) => EXIT_LOCKED,
            _ => 1,
        }
    }
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help/version to stdout and usage errors to stderr itself.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
        }
    };
    match dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Exit(code)) => ExitCode::from(code),
        Err(error) => {
            eprint!("{error}");
            if !error.to_string().ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(error.exit_code())
        }
    }
}

fn dispatch(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Validate(args) => validate::run(cli, args),
        Command::Render(args) => render::run(cli, args),
        Command::Schema(args) => schema::run(args),
        Command::Up(args) => up::run(cli, args),
        Command::Deploy(args) => deploy::run(cli, args),
        Command::Rollback(args) => rollback::run(cli, args),
        Command::Versions(args) => versions::run(cli, args),
        Command::Status(args) => status::run(cli, args),
        Command::Top(args) => top::run(cli, args),
        Command::Logs(args) => logs::run(cli, args),
        Command::Ssh(args) => ssh::run(cli, args),
        Command::Destroy(args) => destroy::run(cli, args),
        Command::Loadtest(args) => loadtest::run(cli, args),
        Command::Limiter(args) => limiter::run(cli, args),
        Command::Backup(args) => backup::backup(cli, args),
        Command::Restore(args) => backup::restore(cli, args),
        Command::Lock(args) => lock::run(cli, args),
        Command::Audit(args) => audit::run(cli, args),
    }
}

/// Loads the spec named on the command line.
pub fn load(cli: &Cli, files: FileCheck) -> Result<Cluster, CliError> {
    Ok(Cluster::load(&cli.spec, files)?)
}

/// The directory of the spec: where relative paths in it, and rendered files, live.
pub fn spec_dir(cli: &Cli) -> &Path {
    match cli.spec.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        // clap only checks (e.g. clashing short options) when a subcommand is parsed.
        super::Cli::command().debug_assert();
    }
}
