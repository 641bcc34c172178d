//! Domain values, parsed once at the edge: a request body or path segment becomes a
//! [`TargetUrl`] or a [`ShortCode`] before any handler logic or SQL sees it.

mod code;
mod target;

pub use code::{ShortCode, ShortCodeError, CODE_LENGTH};
pub use target::{TargetUrl, UrlError, UrlRules};
