//! WebSocket close codes used by the relay (protocol v1).

use crate::error::ErrorCode;

/// The client closed cleanly; its session ends at once.
pub const NORMAL: u16 = 1000;
/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// The client broke RFC 6455 (an unmasked frame, a control frame over 125
/// bytes, reserved bits or opcodes, bad fragmentation).
pub const PROTOCOL: u16 = 1002;
/// A text frame was not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Repeated abuse (too many bad frames or rate-limit violations).
pub const POLICY: u16 = 1008;
/// A frame was over the transport size limit.
pub const TOO_BIG: u16 = 1009;
/// The server failed.
pub const INTERNAL: u16 = 1011;
/// The server is at a connection or session limit; try again later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// The first frame was not a valid `hello`, or `v` is unsupported.
pub const BAD_HELLO: u16 = 4000;
/// Authentication failed.
pub const AUTH_FAILED: u16 = 4001;
/// No `hello` arrived within the hello timeout.
pub const HELLO_TIMEOUT: u16 = 4002;
/// The token expired and was not refreshed.
pub const TOKEN_EXPIRED: u16 = 4003;
/// Nothing (no frame, no pong) arrived for two heartbeat intervals.
pub const HEARTBEAT_TIMEOUT: u16 = 4004;
/// The host disconnected the session.
pub const KICKED: u16 = 4005;
/// The host revoked the session's or its user's credentials.
pub const REVOKED: u16 = 4006;
/// The connection could not keep up with its deliveries.
pub const SLOW_CONSUMER: u16 = 4008;
/// A newer connection resumed this session.
pub const TAKEN_OVER: u16 = 4009;

/// Whether a client should reconnect (and resume) after this close code.
///
/// Authentication failures, a bad hello, protocol violations and policy
/// closes are not retried: retrying would fail the same way.
pub fn is_retryable(code: u16) -> bool {
    !matches!(
        code,
        NORMAL
            | PROTOCOL
            | INVALID_PAYLOAD
            | POLICY
            | BAD_HELLO
            | AUTH_FAILED
            | TOKEN_EXPIRED
            | KICKED
            | REVOKED
            | TAKEN_OVER
    )
}

/// The protocol error code a close code stands for when it ends a
/// connection the relay refused (`docs/PROTOCOL.md` §3 and §18), for a
/// client that got no `error` frame before it: 4000 `bad_request`, 4001
/// and 4003 `unauthorized`, 1008 `rate_limited`, 1009 `too_large`, 1011
/// `internal`, 1013 `limit_exceeded`. The others (a shutdown, a timeout, a
/// kick, a take-over, ...) are not refusals and have none.
pub fn error_code(code: u16) -> Option<ErrorCode> {
    Some(match code {
        BAD_HELLO => ErrorCode::BadRequest,
        AUTH_FAILED | TOKEN_EXPIRED => ErrorCode::Unauthorized,
        POLICY => ErrorCode::RateLimited,
        TOO_BIG => ErrorCode::TooLarge,
        INTERNAL => ErrorCode::Internal,
        TRY_AGAIN_LATER => ErrorCode::LimitExceeded,
        _ => return None,
    })
}

/// Every close code the relay uses, with its name in `tests/vectors/codes.json`.
pub const ALL: [(u16, &str); 17] = [
    (NORMAL, "normal"),
    (GOING_AWAY, "going_away"),
    (PROTOCOL, "protocol_error"),
    (INVALID_PAYLOAD, "invalid_payload"),
    (POLICY, "policy"),
    (TOO_BIG, "too_big"),
    (INTERNAL, "internal"),
    (TRY_AGAIN_LATER, "try_again_later"),
    (BAD_HELLO, "bad_hello"),
    (AUTH_FAILED, "auth_failed"),
    (HELLO_TIMEOUT, "hello_timeout"),
    (TOKEN_EXPIRED, "token_expired"),
    (HEARTBEAT_TIMEOUT, "heartbeat_timeout"),
    (KICKED, "kicked"),
    (REVOKED, "revoked"),
    (SLOW_CONSUMER, "slow_consumer"),
    (TAKEN_OVER, "taken_over"),
];
