//! End to end, with the real binary on the default spec (a copy of the repository's
//! cluster.yaml in a temporary directory, so keys, secrets, rendered files and terraform
//! state stay out of the repository; the repository is the working and project directory):
//! cold `up`; a link shortened and followed and the page loaded through the load balancer;
//! the shorten limit held exactly across both web hosts, and per client under the spec's
//! overrides (an unlimited address, one with a limit of its own); the load test's chart, the
//! limiter's keys against Redis, `top` in a terminal under load and `status`'s per-policy table;
//! a second `up` that changes
//! nothing; `deploy` of an app change rolled one web host at a time under steady traffic,
//! a second version deployed and rolled back under k6 traffic;
//! then what must never lose data: a killed VM brought back, a lost key pair rotated in
//! place, both secrets rotated with the limit still exact, a data host replaced only with
//! consent and its links kept, `destroy` refusing without `--yes`, and a backup restored
//! into a cluster made anew after `destroy --delete-data` (that one in pull mode, from a
//! registry on this machine); last, `destroy` leaving nothing
//! behind. A guard destroys the cluster even when a phase fails. One test function: the
//! phases share one cluster and must not run concurrently.

#[path = "e2e/chart.rs"]
mod chart;
mod common;
#[path = "e2e/failover.rs"]
mod failover;
#[path = "e2e/limiter_view.rs"]
mod limiter_view;
#[path = "e2e/lock.rs"]
mod lock;
#[path = "e2e/registry.rs"]
mod registry;
#[path = "e2e/rollback.rs"]
mod rollback;
#[path = "e2e/top.rs"]
mod top;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::repo_root;
use provisioner::metrics::web::WebMetrics;
use reqwest::redirect::Policy;
use reqwest::StatusCode;

const LB: &str = "http://127.0.0.1:8080";
const WEB_HOSTS: [(&str, &str); 2] = [("web1", "10.77.0.11"), ("web2", "10.77.0.12")];
/// Every host of the default spec.
const HOSTS: [&str; 6] = ["lb", "web1", "web2", "redis", "postgres", "tester"];
const SHORTEN_LIMIT: u64 = 10;
/// The load tester's own address in the default spec; `loadtest --clients 3` sends from the
/// next three, two of which the spec copy gives overrides ([`OVERRIDES`]).
const TESTER: &str = "10.77.0.30";
/// Added to the spec copy's limiter: the second extra client is never limited, the third
/// gets twice the shorten limit, as the tighter of two limits: 25 a minute and 20 an hour
/// (so through the LB the hour's limit refuses while the minute's still has room, and the
/// verdict must not call those 429s wrong).
const OVERRIDES: &str = "    overrides:
      - { cidr: 10.77.0.32, unlimited: true }
      - cidr: 10.77.0.33/32
        policies:
          shorten: [{ limit: 25, window: 60s }, { limit: 20, window: 3600s }]
";

/// The spec copy and its directory; destroys the cluster on drop unless disarmed.
struct Cluster {
    dir: tempfile::TempDir,
    armed: bool,
}

impl Cluster {
    fn spec(&self) -> PathBuf {
        self.dir.path().join("cluster.yaml")
    }

    /// Runs the provisioner with this spec from the repository directory.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// [`Cluster::run`] with these environment variables set as well.
    fn run_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let output = provisioner(&self.spec(), &repo_root())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run the provisioner binary");
        eprintln!(
            "--- provisioner {} ({}) ---\nstdout:\n{}\nstderr (tail):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            tail(&String::from_utf8_lossy(&output.stderr), 60)
        );
        output
    }

    fn run_ok(&self, args: &[&str]) -> (String, Duration) {
        let started = Instant::now();
        let output = self.run(args);
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "provisioner {} failed:\n{}",
            args.join(" "),
            tail(&String::from_utf8_lossy(&output.stderr), 80)
        );
        (String::from_utf8_lossy(&output.stdout).into_owned(), took)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.armed {
            eprintln!("e2e: destroying the cluster after a failure");
            self.run(&["destroy", "--yes", "--delete-data"]);
        }
    }
}

/// The tester's row of a PASS verdict for `policy`: (requests, admitted, answered 429).
fn verdict_row(out: &str, policy: &str) -> (u64, u64, u64) {
    client_row(out, TESTER, policy)
}

