//! How the limiter reaches Redis: one address (a [`ConnectionManager`], which reconnects to
//! that address by itself), or a Sentinel group, where the address is the sentinels' answer
//! and changes with a failover. [`RedisLink`] is either, as one `ConnectionLike` that the
//! decisions (`EVALSHA`) and the readiness probe (`PING`) run on.
//!
//! Following a failover: a command on the primary that fails the way a dead or demoted
//! primary fails (refused, dropped, timed out, cancelled by the caller's timeout, or
//! `READONLY` from a primary turned replica) makes the link *suspect*; the next command asks
//! the sentinels again (at most every [`LOOKUP_INTERVAL`], in a task of its own that no
//! caller's timeout cancels; callers carry on with what is known) and moves to the primary
//! they name, which the `redis` crate checks answers `ROLE` as master. Until then the
//! limiter's fail mode decides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, ServerErrorKind, TlsMode, Value,
};

use clusterlab_contract::SentinelConfig;

/// The shortest time between two questions to the sentinels while the primary is suspect.
pub const LOOKUP_INTERVAL: Duration = Duration::from_millis(100);

/// Where the limiter's commands go.
#[derive(Clone)]
pub enum RedisLink {
    /// The single Redis at `limiter.redis_url`.
    Direct(ConnectionManager),
    /// Whichever node the sentinels of `limiter.sentinel` name primary.
    Sentinel(Arc<SentinelLink>),
}

impl RedisLink {
    /// A link to the one Redis at `url`; connects on first use.
    pub fn direct(url: &str, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(RedisLink::Direct(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// A link through the sentinels of `sentinel`; `url` gives the credentials, database
    /// and TLS mode for the data nodes, and the credentials for the sentinels (which get
    /// the same password). Asks the sentinels on first use.
    pub fn sentinel(
        url: &str,
        sentinel: &SentinelConfig,
        config: ConnectionManagerConfig,
    ) -> RedisResult<Self> {
        let template = url.into_connection_info()?;
        let tls = match template.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => Some(if *insecure {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            }),
            _ => None,
        };
        let data = template.redis_settings().clone();
        // A sentinel has no databases to SELECT.
        let to_sentinel = data.clone().set_db(0);
        let nodes = sentinel
            .nodes
            .iter()
            .map(|node| {
                let (host, port) = node
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
                    .ok_or_else(|| {
                        RedisError::from((
                            ErrorKind::InvalidClientConfig,
                            "a sentinel node is not host:port",
                            node.clone(),
                        ))
                    })?;
                let addr = match tls {
                    Some(mode) => ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: mode == TlsMode::Insecure,
                        tls_params: None,
                    },
                    None => ConnectionAddr::Tcp(host, port),
                };
                Ok(addr
                    .into_connection_info()?
                    .set_redis_settings(to_sentinel.clone()))
            })
            .collect::<RedisResult<Vec<ConnectionInfo>>>()?;
        let mut node_info = SentinelNodeConnectionInfo::default().set_redis_connection_info(data);
        if let Some(mode) = tls {
            node_info = node_info.set_tls_mode(mode);
        }
        let client = SentinelClient::build(
            nodes,
            sentinel.master_name.clone(),
            Some(node_info),
            SentinelServerType::Master,
        )?;
        Ok(RedisLink::Sentinel(Arc::new(SentinelLink {
            sentinels: tokio::sync::Mutex::new(client),
            manager_config: config,
            db: template.redis_settings().db(),
            primary: Mutex::new(None),
            suspect: AtomicBool::new(false),
            last_lookup: Mutex::new(None),
            asking: AtomicBool::new(false),
            answered: tokio::sync::Notify::new(),
        })))
    }

    /// The address commands go to now (`None` before the sentinels were first asked).
    pub fn primary_addr(&self) -> Option<String> {
        match self {
            RedisLink::Direct(_) => None,
            RedisLink::Sentinel(link) => link.known().map(|p| p.addr),
        }
    }
}

/// The state of a Sentinel-backed link: the sentinels, and the primary they last named.
pub struct SentinelLink {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    manager_config: ConnectionManagerConfig,
    db: i64,
    primary: Mutex<Option<Primary>>,
    /// A command on `primary` failed the way a failover makes it fail: ask again.
    suspect: AtomicBool,
    last_lookup: Mutex<Option<Instant>>,
    /// A lookup task is running.
    asking: AtomicBool,
    /// Woken when a lookup task ends.
    answered: tokio::sync::Notify,
}

#[derive(Clone)]
struct Primary {
    addr: String,
    conn: ConnectionManager,
}

impl SentinelLink {
    fn known(&self) -> Option<Primary> {
        self.primary.lock().expect("primary lock").clone()
    }

