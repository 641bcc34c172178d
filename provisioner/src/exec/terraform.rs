//! Runs terraform in the rendered workspace: `init`, `apply`, `destroy` with their output
//! streamed line by line to the caller (terraform can run for minutes), and `output
//! -json` read into the hosts terraform made. A failure carries terraform's own error
//! text, which says far more than an exit code.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::error::{ExecError, Result};

/// How many trailing lines of output an error keeps.
const ERROR_TAIL: usize = 40;

/// One host as the `hosts` output describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TerraformHost {
    pub name: String,
    pub role: String,
    pub ip: String,
}

/// A terraform workspace directory and the binary to run in it.
#[derive(Debug, Clone)]
pub struct Terraform {
    pub binary: PathBuf,
    pub dir: PathBuf,
    /// Extra environment for every run (e.g. `TF_VAR_ssh_public_key`), on top of ours.
    pub env: Vec<(String, String)>,
}

/// Where a streamed line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Terraform {
    /// `terraform` from PATH, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Terraform {
        Terraform {
            binary: PathBuf::from("terraform"),
            dir: dir.into(),
            env: Vec::new(),
        }
    }

    /// Sets `name=value` for every terraform run (variables travel as `TF_VAR_*` so they
    /// never land in a file).
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Terraform {
        self.env.push((name.into(), value.into()));
        self
    }

    pub async fn init(&self, on_line: impl FnMut(Stream, &str)) -> Result<()> {
        self.run("init", &["init", "-input=false", "-no-color"], on_line)
            .await
            .map(drop)
    }

    /// `terraform plan -out=PLAN_FILE`, forcing the replacement of `replace` (addresses);
    /// true when the plan changes anything (`-detailed-exitcode` says 2).
    pub async fn plan(
        &self,
        plan_file: &str,
        replace: &[String],
        on_line: impl FnMut(Stream, &str),
    ) -> Result<bool> {
        let mut args: Vec<String> = [
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            "-compact-warnings",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("-out={plan_file}"));
        args.extend(replace.iter().map(|address| format!("-replace={address}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _) = self.run_accepting("plan", &args, &[0, 2], on_line).await?;
        Ok(code == 2)
    }

    /// The saved plan as JSON (`terraform show -json PLAN_FILE`), for [`crate::changes`].
    pub async fn show_plan(&self, plan_file: &str) -> Result<String> {
        self.run(
            "show",
            &["show", "-json", "-no-color", plan_file],
            |_, _| {},
        )
        .await
    }

    /// Applies exactly the saved plan: what the user was shown is what happens.
    pub async fn apply_plan(
        &self,
        plan_file: &str,
        on_line: impl FnMut(Stream, &str),
    ) -> Result<()> {
        self.run(
            "apply",
            &[
                "apply",
                "-input=false",
                "-no-color",
                "-auto-approve",
                plan_file,
            ],
            on_line,
        )
        .await
        .map(drop)
    }

    /// Every resource address in the state (`terraform state list`); none before the
    /// first apply (the workspaces keep their state locally, in the workspace).
    pub async fn state_list(&self) -> Result<Vec<String>> {
        if !self.dir.join("terraform.tfstate").exists() {
            return Ok(Vec::new());
        }
        let stdout = self
            .run("state list", &["state", "list"], |_, _| {})
            .await?;
        Ok(stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// `terraform destroy`, of everything or only of `targets` (and what depends on them).
    pub async fn destroy(
        &self,
        targets: &[String],
        on_line: impl FnMut(Stream, &str),
    ) -> Result<()> {
        let mut args: Vec<String> = ["destroy", "-auto-approve", "-input=false", "-no-color"]
            .map(str::to_owned)
            .to_vec();
        args.extend(targets.iter().map(|address| format!("-target={address}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("destroy", &args, on_line).await.map(drop)
    }

    /// The `hosts` output: a map of name -> `{role, ip}` (or a list of `{name, role, ip}`),
    /// sorted by name.
    pub async fn output_hosts(&self) -> Result<Vec<TerraformHost>> {
        let stdout = self
            .run("output", &["output", "-json", "-no-color"], |_, _| {})
            .await?;
        parse_hosts_output(&stdout).map_err(|message| ExecError::TerraformOutput {
            dir: self.dir.display().to_string(),
            message,
        })
    }

    /// Runs terraform, passing every line to `on_line` as it arrives, and returns stdout.
    async fn run(
        &self,
        operation: &str,
        args: &[&str],
        on_line: impl FnMut(Stream, &str),
    ) -> Result<String> {
        self.run_accepting(operation, args, &[0], on_line)
            .await
            .map(|(_, stdout)| stdout)
    }

    /// [`Terraform::run`] for commands whose exit code carries an answer: any code in
    /// `accepted` is success, returned with stdout.
    async fn run_accepting(
        &self,
        operation: &str,
        args: &[&str],
        accepted: &[i32],
        mut on_line: impl FnMut(Stream, &str),
    ) -> Result<(i32, String)> {
        let failure = |status: String, output: String| ExecError::Terraform {
            operation: operation.to_owned(),
            dir: self.dir.display().to_string(),
            status,
            output,
        };
        let mut child = Command::new(&self.binary)
            .arg(format!("-chdir={}", self.dir.display()))
            .args(args)
            .env("TF_IN_AUTOMATION", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                failure(
                    format!("could not start {}", self.binary.display()),
                    e.to_string(),
                )
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(failure("no output pipes".into(), String::new()));
        };
        let mut out_lines = BufReader::new(stdout).lines();
        let mut err_lines = BufReader::new(stderr).lines();
        let mut all_stdout = String::new();
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut errors: Vec<String> = Vec::new();
        let (mut out_open, mut err_open) = (true, true);
        let io_error =
            |e: std::io::Error| failure("reading its output failed".into(), e.to_string());
        while out_open || err_open {
            tokio::select! {
                line = out_lines.next_line(), if out_open => match line.map_err(io_error)? {
                    Some(line) => {
                        on_line(Stream::Stdout, &line);
                        all_stdout.push_str(&line);
                        all_stdout.push('\n');
                        push_tail(&mut tail, line);
                    }
                    None => out_open = false,
                },
                line = err_lines.next_line(), if err_open => match line.map_err(io_error)? {
                    Some(line) => {
                        on_line(Stream::Stderr, &line);
                        errors.push(line.clone());
                        push_tail(&mut tail, line);
                    }
                    None => err_open = false,
                },
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|e| failure("wait failed".into(), e.to_string()))?;
        if let Some(code) = status.code().filter(|code| accepted.contains(code)) {
            Ok((code, all_stdout))
        } else {
            // Terraform prints its diagnostics on stderr; fall back to the stdout tail
            // when it printed nothing there.
            let text = if errors.iter().any(|l| !l.trim().is_empty()) {
                errors.join("\n")
            } else {
                Vec::from(tail).join("\n")
            };
            Err(failure(status.to_string(), text.trim().to_owned()))
        }
    }
}

fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == ERROR_TAIL {
        tail.pop_front();
    }
    tail.push_back(line);
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HostsValue {
    Map(std::collections::BTreeMap<String, HostFields>),
    List(Vec<TerraformHost>),
}

#[derive(Deserialize)]
struct HostFields {
    role: String,
    ip: String,
}

/// Reads `terraform output -json` text; the `hosts` output is required.
pub fn parse_hosts_output(json: &str) -> std::result::Result<Vec<TerraformHost>, String> {
    #[derive(Deserialize)]
    struct Output {
        value: serde_json::Value,
    }
    let outputs: std::collections::BTreeMap<String, Output> =
        serde_json::from_str(json).map_err(|e| format!("not terraform output JSON: {e}"))?;
    let hosts = outputs
        .get("hosts")
        .ok_or_else(|| "no `hosts` output (is the workspace applied?)".to_owned())?;
    let value: HostsValue = serde_json::from_value(hosts.value.clone()).map_err(|e| {
        format!("`hosts` is neither a map of {{role, ip}} nor a list of {{name, role, ip}}: {e}")
    })?;
    let mut hosts = match value {
        HostsValue::Map(map) => map
            .into_iter()
            .map(|(name, f)| TerraformHost {
                name,
                role: f.role,
                ip: f.ip,
            })
            .collect(),
        HostsValue::List(list) => list,
    };
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_a_map_or_a_list() {
        let map = r#"{"hosts":{"sensitive":false,"type":["object"],"value":{
            "web2":{"role":"web","ip":"10.0.0.12"},"lb":{"role":"lb","ip":"10.0.0.2"}}}}"#;
        let hosts = parse_hosts_output(map).expect("map");
        assert_eq!(
            hosts,
            vec![
                TerraformHost {
                    name: "lb".into(),
                    role: "lb".into(),
                    ip: "10.0.0.2".into()
                },
                TerraformHost {
                    name: "web2".into(),
                    role: "web".into(),
                    ip: "10.0.0.12".into()
                },
            ]
        );
        let list = r#"{"hosts":{"value":[{"name":"db","role":"db","ip":"10.0.0.5"}]}}"#;
        assert_eq!(parse_hosts_output(list).expect("list")[0].name, "db");
    }

    #[test]
    fn missing_hosts_output_is_explained() {
        assert!(parse_hosts_output("{}")
            .unwrap_err()
            .contains("no `hosts` output"));
        assert!(parse_hosts_output("nonsense")
            .unwrap_err()
            .contains("not terraform output"));
    }
}
