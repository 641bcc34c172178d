//! The deploy lock and the audit log on the running cluster: a second `deploy` started
//! while the first one rolls is refused by the lock, naming the first and changing nothing;
//! afterwards the lock is free and the audit log holds the `up` and the `deploy`, ok.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long the first deploy may take to hold the lock (it takes it right after loading
/// the spec, before any build).
const LOCK_SEEN_WITHIN: Duration = Duration::from_secs(60);

/// Waits until `lock status` shows a deploy holding the lock, then runs a second deploy,
/// which must be refused with exit code 4 and the holder's record.
pub fn a_concurrent_deploy_is_refused(spec: &Path, project_dir: &Path) {
    let started = Instant::now();
    loop {
        let status = super::provisioner_ok(spec, project_dir, &["lock", "status"]);
        if status.starts_with("locked: deploy by ") {
            break;
        }
        assert!(
            started.elapsed() < LOCK_SEEN_WITHIN,
            "the first deploy never held the lock: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let second: std::process::Output = super::provisioner(spec, project_dir)
        .args(["deploy", "-m", "the second deploy"])
        .output()
        .expect("run the second deploy");
    let stderr = String::from_utf8_lossy(&second.stderr);
    eprintln!("e2e lock: the second deploy said:\n{stderr}");
    assert_eq!(second.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("the cluster is locked: deploy by ")
            && stderr.contains("Nothing was changed."),
        "{stderr}"
    );
}

/// After the deploy: the lock is free and the log's last lines are the up(s) and the
/// deploy, each ok and with a version (ship mode).
pub fn the_audit_log_holds_up_and_deploy(spec: &Path, project_dir: &Path) {
    assert_eq!(
        super::provisioner_ok(spec, project_dir, &["lock", "status"]),
        "unlocked\n"
    );
    let audit = super::provisioner_ok(spec, project_dir, &["audit"]);
    let lines: Vec<&str> = audit.lines().collect();
    let last = lines.last().expect("the audit log has lines");
    assert!(
        last.contains("  deploy  ") && last.ends_with("  ok"),
        "the last line is the deploy, ok: {audit}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("  up  ") && l.ends_with("  ok")),
        "{audit}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("the second deploy")),
        "a refused deploy writes no line: {audit}"
    );
}
