//! End to end, a phase of the e2e test: `provisioner limiter` on a running cluster shows
//! what its Redis holds. A few shortens through the load balancer; the view of that
//! client's keys is checked against Redis read independently (redis-cli in the Redis
//! container, reached with `docker exec` through the local target's VM), then `limiter
//! reset` deletes the keys, and Redis no longer has them.

use std::path::Path;
use std::process::Command;

use clusterlab_contract::{redis_key, route, Algorithm};
use provisioner::plan;
use provisioner::spec::{Cluster, FileCheck, Role};

/// How many shortens the phase sends: within the shorten limit, so all are admitted.
const SHORTENS: u64 = 3;

/// Runs the phase on the local-target cluster of `spec`. The view is checked against
/// Redis read just before and just after it, and looked at again when other requests
/// from this machine changed Redis in between.
pub async fn limiter_view_matches_redis(spec: &Path, project_dir: &Path, http: &reqwest::Client) {
    let cluster = Cluster::load(spec, FileCheck::SpecOnly).expect("a valid spec");
    // The load balancer's port is published on this machine by Docker, so requests from
    // here reach nginx from the cluster network's gateway, and nginx tells the web app so
    // (X-Real-IP): that is the client the web app bills.
    let client = cluster.network.gateway.to_string();
    let client = client.as_str();
    let limiter = &cluster.app.limiter;
    assert_eq!(
        limiter.algorithm,
        Algorithm::SlidingLog,
        "this phase counts the sliding log's admissions in Redis"
    );
    let [shorten] = limiter.policies.shorten.limits.as_slice() else {
        panic!("this phase reads the one limit of the default spec's shorten policy");
    };
    let limit = u64::from(shorten.limit);
    let window_ms = shorten.window.as_millis();
    let key = redis_key(
        &limiter.key_prefix,
        limiter.algorithm,
        route::SHORTEN,
        shorten.window,
        &client,
    );
    let redis = Redis::of(&cluster);
    let view = |args: &[&str]| super::provisioner_ok(spec, project_dir, args);

    let reset = view(&["limiter", "reset", "--client", client]);
    assert!(
        reset.starts_with("deleted ") && reset.contains(&format!("client {client}")),
        "{reset}"
    );
    assert_eq!(redis.exists(&key), 0, "{key} after reset");

    let lb = format!(
        "http://{}:{}",
        cluster.load_balancer.bind, cluster.load_balancer.published_port
    );
    for n in 0..SHORTENS {
        let status = http
            .post(format!("{lb}/shorten"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("url=https://example.com/limiter-view/{n}"))
            .send()
            .await
            .expect("POST /shorten through the load balancer")
            .status();
        assert!(status.is_success(), "shorten {n}: {status}");
    }

    let mut attempts = 0;
    loop {
        attempts += 1;
        let before = redis.log(&key);
        let out = view(&["limiter", "--client", client]);
        let after = redis.log(&key);
        if before.0 != after.0 && attempts < 5 {
            // Another request from this machine was limited meanwhile: look again.
            continue;
        }
        assert_eq!(before.0, after.0, "Redis kept changing under the view");
        let count = after.0;
        assert!(
            count >= SHORTENS,
            "{key}: {count} admissions after {SHORTENS} shortens"
        );
        let row = Row::find(&out, client, route::SHORTEN);
        assert_eq!(row.key, key, "{out}");
        assert_eq!(
            (row.used, row.left),
            (count, limit.saturating_sub(count)),
            "the view against ZCARD {key} = {count}:\n{out}"
        );
        // The view read the TTL between the two PTTLs, and rounds it up: to a tenth of a
        // second, or to a second from a minute on.
        let rounding = if row.ttl_ms >= 60_000 { 1000 } else { 100 };
        assert!(
            after.1 <= row.ttl_ms && row.ttl_ms <= before.1 + rounding && after.1 <= window_ms,
            "TTL {} ms in the view, PTTL {} ms before and {} ms after:\n{out}",
            row.ttl_ms,
            before.1,
            after.1
        );
        break;
    }

    let reset = view(&["limiter", "reset", "--client", client]);
    let deleted: u64 = reset
        .strip_prefix("deleted ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {reset:?}"));
    assert!(
        deleted >= 1,
        "the shorten key (and any other of the client's) was deleted: {reset}"
    );
    assert_eq!(redis.exists(&key), 0, "{key} after reset");
    let empty = view(&["limiter", "--client", client]);
    assert!(
        empty.contains("no keys") || Row::try_find(&empty, client, route::SHORTEN).is_none(),
        "{empty}"
    );
}

