//! Getting an image onto a host: shipped (only its missing layers, through a registry on
//! the host's loopback; or, where the host has none, exported from the local engine and
//! streamed into the host's) or pulled by the host from its registry.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, PushImageOptionsBuilder,
    RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};

use super::{registry, LOCAL};
use crate::exec::error::{ExecError, Result};
use crate::exec::progress::HostProgress;
use crate::exec::ssh::HostSession;

/// The ID the engine has for `image`, or `None` when it has no such image.
pub async fn image_id(docker: &Docker, host: &str, image: &str) -> Result<Option<String>> {
    match docker.inspect_image(image).await {
        Ok(inspect) => Ok(inspect.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(ExecError::docker(host, format!("inspect image {image}"), e)),
    }
}

/// The ID the engine has for `image`, which must be there: its absence is an error
/// saying why it was expected (`missing`).
pub async fn present_image_id(
    docker: &Docker,
    host: &str,
    image: &str,
    missing: &str,
) -> Result<String> {
    image_id(docker, host, image)
        .await?
        .ok_or_else(|| ExecError::Image {
            host: host.into(),
            image: image.into(),
            message: missing.into(),
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipOutcome {
    /// The host already had this exact image ID under this name.
    AlreadyPresent { id: String },
    Shipped {
        id: String,
        /// What crossed the SSH connection.
        bytes: u64,
        via: Via,
    },
    Pulled {
        id: String,
        /// What the host downloaded from the registry: the layers it lacked.
        downloaded: u64,
    },
}

/// What a host's pull got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    pub id: String,
    /// The bytes of the layers it downloaded, as Docker's pull progress counts them.
    pub downloaded: u64,
}

/// How a shipped image travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Pushed into the host's loopback registry: only the layers it lacked.
    Registry,
    /// Exported whole and imported (the host has no registry binary).
    Export,
}

/// Brings `image` from the local engine into the host's, unless the host already has the
/// same image ID under that name: through its loopback registry where it has one (only
/// missing layers travel), else as a whole export. The bar counts the bytes sent.
pub async fn ship(
    local: &Docker,
    remote: &Docker,
    session: &HostSession,
    image: &str,
    progress: &HostProgress,
) -> Result<ShipOutcome> {
    let host = session.host();
    let local_image = local.inspect_image(image).await.map_err(|e| {
        ExecError::docker(
            LOCAL,
            format!("inspect image {image} to ship it to {host}"),
            e,
        )
    })?;
    let id = local_image.id.clone().ok_or_else(|| ExecError::Image {
        host: LOCAL.into(),
        image: image.into(),
        message: "the local engine reports no image ID".into(),
    })?;
    if image_id(remote, host, image).await?.as_deref() == Some(id.as_str()) {
        return Ok(ShipOutcome::AlreadyPresent { id });
    }

    // The image's unpacked size: an upper bound of what either way sends, good enough for a bar.
    let estimate = local_image.size.unwrap_or(0).max(0) as u64;
    let (bytes, via) =
        match registry::push_through(local, remote, session, image, estimate, progress).await? {
            Some(bytes) => (bytes, Via::Registry),
            None => {
                progress.note(format!(
                    "{host} has no docker-registry: exporting {image} whole"
                ));
                (
                    export(local, remote, host, image, estimate, progress).await?,
                    Via::Export,
                )
            }
        };
    match image_id(remote, host, image).await? {
        Some(remote_id) if remote_id == id => Ok(ShipOutcome::Shipped { id, bytes, via }),
        other => Err(ExecError::Image {
            host: host.into(),
            image: image.into(),
            message: format!(
                "after the transfer the host has {} instead of {id}",
                other.unwrap_or_else(|| "no such image".into())
            ),
        }),
    }
}

/// Streams the whole image from the local engine into the host's; returns the bytes sent.
async fn export(
    local: &Docker,
    remote: &Docker,
    host: &str,
    image: &str,
    estimate: u64,
    progress: &HostProgress,
) -> Result<u64> {
    progress.start_bytes(format!("shipping {image}"), estimate);
    let counter = progress.clone();
    let export = local.export_image(image).inspect_ok(move |chunk| {
        counter.add_bytes(chunk.len() as u64);
    });
    let options = ImportImageOptionsBuilder::new().quiet(true).build();
    let mut import = remote.import_image_stream(options, export, None);
    while let Some(item) = import.next().await {
        item.map_err(|e| ExecError::docker(host, format!("import image {image}"), e))?;
    }
    Ok(progress.bytes_done())
}

/// Splits `name[:tag]` (a registry port's colon is not a tag separator).
pub fn split_reference(image: &str) -> (&str, &str) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&image[..at], &image[at + 1..])
        }
        None => (image, "latest"),
    }
}

