//! Exec layer: a web host's own HTTP endpoints (`/metrics`), fetched through the host's SSH
//! session — a local Unix socket forwarded to the port the web app listens on there — so
//! they are reachable wherever SSH is, with no port opened to the operator's machine.

use std::time::Duration;

use super::error::{chain, ExecError, Result};
use super::ssh::HostSession;

/// How long one request to a web host may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP client for one web host, over its session's forward.
pub struct WebEndpoint {
    host: String,
    authority: String,
    client: reqwest::Client,
}

impl WebEndpoint {
    /// Forwards a socket to `address:port` on the host of `session` and builds a client
    /// that sends every request through it.
    pub async fn connect(session: &HostSession, address: &str, port: u16) -> Result<Self> {
        let socket = session.forward_tcp("web", address, port).await?;
        let client = reqwest::Client::builder()
            .unix_socket(socket)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ExecError::Http {
                host: session.host().to_owned(),
                operation: "build HTTP client".into(),
                message: e.to_string(),
            })?;
        Ok(WebEndpoint {
            host: session.host().to_owned(),
            authority: format!("{address}:{port}"),
            client,
        })
    }

    /// `GET path`, its body as text; any status but 200 is an error.
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let operation = format!("GET {path}");
        let failed = |message: String| ExecError::Http {
            host: self.host.clone(),
            operation: operation.clone(),
            message,
        };
        let response = self
            .client
            .get(format!("http://{}{path}", self.authority))
            .send()
            .await
            .map_err(|e| failed(chain(&e)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(failed(format!("answered {status}")));
        }
        response.text().await.map_err(|e| failed(chain(&e)))
    }
}
