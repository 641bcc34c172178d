//! SSH to a host: one multiplexed `openssh::Session` per host (native mux, so every
//! command and every forwarded Docker connection is a channel on the same TCP
//! connection). Host keys go to a known_hosts file per cluster with
//! `StrictHostKeyChecking=accept-new`: the first contact records the key, every later
//! contact must match it. A host that is still booting is retried with bounded backoff.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use openssh::{ForwardType, KnownHosts, Session, SessionBuilder, Socket};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{chain, ExecError, Result};

/// Where and how to log in to one host.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The host's name in the cluster, used in every message and error.
    pub host: String,
    /// IP address or DNS name to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    pub key_path: PathBuf,
    /// One file per cluster, so keys of torn-down clusters never clash with a new one
    /// that reuses the same addresses.
    pub known_hosts: PathBuf,
}

/// Bounded exponential backoff for connecting to a host that may still be booting.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// ssh's own `ConnectTimeout` for each attempt.
    pub connect_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 30,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pauses between attempts (one fewer than the attempts): doubling from
    /// `initial_delay`, capped at `max_delay`, without jitter.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }
}

/// Whether an upload changed the file on the host, so the caller knows whether to
/// reload the service that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    Unchanged,
    Written,
}

/// An open SSH session to one host. The control socket and the forwarded Docker socket
/// live in a private temporary directory that is removed when the session is dropped.
pub struct HostSession {
    host: String,
    session: Session,
    // Keeps the socket directory alive as long as the session; Unix socket paths must stay
    // short (108 bytes), hence a directory under /tmp rather than the project tree.
    socket_dir: tempfile::TempDir,
}

