//! Pull mode with a registry (`images.mode: pull` and `images.registry`): the images built
//! on this machine are pushed once to the cluster's registry, and each host's engine, told
//! to trust that registry, pulls them from there and keeps them under their own names (so
//! the services' files are the same in both modes).
//!
//! Trust means, for an `insecure` registry, its address in `insecure-registries` of the
//! host's /etc/docker/daemon.json (merged into what the file holds; dockerd reloads that
//! list on SIGHUP, so no container restarts), and for a private CA its certificate as
//! /etc/docker/certs.d/<address>/ca.crt (read by dockerd at each pull).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use bollard::Docker;

use super::transfer::{image_id, in_registry, present_image_id, pull_from, push_to, PulledImage};
use super::{ShipOutcome, LOCAL};
use crate::exec::error::{ExecError, Result};
use crate::exec::progress::HostProgress;
use crate::exec::ssh::HostSession;
use crate::spec::Registry;

/// Docker's daemon configuration file, on every Linux host.
const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// Prints the daemon configuration, or nothing where the host has none.
const READ_DAEMON_JSON: &str = "cat /etc/docker/daemon.json 2>/dev/null || true";

/// Makes dockerd read its configuration again (dockerd writes its PID there by default).
const RELOAD_DOCKERD: &str = r#"kill -HUP "$(cat /var/run/docker.pid)""#;

/// How long dockerd may take to apply a reloaded configuration.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);

/// The registry of a pull-mode deploy and the image IDs pushed to it in this run.
pub struct PullSource {
    registry: Registry,
    /// The CA certificate's PEM, read from `registry.ca_file`.
    ca: Option<Vec<u8>>,
    password: Option<String>,
    /// Image name (as the services use it) -> the ID pushed.
    pushed: BTreeMap<String, String>,
}

impl PullSource {
    /// Pushes each of `images` from the local engine to the registry (only the layers it
    /// lacks travel), as `<push address>/<repository>:<tag>`.
    pub async fn publish(
        local: &Docker,
        registry: Registry,
        ca: Option<Vec<u8>>,
        password: Option<String>,
        images: &[String],
        progress: &HostProgress,
    ) -> Result<PullSource> {
        let mut source = PullSource {
            registry,
            ca,
            password,
            pushed: BTreeMap::new(),
        };
        let push_address = source.registry.push_address().to_owned();
        for image in images {
            let id = present_image_id(
                local,
                LOCAL,
                image,
                "the local engine has no such image to push",
            )
            .await?;
            progress.step(format!("pushing {image} to {push_address}"));
            push_to(
                local,
                image,
                &push_address,
                source.credentials(&push_address),
                &format!("the registry at {push_address}"),
            )
            .await
            .map_err(|e| explain_push_error(e, &push_address))?;
            progress.note(format!("pushed {image} to {push_address}"));
            source.pushed.insert(image.clone(), id);
        }
        Ok(source)
    }

    fn credentials(&self, server: &str) -> Option<DockerCredentials> {
        Some(DockerCredentials {
            username: Some(self.registry.username.clone()?),
            password: Some(self.password.clone()?),
            serveraddress: Some(server.to_owned()),
            ..Default::default()
        })
    }

