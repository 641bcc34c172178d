//! Redis stopped mid-run: fail_open serves and counts, fail_closed answers 503; both
//! recover without a restart when Redis returns; never a 500.

mod limiter_support;

use std::time::{Duration, Instant};

use limiter_support::*;
use serde_json::{json, Value};

async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.expect("request")
}

/// Polls until a limited route carries a decision again (Redis back and reconnected).
async fn until_decided(client: &reqwest::Client, app: &App) -> Duration {
    let started = Instant::now();
    loop {
        // The index route has the roomy default policy, so probing spends no redirect budget.
        let res = get(client, &app.url("/")).await;
        let status = res.status().as_u16();
        assert!(
            status == 200 || status == 503,
            "status {status} while recovering"
        );
        if header(&res, "RateLimit").is_some() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no recovery in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(server: &RedisServer, mode: &str) -> Value {
    json!({
        "redis_url": server.url(),
        "fail_mode": mode,
        "timeout_ms": 1000,
        "key_prefix": unique_prefix(mode),
        "policies": {
            "default": { "limit": 1000, "window": "60s" },
            "redirect": { "limit": 3, "window": "60s" },
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_serves_and_counts_while_redis_is_down_then_recovers() {
    let mut server = RedisServer::start();
    let app = spawn_app(config(&server, "open")).await;
    let client = http();
    let before: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get(&client, &app.url("/abc")).await.status().as_u16());
        }
        v
    };
    assert_eq!(before, [200, 200, 200, 429]);
    assert_eq!(
        get(&client, &app.url("/readyz")).await.status().as_u16(),
        200
    );

    server.stop();
    for _ in 0..10 {
        let res = get(&client, &app.url("/abc")).await;
        assert_eq!(res.status().as_u16(), 200, "served while Redis is down");
        assert!(
            header(&res, "RateLimit").is_none(),
            "no decision, no headers"
        );
    }
    assert_eq!(
        get(&client, &app.url("/readyz")).await.status().as_u16(),
        503
    );
    let served = metric(
        &client,
        &app,
        "ratelimit_decisions_total{outcome=\"fail_open\",policy=\"redirect\"}",
    )
    .await;
    assert_eq!(served, 10.0);
    let errors = metric(
        &client,
        &app,
        "ratelimit_redis_errors_total{kind=\"redis\"}",
    )
    .await
        + metric(
            &client,
            &app,
            "ratelimit_redis_errors_total{kind=\"timeout\"}",
        )
        .await;
    assert!(errors >= 10.0, "redis errors counted: {errors}");

    // The restarted Redis is empty: the limit starts over, enforced again.
    server.resume();
    until_decided(&client, &app).await;
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(get(&client, &app.url("/abc")).await.status().as_u16());
    }
    assert_eq!(after, [200, 200, 200, 429]);
    assert_eq!(
        get(&client, &app.url("/readyz")).await.status().as_u16(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_answers_503_while_redis_is_down_then_recovers() {
    let mut server = RedisServer::start();
    let app = spawn_app(config(&server, "closed")).await;
    let client = http();
    assert_eq!(get(&client, &app.url("/abc")).await.status().as_u16(), 200);

    server.stop();
    for _ in 0..5 {
        let res = get(&client, &app.url("/abc")).await;
        assert_eq!(res.status().as_u16(), 503);
        assert_eq!(header(&res, "Retry-After"), Some("1"));
        let body: Value = res.json().await.expect("json");
        assert_eq!(
            body,
            json!({ "error": "Rate limiter unavailable", "retry_after": 1 })
        );
    }
    // Unlimited routes keep working.
    assert_eq!(
        get(&client, &app.url("/healthz")).await.status().as_u16(),
        200
    );
    let refused = metric(
        &client,
        &app,
        "ratelimit_decisions_total{outcome=\"fail_closed\",policy=\"redirect\"}",
    )
    .await;
    assert_eq!(refused, 5.0);

    server.resume();
    until_decided(&client, &app).await;
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(get(&client, &app.url("/abc")).await.status().as_u16());
    }
    assert_eq!(after, [200, 200, 200, 429]);
}

/// The cluster runs Redis with `maxmemory` and `noeviction`: a full Redis refuses the
/// decision's write instead of evicting live limiter state. The refusal must show: the
/// fail mode applies and the metrics count it as `oom`, and no client's state is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_visibly_and_keeps_the_limiter_state() {
    let server = RedisServer::start();
    let mut conn = redis_conn(&server.url()).await;
    let prefix = unique_prefix("oom");
    let app = spawn_app(json!({
        "redis_url": server.url(),
        "fail_mode": "open",
        "timeout_ms": 1000,
        "key_prefix": prefix,
        "policies": {
            "default": { "limit": 1000, "window": "60s" },
            "redirect": { "limit": 3, "window": "60s" },
        },
    }))
    .await;
    let client = http();
    assert_eq!(get(&client, &app.url("/abc")).await.status().as_u16(), 200);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(!keys.is_empty(), "the decision left a key");

    // What the cluster's redis-server gets on its command line, with a limit already passed.
    for (key, value) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut conn)
            .await
            .expect("CONFIG SET");
    }
    for _ in 0..5 {
        let res = get(&client, &app.url("/abc")).await;
        assert_eq!(res.status().as_u16(), 200, "fail_mode open serves");
        assert!(header(&res, "RateLimit").is_none(), "no decision was made");
    }
    let oom = metric(&client, &app, "ratelimit_redis_errors_total{kind=\"oom\"}").await;
    assert_eq!(oom, 5.0, "each refusal counted as oom");
    let served = metric(
        &client,
        &app,
        "ratelimit_decisions_total{outcome=\"fail_open\",policy=\"redirect\"}",
    )
    .await;
    assert_eq!(served, 5.0);
    for key in &keys {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(exists, "{key} was evicted");
    }
}

/// `cmdstat_<name>` fields of `INFO commandstats` as (calls, failed_calls).
async fn command_stats(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    let Some(line) = info
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:")))
    else {
        return (0, 0);
    };
    let field = |key: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("calls"), field("failed_calls"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_one_evalsha_and_the_script_is_reloaded_only_on_noscript() {
    let server = RedisServer::start();
    let config: webapp::limiter::LimiterConfig =
        serde_json::from_value(json!({ "redis_url": server.url(), "timeout_ms": 1000 }))
            .expect("config");
    let limiter =
        webapp::limiter::Limiter::new(&config, &prometheus::Registry::new()).expect("limiter");
    let policy = limiter.policies().for_route(None).clone();
    let client = webapp::limiter::ClientId::from_ip("192.0.2.9".parse().unwrap(), 64);
    let mut conn = redis_conn(&server.url()).await;

    for _ in 0..10 {
        assert!(
            limiter
                .decide(&policy, &client)
                .await
                .expect("decision")
                .allowed
        );
    }
    // The first call meets NOSCRIPT, loads the script, retries; every later one is a
    // single EVALSHA.
    assert_eq!(command_stats(&mut conn, "evalsha").await, (11, 1));
    assert_eq!(command_stats(&mut conn, "script|load").await.0, 1);
    assert_eq!(command_stats(&mut conn, "eval").await.0, 0);

    // A Redis that lost its scripts (restart, SCRIPT FLUSH) gets it loaded again, once.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT FLUSH");
    for _ in 0..3 {
        assert!(
            limiter
                .decide(&policy, &client)
                .await
                .expect("decision")
                .allowed
        );
    }
    assert_eq!(command_stats(&mut conn, "evalsha").await, (15, 2));
    assert_eq!(command_stats(&mut conn, "script|load").await.0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_redis_url_is_used_and_never_printed() {
    let server = RedisServer::start_with_password(Some("s3cret-pw"));
    let app = spawn_app(json!({
        "redis_url": server.url(),
        "timeout_ms": 1000,
        "fail_mode": "closed",
        "key_prefix": unique_prefix("password"),
        "policies": { "default": { "limit": 2, "window": "60s" } },
    }))
    .await;
    let client = http();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(get(&client, &app.url("/abc")).await.status().as_u16());
    }
    // 503 would mean the password was not sent (fail_mode = closed).
    assert_eq!(seen, [200, 200, 429]);
    assert_eq!(
        get(&client, &app.url("/readyz")).await.status().as_u16(),
        200
    );

    let config: webapp::limiter::LimiterConfig =
        serde_json::from_value(json!({ "redis_url": server.url() })).expect("config");
    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret-pw"), "{printed}");
    assert!(printed.contains(&format!("redis://***@127.0.0.1:{}/", server.port)));
}

/// `fail_mode = "local"`: with Redis stopped, two servers (`instances = 2`) each admit
/// their half of the limit on their own, so a burst through both admits at most the limit
/// (plus what GCRA returns over the burst's own span), never unlimited; every decision is
/// counted as a fallback, and the answers carry the share as their policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_bounds_a_burst_through_two_servers_while_redis_is_down() {
    let mut server = RedisServer::start();
    let limiter = json!({
        "redis_url": server.url(),
        "fail_mode": "local",
        "instances": 2,
        "timeout_ms": 200,
        "key_prefix": unique_prefix("local"),
        "policies": {
            "default": { "limit": 1000, "window": "60s" },
            "redirect": { "limit": 10, "window": "60s" },
        },
    });
    let apps = [spawn_app(limiter.clone()).await, spawn_app(limiter).await];
    let client = http();
    server.stop();

    let started = Instant::now();
    let mut admitted = 0u64;
    let mut refused = 0u64;
    for i in 0..60 {
        let res = get(&client, &apps[i % 2].url("/abc")).await;
        match res.status().as_u16() {
            200 => admitted += 1,
            429 => {
                refused += 1;
                let retry: u64 = header(&res, "Retry-After")
                    .expect("a 429 says when")
                    .parse()
                    .expect("seconds");
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
            }
            other => panic!("status {other} while Redis is down"),
        }
        assert_eq!(
            header(&res, "RateLimit-Policy"),
            Some("\"redirect\";q=5;w=60"),
            "each server reports its share"
        );
    }
    let span = started.elapsed();
    // GCRA on a share of 5 per 60 s returns a unit every 12 s of the burst's span.
    let per_server = 5 + span.as_secs() / 12;
    assert!(
        (10..=2 * per_server).contains(&admitted),
        "admitted {admitted} of 60 in {span:?} (bound {})",
        2 * per_server
    );
    assert_eq!(admitted + refused, 60);
    for app in &apps {
        let counted = metric(
            &client,
            app,
            "ratelimit_decisions_total{outcome=\"fallback_allowed\",policy=\"redirect\"}",
        )
        .await
            + metric(
                &client,
                app,
                "ratelimit_decisions_total{outcome=\"fallback_limited\",policy=\"redirect\"}",
            )
            .await;
        assert_eq!(counted, 30.0, "every decision counted as a fallback");
    }
}
