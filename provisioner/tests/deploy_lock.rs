//! The deploy lock and the audit log on a real load balancer host: a clusterlab VM
//! container (sshd + dockerd) on a network of the test's own, reached over SSH. Once through
//! the exec layer (take, refuse, release, stale locks, racing takers, the log), once through
//! the real `provisioner` binary with a cluster.yaml whose load balancer is that VM.

use std::path::Path;
use std::process::Output;

use provisioner::exec::images;
use provisioner::exec::lifecycle::{self, holder_alive, keep_locally};
use provisioner::exec::progress::Progress;
use provisioner::exec::ssh::{generate_key, HostSession, RetryPolicy, SshTarget};
use provisioner::plan::lifecycle::{AuditEntry, LockHolder, TakeOutcome, STATE_DIR};
use tokio::sync::OnceCell;

mod common;

use common::vm::TestCluster;

/// A message no shell may interpret: quotes, newlines, a command substitution whose effect
/// the tests look for on the host.
const TRICKY: &str = "it's \"urgent\"\nline two $(touch /tmp/pwned) `touch /tmp/pwned2` \\ done";

/// The VM image, built once for every test of this binary (or found up to date).
async fn vm_image() {
    static BUILT: OnceCell<()> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let local = provisioner::exec::docker::connect_local()
                .await
                .expect("local docker engine");
            let progress = Progress::hidden();
            images::ensure_vm_image(
                &local,
                &common::repo_root().join("templates"),
                &progress.host("local"),
            )
            .await
            .expect("build the VM image");
        })
        .await;
}

/// One booted load balancer VM with a key of its own.
struct LoadBalancer {
    // Dropped last: removes the VM.
    _cluster: TestCluster,
    keys: tempfile::TempDir,
    target: SshTarget,
    subnet: String,
    cluster_name: String,
}

async fn load_balancer(user: &str) -> LoadBalancer {
    vm_image().await;
    let keys = tempfile::tempdir().expect("temp dir");
    let key_dir = keys.path().join(".clusterlab");
    std::fs::create_dir_all(&key_dir).expect("key dir");
    let key_path = key_dir.join("id_ed25519");
    let public_key = generate_key(&key_path, "clusterlab-test")
        .await
        .expect("ssh-keygen");
    let mut cluster = TestCluster::create("cllock");
    let address = cluster.start_vm("lb", 0, user, &public_key);
    let target = SshTarget {
        host: "lb".into(),
        address,
        port: 22,
        user: user.into(),
        key_path,
        known_hosts: key_dir.join(format!("known_hosts-{}", cluster.name)),
    };
    LoadBalancer {
        subnet: cluster.subnet(),
        cluster_name: cluster.name.clone(),
        _cluster: cluster,
        keys,
        target,
    }
}

fn holder(user: &str, host: &str, message: Option<&str>) -> LockHolder {
    LockHolder {
        host: host.into(),
        user: user.into(),
        ..lifecycle::local_holder("deploy", message.map(str::to_owned))
    }
}

/// A pid that ran on this machine and has ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("run true");
    let pid = child.id();
    child.wait().expect("wait for true");
    pid
}

