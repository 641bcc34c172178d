//! Spec layer: secret references (`env:NAME` / `file:path`) and the values they resolve to.
//!
//! cluster.yaml never holds a secret, only where to find it, so the spec can be committed
//! and rendered files stay free of secrets; only the exec layer calls [`SecretRef::resolve`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

/// Where a secret lives: an environment variable or a file (relative paths are relative to
/// the directory of cluster.yaml).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`
    Env(String),
    /// `file:path`
    File(PathBuf),
}

/// Why a secret reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set (referenced as env:{0})")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {0} is empty")]
    Empty(String),
}

/// A resolved secret (`secrecy`'s): its `Debug` output is redacted so it cannot leak
/// through logs, it is zeroed when dropped, and reading it takes an explicit
/// [`secrecy::ExposeSecret::expose_secret`] at the one place that must hand it on.
pub type Secret = secrecy::SecretString;

impl SecretRef {
    /// Parses `env:NAME` or `file:path`; the error says why anything else is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if valid {
                Ok(SecretRef::Env(name.to_owned()))
            } else {
                Err(format!(
                    "invalid environment variable name {name:?} (use A-Z, 0-9 and _)"
                ))
            }
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.trim().is_empty() {
                Err("file: reference needs a path".to_owned())
            } else {
                super::validate::rules::path(path)?;
                Ok(SecretRef::File(PathBuf::from(path)))
            }
        } else {
            Err("must be a reference (env:NAME or file:path), never the secret itself".to_owned())
        }
    }

    /// Reads the secret. File contents lose one trailing newline, as editors add one.
    pub fn resolve(&self, base_dir: &Path) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            SecretRef::File(path) => {
                let path = base_dir.join(path);
                let text = std::fs::read_to_string(&path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.strip_suffix('\r').unwrap_or(text).to_owned()
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret::from(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn parses_references_and_refuses_inline_values() {
        assert_eq!(
            SecretRef::parse("env:PROXMOX_TOKEN"),
            Ok(SecretRef::Env("PROXMOX_TOKEN".into()))
        );
        assert_eq!(
            SecretRef::parse("file:.clusterlab/x"),
            Ok(SecretRef::File(".clusterlab/x".into()))
        );
        assert!(SecretRef::parse("hunter2").is_err());
        assert!(SecretRef::parse("env:lower").is_err());
        assert!(SecretRef::parse("file:").is_err());
    }

    #[test]
    fn resolves_files_relative_to_the_spec_and_env_vars() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let secret = SecretRef::File("pw".into())
            .resolve(dir.path())
            .expect("file secret");
        assert_eq!(secret.expose_secret(), "s3cret");
        assert!(!format!("{secret:?}").contains("s3cret"));

        let missing = SecretRef::Env("CLUSTERLAB_TEST_SURELY_UNSET_VARIABLE".into())
            .resolve(dir.path())
            .expect_err("unset variable");
        assert!(matches!(missing, SecretError::MissingEnv(_)));

        std::fs::write(dir.path().join("empty"), "\n").expect("write");
        let empty = SecretRef::File("empty".into()).resolve(dir.path());
        assert!(matches!(empty, Err(SecretError::Empty(_))));
    }
}
