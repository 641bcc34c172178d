//! Build contexts held in memory: the files of one image's build, hashed by content (so a
//! build is skipped when nothing changed) and packed as the tar the engine builds from.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::LOCAL;
use crate::exec::error::{ExecError, Result};

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

    /// The file at `path` inside the context.
    pub fn file(&self, path: &str) -> Option<&ContextFile> {
        self.files.iter().find(|f| f.path == path)
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
}
