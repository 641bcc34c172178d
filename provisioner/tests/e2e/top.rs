//! `provisioner top` driven in a pseudo-terminal — a private tmux server, its screen read
//! with `capture-pane` — against a running cluster under k6 load: every web host shows its
//! requests/s, Redis' ops/s move, and `q` quits with exit code 0. Then `status` under the
//! same load: its per-policy table sums the web hosts' own lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use provisioner::spec::{Cluster, FileCheck, Role};

/// Requests/s a web host must show at some point: k6 sends 20/s through the load
/// balancer; health checks alone stay far below this.
const LOADED_REQUESTS_PER_SECOND: f64 = 3.0;
/// Redis ops/s that only the load's limiter decisions reach (`top`'s INFO is 1/s).
const LOADED_REDIS_OPS: f64 = 10.0;
/// How long the load runs, and how long `top` is watched for the numbers to move.
const LOAD_SECONDS: u64 = 45;
const WATCH: Duration = Duration::from_secs(60);

/// The tmux server of this test alone (its own socket and config), and the load running
/// beside it; both ended on drop, whatever the test's outcome.
struct Terminal {
    dir: tempfile::TempDir,
    load: Option<Child>,
}

impl Terminal {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("tmux.sock"))
            .arg("-f")
            .arg(self.dir.path().join("tmux.conf"))
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-t", "top"]);
        assert!(output.status.success(), "capture-pane: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `(dead, exit status)` of the pane `top` runs in.
    fn pane(&self) -> (bool, String) {
        let output = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            "top",
            "#{pane_dead} #{pane_dead_status}",
        ]);
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let (dead, status) = text.split_once(' ').unwrap_or((&text, ""));
        (dead == "1", status.to_owned())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
        if let Some(mut load) = self.load.take() {
            let _ = load.kill();
            let _ = load.wait();
        }
    }
}

/// The cells of `screen`'s line whose first cell is `name`, the table borders left out.
fn cells<'a>(screen: &'a str, name: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|cell| cell.trim_matches('│'))
                .filter(|cell| !cell.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first() == Some(&name))
}

/// The rate in column `column` of `name`'s line when it is up.
fn rate(screen: &str, name: &str, column: usize) -> Option<f64> {
    let cells = cells(screen, name)?;
    (cells.get(2) == Some(&"up"))
        .then(|| cells.get(column)?.parse().ok())
        .flatten()
}