async fn on_host(session: &HostSession, script: &str) -> String {
    session
        .run("sh", &["-c", script])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_and_the_log_on_a_real_host() {
    let lb = load_balancer("deployer").await;
    let session = HostSession::connect(&lb.target, &RetryPolicy::default())
        .await
        .expect("connect to the load balancer");

    // Free at first; taken with a message that comes back byte for byte.
    assert_eq!(lifecycle::status(&session).await.expect("status"), None);
    let ana = holder("ana", "laptop-a", Some(TRICKY));
    assert_eq!(
        lifecycle::take(&session, &ana).await.expect("take"),
        TakeOutcome::Taken
    );
    assert_eq!(
        lifecycle::status(&session).await.expect("status"),
        Some(ana.clone())
    );
    let on_disk = on_host(&session, &format!("cat {STATE_DIR}/lock.json")).await;
    let parsed: LockHolder = serde_json::from_str(&on_disk).expect("lock.json is JSON");
    assert_eq!(parsed.message.as_deref(), Some(TRICKY));

    // A second taker is refused with the holder's record; its own release leaves it.
    let bob = holder("bob", "laptop-b", Some("second"));
    assert_eq!(
        lifecycle::take(&session, &bob).await.expect("take again"),
        TakeOutcome::Held(ana.clone())
    );
    assert_eq!(
        lifecycle::release_own(&session, &bob)
            .await
            .expect("bob's release"),
        Some(ana.clone()),
        "bob must not release ana's lock"
    );
    assert_eq!(
        lifecycle::status(&session).await.expect("status"),
        Some(ana.clone())
    );
    assert_eq!(
        lifecycle::release_own(&session, &ana)
            .await
            .expect("ana's release"),
        None
    );
    assert_eq!(lifecycle::status(&session).await.expect("status"), None);

    // No shell ran the message.
    let pwned = on_host(
        &session,
        "ls /tmp/pwned /tmp/pwned2 2>/dev/null; ls ~/pwned ~/pwned2 2>/dev/null; true",
    )
    .await;
    assert_eq!(pwned, "", "the message was executed on the host");

    // A stale lock (its process is gone) is shown and refuses, and only release removes it.
    let stale = LockHolder {
        pid: dead_pid(),
        ..lifecycle::local_holder("up", Some("killed midway".into()))
    };
    assert_eq!(holder_alive(&stale), Some(false));
    assert_eq!(
        holder_alive(&lifecycle::local_holder("up", None)),
        Some(true)
    );
    assert_eq!(
        holder_alive(&bob),
        None,
        "another machine's pid cannot be seen"
    );
    assert_eq!(
        lifecycle::take(&session, &stale).await.expect("take"),
        TakeOutcome::Taken
    );
    assert_eq!(
        lifecycle::take(&session, &bob)
            .await
            .expect("take over a stale lock"),
        TakeOutcome::Held(stale.clone()),
        "a stale lock is not broken silently"
    );
    assert_eq!(
        lifecycle::release(&session).await.expect("release"),
        Some(stale.clone())
    );
    assert_eq!(lifecycle::release(&session).await.expect("release"), None);

    // Racing takers: exactly one wins, and the lock is the winner's.
    let racers: Vec<LockHolder> = (0..8)
        .map(|i| holder(&format!("racer{i}"), "laptop-r", None))
        .collect();
    let outcomes =
        futures_util::future::join_all(racers.iter().map(|r| lifecycle::take(&session, r))).await;
    let winners: Vec<&LockHolder> = racers
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Ok(TakeOutcome::Taken)))
        .map(|(r, _)| r)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        match outcome {
            Ok(TakeOutcome::Taken) => {}
            Ok(TakeOutcome::Held(h)) => assert_eq!(h, winners[0]),
            Err(e) => panic!("a racing take failed: {e}"),
        }
    }
    assert_eq!(
        lifecycle::release(&session).await.expect("release"),
        Some(winners[0].clone())
    );

    // The audit log: appended, read back whole and as its tail, one line per entry.
    assert!(lifecycle::read_audit(&session, None)
        .await
        .expect("empty log")
        .is_empty());
    let entries = vec![
        AuditEntry::now(
            "ana@laptop-a".into(),
            "up",
            Some("4f2a9c81d0e3".into()),
            None,
            None,
        ),
        AuditEntry::now(
            "ana@laptop-a".into(),
            "deploy",
            Some("77aa00bb11cc".into()),
            Some("deploy failed on web2:\n  web2: unreachable"),
            Some(TRICKY.into()),
        ),
        AuditEntry::now(
            "bob@laptop-b".into(),
            "rollback",
            None,
            None,
            Some("back".into()),
        ),
    ];
    for entry in &entries {
        lifecycle::append(&session, entry).await.expect("append");
    }
    let read: Vec<AuditEntry> = lifecycle::read_audit(&session, None)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.expect("every line is an entry"))
        .collect();
    assert_eq!(read, entries);
    let tail: Vec<AuditEntry> = lifecycle::read_audit(&session, Some(2))
        .await
        .expect("tail")
        .into_iter()
        .map(|e| e.expect("entry"))
        .collect();
    assert_eq!(tail, entries[1..]);
    let lines = on_host(&session, &format!("wc -l < {STATE_DIR}/audit.log")).await;
    assert_eq!(lines.trim(), "3");
    assert!(entries[1]
        .result
        .starts_with("failed: deploy failed on web2"));

    // The local copy destroy keeps: appending the same log twice adds nothing.
    let copy = lb.keys.path().join("audit-copy.log");
    keep_locally(&copy, &read).expect("copy");
    keep_locally(&copy, &read).expect("copy again");
    let text = std::fs::read_to_string(&copy).expect("read the copy");
    assert_eq!(text.lines().count(), 3, "{text}");
    session.close().await.expect("close");
}

/// cluster.yaml of the repository, pointed at the test's network (its load balancer is the
/// VM at .10, no other host exists) and in pull mode (a deploy builds nothing here).
fn write_spec(lb: &LoadBalancer) -> std::path::PathBuf {
    let spec = std::fs::read_to_string(common::repo_root().join("cluster.yaml"))
        .expect("the repository's cluster.yaml")
        .replace("10.77.0.", &format!("10.99.{}.", lb.subnet))
        .replace("name: clusterlab", &format!("name: {}", lb.cluster_name))
        .replace("mode: ship", "mode: pull");
    assert!(spec.contains(&format!("name: {}", lb.cluster_name)));
    assert!(spec.contains("mode: pull"));
    let secrets = lb.keys.path().join(".clusterlab/secrets");
    std::fs::create_dir_all(&secrets).expect("secrets dir");
    for name in ["redis_password", "postgres_password"] {
        std::fs::write(secrets.join(name), "test-secret\n").expect("secret");
    }
    let path = lb.keys.path().join("cluster.yaml");
    std::fs::write(&path, spec).expect("write the spec");
    path
}

