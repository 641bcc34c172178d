//! Building images on the local engine from `templates/`, skipped when the tag already
//! carries the hash of the same context.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use super::context::BuildContext;
use super::k6::find_k6_binary;
use super::transfer::image_id;
use super::LOCAL;
use crate::exec::error::{ExecError, Result};
use crate::exec::progress::HostProgress;

/// The image label holding the hash of the build context it was built from.
pub const CONTEXT_HASH_LABEL: &str = "clusterlab.context-hash";

/// The local target's "VM" image, built from `templates/vm/`.
pub const VM_IMAGE: &str = "clusterlab/vm:latest";
/// The web app image, built from a host-built binary by [`webapp_context`].
pub const WEBAPP_IMAGE: &str = "clusterlab/webapp:latest";
/// The service images: `templates/images/<dir>/` and the tag compose files use for it.
pub const SERVICE_IMAGES: [(&str, &str); 3] = [
    ("redis", "clusterlab/redis:7"),
    ("postgres", "clusterlab/postgres:15"),
    ("nginx", "clusterlab/nginx:1"),
];

/// Builds [`VM_IMAGE`] from `<templates>/vm` and the k6 binary unless it is up to date.
pub async fn ensure_vm_image(
    docker: &Docker,
    templates: &Path,
    progress: &HostProgress,
) -> Result<BuildOutcome> {
    let context = vm_context(&templates.join("vm"), &find_k6_binary()?)?;
    ensure_built(docker, VM_IMAGE, &context, progress).await
}

/// The build context of a service image: every file of `<templates>/images/<dir>/`.
pub fn service_context(templates: &Path, dir: &str) -> Result<BuildContext> {
    BuildContext::from_dir(&templates.join("images").join(dir))
}

/// Builds each of [`SERVICE_IMAGES`] from `<templates>/images/<dir>` unless up to date.
pub async fn ensure_service_images(
    docker: &Docker,
    templates: &Path,
    progress: &HostProgress,
) -> Result<Vec<(&'static str, BuildOutcome)>> {
    let mut outcomes = Vec::with_capacity(SERVICE_IMAGES.len());
    for (dir, tag) in SERVICE_IMAGES {
        let context = service_context(templates, dir)?;
        outcomes.push((tag, ensure_built(docker, tag, &context, progress).await?));
    }
    Ok(outcomes)
}

/// The local target's VM image context: `templates/vm/` plus the k6 binary as `k6`.
pub fn vm_context(vm_dir: &Path, k6_binary: &Path) -> Result<BuildContext> {
    let mut context = BuildContext::from_dir(vm_dir)?;
    context.add_file(k6_binary, "k6")?;
    Ok(context)
}

/// The context for the web app image: `<templates>/images/webapp/` (its Dockerfile) plus a
/// host-built release binary as `webapp` (its HTML templates are compiled in).
pub fn webapp_context(templates: &Path, binary: &Path) -> Result<BuildContext> {
    let mut context = service_context(templates, "webapp")?;
    context.add_file(binary, "webapp")?;
    Ok(context)
}

/// Where the web app image's first steps are built before the binary exists.
pub const WEBAPP_STEPS_IMAGE: &str = "clusterlab/webapp-steps:latest";

