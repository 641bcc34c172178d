//! I/O layer for rendered files: atomic writes (temp file + rename in the same directory, so
//! a reader never sees half a file) and the `render --check` comparison with a unified diff.
//! Files that carry [`plan::HEADER`] (see [`plan::is_rendered`]) belong to `render`: stale ones are
//! removed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use similar::TextDiff;

use crate::plan::{self, RenderedFile};

/// Directories (under the output root) where `render` owns the files that carry its header.
const OWNED_DIRS: [&str; 3] = ["terraform", "terraform/cloud-init", "compose"];

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove stale {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How one file on disk differs from the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    Missing(PathBuf),
    /// The file differs; the unified diff goes from disk to the rendered text.
    Changed {
        path: PathBuf,
        diff: String,
    },
    /// Rendered earlier, but the spec no longer produces it.
    Stale(PathBuf),
}

/// What [`write_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub written: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

fn read_existing(path: &Path) -> Result<Option<String>, OutputError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OutputError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces `path` with `contents` atomically.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), OutputError> {
    let err = |source| OutputError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".render-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(contents.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile creates 0600; these files are meant to be read and committed.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Files under the owned directories that carry the render header but are not in `files`.
fn stale_files(root: &Path, files: &[RenderedFile]) -> Result<Vec<PathBuf>, OutputError> {
    let mut stale = Vec::new();
    for dir in OWNED_DIRS {
        let dir_path = root.join(dir);
        let entries = match fs::read_dir(&dir_path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(OutputError::Read {
                    path: dir_path,
                    source,
                })
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| OutputError::Read {
                path: dir_path.clone(),
                source,
            })?;
            let relative = Path::new(dir).join(entry.file_name());
            if files.iter().any(|f| f.path == relative) || !entry.path().is_file() {
                continue;
            }
            // Unreadable or binary files are not ours; only the header claims a file.
            let owned = fs::read_to_string(entry.path())
                .map(|text| plan::is_rendered(&text))
                .unwrap_or(false);
            if owned {
                stale.push(relative);
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// Writes every file under `root` (skipping identical ones) and removes stale rendered files.
pub fn write_all(root: &Path, files: &[RenderedFile]) -> Result<WriteReport, OutputError> {
    let mut report = WriteReport::default();
    for file in files {
        let path = root.join(&file.path);
        if read_existing(&path)?.as_deref() == Some(file.contents.as_str()) {
            report.unchanged.push(file.path.clone());
        } else {
            write_atomic(&path, &file.contents)?;
            report.written.push(file.path.clone());
        }
    }
    for relative in stale_files(root, files)? {
        let path = root.join(&relative);
        fs::remove_file(&path).map_err(|source| OutputError::Remove { path, source })?;
        report.removed.push(relative);
    }
    Ok(report)
}

/// Compares the files under `root` with the plan; empty means up to date.
pub fn check(root: &Path, files: &[RenderedFile]) -> Result<Vec<Drift>, OutputError> {
    let mut drift = Vec::new();
    for file in files {
        match read_existing(&root.join(&file.path))? {
            None => drift.push(Drift::Missing(file.path.clone())),
            Some(text) if text == file.contents => {}
            Some(text) => drift.push(Drift::Changed {
                path: file.path.clone(),
                diff: unified_diff(&file.path, &text, &file.contents),
            }),
        }
    }
    drift.extend(stale_files(root, files)?.into_iter().map(Drift::Stale));
    Ok(drift)
}

fn unified_diff(path: &Path, old: &str, new: &str) -> String {
    let shown = path.display().to_string();
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{shown} (on disk)"),
            &format!("{shown} (rendered)"),
        )
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::HEADER;

    fn file(path: &str, contents: &str) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            contents: contents.into(),
        }
    }

    #[test]
    fn writes_checks_and_removes_stale_owned_files_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = file("compose/a.yml", &format!("{HEADER}\na: 1\n"));
        let b = file("compose/b.yml", &format!("{HEADER}\nb: 1\n"));
        let report = write_all(root.path(), &[a.clone(), b.clone()]).expect("write");
        assert_eq!(report.written.len(), 2);
        assert!(check(root.path(), &[a.clone(), b.clone()])
            .expect("check")
            .is_empty());

        fs::write(root.path().join("compose/mine.yml"), "hand written\n").expect("write");
        let a2 = file("compose/a.yml", &format!("{HEADER}\na: 2\n"));
        let drift = check(root.path(), std::slice::from_ref(&a2)).expect("check");
        assert_eq!(drift.len(), 2, "{drift:?}");
        match &drift[0] {
            Drift::Changed { diff, .. } => {
                assert!(diff.contains("-a: 1") && diff.contains("+a: 2"), "{diff}");
            }
            other => panic!("expected a change, got {other:?}"),
        }
        assert_eq!(drift[1], Drift::Stale("compose/b.yml".into()));

        let report = write_all(root.path(), std::slice::from_ref(&a2)).expect("write");
        assert_eq!(report.removed, vec![PathBuf::from("compose/b.yml")]);
        assert!(root.path().join("compose/mine.yml").exists());
        assert!(!root.path().join("compose/b.yml").exists());
        let again = write_all(root.path(), std::slice::from_ref(&a2)).expect("write");
        assert_eq!(again.unchanged, vec![PathBuf::from("compose/a.yml")]);
        assert!(again.written.is_empty());
    }

    #[test]
    fn cloud_init_user_data_left_behind_is_stale() {
        // A cluster moved from proxmox to local, or a host removed: its user data, whose
        // header is on the second line, must not linger for the next Terraform run.
        let root = tempfile::tempdir().expect("tempdir");
        let web = file(
            "terraform/cloud-init/web1.yaml",
            &format!("#cloud-config\n{HEADER}\nhostname: web1\n"),
        );
        write_all(root.path(), std::slice::from_ref(&web)).expect("write");
        fs::write(
            root.path().join("terraform/cloud-init/mine.yaml"),
            "#cloud-config\nhostname: mine\n",
        )
        .expect("write");
        assert_eq!(
            check(root.path(), &[]).expect("check"),
            vec![Drift::Stale("terraform/cloud-init/web1.yaml".into())]
        );
        let report = write_all(root.path(), &[]).expect("write");
        assert_eq!(
            report.removed,
            vec![PathBuf::from("terraform/cloud-init/web1.yaml")]
        );
        assert!(root.path().join("terraform/cloud-init/mine.yaml").exists());
    }
}