/// Lets the host's engine pull `image` from the registry its name points at.
pub async fn pull(
    remote: &Docker,
    host: &str,
    image: &str,
    progress: &HostProgress,
) -> Result<ShipOutcome> {
    let PulledImage { id, downloaded } = pull_with(remote, host, image, None, progress).await?;
    Ok(ShipOutcome::Pulled { id, downloaded })
}

/// [`pull`] with the registry's credentials.
async fn pull_with(
    remote: &Docker,
    host: &str,
    image: &str,
    credentials: Option<DockerCredentials>,
    progress: &HostProgress,
) -> Result<PulledImage> {
    let (name, tag) = split_reference(image);
    progress.step(format!("pulling {image}"));
    let options = CreateImageOptionsBuilder::new()
        .from_image(name)
        .tag(tag)
        .build();
    let mut stream = remote.create_image(Some(options), None, credentials);
    let mut layers = DownloadedLayers::default();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ExecError::docker(host, format!("pull {image}"), e))?;
        layers.record(&info);
        if let Some(status) = info.status {
            progress.step(format!("pulling {image}: {status}"));
        }
    }
    let id = present_image_id(
        remote,
        host,
        image,
        "pull finished but the image is missing",
    )
    .await?;
    Ok(PulledImage {
        id,
        downloaded: layers.total(),
    })
}

/// The bytes a pull downloaded, from its progress messages: each layer it downloads reports
/// `Downloading` with the layer's size as `total` (the last report of a layer always comes);
/// a layer the host has reports `Already exists` instead.
#[derive(Debug, Default)]
struct DownloadedLayers(std::collections::HashMap<String, u64>);