/// Under `rolling.js`, `top` shows each web host's requests/s above what health checks
/// alone make and Redis' ops/s changing from one second to the next; `q` ends it with 0.
pub fn top_follows_the_cluster_under_load(spec: &Path, project_dir: &Path) {
    let cluster = Cluster::load(spec, FileCheck::SpecOnly).expect("the spec is valid");
    let web: Vec<String> = cluster
        .hosts_with(Role::Web)
        .map(|host| host.name.clone())
        .collect();
    let redis = cluster.the(Role::Redis).expect("a redis host").name.clone();

    let dir = tempfile::tempdir().expect("a directory for tmux");
    std::fs::write(dir.path().join("tmux.conf"), "set -g remain-on-exit on\n")
        .expect("write tmux.conf");
    let load_log = std::fs::File::create(dir.path().join("loadtest.log")).expect("a log file");
    let load = super::provisioner(spec, project_dir)
        .args(["loadtest", "rolling.js", "-e", "RATE=20", "-e"])
        .arg(format!("DURATION_SECONDS={LOAD_SECONDS}"))
        // Its report folder goes with the tmux directory, not into the repository.
        .arg("--reports")
        .arg(dir.path().join("reports"))
        .stdin(Stdio::null())
        .stdout(load_log.try_clone().expect("the log file"))
        .stderr(load_log)
        .spawn()
        .expect("start the load test");
    let mut terminal = Terminal {
        dir,
        load: Some(load),
    };

    let top = super::provisioner(spec, project_dir);
    let mut start = vec![
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "50",
        "--",
    ];
    // The pane runs top under sh, which writes top's exit status (128 + n for signal n)
    // to a file once it has reaped it: what top exited with, whatever tmux makes of it.
    let status_file = terminal.dir.path().join("top.status");
    let status_path = status_file.to_string_lossy().into_owned();
    let program = top.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = top
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .chain(["top".to_owned()])
        .collect();
    start.extend([
        "sh",
        "-c",
        r#""$@"; echo "$?" > "$0""#,
        &status_path,
        &program,
    ]);
    start.extend(args.iter().map(String::as_str));
    let started = terminal.tmux(&start);
    assert!(started.status.success(), "tmux new-session: {started:?}");

    let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
    let mut ops = BTreeSet::new();
    let mut screens = Vec::new();
    let watching = Instant::now();
    let moved = |requests: &BTreeMap<&str, f64>, ops: &BTreeSet<u64>| {
        web.iter().all(|host| {
            requests.get(host.as_str()).copied().unwrap_or_default() >= LOADED_REQUESTS_PER_SECOND
        }) && ops.len() >= 2
            && ops.iter().any(|op| *op as f64 >= LOADED_REDIS_OPS * 10.0)
    };
    while watching.elapsed() < WATCH && !moved(&requests, &ops) {
        std::thread::sleep(Duration::from_secs(2));
        let screen = terminal.screen();
        for host in &web {
            if let Some(rate) = rate(&screen, host, 3) {
                let seen = requests.entry(host.as_str()).or_default();
                *seen = seen.max(rate);
            }
        }
        if let Some(rate) = rate(&screen, &redis, 3) {
            // Tenths, so that equal readings are equal.
            ops.insert((rate * 10.0).round() as u64);
        }
        screens.push(screen);
    }
    let last = screens.last().cloned().unwrap_or_default();
    assert!(
        moved(&requests, &ops),
        "top did not show the load: most requests/s per web host {requests:?}, \
         Redis ops/s seen (tenths) {ops:?}; last screen:\n{last}"
    );
    eprintln!("top under load:\n{last}");

    terminal.tmux(&["send-keys", "-t", "top", "q"]);
    let quitting = Instant::now();
    let exit_status = || {
        std::fs::read_to_string(&status_file)
            .ok()
            .filter(|text| text.ends_with('\n'))
    };
    while exit_status().is_none() && quitting.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        exit_status().as_deref(),
        Some("0\n"),
        "top should quit on q with exit code 0 (pane dead, tmux's status: {:?}); screen:\n{}",
        terminal.pane(),
        terminal.screen()
    );

    let load = terminal.load.take().expect("the load test");
    let finished = load.wait_with_output().expect("wait for the load test");
    let log = std::fs::read_to_string(terminal.dir.path().join("loadtest.log")).unwrap_or_default();
    eprintln!("loadtest ({}):\n{log}", finished.status);
}

/// `status` after load: the per-policy table lists every web host, and for each policy
/// and outcome its `all` line is the sum of the hosts' lines.
pub fn status_sums_each_policy_over_the_web_hosts(spec: &Path, project_dir: &Path) {
    let cluster = Cluster::load(spec, FileCheck::SpecOnly).expect("the spec is valid");
    let web: Vec<String> = cluster
        .hosts_with(Role::Web)
        .map(|host| host.name.clone())
        .collect();
    let output = super::provisioner(spec, project_dir)
        .arg("status")
        .output()
        .expect("run provisioner status");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "status failed:\n{out}\n{output:?}");
    let heading = format!(
        "limiter decisions by policy, summed over {}:",
        web.join(", ")
    );
    let table: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(
        table
            .first()
            .is_some_and(|header| header.starts_with(&["policy", "host", "allowed"])),
        "no per-policy table after {heading:?} in:\n{out}"
    );
    let columns = table[0].len();
    let mut redirect_allowed = 0;
    let mut rows = table[1..].iter().peekable();
    while let Some(all) = rows.next() {
        assert_eq!(
            all.get(1),
            Some(&"all"),
            "a policy's first line sums it:\n{out}"
        );
        let policy = all[0];
        let mut sums = vec![0u64; columns - 2];
        for host in &web {
            let line = rows
                .next()
                .unwrap_or_else(|| panic!("{policy}: no line for {host}:\n{out}"));
            assert_eq!(
                line[0],
                host.as_str(),
                "{policy}'s lines, in host order:\n{out}"
            );
            for (sum, cell) in sums.iter_mut().zip(&line[1..]) {
                *sum += cell.parse::<u64>().expect("a count");
            }
        }
        let summed: Vec<u64> = all[2..]
            .iter()
            .map(|cell| cell.parse().expect("a count"))
            .collect();
        assert_eq!(
            summed, sums,
            "{policy}: all = the hosts' lines added:\n{out}"
        );
        if policy == "redirect" {
            redirect_allowed = summed[0];
        }
    }
    assert!(
        redirect_allowed > 0,
        "rolling.js' redirects were admitted:\n{out}"
    );
    eprintln!("status:\n{out}");
}
