//! The window of a policy, written `<n>s` or `<n>ms` in cluster.yaml and in the web app's
//! settings. One parser, so whatever the spec validator accepts the web app accepts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive window length in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(u64);

/// Why a window's text was refused; the messages are what both programs print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("expected a duration like 60s or 500ms, found {0:?}")]
    Syntax(String),
    #[error("must be greater than 0")]
    Zero,
    #[error("{0:?} is too long: a window is at most {max} ms", max = u64::MAX)]
    TooLong(String),
}

impl Window {
    pub const fn from_millis(ms: u64) -> Self {
        Window(ms)
    }

    pub fn parse(text: &str) -> Result<Self, WindowError> {
        let syntax = || WindowError::Syntax(text.to_owned());
        let (digits, scale) = if let Some(d) = text.strip_suffix("ms") {
            (d, 1)
        } else if let Some(d) = text.strip_suffix('s') {
            (d, 1000)
        } else {
            return Err(syntax());
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        // All digits, so the only way to fail is overflow (as does the multiplication).
        let millis = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(|| WindowError::TooLong(text.to_owned()))?;
        if millis == 0 {
            return Err(WindowError::Zero);
        }
        Ok(Window(millis))
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds for the `w` parameter of `RateLimit-Policy`, rounded up so a
    /// sub-second window is never advertised as zero.
    pub fn as_header_seconds(self) -> u64 {
        self.0.div_ceil(1000)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Window length, `<n>s` or `<n>ms`.",
            "type": "string",
            "pattern": "^[1-9][0-9]*(s|ms)$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_milliseconds_and_prints_them_back() {
        assert_eq!(Window::parse("60s"), Ok(Window(60_000)));
        assert_eq!(Window::parse("250ms"), Ok(Window(250)));
        assert_eq!(Window(60_000).to_string(), "60s");
        assert_eq!(Window(1_500).to_string(), "1500ms");
        assert_eq!(Window(250).as_header_seconds(), 1);
        assert_eq!(Window(60_000).as_header_seconds(), 60);
    }

    #[test]
    fn refuses_what_neither_program_may_accept() {
        for text in ["60", "s", "-5s", "1.5s", " 60s", "+5s", "5 s"] {
            assert_eq!(
                Window::parse(text),
                Err(WindowError::Syntax(text.into())),
                "{text}"
            );
        }
        assert_eq!(Window::parse("0s"), Err(WindowError::Zero));
        assert_eq!(Window::parse("0ms"), Err(WindowError::Zero));
        // Saturating here once let the spec accept what the app then refused.
        assert_eq!(
            Window::parse("20000000000000000s"),
            Err(WindowError::TooLong("20000000000000000s".into()))
        );
        assert_eq!(
            Window::parse("99999999999999999999ms"),
            Err(WindowError::TooLong("99999999999999999999ms".into()))
        );
        assert_eq!(
            Window::parse("18446744073709551615ms"),
            Ok(Window(u64::MAX))
        );
    }
}
