//! The local target's own setup and teardown on this machine: the generated SSH key pair
//! and secret files that `up` creates when missing, the VM containers' state (a stopped
//! VM is started again before a deploy), and the sweep after `terraform destroy` that
//! removes whatever of the cluster is still on the local engine (a VM container, its
//! Docker volume, the cluster network; its data volumes only when asked).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use bollard::Docker;
use rand::distr::{Alphanumeric, SampleString};

use super::error::{ExecError, Result};
use super::ssh::generate_key;

const LOCAL: &str = "local";

/// Length of generated passwords: alphanumeric only, so they are safe in URLs
/// (`redis://:pw@...`, `postgres://user:pw@...`) without escaping.
pub const PASSWORD_LENGTH: usize = 32;

/// A fresh random password (URL-safe alphanumerics from the OS-seeded CSPRNG).
pub fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LENGTH)
}

/// Makes sure the key pair exists: generates it when the private key is missing, writes the
/// public key where the spec wants it, and returns the public key text.
pub async fn ensure_key_pair(private: &Path, public: &Path, comment: &str) -> Result<String> {
    if !private.exists() {
        if let Some(dir) = private.parent() {
            create_private_dir(dir)?;
        }
        let text = generate_key(private, comment).await?;
        // ssh-keygen wrote `<private>.pub`; the spec may name the public key differently.
        if !public.exists() {
            write_new(public, format!("{text}\n").as_bytes(), 0o644)?;
        }
    }
    std::fs::read_to_string(public)
        .map(|text| text.trim().to_owned())
        .map_err(|e| ExecError::io(LOCAL, format!("read public key {}", public.display()), e))
}

/// Makes `dir` (the spec's `.clusterlab/`: keys, secrets, known_hosts) ignore itself with a
/// `.gitignore` of `*`, so wherever the spec lives its secrets never get committed, even in
/// a repository whose own `.gitignore` does not know about them.
pub fn ensure_ignored_dir(dir: &Path) -> Result<()> {
    create_private_dir(dir)?;
    let ignore = dir.join(".gitignore");
    if ignore.exists() {
        return Ok(());
    }
    write_new(
        &ignore,
        b"# Written by `provisioner up`: nothing here belongs in git.\n*\n",
        0o644,
    )
}

/// Writes a random password to `path` unless the file exists; true when it wrote one.
pub fn ensure_secret_file(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    write_new(path, format!("{}\n", random_password()).as_bytes(), 0o600)?;
    Ok(true)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ExecError::io(LOCAL, format!("create directory {}", dir.display()), e))
}

/// Creates `path` with `mode` (never widening an existing file's permissions: it must not
/// exist yet).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let error = |e| ExecError::io(LOCAL, format!("write {}", path.display()), e);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(contents).map_err(error)
}

/// A local VM container as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    Running,
    Stopped,
    Missing,
}

/// The state of the VM container `name`.
pub async fn vm_state(docker: &Docker, name: &str) -> Result<VmState> {
    match docker.inspect_container(name, None).await {
        Ok(found) => Ok(if found.state.and_then(|s| s.running).unwrap_or(false) {
            VmState::Running
        } else {
            VmState::Stopped
        }),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(VmState::Missing),
        Err(e) => Err(ExecError::docker(
            LOCAL,
            format!("inspect VM container {name}"),
            e,
        )),
    }
}

/// Starts a stopped VM container (its sshd, dockerd and, through their restart policy,
/// its services come back with it).
pub async fn start_vm(docker: &Docker, name: &str) -> Result<()> {
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| ExecError::docker(LOCAL, format!("start VM container {name}"), e))
}

/// What of a cluster is on the local engine: containers carrying its label, the volumes
/// and network named after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.volumes.is_empty() && self.networks.is_empty()
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |items: &[String]| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        write!(
            f,
            "containers: {}; volumes: {}; networks: {}",
            list(&self.containers),
            list(&self.volumes),
            list(&self.networks)
        )
    }
}

/// Finds the cluster's leftovers: containers labelled `clusterlab.cluster=<cluster>`, the
/// volumes named in `volumes` (the VMs' engine volumes, and data volumes when they are
/// to go) and the `<cluster>-net` network.
pub async fn find_leftovers(
    docker: &Docker,
    cluster: &str,
    wanted: &[String],
) -> Result<Leftovers> {
    let label = format!("clusterlab.cluster={cluster}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| ExecError::docker(LOCAL, "list the cluster's containers", e))?
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_owned())
        .collect();

    let volumes = docker
        .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
        .await
        .map_err(|e| ExecError::docker(LOCAL, "list volumes", e))?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .filter(|name| wanted.contains(name))
        .collect();

    let network = format!("{cluster}-net");
    let name_filter = HashMap::from([("name", vec![network.as_str()])]);
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new()
                .filters(&name_filter)
                .build(),
        ))
        .await
        .map_err(|e| ExecError::docker(LOCAL, "list networks", e))?
        .into_iter()
        .filter_map(|n| n.name)
        // Docker's name filter matches substrings.
        .filter(|name| *name == network)
        .collect();
    Ok(Leftovers {
        containers,
        volumes,
        networks,
    })
}

/// Removes the leftovers: containers first (they hold the volumes and the network).
pub async fn remove_leftovers(docker: &Docker, leftovers: &Leftovers) -> Result<()> {
    for container in &leftovers.containers {
        docker
            .remove_container(
                container,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await
            .map_err(|e| ExecError::docker(LOCAL, format!("remove container {container}"), e))?;
    }
    for volume in &leftovers.volumes {
        docker
            .remove_volume(
                volume,
                Some(RemoveVolumeOptionsBuilder::new().force(true).build()),
            )
            .await
            .map_err(|e| ExecError::docker(LOCAL, format!("remove volume {volume}"), e))?;
    }
    for network in &leftovers.networks {
        docker
            .remove_network(network)
            .await
            .map_err(|e| ExecError::docker(LOCAL, format!("remove network {network}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_url_safe_and_random() {
        let a = random_password();
        assert_eq!(a.len(), PASSWORD_LENGTH);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, random_password());
    }

    #[test]
    fn the_private_directory_ignores_everything_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join(".clusterlab");
        ensure_ignored_dir(&private).unwrap();
        let text = std::fs::read_to_string(private.join(".gitignore")).unwrap();
        assert_eq!(text.lines().last(), Some("*"));
        // A second run leaves the file (and any edit of it) alone.
        std::fs::write(private.join(".gitignore"), "*\n!keep\n").unwrap();
        ensure_ignored_dir(&private).unwrap();
        assert_eq!(
            std::fs::read_to_string(private.join(".gitignore")).unwrap(),
            "*\n!keep\n"
        );
    }

    #[test]
    fn secret_files_are_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets/redis_password");
        assert!(ensure_secret_file(&path).expect("create"));
        let first = std::fs::read_to_string(&path).expect("read");
        assert!(!ensure_secret_file(&path).expect("keep"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), first);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
