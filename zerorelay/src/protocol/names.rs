//! The grammar of names: groups, users and RPC methods.
//!
//! A name is 1–128 characters from `A–Z a–z 0–9 _ - . : @ /`. The grammar is
//! deliberately narrow so that names are safe in logs, metrics labels and
//! Redis keys.

use crate::error::{ErrorCode, ProtocolError};

/// The longest name, in characters (all allowed characters are one byte).
pub const MAX_NAME_LEN: usize = 128;

/// Whether `c` may appear in a name.
pub fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b'@' | b'/')
}

/// Checks `name` against the grammar; `what` names the field in the error.
pub fn validate(what: &str, name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::BadRequest,
            format!("`{what}` must not be empty"),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ProtocolError::new(
            ErrorCode::BadRequest,
            format!("`{what}` is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(bad) = name.bytes().position(|b| !is_name_byte(b)) {
        return Err(ProtocolError::new(
            ErrorCode::BadRequest,
            format!("`{what}` has a character outside A-Z a-z 0-9 _ - . : @ / at byte {bad}"),
        ));
    }
    Ok(())
}
