//! End to end, a phase of the e2e test: the cluster's one Redis grown into a Sentinel group
//! by `up` (two more redis hosts and `redis.sentinel` in the spec), then a failover drill.
//! k6 runs `rolling.js` through the load balancer while the primary's VM is killed, and a
//! shorten burst from this machine arrives as it dies. Measured: the time until every web
//! host decides through Redis again, the decisions made without Redis meanwhile, and the
//! burst's admissions, which `fail_mode: local` bounds by the limit Redis holds plus each
//! web host's share of it. No answer is a 5xx (k6's checks and the burst's statuses).
//! Then `limiter` finds the new primary, and `up` starts the killed VM again, whose Redis
//! rejoins as a replica of the node the sentinels promoted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use provisioner::metrics::web::{outcome, WebMetrics};
use provisioner::plan;
use provisioner::spec::{Cluster, FileCheck, Role};
use reqwest::StatusCode;

/// The two redis hosts the phase adds beside `redis` (10.77.0.20), and the group.
const NEW_HOSTS: &str = "  - { name: redis2, role: redis, ip: 10.77.0.25 }
  - { name: redis3, role: redis, ip: 10.77.0.26 }
";
/// A second of silence before a sentinel deems the primary down: a short drill.
const GROUP: &str = "
redis:
  sentinel: { down_after_ms: 1000 }
";
/// k6's redirects: 2/s for 40 s stays within the tester's redirect limit (100 a minute),
/// so every answer must be a 2xx or 3xx whichever way it was decided.
const K6_RATE: u64 = 2;
const K6_SECONDS: u64 = 40;
/// Shortens sent from this machine as the primary dies, one every 100 ms.
const BURST: usize = 30;

