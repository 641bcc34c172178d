//! CLI layer: `provisioner backup [--out FILE]` writes a `pg_dump` (custom format) of the
//! links database to a local file; `provisioner restore FILE [--force]` loads one into the
//! cluster's database, refusing a database that already holds links unless forced. Both
//! go through the postgres host's SSH session and forwarded Docker socket.

use std::path::{Path, PathBuf};

use crate::exec::backup::{self, Database};
use crate::exec::{docker, ExecError};
use crate::spec::{Cluster, FileCheck, Role};

use super::context::{self, Project};
use super::{load, Cli, CliError};

/// The postgres service's container (contract with the rendered compose file).
const POSTGRES_CONTAINER: &str = "postgres";

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the dump [default: backups/<cluster>-<UTC time>.dump next to the spec].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A dump written by `provisioner backup`.
    pub file: PathBuf,
    /// Replace the links the database holds now with the dump's.
    #[arg(long)]
    pub force: bool,
}

pub fn backup(cli: &Cli, args: &BackupArgs) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::SpecOnly)?;
    let out = args.out.clone().unwrap_or_else(|| {
        project.spec_dir.join("backups").join(format!(
            "{}-{}.dump",
            cluster.name,
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
            operation: format!("create {}", dir.display()),
            source,
        })?;
    }
    // Written beside the target and renamed at the end: a failed dump never leaves a
    // truncated file under the name a restore would trust.
    let partial = partial_name(&out);
    let (bytes, links) = context::runtime()?
        .block_on(async {
            let (connected, db) = connect(&cluster, &project).await?;
            let database = db.database();
            let links = backup::count_links(&connected.docker, &database).await?;
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| io(&partial, "create", e))?;
            let bytes = backup::dump(&connected.docker, &database, &mut file).await?;
            file.sync_all().await.map_err(|e| io(&partial, "sync", e))?;
            let _ = connected.session.close().await;
            Ok::<_, CliError>((bytes, links))
        })
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
    std::fs::rename(&partial, &out).map_err(|e| io(&out, "rename to", e))?;
    println!(
        "backup: {links} links, {} KiB written to {}",
        bytes.div_ceil(1024),
        out.display()
    );
    Ok(())
}

pub fn restore(cli: &Cli, args: &RestoreArgs) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::SpecOnly)?;
    let size = std::fs::metadata(&args.file)
        .map_err(|e| io(&args.file, "read", e))?
        .len();
    context::runtime()?.block_on(async {
        let (connected, db) = connect(&cluster, &project).await?;
        let database = db.database();
        let before = backup::count_links(&connected.docker, &database).await?;
        if before > 0 && !args.force {
            return Err(CliError::NeedsConsent(format!(
                "the database {} on {} already holds {before} links; nothing was restored. \
                 Run `provisioner restore {} --force` to replace them with the dump's.",
                db.name,
                db.host,
                args.file.display()
            )));
        }
        let mut file = tokio::fs::File::open(&args.file)
            .await
            .map_err(|e| io(&args.file, "open", e))?;
        backup::restore(&connected.docker, &database, &mut file).await?;
        let after = backup::count_links(&connected.docker, &database).await?;
        let _ = connected.session.close().await;
        println!(
            "restore: {} ({} KiB) loaded into {} on {}: {after} links (were {before})",
            args.file.display(),
            size.div_ceil(1024),
            db.name,
            db.host
        );
        Ok(())
    })
}

/// The database's coordinates from the spec.
struct DbPlace {
    host: String,
    name: String,
}

impl DbPlace {
    fn database(&self) -> Database<'_> {
        Database {
            host: &self.host,
            container: POSTGRES_CONTAINER,
            // The app's database and its owner share the name (see the compose file).
            user: &self.name,
            name: &self.name,
        }
    }
}

async fn connect(
    cluster: &Cluster,
    project: &Project,
) -> Result<(docker::ConnectedHost, DbPlace), CliError> {
    let host = cluster
        .the(Role::Postgres)
        .ok_or_else(|| CliError::Usage("cluster.yaml has no postgres host".into()))?;
    let target = context::targets(cluster, project)
        .remove(&host.name)
        .ok_or_else(|| CliError::UnknownHost(host.name.clone(), String::new()))?;
    let connected = docker::connect(&target, &context::inspect_retry()).await?;
    Ok((
        connected,
        DbPlace {
            host: host.name.clone(),
            name: cluster.app.database.clone(),
        },
    ))
}

fn partial_name(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn io(path: &Path, operation: &str, source: std::io::Error) -> CliError {
    CliError::Exec(Box::new(ExecError::io(
        "local",
        format!("{operation} {}", path.display()),
        source,
    )))
}