fn provisioner(spec: &Path, args: &[&str]) -> Output {
    common::run_provisioner(common::provisioner(), spec, args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_a_second_deploy_and_records_each() {
    // The spec's ssh.user.
    let lb = load_balancer("clusterlab").await;
    let spec = write_spec(&lb);
    let session = HostSession::connect(&lb.target, &RetryPolicy::default())
        .await
        .expect("connect to the load balancer");

    let status = provisioner(&spec, &["lock", "status"]);
    assert!(status.status.success());
    assert_eq!(stdout(&status), "unlocked\n");

    // A deploy that takes the lock and fails (no web host exists) records its failure,
    // and releases the lock on the way out.
    let failed = provisioner(&spec, &["deploy", "--message", "first try"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("deploy failed on web1"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(lifecycle::status(&session).await.expect("status"), None);
    let log: Vec<AuditEntry> = lifecycle::read_audit(&session, None)
        .await
        .expect("read the log")
        .into_iter()
        .map(|e| e.expect("entry"))
        .collect();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].command, "deploy");
    assert_eq!(log[0].user, lifecycle::local_user());
    assert_eq!(log[0].message.as_deref(), Some("first try"));
    assert!(
        log[0].result.starts_with("failed: deploy failed on web1"),
        "{}",
        log[0].result
    );

    // Someone else holds it: a deploy is refused, names them, and changes nothing.
    let alice = holder("alice", "elsewhere", Some(TRICKY));
    assert_eq!(
        lifecycle::take(&session, &alice).await.expect("take"),
        TakeOutcome::Taken
    );
    let refused = provisioner(&spec, &["deploy", "-m", "mine"]);
    assert_eq!(refused.status.code(), Some(4), "the lock's exit code");
    let said = stderr(&refused);
    assert!(
        said.contains(&format!(
            "the cluster is locked: deploy by alice@elsewhere (pid {}) since {}: {TRICKY:?}",
            alice.pid,
            provisioner::plan::lifecycle::rfc3339(&alice.since)
        )),
        "{said}"
    );
    assert!(said.contains("Nothing was changed."), "{said}");
    assert!(
        !said.contains("web1"),
        "a refused deploy touches no host: {said}"
    );
    assert_eq!(
        lifecycle::status(&session).await.expect("status"),
        Some(alice.clone())
    );
    assert_eq!(
        lifecycle::read_audit(&session, None)
            .await
            .expect("log")
            .len(),
        1,
        "a refused deploy writes no audit line"
    );

    let status = provisioner(&spec, &["lock", "status"]);
    assert!(status.status.success());
    assert!(
        stdout(&status).starts_with(&format!("locked: {}\n", alice.describe())),
        "{}",
        stdout(&status)
    );
    assert!(stdout(&status).contains("taken on elsewhere"));
    let released = provisioner(&spec, &["lock", "release"]);
    assert!(released.status.success());
    assert_eq!(
        stdout(&released),
        format!("released the lock of {}\n", alice.describe())
    );
    assert_eq!(lifecycle::status(&session).await.expect("status"), None);

    // A stale lock of this machine is shown as stale, refuses, and release removes it.
    let stale = LockHolder {
        pid: dead_pid(),
        ..lifecycle::local_holder("deploy", Some("killed".into()))
    };
    lifecycle::take(&session, &stale).await.expect("take");
    let status = provisioner(&spec, &["lock", "status"]);
    assert!(stdout(&status).contains("STALE"), "{}", stdout(&status));
    let refused = provisioner(&spec, &["deploy"]);
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        stderr(&refused).contains("the lock is stale"),
        "{}",
        stderr(&refused)
    );
    let released = provisioner(&spec, &["lock", "release"]);
    assert_eq!(
        stdout(&released),
        format!("released the lock of {}\n", stale.describe())
    );
    assert_eq!(
        stdout(&provisioner(&spec, &["lock", "status"])),
        "unlocked\n"
    );

    // `audit` prints the log's lines, the last N with --lines.
    lifecycle::append(
        &session,
        &AuditEntry::now(
            "bob@b".into(),
            "up",
            Some("4f2a9c81d0e3".into()),
            None,
            None,
        ),
    )
    .await
    .expect("append");
    let audit = provisioner(&spec, &["audit"]);
    assert!(audit.status.success());
    let shown = stdout(&audit);
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(shown
        .lines()
        .next()
        .expect("line")
        .contains("  deploy  -  failed: deploy failed on web1"));
    let last = stdout(&provisioner(&spec, &["audit", "--lines", "1"]));
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(last.contains("  bob@b  up  4f2a9c81d0e3  ok"), "{last}");
    session.close().await.expect("close");
}