/// Runs the phase on the local-target cluster of `spec`, whose one redis host is `redis`.
pub async fn sentinel_group_survives_losing_its_primary(
    spec: &Path,
    project_dir: &Path,
    http: &reqwest::Client,
) {
    let text = std::fs::read_to_string(spec).expect("read the spec copy");
    let redis_line = "  - { name: redis, role: redis, ip: 10.77.0.20 }\n";
    assert!(text.contains(redis_line), "the default spec's redis host");
    let grown = format!(
        "{}{GROUP}",
        text.replace(redis_line, &format!("{redis_line}{NEW_HOSTS}"))
    );
    std::fs::write(spec, grown).expect("write the spec copy");
    let cluster = Cluster::load(spec, FileCheck::SpecOnly).expect("the grown spec is valid");
    let group = plan::sentinel_group(&cluster).expect("a Sentinel group");
    let redis_hosts: Vec<(String, String)> = cluster
        .hosts_with(Role::Redis)
        .map(|h| (h.name.clone(), h.ip.to_string()))
        .collect();
    let vm = |host: &str| format!("clusterlab-{host}");

    let started = Instant::now();
    let out = super::provisioner_ok(spec, project_dir, &["up"]);
    // The new nodes and every sentinel first; the old Redis, now a group member, is
    // replaced only after the web hosts follow the sentinels.
    for line in [
        "redis: redis left running until the web hosts have rolled, sentinel created",
        "redis2: redis created, sentinel created",
        "redis3: redis created, sentinel created",
        "web1: web replaced",
        "web2: web replaced",
        "redis: redis replaced, sentinel unchanged",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing the line {line:?} in:\n{out}"
        );
    }
    let grow = started.elapsed();
    // Normally still `redis`; a failover while up restarted it would have moved it.
    let primary_of = |host: &str| -> Option<String> {
        let answer = redis_cli(
            &vm(host),
            "sentinel",
            plan::SENTINEL_PORT,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &group.master_name],
        );
        answer.lines().next().map(str::to_owned)
    };
    let mut primary_ip = String::new();
    eventually(
        "the sentinels agree on a primary the others replicate from",
        || {
            let Some(ip) = primary_of("redis2") else {
                return false;
            };
            primary_ip = ip.clone();
            redis_hosts
                .iter()
                .filter(|(_, h)| *h != ip)
                .all(|(host, _)| replicates_from(&vm(host), &ip))
        },
    );
    let (old_primary, _) = redis_hosts
        .iter()
        .find(|(_, ip)| *ip == primary_ip)
        .cloned()
        .unwrap_or_else(|| panic!("the sentinels' primary {primary_ip} is a redis host"));
    eventually(
        "every sentinel knows both replicas and the other sentinels",
        || {
            redis_hosts.iter().all(|(host, _)| {
                let master = redis_cli(
                    &vm(host),
                    "sentinel",
                    plan::SENTINEL_PORT,
                    &["SENTINEL", "MASTER", &group.master_name],
                );
                let fields: Vec<&str> = master.lines().collect();
                let field = |name: &str| {
                    fields
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| fields.get(i + 1))
                        .copied()
                };
                field("num-slaves") == Some("2") && field("num-other-sentinels") == Some("2")
            })
        },
    );

    // k6 through the load balancer for the whole drill.
    let web: Vec<String> = cluster
        .hosts_with(Role::Web)
        .map(|h| h.ip.to_string())
        .collect();
    let mut before_k6 = BTreeMap::new();
    for ip in &web {
        before_k6.insert(
            ip.clone(),
            made_by_redis(&super::web_metrics(http, ip).await, Some("redirect")),
        );
    }
    let reports = tempfile::tempdir().expect("a reports directory");
    let load_log = reports.path().join("loadtest.log");
    let log = std::fs::File::create(&load_log).expect("a log file");
    let mut load = super::provisioner(spec, project_dir)
        .args(["loadtest", "rolling.js", "-e"])
        .arg(format!("RATE={K6_RATE}"))
        .arg("-e")
        .arg(format!("DURATION_SECONDS={K6_SECONDS}"))
        // Requests that arrive while no primary answers wait out the limiter's timeouts
        // (about 0.5 s each, seen in this drill): the steady-state 500 ms p95 is no goal
        // here, a second is.
        .args(["--p95-ms", "1000"])
        .arg("--reports")
        .arg(reports.path().join("reports"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .spawn()
        .expect("start the load test");
    let waiting = Instant::now();
    loop {
        let mut reached = true;
        for ip in &web {
            reached &= made_by_redis(&super::web_metrics(http, ip).await, Some("redirect"))
                > before_k6[ip];
        }
        if reached {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(90),
            "k6's redirects did not reach both web hosts within 90 s:\n{}",
            std::fs::read_to_string(&load_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The primary's VM dies: its Redis and its sentinel with it.
    eprintln!("e2e failover: killing {old_primary}'s VM, the primary at {primary_ip}");
    let before: BTreeMap<String, WebMetrics> = {
        let mut before = BTreeMap::new();
        for ip in &web {
            before.insert(ip.clone(), super::web_metrics(http, ip).await);
        }
        before
    };
    let killed = Instant::now();
    let status = Command::new("docker")
        .args(["kill", &vm(&old_primary)])
        .status()
        .expect("docker kill");
    assert!(status.success(), "docker kill {}", vm(&old_primary));
    let burst = tokio::spawn({
        let http = http.clone();
        async move {
            let mut statuses = Vec::new();
            for i in 0..BURST {
                let status = super::shorten(&http, &format!("https://example.com/failover/{i}"))
                    .await
                    .status();
                statuses.push(status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            statuses
        }
    });
    // Recovered when every web host that decided without Redis decides through Redis again.
    let mut fallback_seen: BTreeMap<String, f64> = BTreeMap::new();
    let recovery = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the web hosts did not decide through Redis within 60 s of the kill"
        );
        let mut recovered = true;
        for ip in &web {
            let now = super::web_metrics(http, ip).await;
            let was = &before[ip];
            if now.decisions_without_redis() > was.decisions_without_redis() {
                fallback_seen
                    .entry(ip.clone())
                    .or_insert(made_by_redis(&now, None));
            }
            recovered &= fallback_seen
                .get(ip)
                .is_some_and(|at_fallback| made_by_redis(&now, None) > *at_fallback);
        }
        if recovered {
            break killed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let statuses = burst.await.expect("the burst");
    let mut without_redis = 0.0;
    for ip in &web {
        without_redis += super::web_metrics(http, ip).await.decisions_without_redis()
            - before[ip].decisions_without_redis();
    }
    let admitted = statuses.iter().filter(|s| s.is_success()).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let unexpected: Vec<&StatusCode> = statuses
        .iter()
        .filter(|s| !s.is_success() && **s != StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let shorten_limit = cluster.app.limiter.policies.shorten.limits[0].limit;
    let bound = 2 * shorten_limit as usize;
    eprintln!(
        "e2e failover: group grown by up in {:.1}s; recovery {:.2}s from the kill to every web \
         host deciding through Redis again; {without_redis} decisions without Redis meanwhile; \
         burst of {BURST} shortens: {admitted} admitted, {limited} limited (bound {bound})",
        grow.as_secs_f64(),
        recovery.as_secs_f64()
    );
    assert!(
        unexpected.is_empty(),
        "only 2xx and 429 answer the burst: {unexpected:?}"
    );
    assert!(
        without_redis > 0.0,
        "the web hosts fell back while no primary answered"
    );
    assert!(
        admitted <= bound,
        "the burst admitted {admitted}, above the limit on Redis plus both web hosts' shares ({bound})"
    );

    // The sentinels promoted a replica; the provisioner finds it.
    let (new_primary, new_ip) = redis_hosts
        .iter()
        .filter(|(host, _)| *host != old_primary)
        .find(|(host, _)| replication(&vm(host)).contains("role:master"))
        .cloned()
        .expect("a replica was promoted");
    let view = super::provisioner_ok(spec, project_dir, &["limiter"]);
    assert!(
        view.contains(&format!("{new_primary} ({new_ip}:{})", plan::REDIS_PORT)),
        "`limiter` reads the promoted primary {new_primary}:\n{view}"
    );

    let loaded = load.wait().expect("wait for the load test");
    let log = std::fs::read_to_string(&load_log).unwrap_or_default();
    assert!(
        loaded.success(),
        "k6 through the load balancer failed during the failover:\n{log}"
    );
    assert!(log.contains("verdict: PASS"), "{log}");

    // up starts the killed VM again; its Redis asks the sentinels and rejoins as a replica.
    super::provisioner_ok(spec, project_dir, &["up"]);
    eventually("the old primary replicates from the promoted one", || {
        replicates_from(&vm(&old_primary), &new_ip)
    });
    let status = super::provisioner_ok(spec, project_dir, &["status"]);
    assert_eq!(
        status.matches("(healthy)").count(),
        10,
        "nginx, 2 web, postgres, 3 redis and 3 sentinels healthy:\n{status}"
    );
}

/// Decisions a web host made through Redis (neither without it nor exempt), for `policy`
/// or for every policy.
fn made_by_redis(metrics: &WebMetrics, policy: Option<&str>) -> f64 {
    metrics
        .decisions
        .iter()
        .filter(|((p, o), _)| {
            policy.is_none_or(|policy| p == policy)
                && !outcome::without_redis(o)
                && o != outcome::EXEMPT
        })
        .map(|(_, n)| n)
        .sum()
}

/// `INFO replication` of the Redis on VM `vm`.
fn replication(vm: &str) -> String {
    redis_cli(vm, "redis", plan::REDIS_PORT, &["INFO", "replication"])
}

/// Whether the Redis on VM `vm` is a replica linked to the primary at `primary_ip`.
fn replicates_from(vm: &str, primary_ip: &str) -> bool {
    let info = replication(vm);
    info.contains("role:slave")
        && info.contains(&format!("master_host:{primary_ip}"))
        && info.contains("master_link_status:up")
}

/// redis-cli against `port` in container `service` of VM `vm`, with its own password file.
fn redis_cli(vm: &str, service: &str, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let output = Command::new("docker")
        .args(["exec", vm, "docker", "exec", service])
        .args(plan::redis_cli(
            &[&["-h", "127.0.0.1", "-p", &port], args].concat(),
        ))
        .output()
        .expect("run docker exec");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
