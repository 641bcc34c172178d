//! Exec layer: wait until cloud-init has finished on a freshly booted VM before anything
//! talks to its Docker engine. A Proxmox VM answers SSH (and reports its address through
//! the guest agent) long before cloud-init has installed docker.io; forwarding the socket
//! then would fail or, worse, race the package's postinst. Hosts without cloud-init (the
//! local target's containers) are told apart by one quick probe and not waited for.
//!
//! The signal is `/var/lib/cloud/instance/boot-finished`, written when the final stage is
//! done: on bookworm (cloud-init 22.4) `cloud-init status --wait` can report "error" while
//! apt still runs, the file cannot. Whether the run succeeded is then read from
//! `result.json`: its `errors` fail the host; `recoverable_errors` (deprecations, warnings,
//! what newer releases' `status` exits 2 for) do not.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::{ExecError, Result};
use super::ssh::HostSession;

/// How long to wait for cloud-init and how often to look.
#[derive(Debug, Clone)]
pub struct CloudInitWait {
    /// Measured on this machine: 30-50 s in a systemd container, about 6 min for a VM
    /// under software emulation; a Proxmox VM fetching docker.io over a slow link can take
    /// longer still.
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for CloudInitWait {
    fn default() -> Self {
        CloudInitWait {
            timeout: Duration::from_secs(20 * 60),
            poll: Duration::from_secs(2),
        }
    }
}

/// What the wait found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudInitOutcome {
    /// The host has no cloud-init (nothing to wait for).
    Absent,
    /// cloud-init had finished; `waited` is how long this call waited for it.
    Finished {
        waited: Duration,
        /// cloud-init was still running when the session logged in, so the session's
        /// groups predate the user data's (the user joins `docker` in runcmd): a new login
        /// is needed to use the Docker socket.
        ran_during_session: bool,
        /// Warnings cloud-init reported that did not fail the run.
        recoverable: Vec<String>,
    },
}

/// One remote shell line per poll: `absent`, `finished`, or `running <stage> <apt>` where
/// stage is cloud-init's current stage and apt says whether a package manager is busy.
const PROBE: &str = r#"
if [ ! -e /var/lib/cloud/instance ] && ! command -v cloud-init >/dev/null 2>&1; then echo absent; exit; fi
if [ -e /var/lib/cloud/instance/boot-finished ]; then echo finished; exit; fi
stage=$(sed -n 's/.*"stage": *"\{0,1\}\([a-z-]*\).*/\1/p' /var/lib/cloud/data/status.json 2>/dev/null | head -n 1)
if pgrep -x 'apt-get|dpkg|apt' >/dev/null 2>&1; then apt=apt; else apt=-; fi
echo "running ${stage:--} $apt"
"#;

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Absent,
    Finished,
    Running { phase: String },
}

fn parse_probe(output: &str) -> Option<Probe> {
    let mut words = output.split_whitespace();
    match words.next()? {
        "absent" => Some(Probe::Absent),
        "finished" => Some(Probe::Finished),
        "running" => {
            let stage = words.next().unwrap_or("-");
            let apt = words.next() == Some("apt");
            Some(Probe::Running {
                phase: phase(stage, apt).to_owned(),
            })
        }
        _ => None,
    }
}

/// What a person should read for cloud-init's stage (`status.json` names it `null` between
/// stages, which the probe prints as `-`, and before the first).
fn phase(stage: &str, apt: bool) -> &'static str {
    if apt {
        return "installing packages";
    }
    match stage {
        "init-local" | "init" => "first boot: network, disks, user",
        "modules-config" => "configuring",
        "modules-final" => "running the final modules",
        _ => "between stages",
    }
}

#[derive(Deserialize)]
struct ResultFile {
    v1: ResultV1,
}

#[derive(Deserialize)]
struct ResultV1 {
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    recoverable_errors: serde_json::Value,
}

/// `result.json`'s errors and its recoverable errors as lines (newer releases group the
/// latter by log level: `{"WARNING": ["..."]}`).
fn parse_result(text: &str) -> std::result::Result<(Vec<String>, Vec<String>), String> {
    let file: ResultFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut recoverable = Vec::new();
    if let serde_json::Value::Object(levels) = &file.v1.recoverable_errors {
        for (level, messages) in levels {
            for message in messages.as_array().into_iter().flatten() {
                recoverable.push(format!("{level}: {}", message.as_str().unwrap_or_default()));
            }
        }
    }
    Ok((file.v1.errors, recoverable))
}

