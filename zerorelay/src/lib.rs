//! Zerorelay: an embeddable WebSocket relay.
//!
//! Clients connect over WebSocket on `/ws`, say `hello`, and exchange JSON
//! messages directly (to a user or a session), through groups, or by
//! broadcast. Every delivery carries a per-session `seq`; the server keeps it
//! until the client acknowledges it and re-delivers it after a dropped
//! connection is resumed, and re-sent requests are answered without routing
//! twice: nothing is lost or duplicated across reconnects. `docs/PROTOCOL.md`
//! is the normative protocol.
//!
//! # Map of the crate
//! - [`protocol`]: wire protocol v1: frames, parsing, encoding, close codes.
//! - [`server`]: the [`Relay`] handle, listener, per-connection task.
//! - [`session`]: sessions, their outbox of unacknowledged deliveries, the
//!   store trait and its in-memory implementation.
//! - [`router`]: direct, group and broadcast routing over the store.
//! - [`auth`]: identity (static tokens, JWT/JWKS, an HTTP callback, host
//!   authenticators) and permissions (roles compiled once, a host hook).
//! - [`validate`]: payload checks before routing (JSON Schema per group
//!   pattern, host hooks that accept, reject or rewrite).
//! - [`config`]: every setting, its default and validation (and, with the
//!   `cli` feature, loading from TOML, environment and flags).
//! - [`error`]: the error codes.
//! - [`http`]: the HTTP surface beside `/ws`: health, `/metrics`, the
//!   server API.
//! - [`metrics`]: the counters behind `/metrics`.
//! - `alerts`: the `[alerts]` webhook, fed by the same counters.
//! - `client` (feature `client`): the client engine, sans-IO, and its tokio
//!   driver, shared by every SDK.
//! - `log_forward` (feature `log-forward`): the core's log events as JSON
//!   records for a foreign logger (the bindings).
//!
//! # Embedding
//! ```no_run
//! use zerorelay::{Config, Relay};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let relay = Relay::builder(Config::default()).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("relay on ws://{}/ws", listener.local_addr()?);
//! tokio::spawn(relay.clone().serve(listener));
//! relay.publish("news", &serde_json::json!({"headline": "hello"}))?;
//! relay.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod alerts;
pub mod auth;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod error;
pub mod http;
#[cfg(feature = "log-forward")]
pub mod log_forward;
pub mod metrics;
pub mod protocol;
pub mod router;
pub mod server;
pub mod session;
pub mod validate;

pub use auth::{AllowAll, Authenticator, Authorizer, Identity, StaticTokens};
pub use config::Config;
pub use error::{Error, ErrorCode, ProtocolError, Result};
pub use server::{GroupInfo, Relay, RelayBuilder, RpcContext, SessionInfo, Stats};
