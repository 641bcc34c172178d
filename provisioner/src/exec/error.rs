//! The exec layer's error type. Every variant carries the host (or `local`) and the
//! operation, because a deploy touches many hosts at once and "connection refused" alone
//! says nothing about which one.

use std::time::Duration;

pub type Result<T, E = ExecError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{host}: ssh connect to {address} failed after {attempts} attempt(s) in {elapsed:?}: {last_error}")]
    SshConnect {
        host: String,
        address: String,
        attempts: u32,
        elapsed: Duration,
        last_error: String,
    },

    #[error("{host}: {operation}: {message}")]
    Ssh {
        host: String,
        operation: String,
        message: String,
    },

    #[error("{host}: remote command `{command}` failed ({status}): {stderr}")]
    RemoteCommand {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{host}: docker {operation}: {source}")]
    Docker {
        host: String,
        operation: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("{host}: {operation}: {source}")]
    Io {
        host: String,
        operation: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{host}: cloud-init: {message}")]
    CloudInit { host: String, message: String },

    #[error("{host}: image {image}: {message}")]
    Image {
        host: String,
        image: String,
        message: String,
    },

    /// The pull-mode registry, as one host's engine sees it.
    #[error("{host}: registry {address}: {message}")]
    Registry {
        host: String,
        address: String,
        message: String,
    },

    #[error("{host}: service {service}: {field} uses ${{{variable}}}, which has no value in the secrets")]
    UnresolvedVariable {
        host: String,
        service: String,
        field: String,
        variable: String,
    },

    #[error("{host}: service {service}: {operation}: {message}")]
    Service {
        host: String,
        service: String,
        operation: String,
        message: String,
    },

    #[error("{host}: service {service}: new container did not become healthy ({reason}); the previous container was restored. Health log:\n{log}")]
    RolledBack {
        host: String,
        service: String,
        reason: String,
        log: String,
    },

    #[error("terraform {operation} in {dir} failed ({status}):\n{output}")]
    Terraform {
        operation: String,
        dir: String,
        status: String,
        output: String,
    },

    #[error("{host}: redis {operation}: {message}")]
    Redis {
        host: String,
        operation: String,
        message: String,
    },

    #[error("{host}: {operation}: {message}")]
    Http {
        host: String,
        operation: String,
        message: String,
    },

    /// A lock or audit record on a host that cannot be read back.
    #[error("{host}: {operation}: {message}")]
    Record {
        host: String,
        operation: String,
        message: String,
    },

    #[error("terraform output in {dir}: {message}")]
    TerraformOutput { dir: String, message: String },
}

impl ExecError {
    pub(crate) fn docker(
        host: &str,
        operation: impl Into<String>,
        source: bollard::errors::Error,
    ) -> Self {
        ExecError::Docker {
            host: host.to_owned(),
            operation: operation.into(),
            source,
        }
    }

    pub(crate) fn io(host: &str, operation: impl Into<String>, source: std::io::Error) -> Self {
        ExecError::Io {
            host: host.to_owned(),
            operation: operation.into(),
            source,
        }
    }
}

/// Renders an error with all its causes: openssh's top-level messages ("failed to connect
/// to the remote host") hide the useful part (ssh's own stderr) in the source chain.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(cause_text.trim());
        }
        source = cause.source();
    }
    text
}
