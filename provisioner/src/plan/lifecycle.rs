//! Plan layer: the deploy lock and the audit log as data — the records `up`, `deploy`,
//! `rollback` and `destroy` keep on the load balancer host (one JSON object each, so no
//! message can break a line or a file) and the remote commands that read and write them. Each command is an
//! argument array: its script is a constant and every value (the state directory, a line
//! count) is a positional parameter; records travel on stdin.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// Where the lock and the log live on the load balancer host: the SSH user's XDG state
/// directory, relative to its home (where an SSH command starts).
pub const STATE_DIR: &str = ".local/state/clusterlab";

/// Who holds the deploy lock (the contents of `lock.json` on the load balancer host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The account on the machine that took it.
    pub user: String,
    /// That machine's host name.
    pub host: String,
    /// The provisioner process holding it there: gone means the lock is stale.
    pub pid: u32,
    /// `up`, `deploy`, `rollback`.
    pub command: String,
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Random, so a command releases its own lock and never one taken after a forced
    /// release.
    pub id: String,
}

impl LockHolder {
    /// `user@host`.
    pub fn who(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The record as `lock.json` holds it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a lock record always serializes")
    }

    /// One sentence for people: `deploy by ana@laptop (pid 4242) since
    /// 2025-05-01T10:00:00Z: "hotfix"`.
    pub fn describe(&self) -> String {
        let message = match &self.message {
            Some(message) => format!(": {message:?}"),
            None => String::new(),
        };
        format!(
            "{} by {} (pid {}) since {}{message}",
            self.command,
            self.who(),
            self.pid,
            rfc3339(&self.since)
        )
    }
}

/// What a taker finds: the lock is now its own, or someone else's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOutcome {
    Taken,
    Held(LockHolder),
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Whole seconds, UTC.
    pub time: DateTime<Utc>,
    /// `user@host` of the machine that ran the command.
    pub user: String,
    /// `up`, `deploy`, `rollback`, `destroy`.
    pub command: String,
    /// The web image's short ID, when the command knows which one it deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `ok` or `failed: <reason>`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The longest failure reason kept in the log: the first part of an error says what went
/// wrong; a deploy's full report is on the terminal that ran it.
const MAX_REASON_CHARS: usize = 2000;

impl AuditEntry {
    /// Whether the command ended well (its result is `ok`).
    pub fn succeeded(&self) -> bool {
        self.result == "ok"
    }

    /// The entry for a command that ended now, `Ok` or with `failure`'s text.
    pub fn now(
        user: String,
        command: &str,
        version: Option<String>,
        failure: Option<&str>,
        message: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            time: Utc::now().trunc_subsecs(0),
            user,
            command: command.to_owned(),
            version,
            result: match failure {
                None => "ok".to_owned(),
                Some(reason) => {
                    let reason: String = reason.trim().chars().take(MAX_REASON_CHARS).collect();
                    format!("failed: {reason}")
                }
            },
            message,
        }
    }

    /// The entry as one line of the log, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("an audit entry always serializes");
        line.push('\n');
        line
    }

    /// One line for people: time, user, command, version, the result's first line and the
    /// message (quoted, so its own newlines stay on the line).
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}  {}  {}  {}  {}",
            rfc3339(&self.time),
            self.user,
            self.command,
            self.version.as_deref().unwrap_or("-"),
            self.result.lines().next().unwrap_or_default()
        );
        if let Some(message) = &self.message {
            text.push_str(&format!("  {message:?}"));
        }
        text
    }
}

/// Reads the log's lines; a line that is not an entry (a hand edit, a torn write) is
/// reported with its number rather than hiding the others.
pub fn parse_audit(text: &str) -> Vec<Result<AuditEntry, String>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("audit log line {}: {e}: {line:?}", i + 1))
        })
        .collect()
}

/// A deploy's version: the short form of its web image's ID (`sha256:4f2a9c81d0e3...` ->
/// `4f2a9c81d0e3`), as `docker images` shows it.
pub fn version_of(image_id: &str) -> String {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    hex.chars().take(12).collect()
}