/// Waits for cloud-init on `session`'s host, telling `on_status` each time the phase
/// changes ("waiting for cloud-init (installing packages)").
pub async fn wait(
    session: &HostSession,
    wait: &CloudInitWait,
    mut on_status: impl FnMut(&str),
) -> Result<CloudInitOutcome> {
    let host = session.host().to_owned();
    let started = Instant::now();
    let mut shown = String::new();
    let mut polls = 0;
    loop {
        polls += 1;
        let output = session.run("sh", &["-c", PROBE]).await?;
        match parse_probe(&output) {
            Some(Probe::Absent) => return Ok(CloudInitOutcome::Absent),
            Some(Probe::Finished) => break,
            Some(Probe::Running { phase }) => {
                if phase != shown {
                    on_status(&format!("waiting for cloud-init ({phase})"));
                    shown = phase;
                }
            }
            None => {
                return Err(ExecError::CloudInit {
                    host,
                    message: format!("unexpected answer from the probe: {:?}", output.trim()),
                })
            }
        }
        if started.elapsed() >= wait.timeout {
            return Err(ExecError::CloudInit {
                host,
                message: format!(
                    "not finished after {}s (no /var/lib/cloud/instance/boot-finished); \
                     `cloud-init status --long` says:\n{}",
                    wait.timeout.as_secs(),
                    status_long(session).await
                ),
            });
        }
        tokio::time::sleep(wait.poll).await;
    }
    let text = session
        .run("cat", &["/var/lib/cloud/data/result.json"])
        .await?;
    let (errors, recoverable) = parse_result(&text).map_err(|e| ExecError::CloudInit {
        host: host.clone(),
        message: format!("cannot read /var/lib/cloud/data/result.json: {e}"),
    })?;
    if !errors.is_empty() {
        return Err(ExecError::CloudInit {
            host,
            message: format!(
                "finished with errors:\n  {}\n`cloud-init status --long` says:\n{}\n\
                 (the whole log is /var/log/cloud-init.log on the host)",
                errors.join("\n  "),
                status_long(session).await
            ),
        });
    }
    Ok(CloudInitOutcome::Finished {
        waited: started.elapsed(),
        ran_during_session: polls > 1,
        recoverable,
    })
}

/// `cloud-init status --long`, whatever its exit code (non-zero is the interesting case).
async fn status_long(session: &HostSession) -> String {
    match session
        .run("sh", &["-c", "cloud-init status --long 2>&1; true"])
        .await
    {
        Ok(text) => text.trim_end().to_owned(),
        Err(e) => format!("(could not run it: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_name_the_phase() {
        assert_eq!(parse_probe("absent\n"), Some(Probe::Absent));
        assert_eq!(parse_probe("finished\n"), Some(Probe::Finished));
        assert_eq!(
            parse_probe("running modules-final apt\n"),
            Some(Probe::Running {
                phase: "installing packages".into()
            })
        );
        assert_eq!(
            parse_probe("running init -\n"),
            Some(Probe::Running {
                phase: "first boot: network, disks, user".into()
            })
        );
        assert_eq!(
            parse_probe("running - -\n"),
            Some(Probe::Running {
                phase: "between stages".into()
            })
        );
        assert_eq!(parse_probe("sh: 1: syntax error\n"), None);
    }

    #[test]
    fn result_errors_fail_and_recoverable_ones_do_not() {
        // cloud-init 22.4 (bookworm): no recoverable_errors key at all.
        let (errors, recoverable) =
            parse_result(r#"{"v1": {"datasource": "DataSourceNoCloud", "errors": []}}"#)
                .expect("parses");
        assert!(errors.is_empty() && recoverable.is_empty());
        let (errors, recoverable) = parse_result(
            r#"{"v1": {"datasource": null, "errors": ["('package-update-upgrade-install', ProcessExecutionError())"],
                "recoverable_errors": {"WARNING": ["deprecated key"]}}}"#,
        )
        .expect("parses");
        assert_eq!(errors.len(), 1);
        assert_eq!(recoverable, ["WARNING: deprecated key"]);
    }
}
