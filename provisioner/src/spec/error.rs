//! Spec layer: validation errors, each with its key path and line:column, printed like a
//! compiler does (the offending source line with a marker under the column).

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in cluster.yaml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// Key path, e.g. `hosts[2].ip`.
    pub path: String,
    /// 1-based line of the offending node.
    pub line: usize,
    /// 1-based column of the offending node.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one cluster.yaml, with the source to quote from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors {
    pub file: PathBuf,
    pub errors: Vec<SpecError>,
    source_lines: Vec<String>,
}

impl SpecErrors {
    pub(crate) fn new(file: &Path, source: &str, mut errors: Vec<SpecError>) -> Self {
        // Source order reads best; the sort is stable so one node's errors keep their order.
        errors.sort_by_key(|e| (e.line, e.column));
        SpecErrors {
            file: file.to_owned(),
            errors,
            source_lines: source.lines().map(str::to_owned).collect(),
        }
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        writeln!(
            f,
            "{} is invalid ({count} error{}):",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            writeln!(
                f,
                "error: {}\n  --> {}:{}:{}{}",
                error.message,
                self.file.display(),
                error.line,
                error.column,
                if error.path.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", error.path)
                }
            )?;
            if let Some(text) = error
                .line
                .checked_sub(1)
                .and_then(|i| self.source_lines.get(i))
            {
                let gutter = error.line.to_string();
                let pad = " ".repeat(gutter.len());
                // Columns count characters, so the marker lines up for any UTF-8 text.
                let indent: String = text
                    .chars()
                    .take(error.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, "{pad} |\n{gutter} | {text}\n{pad} | {indent}^")?;
            }
        }
        Ok(())
    }
}