impl std::fmt::Debug for HostSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSession")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl HostSession {
    /// Connects, retrying while the host refuses or times out. The error names the host
    /// and carries ssh's last error text.
    pub async fn connect(target: &SshTarget, retry: &RetryPolicy) -> Result<HostSession> {
        let socket_dir = tempfile::Builder::new()
            .prefix("clusterlab-ssh-")
            .tempdir_in("/tmp")
            .map_err(|e| ExecError::io(&target.host, "create ssh control directory", e))?;
        if let Some(parent) = target.known_hosts.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                ExecError::io(
                    &target.host,
                    format!("create known_hosts directory {}", parent.display()),
                    e,
                )
            })?;
        }

        let mut builder = SessionBuilder::default();
        builder
            .user(target.user.clone())
            .port(target.port)
            .keyfile(&target.key_path)
            .known_hosts_check(KnownHosts::Add)
            .user_known_hosts_file(&target.known_hosts)
            .connect_timeout(retry.connect_timeout)
            .server_alive_interval(Duration::from_secs(15))
            .control_directory(socket_dir.path());

        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let connect = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            builder.connect_mux(&target.address)
        };
        // A changed host key is not a boot-time hiccup: retrying cannot fix it and the
        // user must look at it.
        let fatal = |error: &openssh::Error| {
            let text = chain(error);
            text.contains("HOST IDENTIFICATION HAS CHANGED")
                || text.contains("Host key verification failed")
        };
        match connect
            .retry(retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|error| !fatal(error))
            .await
        {
            Ok(session) => Ok(HostSession {
                host: target.host.clone(),
                session,
                socket_dir,
            }),
            Err(error) => Err(ExecError::SshConnect {
                host: target.host.clone(),
                address: target.address.clone(),
                attempts: attempts.into_inner(),
                elapsed: started.elapsed(),
                last_error: chain(&error),
            }),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs a program (arguments are quoted for the remote shell) and returns its stdout;
    /// a non-zero exit becomes an error carrying stderr.
    pub async fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        self.run_with_input(program, args, None).await
    }

    /// [`HostSession::run`] with `input` written to the program's stdin (then closed), so a
    /// value reaches the host as data rather than as shell text.
    pub async fn run_with_input(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<String> {
        let command_text = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = self.session.command(program);
        command
            .args(args)
            .stdin(if input.is_some() {
                openssh::Stdio::piped()
            } else {
                openssh::Stdio::null()
            })
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped());
        let mut child = command
            .spawn()
            .await
            .map_err(ssh_failed(&self.host, format!("spawn `{command_text}`")))?;
        if let Some(bytes) = input {
            if let Some(mut stdin) = child.stdin().take() {
                stdin.write_all(bytes).await.map_err(|e| {
                    ExecError::io(&self.host, format!("write stdin of `{command_text}`"), e)
                })?;
                stdin.shutdown().await.map_err(|e| {
                    ExecError::io(&self.host, format!("close stdin of `{command_text}`"), e)
                })?;
            }
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(ssh_failed(&self.host, format!("run `{command_text}`")))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(ExecError::RemoteCommand {
                host: self.host.clone(),
                command: command_text,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    /// Starts `sh -c script sh args...` on the host with its stdin held open and waits for the first
    /// line it prints (its readiness line, returned). The script runs until [`HeldScript::finish`]
    /// closes its stdin, or until the session ends: either way the script sees end of input
    /// and cleans up after itself.
    pub async fn start_held(
        &self,
        script: &str,
        args: &[&str],
    ) -> Result<(HeldScript<'_>, String)> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = self
            .session
            .command("sh")
            .args(["-c", script, "sh"])
            .args(args)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(ssh_failed(&self.host, "spawn a held script"))?;
        let mut first = String::new();
        if let Some(stdout) = child.stdout().take() {
            BufReader::new(stdout)
                .read_line(&mut first)
                .await
                .map_err(|e| ExecError::io(&self.host, "read a held script's first line", e))?;
        }
        let held = HeldScript {
            host: &self.host,
            child,
        };
        if first.is_empty() {
            // It ended without a word: its exit status and stderr say why.
            held.finish().await?;
            return Err(ExecError::RemoteCommand {
                host: self.host.clone(),
                command: "held script".into(),
                status: "ended before it was ready".into(),
                stderr: String::new(),
            });
        }
        Ok((held, first.trim().to_owned()))
    }

    /// Runs a command through the remote shell in `dir`, handing each line of its stdout and
    /// stderr to `on_line` as it arrives (long jobs such as k6 show their progress), and
    /// returns its exit code: the caller decides what a non-zero code means.
    pub async fn run_streamed(
        &self,
        dir: &str,
        args: &[String],
        mut on_line: impl FnMut(&str),
    ) -> Result<i32> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let command_text = args.join(" ");
        // One shell line: stderr joins stdout so the lines keep their order.
        let script = format!(
            "cd {} && exec {} 2>&1",
            shlex::try_quote(dir).map_err(|e| ExecError::io(
                &self.host,
                "quote directory",
                std::io::Error::other(e)
            ))?,
            shlex::try_join(args.iter().map(String::as_str)).map_err(|e| ExecError::io(
                &self.host,
                "quote command",
                std::io::Error::other(e)
            ))?
        );
        let mut child = self
            .session
            .command("sh")
            .args(["-c", &script])
            .stdin(openssh::Stdio::null())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::null())
            .spawn()
            .await
            .map_err(ssh_failed(&self.host, format!("spawn `{command_text}`")))?;
        if let Some(stdout) = child.stdout().take() {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines
                .next_line()
                .await
                .map_err(|e| ExecError::io(&self.host, format!("read `{command_text}`"), e))?
            {
                on_line(&line);
            }
        }
        let status = child
            .wait()
            .await
            .map_err(ssh_failed(&self.host, format!("run `{command_text}`")))?;
        Ok(status.code().unwrap_or(-1))
    }

    /// Writes `contents` to `remote_path` (as root, via `sudo -n`, creating the directory)
    /// unless the file already has exactly these contents.
    pub async fn upload(&self, remote_path: &str, contents: &[u8]) -> Result<UploadOutcome> {
        let wanted = hex::encode(Sha256::digest(contents));
        // A missing file is the normal first-deploy case, so its error is not one.
        if self.sha256(remote_path).await.as_deref() == Some(wanted.as_str()) {
            return Ok(UploadOutcome::Unchanged);
        }
        let dir = Path::new(remote_path)
            .parent()
            .and_then(Path::to_str)
            .filter(|d| !d.is_empty())
            .unwrap_or("/");
        self.run("sudo", &["-n", "mkdir", "-p", "--", dir]).await?;
        // Written in place (truncate + write, not a rename) so a container that
        // bind-mounts this single file sees the new contents: a rename would leave the
        // mount pointing at the old inode. sudo because the SSH user may not own the
        // directory.
        self.run_with_input(
            "sudo",
            &["-n", "sh", "-c", "cat > \"$1\"", "upload", remote_path],
            Some(contents),
        )
        .await?;
        Ok(UploadOutcome::Written)
    }

    /// Installs an executable at `remote_path` (as root, via `sudo -n`) unless the file
    /// there already has exactly these contents. Written next to it and renamed, so a
    /// running copy is never overwritten in place ("text file busy").
    pub async fn install_executable(
        &self,
        remote_path: &str,
        contents: &[u8],
    ) -> Result<UploadOutcome> {
        if self.sha256(remote_path).await.as_deref()
            == Some(hex::encode(Sha256::digest(contents)).as_str())
        {
            return Ok(UploadOutcome::Unchanged);
        }
        self.run_with_input(
            "sudo",
            &[
                "-n",
                "sh",
                "-c",
                "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1.new\" && chmod 0755 \"$1.new\" && mv \"$1.new\" \"$1\"",
                "install",
                remote_path,
            ],
            Some(contents),
        )
        .await?;
        Ok(UploadOutcome::Written)
    }

    /// The sha256 of a file on the host, `None` when it cannot be read (e.g. missing).
    async fn sha256(&self, remote_path: &str) -> Option<String> {
        self.run("sudo", &["-n", "sha256sum", "--", remote_path])
            .await
            .ok()
            .and_then(|out| out.split_whitespace().next().map(str::to_owned))
    }

    /// Forwards a local Unix socket to the host's `/var/run/docker.sock` and returns the
    /// local path, ready for `bollard::Docker::connect_with_unix`.
    pub async fn forward_docker_socket(&self) -> Result<PathBuf> {
        self.forward(
            "docker.sock",
            Socket::UnixSocket {
                path: Path::new("/var/run/docker.sock").into(),
            },
            "forward /var/run/docker.sock",
        )
        .await
    }

    /// Forwards a local Unix socket to `address:port` as seen from the host (a service
    /// the host publishes, e.g. Redis or the web app) and returns the local path. `name`
    /// names the socket; asking twice for one name reuses the forward.
    pub async fn forward_tcp(&self, name: &str, address: &str, port: u16) -> Result<PathBuf> {
        self.forward(
            &format!("{name}.sock"),
            Socket::TcpSocket {
                host: address.to_owned().into(),
                port,
            },
            &format!("forward {address}:{port}"),
        )
        .await
    }

    async fn forward(
        &self,
        local_name: &str,
        remote: Socket<'_>,
        operation: &str,
    ) -> Result<PathBuf> {
        let local = self.socket_dir.path().join(local_name);
        if local.exists() {
            return Ok(local);
        }
        self.session
            .request_port_forward(
                ForwardType::Local,
                Socket::UnixSocket {
                    path: local.as_path().into(),
                },
                remote,
            )
            .await
            .map_err(ssh_failed(&self.host, operation))?;
        Ok(local)
    }

    /// Closes the master connection; dropping the session would leave cleanup to a
    /// background task.
    pub async fn close(self) -> Result<()> {
        self.session
            .close()
            .await
            .map_err(ssh_failed(&self.host, "close session"))
    }
}

/// The error for `operation` on `host` failing in the SSH layer (the session, not the
/// remote command), with openssh's error chain.
fn ssh_failed(
    host: &str,
    operation: impl Into<String>,
) -> impl FnOnce(openssh::Error) -> ExecError {
    let host = host.to_owned();
    let operation = operation.into();
    move |error| ExecError::Ssh {
        host,
        operation,
        message: chain(&error),
    }
}

/// Runs `ssh-keygen` to make an ed25519 key pair without a passphrase at `path` (and
/// `path.pub`), returning the public key text. Used for the local target's generated key.
pub async fn generate_key(path: &Path, comment: &str) -> Result<String> {
    let output = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ExecError::io("local", "run ssh-keygen", e))?;
    if !output.status.success() {
        return Err(ExecError::RemoteCommand {
            host: "local".into(),
            command: format!("ssh-keygen -f {}", path.display()),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    // ssh-keygen appends ".pub" to the whole name, whatever extension it already has.
    let public = PathBuf::from(format!("{}.pub", path.display()));
    tokio::fs::read_to_string(&public)
        .await
        .map(|text| text.trim().to_owned())
        .map_err(|e| ExecError::io("local", format!("read {}", public.display()), e))
}

/// Removes `address`'s host keys from `known_hosts` (`ssh-keygen -R`), for a host that was
/// just replaced: its new keys would otherwise be refused as an attack. Nothing to do when
/// the file does not exist yet.
pub async fn forget_host_key(known_hosts: &Path, address: &str) -> Result<()> {
    if !known_hosts.exists() {
        return Ok(());
    }
    let output = tokio::process::Command::new("ssh-keygen")
        .arg("-R")
        .arg(address)
        .arg("-f")
        .arg(known_hosts)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ExecError::io("local", "run ssh-keygen -R", e))?;
    if !output.status.success() {
        return Err(ExecError::RemoteCommand {
            host: "local".into(),
            command: format!("ssh-keygen -R {address} -f {}", known_hosts.display()),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    // ssh-keygen keeps the previous contents as `<file>.old`.
    let _ = std::fs::remove_file(format!("{}.old", known_hosts.display()));
    Ok(())
}

/// A script started by [`HostSession::start_held`], running until it is finished.
pub struct HeldScript<'s> {
    host: &'s str,
    child: openssh::Child<&'s Session>,
}

impl HeldScript<'_> {
    /// Closes the script's stdin and waits for it to exit; a non-zero exit is an error
    /// carrying its stderr.
    pub async fn finish(mut self) -> Result<()> {
        if let Some(mut stdin) = self.child.stdin().take() {
            let _ = stdin.shutdown().await;
        }
        let output = self
            .child
            .wait_with_output()
            .await
            .map_err(ssh_failed(self.host, "wait for a held script"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ExecError::RemoteCommand {
                host: self.host.to_owned(),
                command: "held script".into(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[tokio::test]
    async fn a_replaced_hosts_key_is_forgotten_and_only_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        forget_host_key(&file, "10.0.0.1")
            .await
            .expect("no file yet");
        std::fs::write(
            &file,
            "10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
             10.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        )
        .expect("write");
        forget_host_key(&file, "10.0.0.1").await.expect("forget");
        let left = std::fs::read_to_string(&file).expect("read");
        assert!(!left.contains("10.0.0.1 "), "{left}");
        assert!(left.contains("10.0.0.2 "), "{left}");
    }

    #[test]
    fn delays_double_and_cap() {
        let policy = RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
        };
        let millis: Vec<u128> = policy.backoff().build().map(|d| d.as_millis()).collect();
        assert_eq!(millis, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn one_attempt_has_no_delay() {
        let policy = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff().build().next(), None);
    }
}