/// The web app image's Dockerfile cut where it first copies the binary in, as a context of
/// its own. Built (as [`WEBAPP_STEPS_IMAGE`]) while cargo still compiles, it leaves those
/// steps (Debian packages, the runtime tree) in the engine's build cache, which keys a step
/// by its parent and its instruction: the image's own build then starts at the binary.
pub fn webapp_steps_context(templates: &Path) -> Result<BuildContext> {
    let mut context = service_context(templates, "webapp")?;
    let dockerfile = context
        .file("Dockerfile")
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
        .unwrap_or_default();
    let mut steps = String::new();
    for line in dockerfile.lines() {
        if line.starts_with("COPY webapp ") {
            context.add_bytes("Dockerfile", 0o644, steps.into_bytes());
            return Ok(context);
        }
        steps.push_str(line);
        steps.push('\n');
    }
    Err(ExecError::Image {
        host: LOCAL.into(),
        image: WEBAPP_IMAGE.into(),
        message: format!(
            "{}/images/webapp/Dockerfile has no `COPY webapp ...` line to build its first steps up to",
            templates.display()
        ),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The tag already points at an image built from this exact context.
    UpToDate { id: String },
    Built {
        id: String,
        /// How many of the build's steps the engine took from its build cache.
        cached_steps: usize,
    },
}

impl BuildOutcome {
    pub fn id(&self) -> &str {
        match self {
            BuildOutcome::UpToDate { id } | BuildOutcome::Built { id, .. } => id,
        }
    }
}

/// Builds `tag` from `context` on `docker` unless the tag already carries this context's
/// hash. Build output goes to the progress line; on failure the last lines of it are in
/// the error.
pub async fn ensure_built(
    docker: &Docker,
    tag: &str,
    context: &BuildContext,
    progress: &HostProgress,
) -> Result<BuildOutcome> {
    let hash = context.hash();
    if let Ok(existing) = docker.inspect_image(tag).await {
        let labelled = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(CONTEXT_HASH_LABEL));
        if let (Some(id), Some(label)) = (existing.id, labelled) {
            if *label == hash {
                return Ok(BuildOutcome::UpToDate { id });
            }
        }
    }

    progress.step(format!("building {tag}"));
    let labels = HashMap::from([(CONTEXT_HASH_LABEL, hash.as_str())]);
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let tar = context.to_tar()?;
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(Bytes::from(tar))));
    let mut log: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ExecError::Image {
            host: LOCAL.into(),
            image: tag.into(),
            message: format!("build failed: {e}\n{}", tail(&log, 20)),
        })?;
        if let Some(line) = info.stream {
            for part in line.lines().filter(|l| !l.trim().is_empty()) {
                progress.step(format!("building {tag}: {}", part.trim()));
                log.push(part.to_owned());
            }
        }
        if let Some(detail) = info.error_detail {
            return Err(ExecError::Image {
                host: LOCAL.into(),
                image: tag.into(),
                message: format!(
                    "build failed: {}\n{}",
                    detail.message.unwrap_or_default(),
                    tail(&log, 20)
                ),
            });
        }
    }
    let id = image_id(docker, LOCAL, tag)
        .await?
        .ok_or_else(|| ExecError::Image {
            host: LOCAL.into(),
            image: tag.into(),
            message: format!("build finished but the tag is missing\n{}", tail(&log, 20)),
        })?;
    // The classic builder says so under each step it did not run.
    let cached_steps = log
        .iter()
        .filter(|l| l.trim() == "---> Using cache")
        .count();
    Ok(BuildOutcome::Built { id, cached_steps })
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dockerfile(context: &BuildContext) -> String {
        let file = context.file("Dockerfile").expect("a Dockerfile");
        String::from_utf8(file.contents.clone()).expect("utf-8")
    }

    #[test]
    fn the_webapp_steps_are_the_dockerfile_up_to_the_binary() {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let full = dockerfile(&service_context(&templates, "webapp").expect("context"));
        let steps = dockerfile(&webapp_steps_context(&templates).expect("steps"));
        assert!(full.starts_with(&steps), "{steps}");
        assert!(steps.contains("apt-get install"), "{steps}");
        assert!(!steps.contains("COPY webapp"), "{steps}");
        assert!(full[steps.len()..].starts_with("COPY webapp "), "{full}");
    }

    #[test]
    fn a_webapp_dockerfile_that_never_copies_the_binary_is_an_error() {
        let templates = tempfile::tempdir().expect("temp dir");
        let dir = templates.path().join("images/webapp");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY app /app\n").expect("write");
        let error = webapp_steps_context(templates.path()).expect_err("no COPY webapp");
        assert!(error.to_string().contains("COPY webapp"), "{error}");
    }
}
