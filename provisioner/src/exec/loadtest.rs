//! Exec layer: one k6 run on the tester host — upload the scripts, give the tester its extra
//! client addresses, run k6 with its progress streamed, and bring its outputs back.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::plan::loadtest::{LoadTest, REMOTE_DIR, REPORT, SAMPLES, SUMMARY};

use bollard::Docker;

use super::converge::exec_in;
use super::ssh::{HostSession, UploadOutcome};
use super::{ExecError, Result};
use crate::plan::redis_cli;

/// What k6 left on the tester, brought back.
#[derive(Debug)]
pub struct Outputs {
    /// k6's exit code (99 when a script's thresholds failed), which the verdict explains.
    pub exit_code: i32,
    /// The samples and summary are empty when k6 failed before writing them (an invalid
    /// script, an abort): the verdict then reports k6's exit instead.
    pub samples: String,
    pub summary: String,
    /// k6 skips its HTML report for runs too short to chart.
    pub report: Option<String>,
}

/// Where the provisioner puts its k6 on the tester; the local target's VM image has the
/// same binary at the same place, so there the upload is skipped.
pub const K6_REMOTE: &str = "/usr/local/bin/k6";

/// Makes the tester's k6 the one this machine uses ([`super::images::find_k6_binary`]): uploaded
/// over the session when it is missing or differs (sha256), so a Proxmox tester needs no
/// third-party apt repository. k6 is one static binary, so any amd64 Linux runs it.
pub async fn install_k6(session: &HostSession, binary: &Path) -> Result<UploadOutcome> {
    let contents = tokio::fs::read(binary)
        .await
        .map_err(|e| ExecError::io("local", format!("read {}", binary.display()), e))?;
    session.install_executable(K6_REMOTE, &contents).await
}

/// Runs `test` on the tester `session` with `scripts` (file name, contents) in its directory.
pub async fn run(
    session: &HostSession,
    test: &LoadTest,
    tester_ip: Ipv4Addr,
    scripts: &[(String, Vec<u8>)],
    on_line: impl FnMut(&str),
) -> Result<Outputs> {
    session.run("mkdir", &["-p", REMOTE_DIR]).await?;
    let outputs = [SAMPLES, SUMMARY, REPORT].map(|f| format!("{REMOTE_DIR}/{f}"));
    let mut rm = vec!["-f"];
    rm.extend(outputs.iter().map(String::as_str));
    session.run("rm", &rm).await?;
    for (name, contents) in scripts {
        session
            .upload(&format!("{REMOTE_DIR}/{name}"), contents)
            .await?;
    }
    add_addresses(session, test, tester_ip).await?;
    let exit_code = session
        .run_streamed(REMOTE_DIR, &test.command, on_line)
        .await?;
    let [samples, summary, report] = outputs;
    let written = |path: String| async move {
        match session.run("cat", &[&path]).await {
            Err(_) if exit_code != 0 => Ok(String::new()),
            read => read,
        }
    };
    Ok(Outputs {
        exit_code,
        samples: written(samples).await?,
        summary: written(summary).await?,
        report: session.run("cat", &[&report]).await.ok(),
    })
}

/// Adds the extra client addresses to the interface that holds the tester's own address
/// (`ip addr replace` is idempotent, so a second run changes nothing).
async fn add_addresses(session: &HostSession, test: &LoadTest, tester_ip: Ipv4Addr) -> Result<()> {
    if test.extra_addresses.is_empty() {
        return Ok(());
    }
    let listing = session
        .run(
            "ip",
            &["-o", "-4", "addr", "show", "to", &tester_ip.to_string()],
        )
        .await?;
    // "2: eth0    inet 10.77.0.30/24 brd ..." -> "eth0"
    let interface = listing
        .split_whitespace()
        .nth(1)
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .ok_or_else(|| ExecError::RemoteCommand {
            host: test.tester.clone(),
            command: format!("ip -o -4 addr show to {tester_ip}"),
            status: "no interface".into(),
            stderr: format!("no interface holds {tester_ip}"),
        })?;
    for address in &test.extra_addresses {
        let cidr = format!("{address}/{}", test.prefix_len);
        session
            .run(
                "sudo",
                &["-n", "ip", "addr", "replace", &cidr, "dev", &interface],
            )
            .await?;
    }
    Ok(())
}

/// Deletes the clients' limiter keys in the `redis` container of the Redis host (redis-cli
/// authenticated with the container's password file, [`redis_cli`]).
pub async fn reset_budgets(docker: &Docker, host: &str, keys: &[String]) -> Result<()> {
    let mut args = vec!["-h", "127.0.0.1", "DEL"];
    args.extend(keys.iter().map(String::as_str));
    exec_in(docker, host, "redis", &redis_cli(&args))
        .await
        .map(drop)
}
