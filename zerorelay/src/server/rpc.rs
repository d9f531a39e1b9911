//! Host-defined RPC methods that clients call with `{"type":"rpc",…}`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::auth::BoxFuture;
use crate::error::{ErrorCode, ProtocolError};

/// Who is calling an RPC method.
#[derive(Debug, Clone)]
pub struct RpcContext {
    /// The calling session.
    pub session: String,
    /// The calling user, if any.
    pub user: Option<String>,
}

/// What a handler returns: a JSON result, or a protocol error for the client.
pub type RpcResult = Result<Value, ProtocolError>;

type Handler = Arc<dyn Fn(RpcContext, Value) -> BoxFuture<'static, RpcResult> + Send + Sync>;

/// The registered methods.
#[derive(Clone, Default)]
pub struct RpcRegistry {
    methods: HashMap<String, Handler>,
}

impl RpcRegistry {
    /// Registers `method`; a later registration of the same name replaces it.
    pub fn register<F, Fut>(&mut self, method: impl Into<String>, f: F)
    where
        F: Fn(RpcContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RpcResult> + Send + 'static,
    {
        self.methods
            .insert(method.into(), Arc::new(move |ctx, v| Box::pin(f(ctx, v))));
    }

    /// Starts a call, or `None` when the method is unknown.
    /// Whether `method` is registered.
    pub fn contains(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }

    /// Starts `method`'s handler.
    pub fn call(
        &self,
        method: &str,
        ctx: RpcContext,
        arg: Value,
    ) -> Option<BoxFuture<'static, RpcResult>> {
        self.methods.get(method).map(|h| h(ctx, arg))
    }

    /// Registered method names.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }
}

/// Runs a handler's call for at most `limit` (`limits.rpc_timeout_ms`):
/// a handler that has not answered by then is dropped and the call fails
/// with `internal`, as the authorizer and validation hooks do when they
/// take too long.
pub(crate) async fn within(
    limit: Duration,
    method: String,
    call: BoxFuture<'static, RpcResult>,
) -> RpcResult {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(method, timeout_ms = limit.as_millis() as u64, "An rpc handler did not answer within limits.rpc_timeout_ms; the call failed with internal.");
            Err(ProtocolError::new(
                ErrorCode::Internal,
                "the rpc handler did not answer in time (limits.rpc_timeout_ms)",
            ))
        }
    }
}
