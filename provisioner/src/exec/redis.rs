//! Exec layer: the cluster's Redis, reached the way everything else is — through its host's
//! SSH session (a local Unix socket forwarded to the address Redis binds on the host), and
//! spoken to with the `redis` crate, authenticated with the cluster's password. Used by the
//! commands that look at the limiter's state (`limiter`, `top`, the load test's reset), and
//! to ask a Sentinel group's sentinels which node is the primary now.

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use secrecy::{ExposeSecret, SecretString};

use super::error::{ExecError, Result};
use super::ssh::{HostSession, RetryPolicy, SshTarget};

/// An open connection to the cluster's Redis; the session carries the forward and must
/// live as long as the connection.
pub struct ClusterRedis {
    pub session: HostSession,
    pub connection: MultiplexedConnection,
}

impl ClusterRedis {
    /// SSH to the Redis host, forward a socket to `address:port` there, connect and AUTH.
    pub async fn connect(
        target: &SshTarget,
        retry: &RetryPolicy,
        address: &str,
        port: u16,
        password: &SecretString,
    ) -> Result<ClusterRedis> {
        let session = HostSession::connect(target, retry).await?;
        let socket = session.forward_tcp("redis", address, port).await?;
        let failed = |operation: &str, error: redis::RedisError| ExecError::Redis {
            host: target.host.clone(),
            operation: operation.to_owned(),
            message: error.to_string(),
        };
        let info: ConnectionInfo = ConnectionAddr::Unix(socket)
            .into_connection_info()
            .map_err(|e| failed("connection settings", e))?
            .set_redis_settings(
                RedisConnectionInfo::default().set_password(password.expose_secret()),
            );
        let client = redis::Client::open(info).map_err(|e| failed("open client", e))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| failed(&format!("connect to {address}:{port}"), e))?;
        Ok(ClusterRedis {
            session,
            connection,
        })
    }

    /// Runs one command, its error naming the host and the command.
    pub async fn query<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Result<T> {
        command
            .query_async(&mut self.connection)
            .await
            .map_err(|e| ExecError::Redis {
                host: self.session.host().to_owned(),
                operation: command_name(command),
                message: e.to_string(),
            })
    }

    /// Closes the SSH session (and with it the forward).
    pub async fn close(self) -> Result<()> {
        drop(self.connection);
        self.session.close().await
    }
}

/// The address of the primary of Sentinel group `master_name`, from the first of
/// `sentinels` (each a host's SSH target and the address its sentinel listens on there)
/// that answers; the error lists why each did not.
pub async fn sentinel_primary(
    sentinels: &[(&SshTarget, String)],
    port: u16,
    master_name: &str,
    retry: &RetryPolicy,
    password: &SecretString,
) -> Result<String> {
    let mut failures = Vec::new();
    for (target, address) in sentinels {
        let answer = async {
            let mut sentinel =
                ClusterRedis::connect(target, retry, address, port, password).await?;
            let primary: Result<Option<(String, u16)>> = sentinel
                .query(
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(master_name),
                )
                .await;
            let _ = sentinel.close().await;
            primary
        }
        .await;
        match answer {
            Ok(Some((ip, _))) => return Ok(ip),
            Ok(None) => failures.push(format!("{}: knows no primary {master_name}", target.host)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(ExecError::Redis {
        host: "sentinels".into(),
        operation: format!("find the primary of {master_name}"),
        message: failures.join("; "),
    })
}

/// The command's name (its first argument), for errors; never its other arguments.
fn command_name(command: &redis::Cmd) -> String {
    command
        .args_iter()
        .next()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "SCAN".to_owned(),
        })
        .unwrap_or_default()
}