    /// Makes the host's engine trust the registry: its CA installed, or (insecure) its
    /// address added to the engine's insecure registries and the engine reloaded. Does
    /// nothing where that is already so.
    pub async fn trust(
        &self,
        session: &HostSession,
        remote: &Docker,
        progress: &HostProgress,
    ) -> Result<()> {
        let address = &self.registry.address;
        if let Some(ca) = &self.ca {
            let path = format!("/etc/docker/certs.d/{address}/ca.crt");
            session.upload(&path, ca).await?;
        }
        if !self.registry.insecure {
            return Ok(());
        }
        let host = session.host();
        let current = session
            .run("sudo", &["-n", "sh", "-c", READ_DAEMON_JSON])
            .await?;
        let Some(config) =
            with_insecure_registry(&current, address).map_err(|message| ExecError::Registry {
                host: host.into(),
                address: address.clone(),
                message: format!("{DAEMON_JSON}: {message}"),
            })?
        else {
            return Ok(());
        };
        progress.step(format!("trusting the insecure registry {address}"));
        session.upload(DAEMON_JSON, config.as_bytes()).await?;
        session
            .run("sudo", &["-n", "sh", "-c", RELOAD_DOCKERD])
            .await?;
        let started = Instant::now();
        while !trusts_insecure(remote, host, address).await? {
            if started.elapsed() > RELOAD_TIMEOUT {
                return Err(ExecError::Registry {
                    host: host.into(),
                    address: address.clone(),
                    message: format!(
                        "dockerd did not take it as an insecure registry within {}s of reloading {DAEMON_JSON} (see dockerd's log on the host)",
                        RELOAD_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Brings `image` onto the host from the registry, unless the host already holds the
    /// ID pushed in this run under that name; afterwards the host holds exactly that ID.
    pub async fn fetch(
        &self,
        remote: &Docker,
        host: &str,
        image: &str,
        progress: &HostProgress,
    ) -> Result<ShipOutcome> {
        let expected = self.pushed.get(image).ok_or_else(|| ExecError::Image {
            host: host.into(),
            image: image.into(),
            message: "this image was not pushed to the registry in this run".into(),
        })?;
        if image_id(remote, host, image).await?.as_ref() == Some(expected) {
            return Ok(ShipOutcome::AlreadyPresent {
                id: expected.clone(),
            });
        }
        let address = &self.registry.address;
        let credentials = self.credentials(address);
        let PulledImage { id, downloaded } =
            pull_from(remote, host, image, address, credentials, progress).await?;
        if id == *expected {
            Ok(ShipOutcome::Pulled { id, downloaded })
        } else {
            Err(ExecError::Image {
                host: host.into(),
                image: image.into(),
                message: format!(
                    "pulled {} but got {id} instead of the pushed {expected} (did something else push to this name meanwhile?)",
                    in_registry(address, image)
                ),
            })
        }
    }
}

/// Adds what to do to the one push failure a lab registry always causes at first: this
/// machine's engine refusing plain HTTP.
fn explain_push_error(error: ExecError, push_address: &str) -> ExecError {
    let text = error.to_string();
    if !text.contains("HTTP response to HTTPS client") {
        return error;
    }
    ExecError::Registry {
        host: LOCAL.into(),
        address: push_address.into(),
        message: format!(
            "{text}\nThis machine's Docker engine does not trust the plain-HTTP registry: add \
             {push_address:?} to \"insecure-registries\" in /etc/docker/daemon.json here and \
             reload dockerd, or, for a registry on this machine, set \
             images.registry.push_address to localhost:<port>."
        ),
    }
}

/// Whether the engine treats `address` as an insecure registry now.
async fn trusts_insecure(remote: &Docker, host: &str, address: &str) -> Result<bool> {
    let info = remote
        .info()
        .await
        .map_err(|e| ExecError::docker(host, "read the engine's registry settings", e))?;
    Ok(info
        .registry_config
        .and_then(|config| config.index_configs)
        .and_then(|indexes| indexes.get(address).cloned())
        .is_some_and(|index| index.secure == Some(false)))
}

/// The daemon configuration `current` (empty: none) with `address` among its
/// `insecure-registries`, or `None` when it is there already. Every other setting is kept.
fn with_insecure_registry(
    current: &str,
    address: &str,
) -> std::result::Result<Option<String>, String> {
    let mut config: serde_json::Map<String, serde_json::Value> = if current.trim().is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_str(current).map_err(|e| format!("not a JSON object: {e}"))?
    };
    let list = config
        .entry("insecure-registries")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    let serde_json::Value::Array(entries) = list else {
        return Err("`insecure-registries` is not a list".into());
    };
    if entries.iter().any(|entry| entry.as_str() == Some(address)) {
        return Ok(None);
    }
    entries.push(serde_json::Value::String(address.to_owned()));
    let mut text = serde_json::to_string_pretty(&config).expect("a JSON map always serializes");
    text.push('\n');
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::with_insecure_registry;

    #[test]
    fn the_registry_joins_the_daemon_settings_and_keeps_the_others() {
        let fresh = with_insecure_registry("", "10.0.0.1:5000")
            .unwrap()
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&fresh).unwrap();
        assert_eq!(value["insecure-registries"][0], "10.0.0.1:5000");

        let merged = with_insecure_registry(
            r#"{"log-driver": "local", "insecure-registries": ["a:1"]}"#,
            "10.0.0.1:5000",
        )
        .unwrap()
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(value["log-driver"], "local");
        assert_eq!(
            value["insecure-registries"],
            serde_json::json!(["a:1", "10.0.0.1:5000"])
        );

        assert_eq!(with_insecure_registry(&merged, "10.0.0.1:5000"), Ok(None));
        assert!(with_insecure_registry("[1]", "a").is_err());
        assert!(with_insecure_registry(r#"{"insecure-registries": "a"}"#, "a").is_err());
    }
}