/// RFC 3339 in UTC to the second: `2025-05-01T10:00:00Z`.
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Every script starts here: `$1` is the state directory; the operations on it take turns
/// on `flock` of one file (released when the shell exits, however it ends), so a taker
/// and a releaser, or two takers, never interleave.
const PRELUDE: &str = "set -eu; dir=$1; mkdir -p -- \"$dir\"; \
     exec 9>>\"$dir/lock.mutex\"; flock 9; lock=\"$dir/lock.json\"; ";

/// Takes the lock when it is free: the record comes on stdin, is written beside the lock
/// and renamed into place (a dropped connection never leaves half a record); prints
/// `taken`, or `held` and the holder's record.
const TAKE: &str = "if [ -e \"$lock\" ]; then echo held; cat -- \"$lock\"; \
     else cat > \"$lock.new\"; mv -f -- \"$lock.new\" \"$lock\"; echo taken; fi";

/// Prints the holder's record, nothing when the lock is free.
const STATUS: &str = "if [ -e \"$lock\" ]; then cat -- \"$lock\"; fi";

/// Removes the lock whoever holds it and prints the record it removed.
const RELEASE: &str = "if [ -e \"$lock\" ]; then cat -- \"$lock\"; rm -f -- \"$lock\"; fi";

/// Removes the lock only when it is exactly the record on stdin (this command's own);
/// prints `released`, or `other` and the record left in place. (`x` keeps trailing
/// newlines through `$(...)`.)
const RELEASE_OWN: &str = "wanted=$(cat; printf x); \
     if [ -e \"$lock\" ]; then current=$(cat -- \"$lock\"; printf x); else current=x; fi; \
     if [ \"$current\" = \"$wanted\" ]; then rm -f -- \"$lock\"; echo released; \
     else echo other; printf %s \"${current%x}\"; fi";

/// Appends the line on stdin to the log.
const AUDIT_APPEND: &str = "cat >> \"$dir/audit.log\"";

/// Prints the last `$2` lines of the log (`+1`: all of it), nothing when there is none.
const AUDIT_TAIL: &str =
    "if [ -e \"$dir/audit.log\" ]; then tail -n \"$2\" -- \"$dir/audit.log\"; fi";

/// A remote command: the program and its arguments (each quoted by the SSH layer), and
/// what it reads on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCommand {
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
}

fn script(name: &str, body: &str, params: &[&str], stdin: Option<String>) -> StateCommand {
    let mut args = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("{PRELUDE}{body}"),
        name.to_owned(),
        STATE_DIR.to_owned(),
    ];
    args.extend(params.iter().map(|p| (*p).to_owned()));
    StateCommand {
        args,
        stdin: stdin.map(String::into_bytes),
    }
}

pub fn lock_take(holder: &LockHolder) -> StateCommand {
    script("clusterlab-lock", TAKE, &[], Some(holder.to_json()))
}

pub fn lock_status() -> StateCommand {
    script("clusterlab-lock", STATUS, &[], None)
}

pub fn lock_release() -> StateCommand {
    script("clusterlab-lock", RELEASE, &[], None)
}

pub fn lock_release_own(holder: &LockHolder) -> StateCommand {
    script("clusterlab-lock", RELEASE_OWN, &[], Some(holder.to_json()))
}

pub fn audit_append(entry: &AuditEntry) -> StateCommand {
    script("clusterlab-audit", AUDIT_APPEND, &[], Some(entry.to_line()))
}

/// The last `lines` lines of the log, or all of it.
pub fn audit_tail(lines: Option<u32>) -> StateCommand {
    let count = lines.map_or_else(|| "+1".to_owned(), |n| n.to_string());
    script("clusterlab-audit", AUDIT_TAIL, &[&count], None)
}

/// What the take script printed.
pub fn parse_take(output: &str) -> Result<TakeOutcome, String> {
    match output.split_once('\n') {
        Some(("taken", _)) => Ok(TakeOutcome::Taken),
        Some(("held", record)) => parse_holder(record).map(TakeOutcome::Held),
        _ => Err(format!(
            "unexpected answer from the lock script: {output:?}"
        )),
    }
}

/// What the status or release script printed: the holder, or none.
pub fn parse_status(output: &str) -> Result<Option<LockHolder>, String> {
    if output.trim().is_empty() {
        Ok(None)
    } else {
        parse_holder(output).map(Some)
    }
}

