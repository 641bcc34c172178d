//! Decisions that arrive while Redis is busy with earlier ones leave together: [`Batcher`]
//! queues each command and a driver task sends what has queued as one pipeline (one write
//! for this process, one read and one write for Redis) once one of the [`MAX_IN_FLIGHT`]
//! pipelines is answered and the callers it woke have asked again. Under load that is tens of commands per round
//! trip instead of one, which is what lets a web host's decisions reach the throughput of
//! `redis-benchmark -P 16`; alone, a decision still goes out at once, as a single command.
//!
//! A caller that gives up (the decision's timeout) only drops its answer; the pipeline runs
//! on to its end in the driver's task, bounded by the connection's own response timeout,
//! so a failover is still noticed by [`RedisLink`] the way a failed command shows it.

use std::sync::{Arc, OnceLock};

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::connection::RedisLink;

/// Pipelines out at once; while all are out, new commands queue for the next one.
pub const MAX_IN_FLIGHT: usize = 2;
/// The most commands one pipeline carries.
pub const MAX_BATCH: usize = 256;
/// How often the driver lets other tasks run between a free slot and taking the queue.
/// Taken at once, a batch held only the one or two callers that were quickest to ask again,
/// and under load the pipelines shrank towards single commands. Measured with
/// `limiter-bench --algorithm gcra --rounds 5` (medians, one limit / two, of
/// `redis-benchmark -P 16`): none 67% / 70% (one round), one 83% / 89%, two 88% / 94%,
/// three 88% / 93%.
const YIELDS_BEFORE_TAKING: usize = 2;

/// A command and where its answer goes.
struct Queued {
    cmd: Cmd,
    answer: oneshot::Sender<RedisResult<Value>>,
}

/// The queue in front of one [`RedisLink`]; cheap to share by reference.
pub struct Batcher {
    link: RedisLink,
    /// The driver's queue, made (and the driver spawned) on the first command, inside the
    /// runtime that runs the app.
    queue: OnceLock<mpsc::UnboundedSender<Queued>>,
}

impl Batcher {
    pub fn new(link: RedisLink) -> Self {
        Batcher {
            link,
            queue: OnceLock::new(),
        }
    }

    /// Sends `cmd` with whatever else is queued and returns its own answer (a Redis error
    /// reply is an `Err`, as for a single command).
    pub async fn query(&self, cmd: Cmd) -> RedisResult<Value> {
        let queue = self.queue.get_or_init(|| {
            let (queue, commands) = mpsc::unbounded_channel();
            tokio::spawn(drive(self.link.clone(), commands));
            queue
        });
        let (answer, answered) = oneshot::channel();
        queue.send(Queued { cmd, answer }).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Takes what has queued whenever a pipeline slot is free, until every [`Batcher`] handle
/// is gone.
async fn drive(link: RedisLink, mut commands: mpsc::UnboundedReceiver<Queued>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        // The slot was freed by an answer that woke its callers; letting them run first
        // puts their next commands in this batch instead of the one after.
        for _ in 0..YIELDS_BEFORE_TAKING {
            tokio::task::yield_now().await;
        }
        let mut batch = Vec::new();
        if commands.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let mut conn = link.clone();
        tokio::spawn(async move {
            send(&mut conn, batch).await;
            drop(slot);
        });
    }
}

/// One round trip for `batch`, each answer to its caller.
async fn send(conn: &mut RedisLink, batch: Vec<Queued>) {
    if let [_] = batch.as_slice() {
        let Queued { cmd, answer } = batch.into_iter().next().expect("one command");
        // An error reply is a value here too, as in a pipeline.
        let answer_value = conn.req_packed_command(&cmd).await;
        let _ = answer.send(answer_value.and_then(Value::extract_error));
        return;
    }
    let mut pipeline = Pipeline::with_capacity(batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    for Queued { cmd, answer } in batch {
        pipeline.add_command(cmd);
        answers.push(answer);
    }
    match conn.req_packed_commands(&pipeline, 0, answers.len()).await {
        // A pipeline's error replies come back as values, one per command.
        Ok(values) if values.len() == answers.len() => {
            for (answer, value) in answers.into_iter().zip(values) {
                let _ = answer.send(value.extract_error());
            }
        }
        Ok(values) => {
            let error = RedisError::from((
                ErrorKind::Client,
                "a pipeline's answer count differs from its commands",
                format!("{} answers to {} commands", values.len(), answers.len()),
            ));
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
        Err(error) => {
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

fn stopped() -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "the limiter's Redis queue stopped (its runtime is gone)",
    ))
}