/// redis-cli in the Redis container, through the local target's VM (`docker exec` twice),
/// authenticated with the container's own password file.
struct Redis {
    vm: String,
}

impl Redis {
    fn of(cluster: &Cluster) -> Redis {
        let host = cluster.the(Role::Redis).expect("a redis host");
        Redis {
            vm: plan::container_name(cluster, host),
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("docker");
        command.args(["exec", &self.vm, "docker", "exec", "redis"]);
        command.args(plan::redis_cli(&[&["-h", "127.0.0.1"], args].concat()));
        let output = command.output().expect("run docker exec");
        assert!(
            output.status.success(),
            "redis-cli {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn number(&self, args: &[&str]) -> i64 {
        let text = self.cli(args);
        text.parse()
            .unwrap_or_else(|_| panic!("redis-cli {} answered {text:?}", args.join(" ")))
    }

    fn exists(&self, key: &str) -> i64 {
        self.number(&["EXISTS", key])
    }

    /// The log's admissions (`ZCARD`) and its `PTTL`.
    fn log(&self, key: &str) -> (u64, u64) {
        let count = self.number(&["ZCARD", key]);
        let pttl = self.number(&["PTTL", key]);
        (
            u64::try_from(count).unwrap_or(0),
            u64::try_from(pttl).unwrap_or(0),
        )
    }
}

/// One line of the view's table.
struct Row {
    used: u64,
    left: u64,
    ttl_ms: u64,
    key: String,
}

impl Row {
    fn find(out: &str, client: &str, policy: &str) -> Row {
        Row::try_find(out, client, policy)
            .unwrap_or_else(|| panic!("no {policy} row for {client} in:\n{out}"))
    }

    /// `CLIENT POLICY USED LEFT <limit> per <window> NEXT FULL TTL KEY [note]`.
    fn try_find(out: &str, client: &str, policy: &str) -> Option<Row> {
        out.lines().find_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            if cells.len() < 11 || cells[0] != client || cells[1] != policy {
                return None;
            }
            Some(Row {
                used: cells[2].parse().ok()?,
                left: cells[3].parse().ok()?,
                ttl_ms: duration_ms(cells[9])?,
                key: cells[10].to_owned(),
            })
        })
    }
}

/// The view's durations (`850ms`, `41.2s`, `3m05s`, `1h02m`) in milliseconds.
fn duration_ms(text: &str) -> Option<u64> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok();
    }
    if let Some((h, m)) = text.strip_suffix('m').and_then(|t| t.split_once('h')) {
        return Some((h.parse::<u64>().ok()? * 60 + m.parse::<u64>().ok()?) * 60_000);
    }
    if let Some((m, s)) = text.strip_suffix('s').and_then(|t| t.split_once('m')) {
        return Some(m.parse::<u64>().ok()? * 60_000 + s.parse::<u64>().ok()? * 1000);
    }
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    Some((seconds * 1000.0).round() as u64)
}

#[test]
fn durations_read_back() {
    assert_eq!(duration_ms("850ms"), Some(850));
    assert_eq!(duration_ms("41.2s"), Some(41_200));
    assert_eq!(duration_ms("3m05s"), Some(185_000));
    assert_eq!(duration_ms("1h02m"), Some(3_720_000));
    assert_eq!(duration_ms("none"), None);
}
