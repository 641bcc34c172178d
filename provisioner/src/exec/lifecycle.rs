//! The deploy lock and the audit log on the load balancer host, through its SSH session:
//! runs the commands [`crate::plan::lifecycle`] builds and reads their answers, and knows
//! who this machine's user is and whether a lock's holder still runs here.

use chrono::SubsecRound;
use rand::distr::{Alphanumeric, SampleString};

use super::error::{ExecError, Result};
use super::ssh::HostSession;
use crate::plan::lifecycle::{self, AuditEntry, LockHolder, StateCommand, TakeOutcome};

/// `user@host` of this machine, as locks and audit lines name it.
pub fn local_user() -> String {
    format!("{}@{}", username(), hostname())
}

/// The record this process would hold for `command`, with a fresh id.
pub fn local_holder(command: &str, message: Option<String>) -> LockHolder {
    LockHolder {
        user: username(),
        host: hostname(),
        pid: std::process::id(),
        command: command.to_owned(),
        since: chrono::Utc::now().trunc_subsecs(0),
        message,
        id: Alphanumeric.sample_string(&mut rand::rng(), 16),
    }
}

/// Whether the holder's process still runs: `Some` only when it ran on this machine,
/// where its pid can be looked at; another machine's process cannot be seen from here.
pub fn holder_alive(holder: &LockHolder) -> Option<bool> {
    (holder.host == hostname())
        .then(|| std::path::Path::new(&format!("/proc/{}", holder.pid)).exists())
}

fn username() -> String {
    whoami::fallible::username()
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| format!("uid-{}", uid()))
}

fn uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn hostname() -> String {
    whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".to_owned())
}

async fn run(session: &HostSession, command: &StateCommand) -> Result<String> {
    let (program, args) = command
        .args
        .split_first()
        .expect("a state command always has a program");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    session
        .run_with_input(program, &args, command.stdin.as_deref())
        .await
}

fn unreadable(session: &HostSession, operation: &str, message: String) -> ExecError {
    ExecError::Record {
        host: session.host().to_owned(),
        operation: operation.to_owned(),
        message,
    }
}

/// Takes the lock for `holder` unless someone holds it.
pub async fn take(session: &HostSession, holder: &LockHolder) -> Result<TakeOutcome> {
    let answer = run(session, &lifecycle::lock_take(holder)).await?;
    lifecycle::parse_take(&answer).map_err(|e| unreadable(session, "take the deploy lock", e))
}

/// Who holds the lock, if anyone.
pub async fn status(session: &HostSession) -> Result<Option<LockHolder>> {
    let answer = run(session, &lifecycle::lock_status()).await?;
    lifecycle::parse_status(&answer).map_err(|e| unreadable(session, "read the deploy lock", e))
}

/// Removes the lock whoever holds it; returns whose it was.
pub async fn release(session: &HostSession) -> Result<Option<LockHolder>> {
    let answer = run(session, &lifecycle::lock_release()).await?;
    lifecycle::parse_status(&answer).map_err(|e| unreadable(session, "release the deploy lock", e))
}

/// Removes the lock if it is still `holder`'s; otherwise leaves it and returns who holds
/// it now (someone released ours by hand and took it).
pub async fn release_own(session: &HostSession, holder: &LockHolder) -> Result<Option<LockHolder>> {
    let answer = run(session, &lifecycle::lock_release_own(holder)).await?;
    lifecycle::parse_release_own(&answer)
        .map_err(|e| unreadable(session, "release the deploy lock", e))
}

/// Appends one line to the audit log.
pub async fn append(session: &HostSession, entry: &AuditEntry) -> Result<()> {
    run(session, &lifecycle::audit_append(entry))
        .await
        .map(drop)
}

/// The last `lines` entries of the audit log (all with `None`), oldest first; a line that
/// is not an entry comes back as its error text.
pub async fn read_audit(
    session: &HostSession,
    lines: Option<u32>,
) -> Result<Vec<std::result::Result<AuditEntry, String>>> {
    let text = run(session, &lifecycle::audit_tail(lines)).await?;
    Ok(lifecycle::parse_audit(&text))
}

/// Appends `entries` to the audit log's copy on this machine at `path` (creating it),
/// skipping lines it already holds: a destroy run again after a failure copies the same
/// log again.
pub fn keep_locally(path: &std::path::Path, entries: &[AuditEntry]) -> Result<()> {
    use std::io::Write;
    let operation = |what: &str| format!("{what} the audit log's copy {}", path.display());
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ExecError::io("local", operation("read"), e)),
    };
    let known: std::collections::HashSet<&str> = existing.lines().collect();
    let new: String = entries
        .iter()
        .map(AuditEntry::to_line)
        .filter(|line| !known.contains(line.trim_end()))
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ExecError::io("local", operation("create"), e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(new.as_bytes()))
        .map_err(|e| ExecError::io("local", operation("append to"), e))
}
