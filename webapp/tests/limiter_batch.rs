//! The queue that pipelines concurrent decisions, against a `redis-server` of the test's own
//! (so its read count is only ours): concurrent commands leave in a few pipelines, each
//! caller gets its own answer (an error reply only to the one that caused it), and
//! decisions stay exact when Redis forgets the script in the middle of a burst.

mod limiter_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use clusterlab_contract::route;
use limiter_support::*;
use redis::aio::ConnectionManagerConfig;
use webapp::limiter::batch::Batcher;
use webapp::limiter::{
    Algorithm, ClientId, FailMode, Limit, Limiter, LimiterConfig, PolicySpec, RedisLink, RedisUrl,
    Window,
};

/// Redis's count of read events it processed (one per batch of bytes read from a client).
async fn reads_processed(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(conn)
        .await
        .expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix("total_reads_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_reads_processed in {info}"))
}

#[tokio::test]
async fn concurrent_commands_leave_in_a_few_pipelines_and_each_gets_its_own_answer() {
    let redis = RedisServer::start();
    let mut admin = redis_conn(&redis.url()).await;
    let _: () = redis::cmd("SET")
        .arg("not-a-number")
        .arg("x")
        .query_async(&mut admin)
        .await
        .expect("SET");
    let link = RedisLink::direct(&redis.url(), ConnectionManagerConfig::new()).expect("link");
    let batcher = Arc::new(Batcher::new(link));
    // The connection is made by the first command.
    let _ = batcher.query(redis::cmd("PING")).await.expect("PING");

    const COMMANDS: usize = 400;
    let before = reads_processed(&mut admin).await;
    let mut tasks = Vec::new();
    for i in 0..COMMANDS {
        let batcher = Arc::clone(&batcher);
        tasks.push(tokio::spawn(async move {
            let mut cmd = redis::cmd("INCR");
            // Every tenth command fails in Redis (the value is no integer).
            cmd.arg(if i % 10 == 0 {
                "not-a-number"
            } else {
                "counter"
            });
            (i, batcher.query(cmd).await)
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        let (i, answer) = task.await.expect("task");
        match answer {
            Ok(redis::Value::Int(n)) if i % 10 != 0 => seen.push(n),
            Err(error) if i % 10 == 0 => assert!(
                error.to_string().contains("not an integer"),
                "command {i}: {error}"
            ),
            other => panic!("command {i} got someone else's answer: {other:?}"),
        }
    }
    // Subtract the one read of our own INFO.
    let reads = reads_processed(&mut admin).await - before - 1;
    seen.sort_unstable();
    let expected: Vec<i64> = (1..=(COMMANDS - COMMANDS / 10) as i64).collect();
    assert_eq!(
        seen, expected,
        "every INCR ran once and answered its own caller"
    );
    assert!(
        reads <= (COMMANDS / 20) as u64,
        "{COMMANDS} concurrent commands took {reads} reads: they were not pipelined"
    );
    eprintln!("{COMMANDS} concurrent commands reached Redis in {reads} reads");
}

#[tokio::test]
async fn a_burst_stays_exact_when_redis_forgets_the_script() {
    let redis = RedisServer::start();
    let mut admin = redis_conn(&redis.url()).await;
    for algorithm in Algorithm::ALL {
        let config = LimiterConfig {
            redis_url: RedisUrl::new(redis.url()),
            algorithm,
            fail_mode: FailMode::Closed,
            timeout_ms: 5000,
            key_prefix: unique_prefix(&format!("batch-{}", algorithm.as_str())),
            policies: BTreeMap::from([(
                route::DEFAULT.to_owned(),
                PolicySpec {
                    limits: vec![Limit {
                        limit: 150,
                        window: Window::from_millis(60_000),
                    }],
                    shadow: false,
                },
            )]),
            ..LimiterConfig::default()
        };
        let limiter =
            Arc::new(Limiter::new(&config, &prometheus::Registry::new()).expect("limiter"));
        let policy = limiter.policies().for_route(None).clone();
        let warm = ClientId::from_ip("192.0.2.1".parse().expect("ip"), 64);
        limiter
            .decide(&policy, &warm)
            .await
            .expect("first decision");
        // As after a Redis restart: every decision of the burst meets NOSCRIPT first.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut admin)
            .await
            .expect("SCRIPT FLUSH");
        let client = ClientId::from_ip("192.0.2.2".parse().expect("ip"), 64);
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (limiter, policy, client) = (Arc::clone(&limiter), policy.clone(), client.clone());
            burst.spawn(async move { limiter.decide(&policy, &client).await });
        }
        let mut admitted = 0;
        while let Some(decision) = burst.join_next().await {
            let decision = decision.expect("task").expect("a decision, not an error");
            admitted += usize::from(decision.allowed);
        }
        assert_eq!(
            admitted,
            150,
            "{}: exactly the limit admitted",
            algorithm.as_str()
        );
    }
}
