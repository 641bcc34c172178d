//! Backups of the links database: `pg_dump` out of and `pg_restore` into the cluster's
//! PostgreSQL container, through the host's forwarded Docker socket (bollard exec). The
//! dump streams straight to a local file and the restore straight from one; nothing is
//! written on the host. Inside the container the local socket trusts the database user,
//! so no password travels.

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::error::{ExecError, Result};

/// Where the database is: the container on the host, and the database and its owner.
#[derive(Debug, Clone)]
pub struct Database<'a> {
    pub host: &'a str,
    pub container: &'a str,
    pub user: &'a str,
    pub name: &'a str,
}

impl Database<'_> {
    fn failed(&self, operation: &str, message: String) -> ExecError {
        ExecError::Service {
            host: self.host.to_owned(),
            service: self.container.to_owned(),
            operation: operation.to_owned(),
            message,
        }
    }
}

/// Runs `cmd` in the container, feeding it `input` (when given) and writing its stdout to
/// `out`; returns stdout's size. A non-zero exit is an error carrying stderr.
async fn exec_streamed(
    docker: &Docker,
    db: &Database<'_>,
    operation: &str,
    cmd: Vec<String>,
    input: Option<&mut (dyn AsyncRead + Unpin + Send)>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<u64> {
    let docker_error =
        |e| ExecError::docker(db.host, format!("{operation} in {}", db.container), e);
    let created = docker
        .create_exec(
            db.container,
            ExecConfig {
                attach_stdin: Some(input.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_error)?;
    let StartExecResults::Attached {
        mut output,
        input: mut stdin,
    } = docker
        .start_exec(&created.id, None::<StartExecOptions>)
        .await
        .map_err(docker_error)?
    else {
        return Err(db.failed(operation, "the exec did not attach".into()));
    };
    let io_error = |e: std::io::Error| ExecError::io(db.host, operation.to_owned(), e);
    let feed = async {
        if let Some(input) = input {
            tokio::io::copy(input, &mut stdin).await.map_err(io_error)?;
            // End of input: pg_restore reads until EOF.
            stdin.shutdown().await.map_err(io_error)?;
        }
        drop(stdin);
        Ok::<_, ExecError>(())
    };
    let drain = async {
        let mut written = 0u64;
        let mut stderr = Vec::new();
        while let Some(chunk) = output.next().await {
            match chunk.map_err(docker_error)? {
                LogOutput::StdOut { message } => {
                    out.write_all(&message).await.map_err(io_error)?;
                    written += message.len() as u64;
                }
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                _ => {}
            }
        }
        out.flush().await.map_err(io_error)?;
        Ok::<_, ExecError>((written, stderr))
    };
    let (fed, drained) = tokio::join!(feed, drain);
    fed?;
    let (written, stderr) = drained?;
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .map_err(docker_error)?;
    match inspected.exit_code {
        Some(0) => Ok(written),
        code => Err(db.failed(
            operation,
            format!(
                "exit code {}: {}",
                code.unwrap_or(-1),
                String::from_utf8_lossy(&stderr).trim()
            ),
        )),
    }
}

/// `pg_dump --format=custom` of the database into `out`; returns the dump's size.
pub async fn dump(
    docker: &Docker,
    db: &Database<'_>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<u64> {
    let cmd = ["pg_dump", "--format=custom", "-U", db.user, "-d", db.name]
        .map(str::to_owned)
        .to_vec();
    exec_streamed(docker, db, "pg_dump", cmd, None, out).await
}

/// Loads a custom-format dump into the database in one transaction, replacing the objects
/// the dump has (`--clean --if-exists`): all of it lands or none.
pub async fn restore(
    docker: &Docker,
    db: &Database<'_>,
    dump: &mut (dyn AsyncRead + Unpin + Send),
) -> Result<()> {
    let cmd = [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "-U",
        db.user,
        "-d",
        db.name,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut sink = tokio::io::sink();
    exec_streamed(docker, db, "pg_restore", cmd, Some(dump), &mut sink)
        .await
        .map(drop)
}

/// How many links the database holds (0 before the web app created its table).
pub async fn count_links(docker: &Docker, db: &Database<'_>) -> Result<u64> {
    let exists = query(docker, db, "SELECT to_regclass('public.links') IS NOT NULL").await?;
    if exists != "t" {
        return Ok(0);
    }
    let count = query(docker, db, "SELECT count(*) FROM links").await?;
    count
        .parse()
        .map_err(|_| db.failed("count links", format!("psql answered {count:?}")))
}

/// One value from psql, trimmed.
async fn query(docker: &Docker, db: &Database<'_>, sql: &str) -> Result<String> {
    let cmd = [
        "psql",
        "-X",
        "-tA",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        db.user,
        "-d",
        db.name,
        "-c",
        sql,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut out = Vec::new();
    exec_streamed(docker, db, "psql", cmd, None, &mut out).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}
