//! `ShortCode`: the 7-character base62 name of a link, generated from the OS CSPRNG.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;

/// Every code has exactly this many characters: 62^7 ≈ 3.5e12 codes, so random
/// collisions stay rare long after the table is large, and a mistyped length is
/// rejected without a database round trip.
pub const CODE_LENGTH: usize = 7;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Static routes of the app that are also 7 base62 characters. Rocket ranks static
/// paths above `/<code>`, so a link with one of these codes could never be followed.
const RESERVED: &[&str] = &["healthz", "metrics", "shorten"];

/// Why a path segment is not a short code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShortCodeError {
    #[error("a short code has {CODE_LENGTH} characters, got {0}")]
    Length(usize),
    #[error("a short code uses only the characters 0-9, A-Z and a-z")]
    Charset,
}

/// A syntactically valid short code (not necessarily one that exists).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShortCode(String);

impl ShortCode {
    /// Accepts exactly [`CODE_LENGTH`] ASCII alphanumerics.
    pub fn parse(raw: &str) -> Result<Self, ShortCodeError> {
        // Count chars, not bytes, so the error reports what a person typed.
        let len = raw.chars().count();
        if len != CODE_LENGTH {
            return Err(ShortCodeError::Length(len));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ShortCodeError::Charset);
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh code from the operating system's CSPRNG, so codes cannot be predicted
    /// (and links enumerated) from codes seen before.
    pub fn generate() -> Self {
        loop {
            let code: String = (0..CODE_LENGTH)
                .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
                .collect();
            if !RESERVED.contains(&code.as_str()) {
                return Self(code);
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parses_seven_base62_characters() {
        assert_eq!(ShortCode::parse("Ab3xY9z").unwrap().as_str(), "Ab3xY9z");
        assert_eq!(ShortCode::parse("0000000").unwrap().as_str(), "0000000");
    }

    #[test]
    fn rejects_wrong_lengths() {
        assert_eq!(ShortCode::parse(""), Err(ShortCodeError::Length(0)));
        assert_eq!(ShortCode::parse("abc123"), Err(ShortCodeError::Length(6)));
        assert_eq!(ShortCode::parse("abc12345"), Err(ShortCodeError::Length(8)));
    }

    #[test]
    fn rejects_characters_outside_base62() {
        for raw in [
            "abc-123", "abc_123", "abc 123", "abc.123", "abc%123", "äbc1234",
        ] {
            assert_eq!(ShortCode::parse(raw), Err(ShortCodeError::Charset), "{raw}");
        }
    }

    #[test]
    fn generated_codes_parse_and_differ() {
        let codes: HashSet<String> = (0..1000)
            .map(|_| {
                let code = ShortCode::generate();
                assert_eq!(ShortCode::parse(code.as_str()).as_ref(), Ok(&code));
                code.0
            })
            .collect();
        assert_eq!(codes.len(), 1000);
    }

    #[test]
    fn generated_codes_use_the_whole_alphabet() {
        let seen: HashSet<u8> = (0..2000)
            .flat_map(|_| ShortCode::generate().0.into_bytes())
            .collect();
        assert_eq!(seen.len(), ALPHABET.len());
    }
}
