//! Exec layer: the web app's limiter keys in the cluster's Redis, for `provisioner limiter`.
//! Found with `SCAN` (never `KEYS`, which blocks Redis for the whole keyspace), each
//! fetched with the command the contract names for its algorithm ([`Stored::fetch`]) in
//! a transaction that starts with Redis' `TIME`, and deleted with `UNLINK`. What the values
//! mean is the contract's ([`clusterlab_contract::read_budget`]); this only fetches them.

use std::collections::BTreeSet;

use clusterlab_contract::{Algorithm, RedisTime, Stored};
use redis::Value;

use super::error::{ExecError, Result};
use super::redis::ClusterRedis;

/// Keys per `SCAN` step: a hint to Redis of how much of the keyspace to walk at once.
const SCAN_COUNT: u32 = 1000;
/// Keys fetched per transaction: Redis runs one transaction without interleaving others,
/// so a long one would hold up the web servers' decisions.
const READ_BATCH: usize = 100;

/// The `SCAN` pattern of every key under `prefix`, or of one client's keys (any policy,
/// any algorithm). The prefix and client are matched literally, whatever they hold.
pub fn match_pattern(prefix: &str, client: Option<&str>) -> String {
    match client {
        None => format!("{}*", glob_escape(prefix)),
        Some(client) => format!("{}{{*:{}}}:*", glob_escape(prefix), glob_escape(client)),
    }
}

/// `text` with each character Redis' glob gives a meaning (`* ? [ ] \`) escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Every key matching `pattern`, sorted (a full `SCAN` may return a key more than once).
pub async fn scan(redis: &mut ClusterRedis, pattern: &str) -> Result<Vec<String>> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis
            .query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT),
            )
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys.into_iter().collect());
        }
        cursor = next;
    }
}

/// One key's value as its algorithm's script keeps it, at Redis' `TIME`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub key: String,
    pub time: RedisTime,
    /// `PTTL`: milliseconds until Redis expires the key; -1 none, -2 gone.
    pub pttl_ms: i64,
    /// The value, or what Redis answered instead (e.g. WRONGTYPE for a key no script wrote).
    pub stored: std::result::Result<Stored, String>,
}

/// Fetches each `(key, algorithm)`; `TIME` opens each transaction, so every value is read
/// at a known instant.
pub async fn fetch(redis: &mut ClusterRedis, keys: &[(String, Algorithm)]) -> Result<Vec<Fetched>> {
    let mut fetched = Vec::with_capacity(keys.len());
    for batch in keys.chunks(READ_BATCH) {
        let mut pipe = redis::pipe();
        pipe.atomic().ignore_errors().cmd("TIME");
        for (key, algorithm) in batch {
            let (command, args) = Stored::fetch(*algorithm);
            pipe.cmd("PTTL").arg(key).cmd(command).arg(key).arg(args);
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut redis.connection)
            .await
            .map_err(|e| redis_error(redis, "MULTI (TIME, PTTL, the values)", e.to_string()))?;
        let (time, values) = replies
            .split_first()
            .ok_or_else(|| redis_error(redis, "EXEC", "an empty reply".into()))?;
        let (secs, micros): (u64, u64) = redis::from_redis_value_ref(time)
            .map_err(|e| redis_error(redis, "TIME", e.to_string()))?;
        if values.len() != 2 * batch.len() {
            let message = format!("{} replies for {} keys", values.len(), batch.len());
            return Err(redis_error(redis, "EXEC", message));
        }
        for ((key, algorithm), pair) in batch.iter().zip(values.chunks(2)) {
            let pttl_ms = redis::from_redis_value_ref(&pair[0])
                .map_err(|e| redis_error(redis, &format!("PTTL {key}"), e.to_string()))?;
            fetched.push(Fetched {
                key: key.clone(),
                time: RedisTime { secs, micros },
                pttl_ms,
                stored: stored(*algorithm, &pair[1]).map_err(|e| e.to_string()),
            });
        }
    }
    Ok(fetched)
}

/// A fetch reply as the contract's [`Stored`] of `algorithm`.
fn stored(algorithm: Algorithm, value: &Value) -> redis::RedisResult<Stored> {
    Ok(match algorithm {
        Algorithm::SlidingLog => {
            let entries: Vec<(String, f64)> = redis::from_redis_value_ref(value)?;
            Stored::Log(entries.into_iter().map(|(_, score)| score).collect())
        }
        Algorithm::SlidingWindow => Stored::Counters(redis::from_redis_value_ref(value)?),
        Algorithm::Gcra => Stored::Tat(redis::from_redis_value_ref(value)?),
    })
}

/// Deletes `keys` (`UNLINK`: Redis frees them in the background); returns how many existed.
pub async fn unlink(redis: &mut ClusterRedis, keys: &[String]) -> Result<u64> {
    let mut deleted = 0;
    for batch in keys.chunks(READ_BATCH) {
        deleted += redis.query::<u64>(redis::cmd("UNLINK").arg(batch)).await?;
    }
    Ok(deleted)
}

fn redis_error(redis: &ClusterRedis, operation: &str, message: String) -> ExecError {
    ExecError::Redis {
        host: redis.session.host().to_owned(),
        operation: operation.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_the_prefix_and_client_literally() {
        assert_eq!(match_pattern("rl:", None), "rl:*");
        assert_eq!(
            match_pattern("rl:", Some("2001:db8::/64")),
            "rl:{*:2001:db8::/64}:*"
        );
        assert_eq!(
            match_pattern(r"a*b?[c]\d", Some("x*")),
            r"a\*b\?\[c\]\\d{*:x\*}:*"
        );
    }
}
