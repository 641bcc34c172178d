//! Shipping only the layers a host lacks, the way `docker pussh` (unregistry) does: a
//! registry on the host's loopback, started for the push and stopped after it, reached
//! through the SSH session; this engine pushes into it (the registry already holds the
//! layers of earlier pushes, so only new ones travel) and the host's engine pulls from it.
//!
//! The registry is Debian's `docker-registry` (in the VM image and the Proxmox user data).
//! Its blobs stay under the SSH user's `~/.cache/clusterlab/registry`, garbage-collected
//! after each push so only the layers of the images last pushed are kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bollard::Docker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

use super::transfer::{pull_from, push_to};
use crate::exec::error::{ExecError, Result};
use crate::exec::progress::HostProgress;
use crate::exec::ssh::HostSession;

/// The port the registry listens on, on the host's loopback only (never the network).
const LOOPBACK_REGISTRY_PORT: u16 = 15000;

/// Runs the registry until stdin closes, then stops it and collects unreferenced blobs.
/// `$1` is the port. Prints `absent` (and exits) where the host has no registry binary,
/// `ready` once the registry answers.
const REGISTRY_SCRIPT: &str = r#"set -eu
command -v docker-registry >/dev/null 2>&1 || { echo absent; exit 0; }
root="${XDG_CACHE_HOME:-$HOME/.cache}/clusterlab/registry"
mkdir -p "$root/data"
cat >"$root/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: "$root/data"}, delete: {enabled: true}}
http: {addr: "127.0.0.1:$1"}
EOF
docker-registry serve "$root/config.yml" 2>"$root/serve.log" &
pid=$!
i=0
until curl -fsS -o /dev/null "http://127.0.0.1:$1/v2/"; do
  kill -0 "$pid" 2>/dev/null || { cat "$root/serve.log" >&2; exit 1; }
  i=$((i + 1))
  [ "$i" -lt 100 ] || { kill "$pid"; echo "the registry did not answer within 10 s" >&2; exit 1; }
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null || { cat "$root/serve.log" >&2; exit 1; }
echo ready
cat >/dev/null || true
kill "$pid"
wait "$pid" 2>/dev/null || true
docker-registry garbage-collect --delete-untagged "$root/config.yml" >/dev/null 2>"$root/gc.log" \
  || { cat "$root/gc.log" >&2; exit 1; }
"#;

/// Pushes `image` from the local engine into a registry on the host's loopback and lets the
/// host's engine pull it from there under its own name. `estimate` (the image's size) sizes
/// the bar. Returns the bytes that crossed the SSH connection, or `None` where the host has
/// no registry binary (the caller exports the image instead).
pub async fn push_through(
    local: &Docker,
    remote: &Docker,
    session: &HostSession,
    image: &str,
    estimate: u64,
    progress: &HostProgress,
) -> Result<Option<u64>> {
    progress.step(format!("starting a loopback registry for {image}"));
    let port = LOOPBACK_REGISTRY_PORT.to_string();
    let (held, said) = session.start_held(REGISTRY_SCRIPT, &[&port]).await?;
    if said == "absent" {
        held.finish().await?;
        return Ok(None);
    }
    let pushed = push_and_pull(local, remote, session, image, estimate, progress).await;
    // The registry stops (and collects garbage) whether or not the push worked.
    let stopped = held.finish().await;
    let bytes = pushed?;
    stopped?;
    Ok(Some(bytes))
}

async fn push_and_pull(
    local: &Docker,
    remote: &Docker,
    session: &HostSession,
    image: &str,
    estimate: u64,
    progress: &HostProgress,
) -> Result<u64> {
    let host = session.host();
    let upstream = session
        .forward_tcp("registry", "127.0.0.1", LOOPBACK_REGISTRY_PORT)
        .await?;
    let sent = Arc::new(AtomicU64::new(0));
    let proxy = CountingProxy::start(host, upstream, sent.clone(), progress.clone()).await?;

    progress.start_bytes(
        format!("pushing the layers {host} lacks of {image}"),
        estimate,
    );
    let pushed = push_to(
        local,
        image,
        &format!("127.0.0.1:{}", proxy.port),
        None,
        &format!("{host}'s loopback registry"),
    )
    .await;
    drop(proxy);
    pushed?;
    let bytes = sent.load(Ordering::Relaxed);

    let loopback = format!("127.0.0.1:{LOOPBACK_REGISTRY_PORT}");
    pull_from(remote, host, image, &loopback, None, progress).await?;
    Ok(bytes)
}

/// A TCP port on this machine's loopback that the local engine pushes to: each connection
/// is carried to the host's registry over the SSH forward, and the bytes sent are counted
/// (what "only the missing layers" means, measured).
struct CountingProxy {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(
        host: &str,
        upstream: std::path::PathBuf,
        sent: Arc<AtomicU64>,
        progress: HostProgress,
    ) -> Result<CountingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| ExecError::io(host, "listen on a loopback port for the push", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| ExecError::io(host, "read the push port", e))?
            .port();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, sent, progress) = (upstream.clone(), sent.clone(), progress.clone());
                tokio::spawn(async move {
                    if let Ok(server) = UnixStream::connect(&upstream).await {
                        carry(client, server, &sent, &progress).await;
                    }
                });
            }
        });
        Ok(CountingProxy { port, accept })
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways until either side closes, counting what the client sends.
async fn carry(
    client: tokio::net::TcpStream,
    server: UnixStream,
    sent: &AtomicU64,
    progress: &HostProgress,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upload = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    progress.add_bytes(n as u64);
                }
            }
        }
        let _ = server_write.shutdown().await;
    };
    let download = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upload, download);
}
