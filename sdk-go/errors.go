package zerorelay

import "fmt"

// Error is a failure with a stable code: a protocol code from the server
// (not_found, forbidden, …) or a client-side one (timeout, closed, …).
// Compare with errors.Is against the sentinels below.
type Error struct {
	Code    string
	Message string
	// Seq is the seq of the one message the error is about (code
	// undecodable), else 0.
	Seq   uint64
	cause error
}

// Unwrap returns the decoder's error behind an undecodable message.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	if e.Message == "" {
		return "zerorelay: " + e.Code
	}
	return fmt.Sprintf("zerorelay: %s: %s", e.Code, e.Message)
}

// Is matches any *Error with the same code, so errors.Is(err, ErrNotFound)
// works for every not_found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Protocol error codes (docs/PROTOCOL.md §17).
var (
	ErrBadFrame      = &Error{Code: "bad_frame"}
	ErrBadRequest    = &Error{Code: "bad_request"}
	ErrUnsupported   = &Error{Code: "unsupported"}
	ErrUnauthorized  = &Error{Code: "unauthorized"}
	ErrForbidden     = &Error{Code: "forbidden"}
	ErrNotFound      = &Error{Code: "not_found"}
	ErrTooLarge      = &Error{Code: "too_large"}
	ErrRateLimited   = &Error{Code: "rate_limited"}
	ErrLimitExceeded = &Error{Code: "limit_exceeded"}
	ErrInternal      = &Error{Code: "internal"}
)

// Client-side error codes.
var (
	ErrTimeout         = &Error{Code: "timeout"}
	ErrClosed          = &Error{Code: "closed"}
	ErrQueueFull       = &Error{Code: "queue_full"}
	ErrCancelled       = &Error{Code: "cancelled"}
	ErrInvalidArgument = &Error{Code: "invalid_argument"}
	ErrConnection      = &Error{Code: "connection"}
	ErrIO              = &Error{Code: "io"}
	ErrPanic           = &Error{Code: "panic"}
	// ErrUndecodable: a delivered message's payload could not be decoded
	// (by Message.Decode, or by the engine); Error.Seq names the message.
	ErrUndecodable = &Error{Code: "undecodable"}
	// ErrUnknownOutcome: the session was lost while a request that may
	// already have been routed waited for its answer; it was not re-sent
	// (it could have been routed twice), so whether it took effect is
	// unknown.
	ErrUnknownOutcome = &Error{Code: "unknown_outcome"}
)

// sentinels maps every code the library can report to its sentinel; a
// test checks it against tests/vectors/codes.json.
var sentinels = map[string]*Error{}

func init() {
	for _, e := range []*Error{
		ErrBadFrame, ErrBadRequest, ErrUnsupported, ErrUnauthorized, ErrForbidden,
		ErrNotFound, ErrTooLarge, ErrRateLimited, ErrLimitExceeded, ErrInternal,
		ErrTimeout, ErrClosed, ErrQueueFull, ErrCancelled, ErrInvalidArgument,
		ErrConnection, ErrIO, ErrPanic, ErrUndecodable, ErrUnknownOutcome,
	} {
		sentinels[e.Code] = e
	}
}

func errorFromCode(code, message string) error {
	if code == "" {
		code = "internal"
	}
	return &Error{Code: code, Message: message}
}

// Sentinels lists every sentinel error.
func Sentinels() []*Error {
	out := make([]*Error, 0, len(sentinels))
	for _, e := range sentinels {
		out = append(out, e)
	}
	return out
}
