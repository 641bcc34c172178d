//! A real Sentinel group on this machine (a primary, a replica and three sentinels, all
//! `redis-server` processes demanding a password, on free ports in a temp dir): the limiter
//! finds the primary through the sentinels, and after the primary is killed it decides on
//! the replica the sentinels promote, with the budget spent before the failover intact.

mod limiter_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use limiter_support::*;
use serde_json::json;
use webapp::limiter::{ClientId, Limiter, LimiterConfig};

const PASSWORD: &str = "sentinel test pw";
const MASTER: &str = "limiter-test";

/// A `redis-server` process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Process {
    Process(
        Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)"),
    )
}

fn data_node(dir: &Path, port: u16, primary: Option<u16>) -> Process {
    let port_s = port.to_string();
    let dir_s = dir.join(format!("node-{port}"));
    std::fs::create_dir_all(&dir_s).expect("node dir");
    let mut args = vec![
        "--port".to_owned(),
        port_s,
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        "".into(),
        "--dir".into(),
        dir_s.display().to_string(),
        "--requirepass".into(),
        PASSWORD.into(),
        "--masterauth".into(),
        PASSWORD.into(),
    ];
    if let Some(primary) = primary {
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = spawn(&args);
    wait_for(&format!("redis://:{}@127.0.0.1:{port}/", enc(PASSWORD)));
    process
}

/// A sentinel's config file: sentinels rewrite it, so each gets its own.
fn sentinel(dir: &Path, port: u16, primary: u16) -> Process {
    let conf: PathBuf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
             sentinel auth-pass {MASTER} \"{PASSWORD}\"\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 5000\n\
             requirepass \"{PASSWORD}\"\nsentinel sentinel-pass \"{PASSWORD}\"\n"
        ),
    )
    .expect("sentinel conf");
    let process = spawn(&[conf.to_str().expect("utf-8 path"), "--sentinel"]);
    wait_for(&format!("redis://:{}@127.0.0.1:{port}/", enc(PASSWORD)));
    process
}

fn enc(password: &str) -> String {
    password.replace(' ', "%20")
}

fn wait_for(url: &str) {
    for _ in 0..100 {
        if let Ok(mut conn) = redis::Client::open(url).and_then(|c| c.get_connection()) {
            if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} did not come up");
}

fn query(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let url = format!("redis://:{}@127.0.0.1:{port}/", enc(PASSWORD));
    let mut conn = redis::Client::open(url)?.get_connection()?;
    cmd.query(&mut conn)
}

/// Polls `condition` every 100 ms for up to `limit`.
fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_follows_a_failover_to_the_promoted_replica() {
    let dir = std::env::temp_dir().join(format!("clusterlab-sentinel-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (primary_port, replica_port) = (free_port(), free_port());
    let mut primary = Some(data_node(&dir, primary_port, None));
    let _replica = data_node(&dir, replica_port, Some(primary_port));
    let sentinel_ports = [free_port(), free_port(), free_port()];
    let _sentinels: Vec<Process> = sentinel_ports
        .iter()
        .map(|&port| sentinel(&dir, port, primary_port))
        .collect();
    // Each sentinel knows the replica and the other two: a failover can be agreed on.
    for &port in &sentinel_ports {
        eventually(
            "sentinels see each other and the replica",
            Duration::from_secs(20),
            || {
                let info: String =
                    match query(port, redis::cmd("SENTINEL").arg("MASTER").arg(MASTER))
                        .and_then(|v| Ok(redis::from_redis_value::<Vec<String>>(v)?))
                    {
                        Ok(fields) => fields.join(" "),
                        Err(_) => return false,
                    };
                info.contains("num-slaves 1") && info.contains("num-other-sentinels 2")
            },
        );
    }

    let config: LimiterConfig = serde_json::from_value(json!({
        "redis_url": format!("redis://:{}@ignored/", enc(PASSWORD)),
        "sentinel": {
            "master_name": MASTER,
            "nodes": sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>(),
        },
        "fail_mode": "closed",
        "timeout_ms": 300,
        "key_prefix": unique_prefix("sentinel"),
        "policies": { "default": { "limit": 5, "window": "3600s" } },
    }))
    .expect("config");
    let limiter = Limiter::new(&config, &prometheus::Registry::new()).expect("limiter");
    let policy = limiter.policies().for_route(None).clone();
    let client = ClientId::from_ip("192.0.2.9".parse().unwrap(), 64);

    for n in 1..=3 {
        let decision = limiter.decide(&policy, &client).await.expect("decision");
        assert!(decision.allowed, "request {n} admitted");
        assert_eq!(decision.remaining, 5 - n);
    }
    assert_eq!(
        limiter.primary_addr(),
        Some(format!("127.0.0.1:{primary_port}"))
    );
    limiter
        .ping()
        .await
        .expect("ping through the sentinel link");
    // The three decisions reached the replica before the primary dies.
    let [key] = limiter
        .keys(&policy, &client)
        .try_into()
        .expect("one limit, one key");
    let on_primary = query(primary_port, redis::cmd("DUMP").arg(&key)).expect("DUMP");
    eventually("the replica has the key", Duration::from_secs(10), || {
        query(replica_port, redis::cmd("DUMP").arg(&key)).ok() == Some(on_primary.clone())
    });

    drop(primary.take());
    let killed = Instant::now();
    let mut failed = 0;
    let decision = loop {
        match limiter.decide(&policy, &client).await {
            Ok(decision) => break decision,
            Err(_) => failed += 1,
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no decision by a new primary within 30 s ({failed} failed attempts)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovery = killed.elapsed();
    eprintln!("recovered after {recovery:?}, {failed} decisions failed meanwhile");
    assert!(
        failed > 0,
        "the dead primary made decisions fail for a while"
    );
    assert_eq!(
        limiter.primary_addr(),
        Some(format!("127.0.0.1:{replica_port}")),
        "the limiter follows the promoted replica"
    );
    assert!(decision.allowed);
    assert_eq!(
        decision.remaining, 1,
        "the budget spent on the old primary is still spent on the new one"
    );
    let decision = limiter.decide(&policy, &client).await.expect("decision");
    assert_eq!((decision.allowed, decision.remaining), (true, 0));
    let decision = limiter.decide(&policy, &client).await.expect("decision");
    assert!(!decision.allowed, "the sixth request is refused");
    let _ = std::fs::remove_dir_all(&dir);
}
