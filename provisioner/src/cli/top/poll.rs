//! CLI layer, `top`: the pollers — one task per web host and one for Redis, each reading
//! its source once a period through its own SSH session and sending what it read, or why
//! it could not, to the board. A source that failed is connected afresh on its next turn,
//! so a host that comes back shows up again without restarting `top`.

use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::exec::redis::ClusterRedis;
use crate::exec::ssh::{HostSession, RetryPolicy, SshTarget};
use crate::exec::web::WebEndpoint;
use crate::metrics::{RedisInfo, WebMetrics};
use crate::plan::{REDIS_PORT, WEB_PORT};

use super::board::Reading;

/// How often each source is read.
pub const PERIOD: Duration = Duration::from_secs(1);
/// How long the pollers get to close their SSH sessions once the view has ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A source to read: the host's SSH target and the address its service listens on there.
pub struct Place {
    pub target: SshTarget,
    pub address: String,
}

/// The running pollers; [`Pollers::stop`] ends them and closes their sessions.
pub struct Pollers {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a poller for each web host (its index is the board's) and one for Redis.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    web: Vec<Place>,
    redis: Place,
    password: SecretString,
    retry: RetryPolicy,
    readings: mpsc::UnboundedSender<Reading>,
) -> Pollers {
    let (shutdown, stopped) = watch::channel(false);
    let mut tasks: Vec<JoinHandle<()>> = web
        .into_iter()
        .enumerate()
        .map(|(host, place)| {
            runtime.spawn(poll_web(
                host,
                place,
                retry.clone(),
                readings.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    tasks.push(runtime.spawn(poll_redis(redis, password, retry, readings, stopped)));
    Pollers { shutdown, tasks }
}

impl Pollers {
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ =
            tokio::time::timeout(CLOSE_TIMEOUT, futures_util::future::join_all(self.tasks)).await;
    }
}

/// Ticks every [`PERIOD`] (a slow reading delays the next rather than piling them up)
/// until shut down.
fn ticks() -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

struct WebConnection {
    session: HostSession,
    endpoint: WebEndpoint,
}

async fn poll_web(
    host: usize,
    place: Place,
    retry: RetryPolicy,
    readings: mpsc::UnboundedSender<Reading>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connection = None;
    let mut ticks = ticks();
    loop {
        let result = tokio::select! {
            _ = stopped.changed() => break,
            result = async {
                ticks.tick().await;
                read_web(&mut connection, &place, &retry).await
            } => result,
        };
        let at = Instant::now().into_std();
        if readings.send(Reading::Web { host, at, result }).is_err() {
            break;
        }
    }
    if let Some(open) = connection {
        let _ = open.session.close().await;
    }
}

/// Scrapes `/metrics`, connecting first when there is no connection; a failure drops the
/// connection so that the next turn starts afresh.
async fn read_web(
    connection: &mut Option<WebConnection>,
    place: &Place,
    retry: &RetryPolicy,
) -> Result<WebMetrics, String> {
    let open = match connection {
        Some(open) => open,
        None => {
            let session = HostSession::connect(&place.target, retry)
                .await
                .map_err(|e| e.to_string())?;
            match WebEndpoint::connect(&session, &place.address, WEB_PORT).await {
                Ok(endpoint) => connection.insert(WebConnection { session, endpoint }),
                Err(error) => {
                    let _ = session.close().await;
                    return Err(error.to_string());
                }
            }
        }
    };
    match open.endpoint.get_text("/metrics").await {
        Ok(text) => Ok(WebMetrics::parse(&text)),
        Err(error) => {
            if let Some(open) = connection.take() {
                let _ = open.session.close().await;
            }
            Err(error.to_string())
        }
    }
}

async fn poll_redis(
    place: Place,
    password: SecretString,
    retry: RetryPolicy,
    readings: mpsc::UnboundedSender<Reading>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connection = None;
    let mut ticks = ticks();
    loop {
        let result = tokio::select! {
            _ = stopped.changed() => break,
            result = async {
                ticks.tick().await;
                read_redis(&mut connection, &place, &password, &retry).await
            } => result,
        };
        let at = Instant::now().into_std();
        if readings.send(Reading::Redis { at, result }).is_err() {
            break;
        }
    }
    if let Some(open) = connection {
        let _ = open.close().await;
    }
}

/// `INFO`, connecting first when there is no connection; a failure drops the connection.
async fn read_redis(
    connection: &mut Option<ClusterRedis>,
    place: &Place,
    password: &SecretString,
    retry: &RetryPolicy,
) -> Result<RedisInfo, String> {
    let open = match connection {
        Some(open) => open,
        None => connection.insert(
            ClusterRedis::connect(&place.target, retry, &place.address, REDIS_PORT, password)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let text = match open.query::<String>(&redis::cmd("INFO")).await {
        Ok(text) => text,
        Err(error) => {
            if let Some(open) = connection.take() {
                let _ = open.close().await;
            }
            return Err(error.to_string());
        }
    };
    RedisInfo::parse(&text).map_err(|e| format!("{}: {e}", place.target.host))
}
