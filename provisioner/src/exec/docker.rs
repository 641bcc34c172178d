//! bollard clients: the local engine (where images are built) and a host's engine reached
//! through the SSH-forwarded `docker.sock`. Both negotiate the API version, because
//! Debian's docker.io (20.10, API 1.41) is older than bollard's default.

use std::time::{Duration, Instant};

use bollard::{Docker, API_DEFAULT_VERSION};

use super::cloud_init::{self, CloudInitOutcome, CloudInitWait};
use super::error::{ExecError, Result};
use super::ssh::{HostSession, RetryPolicy, SshTarget};

/// Seconds bollard waits for one request; image export/import of a few hundred MB over SSH
/// must fit in it.
const REQUEST_TIMEOUT_SECS: u64 = 600;

/// The engine on this machine, at `/var/run/docker.sock` (or `DOCKER_HOST` if it names a
/// Unix socket).
pub async fn connect_local() -> Result<Docker> {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h.starts_with("unix://"))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
    connect_socket("local", &socket).await
}

/// How long a host's dockerd may take to answer once cloud-init is done (or, without
/// cloud-init, once SSH answers): systemd may still be starting it.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A host's engine over its SSH session: forwards the socket, then connects to the local
/// end of the forward, retrying until dockerd answers or [`ENGINE_TIMEOUT`] has passed.
pub async fn connect_host(session: &HostSession) -> Result<Docker> {
    let socket = session.forward_docker_socket().await?;
    let socket = socket.to_string_lossy();
    let started = Instant::now();
    loop {
        match connect_socket(session.host(), &socket).await {
            Ok(docker) => return Ok(docker),
            // The forward accepts locally even while nothing listens on the host's end.
            Err(_) if started.elapsed() < ENGINE_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(error) => return Err(error),
        }
    }
}

async fn connect_socket(host: &str, socket: &str) -> Result<Docker> {
    let docker = Docker::connect_with_unix(socket, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        .map_err(|e| ExecError::docker(host, format!("connect to {socket}"), e))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| ExecError::docker(host, format!("negotiate API version over {socket}"), e))
}

/// A host ready to deploy to: its SSH session (kept open, since it carries the forward)
/// and the Docker client that talks through it.
pub struct ConnectedHost {
    pub session: HostSession,
    pub docker: Docker,
}

/// SSH in (retrying while the host boots), wait for cloud-init, forward `docker.sock`,
/// connect bollard.
pub async fn connect(target: &SshTarget, retry: &RetryPolicy) -> Result<ConnectedHost> {
    connect_reporting(target, retry, &CloudInitWait::default(), |_| {}).await
}

/// [`connect`], telling `on_status` what it waits for ("waiting for cloud-init (installing
/// packages)").
pub async fn connect_reporting(
    target: &SshTarget,
    retry: &RetryPolicy,
    wait: &CloudInitWait,
    mut on_status: impl FnMut(&str),
) -> Result<ConnectedHost> {
    let mut session = HostSession::connect(target, retry).await?;
    let outcome = cloud_init::wait(&session, wait, &mut on_status).await?;
    if let CloudInitOutcome::Finished {
        ran_during_session: true,
        ..
    } = outcome
    {
        // This login predates the user data's group change; sshd fixed its groups then.
        let _ = session.close().await;
        session = HostSession::connect(target, retry).await?;
    }
    on_status("connecting to Docker");
    let docker = connect_host(&session).await?;
    Ok(ConnectedHost { session, docker })
}