impl DownloadedLayers {
    fn record(&mut self, info: &bollard::models::CreateImageInfo) {
        let (Some("Downloading"), Some(layer), Some(detail)) =
            (info.status.as_deref(), &info.id, &info.progress_detail)
        else {
            return;
        };
        let size = detail.total.or(detail.current).unwrap_or(0);
        let size = u64::try_from(size).unwrap_or(0);
        let seen = self.0.entry(layer.clone()).or_default();
        *seen = (*seen).max(size);
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// Pushes the local engine's `name:tag` to the registry its name starts with; `to` says
/// where, for errors.
async fn push(
    local: &Docker,
    name: &str,
    tag: &str,
    credentials: Option<DockerCredentials>,
    to: &str,
) -> Result<()> {
    let options = PushImageOptionsBuilder::new().tag(tag).build();
    let mut stream = local.push_image(name, Some(options), credentials);
    while let Some(item) = stream.next().await {
        let info =
            item.map_err(|e| ExecError::docker(LOCAL, format!("push {name}:{tag} to {to}"), e))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(ExecError::Image {
                host: LOCAL.into(),
                image: format!("{name}:{tag}"),
                message: format!("push to {to}: {error}"),
            });
        }
    }
    Ok(())
}

/// Gives an engine's image `reference` the further name `name:tag`.
pub async fn retag(
    docker: &Docker,
    host: &str,
    reference: &str,
    name: &str,
    tag: &str,
) -> Result<()> {
    docker
        .tag_image(
            reference,
            Some(TagImageOptionsBuilder::new().repo(name).tag(tag).build()),
        )
        .await
        .map_err(|e| ExecError::docker(host, format!("tag {reference} as {name}:{tag}"), e))
}

/// Removes the name `reference` from an engine's image, keeping the image and its other names.
pub async fn untag(docker: &Docker, host: &str, reference: &str) -> Result<()> {
    docker
        .remove_image(
            reference,
            Some(RemoveImageOptionsBuilder::new().noprune(true).build()),
            None,
        )
        .await
        .map(drop)
        .map_err(|e| ExecError::docker(host, format!("untag {reference}"), e))
}

/// `image`'s name in the registry at `registry` (`host[:port]`):
/// `<registry>/<repository>:<tag>`.
pub fn in_registry(registry: &str, image: &str) -> String {
    let (name, tag) = split_reference(image);
    format!("{registry}/{}:{tag}", repository(name))
}

/// Pushes the local engine's `image` to the registry at `registry` under [`in_registry`]'s
/// name, which is only for the push: it is removed again whatever the push did. `to` says
/// where, for errors.
pub async fn push_to(
    local: &Docker,
    image: &str,
    registry: &str,
    credentials: Option<DockerCredentials>,
    to: &str,
) -> Result<()> {
    let (name, tag) = split_reference(image);
    let pushed_name = format!("{registry}/{}", repository(name));
    retag(local, LOCAL, image, &pushed_name, tag).await?;
    let pushed = push(local, &pushed_name, tag, credentials, to).await;
    let untagged = untag(local, LOCAL, &format!("{pushed_name}:{tag}")).await;
    pushed?;
    untagged
}

/// Lets the host's engine pull `image` from the registry at `registry` (under
/// [`in_registry`]'s name) and keep it under its own name only; returns its ID.
pub async fn pull_from(
    remote: &Docker,
    host: &str,
    image: &str,
    registry: &str,
    credentials: Option<DockerCredentials>,
    progress: &HostProgress,
) -> Result<PulledImage> {
    let pulled = in_registry(registry, image);
    let got = pull_with(remote, host, &pulled, credentials, progress).await?;
    let (name, tag) = split_reference(image);
    retag(remote, host, &pulled, name, tag).await?;
    untag(remote, host, &pulled).await?;
    Ok(got)
}

/// The repository path an image has inside a registry: its name without the registry host
/// it may carry (`registry.lan:5000/team/app` -> `team/app`).
pub fn repository(name: &str) -> &str {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_counts_the_layers_it_downloaded_once_each() {
        let info = |status: &str, layer: &str, current: i64, total: Option<i64>| {
            bollard::models::CreateImageInfo {
                id: Some(layer.into()),
                status: Some(status.into()),
                progress_detail: Some(bollard::models::ProgressDetail {
                    current: Some(current),
                    total,
                }),
                ..Default::default()
            }
        };
        let mut layers = DownloadedLayers::default();
        for message in [
            info("Pulling fs layer", "aaa", 0, None),
            info("Already exists", "bbb", 0, None),
            info("Downloading", "aaa", 512, Some(2048)),
            info("Downloading", "aaa", 2048, Some(2048)),
            info("Downloading", "ccc", 100, Some(100)),
            info("Extracting", "aaa", 2048, Some(4096)),
            info("Pull complete", "aaa", 0, None),
        ] {
            layers.record(&message);
        }
        assert_eq!(layers.total(), 2048 + 100);
    }

    #[test]
    fn the_registry_path_drops_a_registry_host() {
        assert_eq!(repository("clusterlab/webapp"), "clusterlab/webapp");
        assert_eq!(repository("registry.lan:5000/team/app"), "team/app");
        assert_eq!(repository("localhost/app"), "app");
        assert_eq!(repository("redis"), "redis");
    }

    #[test]
    fn references_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_reference("redis:7"), ("redis", "7"));
        assert_eq!(
            split_reference("clusterlab/vm"),
            ("clusterlab/vm", "latest")
        );
        assert_eq!(
            split_reference("registry:5000/team/app:1.2"),
            ("registry:5000/team/app", "1.2")
        );
        assert_eq!(
            split_reference("registry:5000/app"),
            ("registry:5000/app", "latest")
        );
    }
}
