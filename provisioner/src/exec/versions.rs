//! The web app's versions on one web host, through its Docker engine: tag the image a
//! deploy brought with its version, point the spec's image name at a kept version for
//! `deploy --version` and `rollback`, list what the host keeps, and prune beyond
//! `app.retain`. What to prune is [`crate::plan::versions`]'s decision; every call here is
//! a bollard API call with the names as values.

use std::collections::HashSet;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use chrono::{DateTime, Utc};

use super::error::{ExecError, Result};
use super::images::{self, image_id, split_reference};
use crate::plan::versions::{self, HostVersions, Retained, Version};

/// `<repository of image>:<version>`, the tag that keeps a version on a host.
pub fn kept_reference(image: &str, version: &Version) -> String {
    format!("{}:{version}", split_reference(image).0)
}

async fn tag(docker: &Docker, host: &str, source: &str, target: &str) -> Result<()> {
    let (repo, tag) = split_reference(target);
    images::retag(docker, host, source, repo, tag).await
}

/// Gives the host's `image` the tag of its version; returns the version.
pub async fn tag_version(docker: &Docker, host: &str, image: &str) -> Result<Version> {
    let id = images::present_image_id(
        docker,
        host,
        image,
        "not on the host, so it cannot be tagged with its version",
    )
    .await?;
    let version = Version::of_image(&id);
    tag(docker, host, image, &kept_reference(image, &version)).await?;
    Ok(version)
}

/// Points `image` at the kept `version`. The image it named until then is tagged with its
/// own version first (one deployed before versions were kept has none yet), so a rollback
/// can always be rolled forward again.
pub async fn use_version(
    docker: &Docker,
    host: &str,
    image: &str,
    version: &Version,
) -> Result<()> {
    let kept = kept_reference(image, version);
    if image_id(docker, host, &kept).await?.is_none() {
        return Err(ExecError::Image {
            host: host.to_owned(),
            image: kept,
            message: format!("version {version} is not kept on this host"),
        });
    }
    if image_id(docker, host, image).await?.is_some() {
        tag_version(docker, host, image).await?;
    }
    tag(docker, host, &kept, image).await
}

/// A kept version and the image its tag names.
struct Found {
    retained: Retained,
    id: String,
}

/// The version tags of `image`'s repository on the host, newest first.
async fn kept(docker: &Docker, host: &str, image: &str) -> Result<Vec<Found>> {
    let repository = split_reference(image).0;
    let listed = docker
        .list_images(Some(ListImagesOptionsBuilder::new().build()))
        .await
        .map_err(|e| ExecError::docker(host, "list images", e))?;
    let mut found = Vec::new();
    for summary in listed {
        for reference in &summary.repo_tags {
            let (repo, tag) = split_reference(reference);
            let Some(version) = Version::from_tag(tag).filter(|_| repo == repository) else {
                continue;
            };
            // The summary's time is in whole seconds; two deploys within one second would
            // sort by chance, so the inspect's (nanoseconds) decides.
            let created = docker
                .inspect_image(reference)
                .await
                .map_err(|e| ExecError::docker(host, format!("inspect image {reference}"), e))?
                .created
                .and_then(|time| DateTime::parse_from_rfc3339(&time).ok())
                .map(|time| time.with_timezone(&Utc));
            found.push(Found {
                retained: Retained { version, created },
                id: summary.id.clone(),
            });
        }
    }
    found.sort_by(|a, b| versions::newer_first(&a.retained, &b.retained));
    Ok(found)
}

/// The images of the host's containers, running or not.
async fn images_in_use(docker: &Docker, host: &str) -> Result<HashSet<String>> {
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
        .await
        .map_err(|e| ExecError::docker(host, "list containers", e))?;
    Ok(containers.into_iter().filter_map(|c| c.image_id).collect())
}

/// What the host keeps of `image`'s versions, and which one its container `container`
/// (the web app's) runs.
pub async fn survey(
    docker: &Docker,
    host: &str,
    image: &str,
    container: &str,
) -> Result<HostVersions> {
    let retained = kept(docker, host, image)
        .await?
        .into_iter()
        .map(|f| f.retained)
        .collect();
    let running = match docker.inspect_container(container, None).await {
        Ok(found) => found.image.as_deref().map(Version::of_image),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => None,
        Err(e) => {
            return Err(ExecError::docker(
                host,
                format!("inspect container {container}"),
                e,
            ))
        }
    };
    Ok(HostVersions {
        host: host.to_owned(),
        retained,
        running,
    })
}

/// What a prune did on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The version tags removed, oldest last.
    pub removed: Vec<Version>,
    /// The versions the host keeps, newest first.
    pub kept: Vec<Version>,
}

/// Removes the version tags of `image`'s repository beyond the newest `retain`, never one
/// whose image a container uses. Removing a tag deletes the image only when no other tag
/// names it.
pub async fn prune(docker: &Docker, host: &str, image: &str, retain: u32) -> Result<Pruned> {
    let found = kept(docker, host, image).await?;
    let used = images_in_use(docker, host).await?;
    let in_use: Vec<Version> = found
        .iter()
        .filter(|f| used.contains(&f.id))
        .map(|f| f.retained.version.clone())
        .collect();
    let retained: Vec<Retained> = found.iter().map(|f| f.retained.clone()).collect();
    let removed = versions::to_prune(&retained, retain, &in_use);
    for version in &removed {
        let reference = kept_reference(image, version);
        docker
            .remove_image(
                &reference,
                Some(RemoveImageOptionsBuilder::new().build()),
                None,
            )
            .await
            .map_err(|e| ExecError::docker(host, format!("remove {reference}"), e))?;
    }
    let kept = retained
        .into_iter()
        .map(|r| r.version)
        .filter(|v| !removed.contains(v))
        .collect();
    Ok(Pruned { removed, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_kept_under_the_image_repository() {
        let version = Version::from_tag("4f2a9c81d0e3").expect("version");
        assert_eq!(
            kept_reference("clusterlab/webapp:latest", &version),
            "clusterlab/webapp:4f2a9c81d0e3"
        );
        assert_eq!(
            kept_reference("registry:5000/team/webapp", &version),
            "registry:5000/team/webapp:4f2a9c81d0e3"
        );
    }
}