/// `client`'s row of a PASS verdict for `policy`: (requests, admitted, answered 429).
fn client_row(out: &str, client: &str, policy: &str) -> (u64, u64, u64) {
    assert!(
        out.contains("verdict: PASS"),
        "the load test's verdict:\n{out}"
    );
    let row = out
        .lines()
        .find(|line| {
            line.split_whitespace().next() == Some(client)
                && line.split_whitespace().nth(1) == Some(policy)
        })
        .unwrap_or_else(|| panic!("no {policy} row for {client} in:\n{out}"));
    let cells: Vec<u64> = row
        .split_whitespace()
        .skip(3)
        .take(3)
        .map(|cell| cell.parse().expect("a count"))
        .collect();
    (cells[0], cells[1], cells[2])
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

async fn shorten(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client
        .post(format!("{LB}/shorten"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("url={url}"))
        .send()
        .await
        .expect("POST /shorten through the load balancer")
}

/// `provisioner -f SPEC --project-dir PROJECT`, run from the project directory: the command
/// the phase modules start, and add their arguments to.
fn provisioner(spec: &Path, project_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_provisioner"));
    command
        .arg("-f")
        .arg(spec)
        .arg("--project-dir")
        .arg(project_dir)
        .current_dir(project_dir);
    command
}

/// [`provisioner`] with `args`; its stdout, which it must exit 0 with.
fn provisioner_ok(spec: &Path, project_dir: &Path, args: &[&str]) -> String {
    let output = provisioner(spec, project_dir)
        .args(args)
        .output()
        .expect("run the provisioner binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "provisioner {} failed ({}):\n{stdout}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("--- provisioner {} ---\n{stdout}", args.join(" "));
    stdout
}

/// One web host's `/metrics`, read directly from it (metrics are not rate limited) with
/// the reader `status` and `top` use.
async fn web_metrics(client: &reqwest::Client, ip: &str) -> WebMetrics {
    let text = client
        .get(format!("http://{ip}:8000/metrics"))
        .send()
        .await
        .expect("GET /metrics of a web host")
        .text()
        .await
        .expect("metrics text");
    WebMetrics::parse(&text)
}

/// Shorten decisions a web host made without Redis: served unlimited (`fail_mode = open`)
/// or on its own share alone (`local`, the fallback). Either means Redis did not answer.
async fn shorten_decisions_without_redis(client: &reqwest::Client, ip: &str) -> u64 {
    let mut total = 0;
    for outcome in ["fail_open", "fallback_allowed", "fallback_limited"] {
        total += shorten_decisions(client, ip, outcome).await;
    }
    total
}

/// `ratelimit_decisions_total{policy="shorten",outcome=...}` of one web host.
async fn shorten_decisions(client: &reqwest::Client, ip: &str, outcome: &str) -> u64 {
    let metrics = web_metrics(client, ip).await;
    let count = metrics
        .decisions
        .get(&("shorten".to_owned(), outcome.to_owned()))
        .copied()
        .unwrap_or_default();
    count as u64
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let output = common::run_tool(Command::new("docker").args(args));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn leftovers() -> Vec<String> {
    let mut found = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        "label=clusterlab.cluster=clusterlab",
        "--format",
        "{{.Names}}",
    ]);
    found.extend(
        docker_lines(&["volume", "ls", "--format", "{{.Name}}"])
            .into_iter()
            // `clusterlab-<host>-docker|data`; the default spec's host names hold no `-`, so
            // another cluster's (`clusterlab-dev-web1-docker`) is not taken for this one's.
            .filter(|v| {
                let host = v.strip_prefix("clusterlab-").and_then(|rest| {
                    rest.strip_suffix("-docker")
                        .or_else(|| rest.strip_suffix("-data"))
                });
                host.is_some_and(|h| !h.is_empty() && !h.contains('-'))
            }),
    );
    found.extend(
        docker_lines(&["network", "ls", "--format", "{{.Name}}"])
            .into_iter()
            .filter(|n| n == "clusterlab-net"),
    );
    found
}

/// Runs the provisioner, expecting it to refuse with the consent exit code (3).
fn refused(cluster: &Cluster, args: &[&str]) -> String {
    let output = cluster.run(args);
    assert_eq!(
        output.status.code(),
        Some(3),
        "provisioner {} should refuse for lack of consent",
        args.join(" ")
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Follows `short_url` and returns the status and Location. A 429 (this client's redirect
/// budget spent, e.g. by the traffic during the deploy) is waited out as its Retry-After
/// says, a few times at most: the limit is not what this checks.
async fn follow(client: &reqwest::Client, short_url: &str) -> (StatusCode, String) {
    for _ in 0..3 {
        let answer = client.get(short_url).send().await.expect("follow a link");
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("a 429 carries Retry-After in seconds");
            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 61))).await;
            continue;
        }
        let location = answer
            .headers()
            .get("location")
            .map(|l| l.to_str().expect("location").to_owned())
            .unwrap_or_default();
        return (answer.status(), location);
    }
    panic!("{short_url} answered 429 three times in a row");
}

/// 30 concurrent shortens from this client admit exactly the limit across both web hosts,
/// none of them served without asking Redis. Needs a fresh budget (a minute since the last
/// shorten) and freshly started web hosts (their counters start at zero).
async fn burst_is_limited_exactly(http: &reqwest::Client, tag: &str) {
    let answers = futures_util::future::join_all((0..30).map(|i| {
        let http = http.clone();
        async move {
            shorten(&http, &format!("https://example.com/{tag}/{i}"))
                .await
                .status()
        }
    }))
    .await;
    let admitted = answers.iter().filter(|s| s.is_success()).count() as u64;
    assert_eq!(admitted, SHORTEN_LIMIT, "{tag}: answers {answers:?}");
    for (host, ip) in WEB_HOSTS {
        assert_eq!(
            shorten_decisions_without_redis(http, ip).await,
            0,
            "{tag}: {host} decided without Redis"
        );
    }
}

fn web_env(host: &str) -> Vec<String> {
    let vm = format!("clusterlab-{host}");
    let lines = docker_lines(&[
        "exec",
        &vm,
        "docker",
        "inspect",
        "-f",
        "{{json .Config.Env}}",
        "web",
    ]);
    serde_json::from_str(&lines.concat()).expect("env json")
}

/// Every running service container of the cluster, inspected through its VM: no field of
/// `docker inspect` (environment, command line, labels, healthcheck) holds either
/// password; the web app and nginx containers' users are not root, and every service's
/// main process runs unprivileged (Redis' and PostgreSQL's entrypoints drop root after
/// preparing the data directory; nginx binds port 80 with its file capability).
fn no_secret_in_docker_inspect_and_least_privilege(clusterlab: &Path) {
    let passwords: Vec<String> = ["redis_password", "postgres_password"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(clusterlab.join("secrets").join(name))
                .expect("a generated secret");
            text.strip_suffix('\n').unwrap_or(&text).to_owned()
        })
        .collect();
    for host in ["lb", "web1", "web2", "redis", "postgres"] {
        let vm = format!("clusterlab-{host}");
        for container in docker_lines(&["exec", &vm, "docker", "ps", "--format", "{{.Names}}"]) {
            let inspected = docker_lines(&["exec", &vm, "docker", "inspect", &container]).concat();
            for password in &passwords {
                assert!(
                    !inspected.contains(password.as_str()),
                    "{host}/{container}: docker inspect shows a password"
                );
            }
        }
    }
    for (host, container, user) in [
        ("web1", "web", "webapp:webapp"),
        ("lb", "nginx", "www-data:www-data"),
    ] {
        let vm = format!("clusterlab-{host}");
        let found = docker_lines(&[
            "exec",
            &vm,
            "docker",
            "inspect",
            "-f",
            "{{.Config.User}}",
            container,
        ]);
        assert_eq!(found, [user], "{host}/{container}: the container's user");
    }
    for (host, container, process) in [
        ("redis", "redis", "redis-server"),
        ("postgres", "postgres", "postgres"),
        ("web1", "web", "webapp"),
        ("lb", "nginx", "nginx"),
    ] {
        let vm = format!("clusterlab-{host}");
        // The images hold no `cat`: the VM reads its container's main process from /proc.
        let status = docker_lines(&[
            "exec",
            &vm,
            "sh",
            "-c",
            r#"cat "/proc/$(docker inspect -f '{{.State.Pid}}' "$1")/status""#,
            "sh",
            container,
        ])
        .join("\n");
        assert!(
            common::pid1_is_unprivileged(&status, process),
            "{host}/{container}: PID 1 is not {process} running unprivileged: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serve_limit_redeploy_and_destroy_the_default_cluster() {
    assert!(
        leftovers().is_empty(),
        "a cluster named clusterlab already exists here ({:?}); destroy it first",
        leftovers()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_root().join("cluster.yaml"),
        dir.path().join("cluster.yaml"),
    )
    .expect("copy cluster.yaml");
    let mut cluster = Cluster { dir, armed: true };
    let spec = std::fs::read_to_string(cluster.spec()).expect("read spec copy");
    let limiter_shadow = "    shadow: false\n";
    assert_eq!(
        spec.matches(limiter_shadow).count(),
        1,
        "one limiter.shadow line"
    );
    std::fs::write(
        cluster.spec(),
        spec.replace(limiter_shadow, &format!("{limiter_shadow}{OVERRIDES}")),
    )
    .expect("write spec copy");
    let http = client();

    // Cold up.
    let (out, cold_up) = cluster.run_ok(&["up"]);
    assert!(
        out.contains("the shortener is at http://127.0.0.1:8080/"),
        "{out}"
    );
    for line in [
        "redis: redis created",
        "postgres: postgres created",
        "web1: web created",
        "web2: web created",
        "lb: nginx created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(
        Path::new(&cluster.dir.path().join(".clusterlab/id_ed25519")).exists(),
        "up generates the key pair"
    );

    // A link through the load balancer, and the page.
    let page = http
        .get(format!("{LB}/"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("page");
    assert!(html.contains("<form"), "the HTML page has the form: {html}");
    let created = shorten(&http, "https://example.com/e2e").await;
    assert_eq!(created.status(), StatusCode::OK);
    let body: serde_json::Value = created.json().await.expect("shorten json");
    let short_url = body["short_url"].as_str().expect("short_url").to_owned();
    assert!(
        short_url.starts_with("http://127.0.0.1:8080/"),
        "{short_url}"
    );
    let followed = http.get(&short_url).send().await.expect("follow");
    assert_eq!(followed.status(), StatusCode::FOUND);
    assert_eq!(
        followed.headers()["location"].to_str().expect("location"),
        "https://example.com/e2e"
    );

    // The shorten limit is global: 30 concurrent requests from this one client, spread by
    // nginx over both web hosts, admit exactly the limit (one was used above).
    let answered = futures_util::future::join_all((0..30).map(|i| {
        let http = http.clone();
        async move {
            let res = shorten(&http, &format!("https://example.com/burst/{i}")).await;
            let served_by = res
                .headers()
                .get("X-Served-By")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (res.status(), served_by)
        }
    }))
    .await;
    let last_shorten = Instant::now();
    // Every answer names the web host that gave it, by its name in cluster.yaml.
    let served_by: std::collections::BTreeSet<Option<String>> =
        answered.iter().map(|(_, by)| by.clone()).collect();
    let expected: std::collections::BTreeSet<Option<String>> = WEB_HOSTS
        .iter()
        .map(|(host, _)| Some(host.to_string()))
        .collect();
    assert_eq!(served_by, expected, "X-Served-By through the load balancer");
    let answers: Vec<StatusCode> = answered.into_iter().map(|(status, _)| status).collect();
    let admitted = answers.iter().filter(|s| s.is_success()).count() as u64;
    let limited = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count() as u64;
    assert_eq!(
        (admitted, limited),
        (SHORTEN_LIMIT - 1, 30 - (SHORTEN_LIMIT - 1)),
        "answers: {answers:?}"
    );
    let mut allowed_total = 0;
    for (host, ip) in WEB_HOSTS {
        let allowed = shorten_decisions(&http, ip, "allowed").await;
        let refused = shorten_decisions(&http, ip, "limited").await;
        let without_redis = shorten_decisions_without_redis(&http, ip).await;
        eprintln!(
            "e2e: {host}: shorten allowed {allowed}, limited {refused}, without Redis {without_redis}"
        );
        assert!(allowed + refused > 0, "{host} got none of the requests");
        assert_eq!(
            without_redis, 0,
            "{host} decided shorten requests without Redis"
        );
        allowed_total += allowed;
    }
    assert_eq!(
        allowed_total, SHORTEN_LIMIT,
        "admitted across both web hosts"
    );

    no_secret_in_docker_inspect_and_least_privilege(&cluster.dir.path().join(".clusterlab"));

    // A second up changes nothing.
    let (out, warm_up) = cluster.run_ok(&["up"]);
    for line in [
        "redis: redis unchanged",
        "postgres: postgres unchanged",
        "web1: web unchanged",
        "web2: web unchanged",
        "lb: nginx unchanged",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    for word in ["created", "replaced", "started", "reloaded"] {
        assert!(
            !out.contains(word),
            "the second up {word} something:\n{out}"
        );
    }

    // status, logs and ssh against the running cluster.
    let (out, _) = cluster.run_ok(&["status"]);
    for host in HOSTS {
        assert!(
            out.contains(&format!("{host} (")),
            "{host} missing from status:\n{out}"
        );
    }
    assert_eq!(out.matches(": ssh ok").count(), 6, "{out}");
    assert_eq!(
        out.matches("(healthy)").count(),
        5,
        "every service is healthy:\n{out}"
    );
    // postgres logs to stderr; `logs` keeps the container's streams apart.
    let output = cluster.run(&["logs", "postgres", "--tail", "50"]);
    assert!(output.status.success(), "logs postgres failed");
    let logs = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("database system is ready"),
        "postgres logs:\n{logs}"
    );
    let (out, _) = cluster.run_ok(&["ssh", "web1", "docker", "ps", "--format", "{{.Names}}"]);
    assert_eq!(out.trim(), "web", "ssh runs the command on web1");

    // k6 on the tester host, judged by the provisioner: a burst of simultaneous requests from
    // one client, then the tutorial's rate test shortened. Both admit exactly the limit.
    let reports = cluster.dir.path().join("reports");
    let reports_arg = reports.to_str().expect("utf-8 temp path");
    let (out, _) = cluster.run_ok(&[
        "loadtest",
        "burst.js",
        "-e",
        "BURST_REQUESTS=300",
        "--reports",
        reports_arg,
    ]);
    assert_eq!(
        verdict_row(&out, "shorten"),
        (300, SHORTEN_LIMIT, 290),
        "{out}"
    );
    let (out, _) = cluster.run_ok(&[
        "loadtest",
        "rate-test.js",
        "-e",
        "RAMP_SECONDS=3",
        "-e",
        "HOLD_SECONDS=15",
        "--reports",
        reports_arg,
    ]);
    let (requests, admitted, limited) = verdict_row(&out, "shorten");
    assert!(requests > 200, "20 VUs for ~20 s: {out}");
    assert_eq!(
        (admitted, limited),
        (SHORTEN_LIMIT, requests - SHORTEN_LIMIT),
        "{out}"
    );
    let runs: Vec<PathBuf> = std::fs::read_dir(&reports)
        .expect("reports folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 2, "one folder per run: {runs:?}");
    let rate_run = runs
        .iter()
        .find(|p| p.to_string_lossy().ends_with("rate-test"))
        .expect("the rate test's folder");
    for file in [
        "samples.json",
        "summary.json",
        "report.html",
        "verdict.txt",
        "chart.svg",
        "index.html",
    ] {
        assert!(rate_run.join(file).is_file(), "{file} brought back");
    }
    // The chart of the rate test: both web hosts' admissions and refusals, the limit line.
    chart::assert_report_charts(rate_run, "shorten", &["web1", "web2"]);

    // Overrides through the load balancer: three client addresses on the tester, 30
    // shortens each; the usual limit for the first, none for the second, its own for the
    // third, each judged by its own rule.
    let (out, _) = cluster.run_ok(&[
        "loadtest",
        "multi-client.js",
        "--clients",
        "3",
        "-e",
        "REQUESTS_PER_CLIENT=30",
        "--reports",
        reports_arg,
    ]);
    assert_eq!(
        client_row(&out, "10.77.0.31", "shorten"),
        (30, SHORTEN_LIMIT, 30 - SHORTEN_LIMIT),
        "{out}"
    );
    assert_eq!(
        client_row(&out, "10.77.0.32", "shorten"),
        (30, 30, 0),
        "{out}"
    );
    assert_eq!(
        client_row(&out, "10.77.0.33", "shorten"),
        (30, 20, 10),
        "{out}"
    );
    // The third client's policy has two limits, each judged (one verdict line each).
    let third: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("10.77.0.33 "))
        .collect();
    assert!(
        third.iter().any(|l| l.contains(" 25/60000ms "))
            && third.iter().any(|l| l.contains(" 20/3600000ms ")),
        "{out}"
    );
    let unlimited_row = out
        .lines()
        .find(|line| line.starts_with("10.77.0.32 "))
        .expect("the unlimited client's row");
    assert!(unlimited_row.contains("unlimited"), "{out}");

    // What a learner watches the limit with: `limiter` against what Redis holds (it resets
    // this machine's budget at the end), `top` in a terminal under k6 load, and `status`'s
    // per-policy table.
    limiter_view::limiter_view_matches_redis(&cluster.spec(), &repo_root(), &http).await;
    top::top_follows_the_cluster_under_load(&cluster.spec(), &repo_root());
    top::status_sums_each_policy_over_the_web_hosts(&cluster.spec(), &repo_root());

    // deploy of an app change, one web host at a time, under steady traffic.
    let spec = std::fs::read_to_string(cluster.spec()).expect("read spec copy");
    assert!(
        spec.contains("redirect_status: 302"),
        "the default spec redirects with 302"
    );
    std::fs::write(
        cluster.spec(),
        spec.replace("redirect_status: 302", "redirect_status: 307"),
    )
    .expect("write spec copy");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let http = http.clone();
        let stop = stop.clone();
        let short_url = short_url.clone();
        async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let status = match http.get(&short_url).send().await {
                    Ok(response) => response.status().as_u16(),
                    Err(e) => panic!("request failed during the deploy: {e}"),
                };
                statuses.push(status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            statuses
        }
    });
    let deploy = {
        let started = Instant::now();
        let spec = cluster.spec();
        let first = tokio::task::spawn_blocking(move || {
            provisioner(&spec, &repo_root())
                .arg("deploy")
                .output()
                .expect("run provisioner deploy")
        });
        // While it rolls, a second deploy is refused by the deploy lock.
        let spec = cluster.spec();
        tokio::task::spawn_blocking(move || {
            lock::a_concurrent_deploy_is_refused(&spec, &repo_root())
        })
        .await
        .expect("the second deploy's check");
        let output = first.await.expect("deploy task");
        (output, started.elapsed())
    };
    stop.store(true, Ordering::Relaxed);
    let statuses = traffic.await.expect("traffic task");
    let (output, deploy_time) = deploy;
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "deploy failed:\n{out}\n{}",
        tail(&String::from_utf8_lossy(&output.stderr), 80)
    );
    let first = out
        .find("web1: web replaced")
        .unwrap_or_else(|| panic!("web1 not replaced:\n{out}"));
    let second = out
        .find("web2: web replaced")
        .unwrap_or_else(|| panic!("web2 not replaced:\n{out}"));
    assert!(
        first < second,
        "web hosts are replaced one at a time, in order:\n{out}"
    );
    lock::the_audit_log_holds_up_and_deploy(&cluster.spec(), &repo_root());
    // With their position in the sequence (one request every ~100 ms), to see when.
    let bad: Vec<(usize, u16)> = statuses
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| !(200..400).contains(s) && *s != 429)
        .collect();
    eprintln!(
        "e2e: {} requests during the deploy, {} answered 429",
        statuses.len(),
        statuses.iter().filter(|s| **s == 429).count()
    );
    assert!(
        bad.is_empty(),
        "answers other than 2xx/3xx/429 during the deploy: {bad:?}"
    );
    assert!(statuses.len() >= 10, "the traffic kept going: {statuses:?}");
    for (host, _) in WEB_HOSTS {
        assert!(
            web_env(host).contains(&"ROCKET_REDIRECT_STATUS=307".to_owned()),
            "{host} runs the new configuration"
        );
    }

    // A second version (a one-line change) deployed, then rolled back under k6 traffic.
    rollback::a_second_version_then_rollback_under_k6(&cluster.spec(), &repo_root());

    let link_survives = |phase: &'static str| {
        let http = http.clone();
        let short_url = short_url.clone();
        async move {
            assert_eq!(
                follow(&http, &short_url).await,
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    "https://example.com/e2e".to_owned()
                ),
                "the link made at the start still redirects after {phase}"
            );
        }
    };
    let started = Instant::now();
    let clusterlab = cluster.dir.path().join(".clusterlab");

    // (c) A VM that died is started again by the next up, which then finishes.
    common::run_tool(Command::new("docker").args(["kill", "clusterlab-web1"]));
    let output = cluster.run(&["up"]);
    assert!(output.status.success(), "up after a killed VM failed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("web1: the VM was stopped; starting it"),
        "{stderr}"
    );
    link_survives("a killed VM").await;
    let killed_vm = started.elapsed();

    // (a) The key pair and known_hosts lost (as `git clean -xfd` does): up makes a new key
    // and rotates it into the running VMs; no host is replaced, every link survives.
    let started = Instant::now();
    for file in ["id_ed25519", "id_ed25519.pub", "known_hosts-clusterlab"] {
        std::fs::remove_file(clusterlab.join(file)).expect("remove a key file");
    }
    let output = cluster.run(&["up"]);
    assert!(
        output.status.success(),
        "up after losing the key pair failed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("terraform_data.authorized_key[\"postgres\"] will be replaced"),
        "the key is rotated: {stderr}"
    );
    assert!(
        !stderr.contains("terraform_data.host["),
        "no VM is replaced for a new key: {stderr}"
    );
    link_survives("a lost key pair").await;
    let lost_key = started.elapsed();

    // (d) Both secrets rotated: every service ends healthy on the new passwords and the
    // limit is still exact (Redis accepted both passwords while the web hosts rolled).
    let started = Instant::now();
    for secret in ["redis_password", "postgres_password"] {
        std::fs::write(
            clusterlab.join("secrets").join(secret),
            format!("rotated{secret}{}\n", std::process::id()),
        )
        .expect("rotate a secret");
    }
    let (out, _) = cluster.run_ok(&["up"]);
    for line in [
        "postgres: postgres replaced",
        "web1: web replaced",
        "web2: web replaced",
        "redis: redis replaced",
    ] {
        assert!(
            out.contains(line),
            "missing {line:?} after rotating secrets:\n{out}"
        );
    }
    let (status, _) = cluster.run_ok(&["status"]);
    assert_eq!(status.matches("(healthy)").count(), 5, "{status}");
    no_secret_in_docker_inspect_and_least_privilege(&clusterlab);
    link_survives("rotated secrets").await;
    // This client's budget is full again a window after its last shorten.
    let window = Duration::from_secs(61);
    if let Some(wait) = window.checked_sub(last_shorten.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    burst_is_limited_exactly(&http, "rotated").await;
    let rotated = started.elapsed();

    // (g) Redis grown into a Sentinel group, and its primary's VM killed under k6 traffic.
    let started = Instant::now();
    failover::sentinel_group_survives_losing_its_primary(&cluster.spec(), &repo_root(), &http)
        .await;
    link_survives("a Redis failover").await;
    let failover = started.elapsed();

    // (b) The postgres host's IP changes: up stops, names the host and why, and changes
    // nothing; with consent the host is replaced and its links are still there.
    let started = Instant::now();
    let spec = std::fs::read_to_string(cluster.spec()).expect("read spec copy");
    std::fs::write(
        cluster.spec(),
        spec.replace("ip: 10.77.0.21 }", "ip: 10.77.0.22 }"),
    )
    .expect("move postgres");
    let stderr = refused(&cluster, &["up"]);
    assert!(
        stderr.contains("postgres: terraform_data.host[\"postgres\"] will be replaced")
            && stderr.contains("triggers_replace.ip: \"10.77.0.21\" -> \"10.77.0.22\"")
            && stderr.contains("--allow-replace postgres"),
        "{stderr}"
    );
    link_survives("a refused replacement").await;
    let (out, _) = cluster.run_ok(&["up", "--allow-replace", "postgres"]);
    assert!(out.contains("postgres: postgres created"), "{out}");
    link_survives("replacing the postgres host").await;
    let replaced = started.elapsed();

    // (e) destroy without --yes and without a terminal does nothing.
    let stderr = refused(&cluster, &["destroy"]);
    assert!(stderr.contains("Nothing was done"), "{stderr}");
    link_survives("a refused destroy").await;

    // (f) backup, destroy with --delete-data, up, restore: the links are back.
    let started = Instant::now();
    let dump = cluster.dir.path().join("links.dump");
    let dump_arg = dump.to_str().expect("utf-8 temp path");
    let (out, _) = cluster.run_ok(&["backup", "--out", dump_arg]);
    assert!(out.contains("links"), "{out}");
    assert!(dump.metadata().expect("the dump").len() > 0);
    cluster.run_ok(&["destroy", "--yes", "--delete-data"]);
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    // The cluster made anew takes its images in pull mode: built here, pushed once to a
    // registry on this machine (plain HTTP with a user, as in a lab), pulled by each host.
    let registry = registry::pull_mode(&cluster.spec(), cluster.dir.path());
    // `up` makes the hosts, then deploys the data stores, while cargo compiles the web app.
    // A build that fails meanwhile stops `up` with cargo's error, but never interrupts
    // terraform or a deploy: the hosts are all made, terraform's state is not left locked,
    // the deploy lock is released, and the next `up` goes on from there. This stand-in
    // cargo fails once Docker calls the new PostgreSQL healthy, which it never is unless
    // the data stores are deployed while cargo runs.
    let cargo_fails = cluster.dir.path().join("cargo-fails");
    std::fs::write(
        &cargo_fails,
        r#"#!/bin/sh
for _ in $(seq 180); do
  if docker exec clusterlab-postgres docker ps -q --filter name=postgres --filter health=healthy | grep -q .; then
    echo 'error[E0308]: mismatched types (stand-in cargo, failing after postgres was deployed)' >&2
    exit 101
  fi
  sleep 1
done
echo 'stand-in cargo: postgres was not deployed while cargo ran' >&2
exit 101
"#,
    )
    .expect("write the failing cargo");
    std::fs::set_permissions(
        &cargo_fails,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the failing cargo");
    let failed = cluster.run_with(&["up"], &[("CARGO", &cargo_fails)]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "up with a failing build: {stderr}"
    );
    assert!(
        stderr.contains("mismatched types (stand-in cargo, failing after postgres was deployed)"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout.contains("postgres: postgres created"),
        "the data stores were deployed beside cargo: {stdout}"
    );
    let (lock, _) = cluster.run_ok(&["lock", "status"]);
    assert_eq!(lock.trim(), "unlocked", "the failed up released the lock");
    let made = leftovers();
    for host in HOSTS {
        let container = format!("clusterlab-{host}");
        assert!(made.contains(&container), "{container} not made: {made:?}");
    }
    let workspace = cluster.dir.path().join("terraform");
    assert!(
        !workspace.join(".terraform.tfstate.lock.info").exists(),
        "terraform's state is left locked"
    );
    let (_, pull_up) = cluster.run_ok(&["up"]);
    registry::hosts_pulled_from(&registry);
    assert_eq!(
        follow(&http, &short_url).await.0,
        StatusCode::NOT_FOUND,
        "a cluster made anew has no links"
    );
    let (out, _) = cluster.run_ok(&["restore", dump_arg]);
    assert!(out.contains("restore:"), "{out}");
    link_survives("backup, destroy --delete-data, up, restore").await;
    let stderr = refused(&cluster, &["restore", dump_arg]);
    assert!(
        stderr.contains("--force"),
        "a non-empty database is refused: {stderr}"
    );
    let restored = started.elapsed();
    drop(registry);

    // destroy leaves nothing.
    let (_, destroy) = cluster.run_ok(&["destroy", "--yes", "--delete-data"]);
    cluster.armed = false;
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    assert!(!cluster
        .dir
        .path()
        .join(".clusterlab/known_hosts-clusterlab")
        .exists());

    eprintln!(
        "e2e wall times: cold up {:.1}s, no-change up {:.1}s, deploy {:.1}s, killed VM {:.1}s, \
         lost key {:.1}s, rotated secrets {:.1}s, sentinel failover {:.1}s, replaced postgres {:.1}s, backup/destroy/up/\
         restore {:.1}s (of which the up after destroy, in pull mode, {:.1}s), destroy {:.1}s",
        cold_up.as_secs_f64(),
        warm_up.as_secs_f64(),
        deploy_time.as_secs_f64(),
        killed_vm.as_secs_f64(),
        lost_key.as_secs_f64(),
        rotated.as_secs_f64(),
        failover.as_secs_f64(),
        replaced.as_secs_f64(),
        restored.as_secs_f64(),
        pull_up.as_secs_f64(),
        destroy.as_secs_f64()
    );
}
