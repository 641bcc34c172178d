//! The contract's reading of a limiter key (`clusterlab_contract::read_budget`, what
//! `provisioner limiter` shows) agrees with the scripts that wrote it: decisions made
//! against the real Redis, each followed by the key read back with Redis' `TIME`, and the
//! reading's `remaining` (and when the next unit returns) compared with what the script
//! itself answered, at every fill level from empty to refused, for every algorithm.

mod limiter_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clusterlab_contract::{read_budget, Budget, RedisTime, Stored};
use limiter_support::*;
use redis::aio::MultiplexedConnection;
use webapp::limiter::{
    route, Algorithm, ClientId, FailMode, Limiter, LimiterConfig, PolicySpec, RedisUrl, Window,
};

/// The key's value, `TIME` and `PTTL`, fetched in one transaction (so the value is the one
/// at that `TIME`), and what the contract reads from it.
struct Reading {
    budget: Budget,
    pttl: i64,
}

/// Queues TIME, PTTL and the contract's fetch command for `key` on `pipe`.
fn queue_reading(pipe: &mut redis::Pipeline, algorithm: Algorithm, key: &str) {
    let (command, args) = Stored::fetch(algorithm);
    pipe.cmd("TIME")
        .cmd("PTTL")
        .arg(key)
        .cmd(command)
        .arg(key)
        .arg(args);
}

fn decode_reading(
    algorithm: Algorithm,
    replies: &[redis::Value],
    limit: u64,
    window: Window,
) -> Reading {
    let [time, pttl, value] = replies else {
        panic!("expected TIME, PTTL and the value, got {replies:?}");
    };
    let (secs, micros): (u64, u64) = redis::from_redis_value_ref(time).expect("TIME");
    let stored = match algorithm {
        Algorithm::SlidingLog => {
            let entries: Vec<(String, f64)> = redis::from_redis_value_ref(value).expect("ZRANGE");
            Stored::Log(entries.into_iter().map(|(_, score)| score).collect())
        }
        Algorithm::SlidingWindow => {
            Stored::Counters(redis::from_redis_value_ref(value).expect("HMGET"))
        }
        Algorithm::Gcra => Stored::Tat(redis::from_redis_value_ref(value).expect("GET")),
    };
    let budget = read_budget(&stored, RedisTime { secs, micros }, limit, window)
        .unwrap_or_else(|e| panic!("{}: {e}", algorithm.as_str()));
    Reading {
        budget,
        pttl: redis::from_redis_value_ref(pttl).expect("PTTL"),
    }
}

async fn read(
    conn: &mut MultiplexedConnection,
    algorithm: Algorithm,
    key: &str,
    limit: u64,
    window: Window,
) -> Reading {
    let mut pipe = redis::pipe();
    pipe.atomic();
    queue_reading(&mut pipe, algorithm, key);
    let replies: Vec<redis::Value> = pipe.query_async(conn).await.expect("read the key");
    decode_reading(algorithm, &replies, limit, window)
}

/// The reading agrees with one answer of the script, read `late_ms` after it at most:
/// the same `remaining`; the next unit no later than the script said nor earlier than
/// the time that has passed allows; the whole budget back when the key expires (the
/// scripts set each key's expiry to exactly then).
fn assert_agrees(
    what: &str,
    reading: &Reading,
    limit: u64,
    (remaining, reset_ms): (u64, u64),
    late_ms: u64,
) {
    let budget = reading.budget;
    assert_eq!(budget.remaining, remaining, "{what}: remaining, {budget:?}");
    assert_eq!(budget.used, limit - remaining, "{what}: used, {budget:?}");
    assert!(
        budget.next_ms <= reset_ms && budget.next_ms + late_ms + 1 >= reset_ms,
        "{what}: next unit in {} ms, the script said {reset_ms} ms ({late_ms} ms ago)",
        budget.next_ms
    );
    assert!(
        budget
            .full_ms
            .abs_diff(u64::try_from(reading.pttl).unwrap_or(0))
            <= 2,
        "{what}: full again in {} ms, the key expires in {} ms",
        budget.full_ms,
        reading.pttl
    );
}

