//! The resume key: the secret that proves a client owns the session it asks
//! to resume (protocol 1.1, §9).
//!
//! The session id is a public name: every delivery carries its sender's in
//! `from_session`. The key is sent only in the `welcome` of the connection
//! that owns the session, and presented in `hello.resume.key`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bytes of entropy in a key the server makes (128 bits).
pub const RESUME_KEY_BYTES: usize = 16;

/// A resume key. Its `Debug` never shows the secret, so that a frame or a
/// session can be logged; it is compared in constant time.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResumeKey(String);

impl ResumeKey {
    /// Wraps a key received on the wire or restored from a snapshot.
    pub fn new(key: impl Into<String>) -> Self {
        ResumeKey(key.into())
    }

    /// A fresh key: 32 hex digits from the operating system's cryptographic
    /// random source.
    pub fn generate() -> Self {
        let mut b = [0u8; RESUME_KEY_BYTES];
        getrandom::fill(&mut b).expect("the operating system's random source is available");
        let mut s = String::with_capacity(2 * RESUME_KEY_BYTES);
        for x in b {
            s.push(char::from_digit(u32::from(x >> 4), 16).expect("a nibble is a hex digit"));
            s.push(char::from_digit(u32::from(x & 15), 16).expect("a nibble is a hex digit"));
        }
        ResumeKey(s)
    }

    /// The key's text, for the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this key. The time taken depends only on the
    /// lengths, never on where the first difference is.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeKey(<redacted>)")
    }
}

/// Compares two byte strings without an early exit on the first difference
/// (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    // Keep the optimizer from turning the fold back into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_128_bit_hex_distinct_and_never_shown_by_debug() {
        let a = ResumeKey::generate();
        let b = ResumeKey::generate();
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert!(!a.matches(&a.expose()[..31]));
        assert!(!a.matches(""));
        let shown = format!("{a:?}");
        assert!(!shown.contains(a.expose()), "{shown}");
    }
}