    fn trusted(&self) -> Option<Primary> {
        self.known()
            .filter(|_| !self.suspect.load(Ordering::Acquire))
    }

    /// The primary to send a command to: the known one while it is trusted. Otherwise the
    /// sentinels are asked in a task of its own (at most one at a time, and at most every
    /// [`LOOKUP_INTERVAL`]), so that no caller's timeout can cut the question short: a
    /// lookup that reaches a dead sentinel or a dead primary first takes longer than a
    /// decision may. Meanwhile callers carry on with the known primary (the fail mode
    /// decides when it does not answer), or, when none is known yet, wait for the answer.
    async fn primary(self: &Arc<Self>) -> RedisResult<Primary> {
        if let Some(primary) = self.trusted() {
            return Ok(primary);
        }
        let answered = self.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        let asking = self.ask_sentinels();
        if let Some(primary) = self.known() {
            return Ok(primary);
        }
        if asking {
            answered.await;
        }
        self.known().ok_or_else(no_primary)
    }

    /// Starts a lookup unless one is running or the last began within the interval;
    /// returns whether one is running now.
    fn ask_sentinels(self: &Arc<Self>) -> bool {
        {
            let mut last = self.last_lookup.lock().expect("lookup lock");
            if self.asking.load(Ordering::Acquire) {
                return true;
            }
            if last.is_some_and(|at| at.elapsed() < LOOKUP_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
            self.asking.store(true, Ordering::Release);
        }
        let link = Arc::clone(self);
        tokio::spawn(async move {
            link.look_up().await;
            link.asking.store(false, Ordering::Release);
            link.answered.notify_waiters();
        });
        true
    }

    /// Asks the sentinels for the primary and moves to it when it is a new one.
    async fn look_up(&self) {
        let client = match self.sentinels.lock().await.async_get_client().await {
            Ok(client) => client,
            // Sentinels unreachable, or the primary they name not (yet) a master: the
            // known primary may still answer; the next lookup is due after the interval.
            Err(error) => {
                log::debug!("rate limiter: the sentinels named no usable primary: {error}");
                return;
            }
        };
        let addr = client.get_connection_info().addr().to_string();
        let known = self.known();
        if known.as_ref().is_some_and(|primary| primary.addr == addr) {
            self.suspect.store(false, Ordering::Release);
            return;
        }
        let conn =
            match ConnectionManager::new_lazy_with_config(client, self.manager_config.clone()) {
                Ok(conn) => conn,
                Err(error) => {
                    log::warn!("rate limiter: cannot use the primary {addr}: {error}");
                    return;
                }
            };
        match &known {
            Some(old) => log::warn!(
                "rate limiter: the sentinels name a new Redis primary, {addr} (was {})",
                old.addr
            ),
            None => log::info!("rate limiter: the sentinels name {addr} primary"),
        }
        *self.primary.lock().expect("primary lock") = Some(Primary { addr, conn });
        self.suspect.store(false, Ordering::Release);
    }

    /// Notes how a command on the primary ended: failing the way a dead or demoted
    /// primary makes it fail makes the link suspect.
    fn settle<T>(&self, mut watch: Watch<'_>, result: &RedisResult<T>) {
        watch.settled = true;
        if let Err(error) = result {
            if is_failover_sign(error) {
                self.suspect.store(true, Ordering::Release);
            }
        }
    }

    fn watch(&self) -> Watch<'_> {
        Watch {
            link: self,
            settled: false,
        }
    }
}

/// Marks the link suspect when the command it watches is dropped unfinished: the caller's
/// timeout gave up on the primary, which is what a primary that vanished looks like.
struct Watch<'a> {
    link: &'a SentinelLink,
    settled: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.link.suspect.store(true, Ordering::Release);
        }
    }
}

fn is_failover_sign(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

fn no_primary() -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "no Redis primary known yet; the sentinels are asked again shortly",
    ))
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisLink::Direct(conn) => conn.req_packed_command(cmd),
            RedisLink::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let mut primary = link.primary().await?;
                    let watch = link.watch();
                    let result = primary.conn.req_packed_command(cmd).await;
                    link.settle(watch, &result);
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisLink::Direct(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisLink::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let mut primary = link.primary().await?;
                    let watch = link.watch();
                    let result = primary
                        .conn
                        .req_packed_commands(pipeline, offset, count)
                        .await;
                    link.settle(watch, &result);
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisLink::Direct(conn) => conn.get_db(),
            RedisLink::Sentinel(link) => link.db,
        }
    }
}
