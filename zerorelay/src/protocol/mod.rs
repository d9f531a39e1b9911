//! Wire protocol v1: the frames, their parsing and their encoding.
//!
//! `docs/PROTOCOL.md` is the normative text; this module is its only
//! implementation. The server uses it, and so does every client built on this
//! crate: no frame is defined anywhere else.
//!
//! - [`client`]: frames a client sends, parsed from text with precise errors.
//! - [`server`]: frames the server sends, encoded once and shared.
//! - [`names`]: the grammar of group and user names.
//! - [`close`]: WebSocket close codes and when each is used.
//! - [`resume_key`]: the secret that proves ownership of a session.

pub mod client;
pub mod close;
pub mod names;
pub mod resume_key;
pub mod server;

pub use client::{ClientFrame, Hello, ParseError, RequestId, Resume, Target};
pub use resume_key::ResumeKey;
pub use server::{Delivery, DeliveryKind, ServerFrame, Welcome};

/// The protocol version this crate speaks.
pub const VERSION: u64 = 1;

/// The WebSocket path the relay answers on.
pub const WS_PATH: &str = "/ws";