/// Decisions of the web app's own limiter, on an hour-long window: nothing returns while
/// the test runs, so each reading must match the decision before it exactly.
async fn the_limiters_decisions_read_back(algorithm: Algorithm) {
    let limit = 5;
    let window = Window::from_millis(3_600_000);
    let config = LimiterConfig {
        redis_url: RedisUrl::new(redis_url()),
        sentinel: None,
        algorithm,
        fail_mode: FailMode::Closed,
        timeout_ms: 5000,
        key_prefix: unique_prefix(&format!("budget-{}", algorithm.as_str())),
        policies: BTreeMap::from([(route::DEFAULT.to_owned(), PolicySpec::one(limit, window))]),
        ..LimiterConfig::default()
    };
    let limiter = Limiter::new(&config, &prometheus::Registry::new()).expect("limiter");
    let policy = limiter.policies().for_route(None).clone();
    let client = ClientId::from_ip("192.0.2.7".parse().unwrap(), 64);
    let [key] = limiter
        .keys(&policy, &client)
        .try_into()
        .expect("one limit, one key");
    let mut conn = redis_conn(&redis_url()).await;

    let empty = read(&mut conn, algorithm, &key, limit, window).await;
    assert_eq!(
        (empty.budget, empty.pttl),
        (
            Budget {
                used: 0,
                remaining: limit,
                next_ms: 0,
                full_ms: 0
            },
            -2
        ),
        "{}: no key yet",
        algorithm.as_str()
    );
    // Five admitted (the last one fills the budget), then two refused.
    for n in 1..=limit + 2 {
        let started = Instant::now();
        let decision = limiter.decide(&policy, &client).await.expect("decision");
        let reading = read(&mut conn, algorithm, &key, limit, window).await;
        let late_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let what = format!("{}, request {n}", algorithm.as_str());
        assert_eq!(decision.allowed, n <= limit, "{what}: admitted");
        assert_agrees(
            &what,
            &reading,
            limit,
            (decision.remaining, decision.reset_ms),
            late_ms,
        );
    }
}

#[tokio::test]
async fn sliding_log_reads_back_as_the_limiter_decided() {
    the_limiters_decisions_read_back(Algorithm::SlidingLog).await;
}

#[tokio::test]
async fn sliding_window_reads_back_as_the_limiter_decided() {
    the_limiters_decisions_read_back(Algorithm::SlidingWindow).await;
}

#[tokio::test]
async fn gcra_reads_back_as_the_limiter_decided() {
    the_limiters_decisions_read_back(Algorithm::Gcra).await;
}

/// The web app's script on a short window while time passes (admissions leave the log,
/// the previous window's count fades, GCRA refills), each decision and its reading in one
/// transaction: the reading's `TIME` is microseconds after the script's, so its
/// `remaining` is the script's and the next unit at most a millisecond (of rounding) apart.
async fn readings_follow_the_script_as_time_passes(algorithm: Algorithm) {
    let (limit, window) = (4, Window::from_millis(1000));
    let mut conn = redis_conn(&redis_url()).await;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(webapp::limiter::script_source(algorithm))
        .query_async(&mut conn)
        .await
        .expect("SCRIPT LOAD");
    let prefix = unique_prefix(&format!("budget-time-{}", algorithm.as_str()));
    let key =
        clusterlab_contract::redis_key(&prefix, algorithm, route::DEFAULT, window, &"192.0.2.8");
    let mut fill_levels = std::collections::BTreeSet::new();
    // Bursts of three every 350 ms: the budget fills, refuses, and partly comes back.
    for round in 0..8 {
        for n in 0..3 {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg(&key)
                .arg(limit)
                .arg(window.as_millis());
            queue_reading(&mut pipe, algorithm, &key);
            let replies: Vec<redis::Value> =
                pipe.query_async(&mut conn).await.expect("decide and read");
            let answer: Vec<i64> = redis::from_redis_value_ref(&replies[0]).expect("the reply");
            let &[admitted, remaining, reset_ms, 1] = answer.as_slice() else {
                panic!("the script answered {answer:?}");
            };
            let reading = decode_reading(algorithm, &replies[1..], limit, window);
            let remaining = u64::try_from(remaining).expect("remaining >= 0");
            fill_levels.insert((admitted, remaining));
            assert_agrees(
                &format!("{}, round {round}, request {n}", algorithm.as_str()),
                &reading,
                limit,
                (remaining, u64::try_from(reset_ms).expect("reset_ms >= 0")),
                0,
            );
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    // Every level was seen, refused ones included.
    assert!(
        fill_levels.contains(&(0, 0)) && fill_levels.contains(&(1, 0)),
        "{}: fill levels {fill_levels:?}",
        algorithm.as_str()
    );
    assert!(
        fill_levels.iter().filter(|(a, _)| *a == 1).count() >= 3,
        "{}: fill levels {fill_levels:?}",
        algorithm.as_str()
    );
}

#[tokio::test]
async fn sliding_log_readings_follow_the_script_as_time_passes() {
    readings_follow_the_script_as_time_passes(Algorithm::SlidingLog).await;
}

#[tokio::test]
async fn sliding_window_readings_follow_the_script_as_time_passes() {
    readings_follow_the_script_as_time_passes(Algorithm::SlidingWindow).await;
}

#[tokio::test]
async fn gcra_readings_follow_the_script_as_time_passes() {
    readings_follow_the_script_as_time_passes(Algorithm::Gcra).await;
}