/// What the release-own script printed: `None` when it removed the lock, else who holds it
/// now (a record that is not this command's).
pub fn parse_release_own(output: &str) -> Result<Option<LockHolder>, String> {
    match output.split_once('\n') {
        Some(("released", _)) => Ok(None),
        Some(("other", rest)) => parse_status(rest),
        _ => Err(format!(
            "unexpected answer from the lock script: {output:?}"
        )),
    }
}

fn parse_holder(record: &str) -> Result<LockHolder, String> {
    serde_json::from_str(record.trim())
        .map_err(|e| format!("the lock file holds no lock record ({e}): {record:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(message: Option<&str>) -> LockHolder {
        LockHolder {
            user: "ana".into(),
            host: "laptop".into(),
            pid: 4242,
            command: "deploy".into(),
            since: "2025-05-01T10:00:00Z".parse().expect("time"),
            message: message.map(str::to_owned),
            id: "0123abcd".into(),
        }
    }

    #[test]
    fn values_are_parameters_and_records_stdin() {
        let tricky = "it's \"$(rm -rf ~)\"\n`x`";
        let command = lock_take(&holder(Some(tricky)));
        assert_eq!(&command.args[..2], ["sh", "-c"]);
        assert_eq!(&command.args[3..], ["clusterlab-lock", STATE_DIR]);
        assert!(!command.args[2].contains("rm -rf"));
        let sent: LockHolder =
            serde_json::from_slice(command.stdin.as_deref().expect("stdin")).expect("json");
        assert_eq!(sent.message.as_deref(), Some(tricky));
        assert_eq!(audit_tail(Some(20)).args[5], "20");
        assert_eq!(audit_tail(None).args[5], "+1");
    }

    #[test]
    fn answers_of_the_scripts_are_read() {
        let record = holder(Some("hotfix")).to_json();
        assert_eq!(parse_take("taken\n"), Ok(TakeOutcome::Taken));
        assert_eq!(
            parse_take(&format!("held\n{record}")),
            Ok(TakeOutcome::Held(holder(Some("hotfix"))))
        );
        assert!(parse_take("").is_err());
        assert!(parse_take("held\nnot json").is_err());
        assert_eq!(parse_status(""), Ok(None));
        assert_eq!(parse_release_own("released\n"), Ok(None));
        assert_eq!(
            parse_release_own(&format!("other\n{record}")),
            Ok(Some(holder(Some("hotfix"))))
        );
        assert_eq!(parse_release_own("other\n"), Ok(None));
    }

    #[test]
    fn an_entry_is_one_line_whatever_its_message() {
        let entry = AuditEntry::now(
            "ana@laptop".into(),
            "deploy",
            Some("4f2a9c81d0e3".into()),
            Some("web1 unreachable\n  more"),
            Some("line one\nline \"two\"".into()),
        );
        let line = entry.to_line();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        assert_eq!(parse_audit(&line), vec![Ok(entry.clone())]);
        let shown = entry.describe();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(
            shown.ends_with(
                "ana@laptop  deploy  4f2a9c81d0e3  failed: web1 unreachable  \"line one\\nline \\\"two\\\"\""
            ),
            "{shown}"
        );
        assert!(rfc3339(&entry.time).ends_with('Z'));
    }

    #[test]
    fn a_line_that_is_no_entry_is_named() {
        let good = AuditEntry::now("a@b".into(), "up", None, None, None).to_line();
        let parsed = parse_audit(&format!("{good}garbage\n"));
        assert!(parsed[0].is_ok());
        assert!(parsed[1]
            .as_ref()
            .expect_err("garbage")
            .starts_with("audit log line 2:"));
    }

    #[test]
    fn a_version_is_the_short_image_id() {
        assert_eq!(
            version_of("sha256:4f2a9c81d0e3b7aa0000000000000000000000000000000000000000000000ff"),
            "4f2a9c81d0e3"
        );
        assert_eq!(version_of("4f2a9c81d0e3b7aa"), "4f2a9c81d0e3");
    }

    #[test]
    fn a_holder_is_described_with_its_message() {
        assert_eq!(
            holder(Some("hotfix")).describe(),
            "deploy by ana@laptop (pid 4242) since 2025-05-01T10:00:00Z: \"hotfix\""
        );
        assert_eq!(
            holder(None).describe(),
            "deploy by ana@laptop (pid 4242) since 2025-05-01T10:00:00Z"
        );
    }
}
