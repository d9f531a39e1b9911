package zerorelay

/*
#include <stdlib.h>
#include "zerorelay.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"time"
)

// An embedded server's handlers: the relay asks them, Go answers. Rust
// never calls into Go: each question is queued by the library as a call,
// one goroutine pulls the calls (zr_server_next_calls), runs each handler
// in a goroutine of its own, and hands the answer back (zr_server_answer).

// ServerOptions configures StartServerWith. Every handler is optional.
type ServerOptions struct {
	// Config is anything that marshals to the configuration's JSON form
	// (the TOML file's sections and keys), or nil for the defaults.
	Config any

	// Authenticate decides who connects, instead of [auth]'s tokens and
	// JWT. It is shown the hello's credentials; return the Identity to let
	// the connection in, or an error to refuse it (the client gets
	// unauthorized, close code 4001). An *Error is a plain refusal; any
	// other error, or a panic, is logged as the handler failing. A call
	// that takes longer than AuthTimeout refuses the connection.
	Authenticate Authenticator

	// Authorize is asked about every join, publish, send, broadcast, rpc
	// and presence request that the roles allow. Return nil to allow it, or
	// an error to refuse it: the client gets forbidden with the error's
	// message. A panic fails the request with internal (and is logged); so
	// does a call slower than limits.authorize_timeout_ms (1 s by default).
	Authorize Authorizer

	// RPC maps method names to their handlers. An *Error with a protocol
	// code (ErrForbidden's "forbidden", "not_found", …) reaches the client
	// as that code and message; any other error, a panic, or a result that
	// is not JSON becomes internal and is logged. A call slower than
	// limits.rpc_timeout_ms (30 s by default) fails with internal.
	RPC map[string]RPCHandler

	// Validate maps group patterns ("chat-*") to validators, run on every
	// client publish to a matching group (after [[validate]]'s schemas),
	// in the patterns' lexical order. A call slower than
	// limits.validate_timeout_ms (1 s by default) fails that publish with
	// internal.
	Validate map[string]Validator

	// AuthTimeout bounds Authenticate (default 10 s).
	AuthTimeout time.Duration
	// CallQueue bounds how many calls may wait for the pulling goroutine
	// (default 1,024); past it a call fails at once, as a failed handler.
	CallQueue int

	// Logger receives handler failures and the core library's log records
	// (default: slog.Default() for handler failures, core records dropped).
	Logger *slog.Logger
}

// AuthRequest is what Authenticate is shown of a hello (or a refresh).
type AuthRequest struct {
	Token  string // hello.token / refresh.token
	User   string // hello.user: a claim, not a proof
	Remote string // the peer's address, ip:port
	Client string // hello.client, the client library's name
}

// Identity is who a connection is, as Authenticate decides.
type Identity struct {
	// User is the user the connection acts as; empty for anonymous.
	User string
	// Roles name [auth.roles] entries; nil gives auth.default_roles.
	Roles []string
	// Groups, when not nil, narrows what the roles allow for join, publish
	// and presence to these group patterns (as a JWT's groups claim does).
	Groups []string
	// Claims are shown to Authorize and the validators (as a JWT's
	// payload is); nil for none.
	Claims map[string]any
	// ExpiresIn is how long the credentials stay valid (0: no expiry).
	// The connection is closed with 4003 then, unless the client
	// refreshes (a client with a token provider does so by itself).
	ExpiresIn time.Duration
}

// Authenticator decides who a connection is (see ServerOptions).
type Authenticator func(ctx context.Context, req AuthRequest) (Identity, error)

// AuthorizeRequest is a request Authorize is asked about.
type AuthorizeRequest struct {
	// Action is "join", "publish", "send", "broadcast", "rpc" or "presence".
	Action string
	// Resource is the group, the recipient ("user:<name>" or
	// "session:<id>") or the method; empty for broadcast.
	Resource string
	// User is the connection's user (empty when anonymous).
	User string
	// Roles are the roles its credentials named.
	Roles []string
	// Claims are its credentials' claims (JSON null when none).
	Claims json.RawMessage
}

// Authorizer allows (nil) or refuses (an error) a request.
type Authorizer func(ctx context.Context, req AuthorizeRequest) error

// RPCCall is one call of an RPC method.
type RPCCall struct {
	Method  string
	Data    json.RawMessage // the argument (JSON null when none)
	Session string          // the calling session
	User    string          // the calling user; empty when anonymous
}

// RPCHandler answers an RPC method (see ServerOptions). Its context is
// cancelled when the relay stops waiting (limits.rpc_timeout_ms, or the
// server closing).
type RPCHandler func(ctx context.Context, call RPCCall) (json.RawMessage, error)

// ValidateRequest is a payload a Validator is shown, and who sent it.
type ValidateRequest struct {
	Group   string          // the group it is published to
	Data    json.RawMessage // the payload
	User    string          // the sender's user; empty when anonymous
	Session string          // the sender's session
	Claims  json.RawMessage // the sender's credentials' claims (JSON null when none)
}

// Verdict is what a Validator decides. The zero Verdict accepts.
type Verdict struct {
	reject  *Error
	rewrite bool
	data    any
}

// Accept routes the payload as it is.
func Accept() Verdict { return Verdict{} }

// Reject refuses the payload: the publisher gets this code ("" or an
// unknown code: bad_request) and message.
func Reject(code, message string) Verdict {
	if code == "" {
		code = "bad_request"
	}
	return Verdict{reject: &Error{Code: code, Message: message}}
}

// Rewrite routes data (anything JSON-serializable; nil is JSON null)
// instead of the payload.
func Rewrite(data any) Verdict { return Verdict{rewrite: true, data: data} }

// Validator decides about a published payload. Returning an *Error rejects
// the payload with that error's code and message, as Reject does; any
// other error, or a panic, fails the publish with internal and is logged.
type Validator func(ctx context.Context, req ValidateRequest) (Verdict, error)

// handlerSpec is the handlers' description for zr_server_start_with_handlers.
func (o *ServerOptions) handlerSpec() (string, bool) {
	spec := map[string]any{}
	if o.Authenticate != nil {
		spec["auth"] = true
	}
	if o.Authorize != nil {
		spec["authorize"] = true
	}
	if len(o.RPC) > 0 {
		spec["rpc"] = sortedKeys(o.RPC)
	}
	if len(o.Validate) > 0 {
		spec["validate"] = sortedKeys(o.Validate)
	}
	if len(spec) == 0 {
		return "", false
	}
	if o.AuthTimeout > 0 {
		spec["auth_timeout_ms"] = atLeastOneMs(o.AuthTimeout)
	}
	if o.CallQueue > 0 {
		spec["queue"] = o.CallQueue
	}
	b, _ := json.Marshal(spec)
	return string(b), true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func atLeastOneMs(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// wireCall is one record of zr_server_next_calls.
type wireCall struct {
	ID      uint64          `json:"id"`
	Kind    string          `json:"kind"`
	Pattern string          `json:"pattern"`
	Call    json.RawMessage `json:"call"`
}

// pullCalls runs the handlers' calls until the server stops.
func (s *Server) pullCalls() {
	defer close(s.callsDone)
	for {
		batch, ok := s.fetchCalls()
		if !ok {
			return
		}
		for _, c := range batch {
			if c.Kind == "cancelled" {
				s.endCall(c.ID)
				continue
			}
			ctx, cancel := context.WithCancel(s.callsCtx)
			s.callsMu.Lock()
			s.inflight[c.ID] = cancel
			s.callsMu.Unlock()
			go s.handle(ctx, c)
		}
	}
}

// fetchCalls waits up to a second for calls; ok is false once the server
// is stopping.
func (s *Server) fetchCalls() (batch []wireCall, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return nil, false
	}
	var out *C.char
	err := call(func() C.zr_status { return C.zr_status(C.zr_server_next_calls(s.h, 1000, 64, &out)) })
	if err != nil {
		return nil, false
	}
	text, got := takeString(out)
	if !got {
		return nil, true
	}
	if err := json.Unmarshal([]byte(text), &batch); err != nil {
		s.logger.Error("zerorelay: undecodable handler calls", "error", err)
		return nil, true
	}
	return batch, true
}

// endCall cancels a call's context and forgets it.
func (s *Server) endCall(id uint64) {
	s.callsMu.Lock()
	cancel, ok := s.inflight[id]
	delete(s.inflight, id)
	s.callsMu.Unlock()
	if ok {
		cancel()
	}
}

// handle runs one call's handler and answers it.
func (s *Server) handle(ctx context.Context, c wireCall) {
	defer s.endCall(c.ID)
	answer := s.run(ctx, c)
	text := cstr(string(answer))
	defer free(text)
	err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_answer(h, C.uint64_t(c.ID), text)) })
	var ze *Error
	switch {
	case err == nil:
	case errors.As(err, &ze) && (ze.Code == "unknown_call" || ze.Code == "closed"):
		// The relay stopped waiting (a timeout, the connection went away,
		// the server is closing): a late answer changes nothing.
		s.logger.Debug("zerorelay: a handler answered after the relay stopped waiting", "kind", c.Kind, "call", c.ID)
	default:
		s.logger.Error("zerorelay: a handler's answer was refused", "kind", c.Kind, "error", err)
	}
}

// failure logs a handler's failure: an error, unless the relay had stopped
// waiting already (the handler most likely returned its context's error).
func (s *Server) failure(ctx context.Context, msg string, args ...any) {
	if ctx.Err() != nil {
		s.logger.Debug(msg, args...)
		return
	}
	s.logger.Error(msg, args...)
}

// failed is the answer of a handler that failed.
func failed(why string) []byte {
	b, _ := json.Marshal(map[string]string{"failed": why})
	return b
}

// run calls the handler for c and returns its answer's JSON; a panic is
// the handler failing.
func (s *Server) run(ctx context.Context, c wireCall) (answer []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("zerorelay: a handler panicked", "kind", c.Kind, "panic", r, "stack", string(debug.Stack()))
			answer = failed(fmt.Sprintf("the %s handler panicked: %v", c.Kind, r))
		}
	}()
	switch c.Kind {
	case "auth":
		return s.runAuth(ctx, c.Call)
	case "authorize":
		return s.runAuthorize(ctx, c.Call)
	case "rpc":
		return s.runRPC(ctx, c.Call)
	case "validate":
		return s.runValidate(ctx, c.Pattern, c.Call)
	}
	return failed("this SDK does not know calls of kind " + c.Kind)
}

func (s *Server) runAuth(ctx context.Context, raw json.RawMessage) []byte {
	var w struct {
		Token, User, Remote, Client *string
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return failed("undecodable auth call: " + err.Error())
	}
	id, err := s.opts.Authenticate(ctx, AuthRequest{Token: deref(w.Token), User: deref(w.User), Remote: deref(w.Remote), Client: deref(w.Client)})
	if err != nil {
		var ze *Error
		if errors.As(err, &ze) {
			return []byte(`{"allow":null}`)
		}
		s.failure(ctx, "zerorelay: the Authenticate handler failed; the connection is refused", "error", err)
		return failed(err.Error())
	}
	allow := map[string]any{}
	if id.User != "" {
		allow["user"] = id.User
	}
	if id.Roles != nil {
		allow["roles"] = id.Roles
	}
	if id.Groups != nil {
		allow["groups"] = id.Groups
	}
	if id.Claims != nil {
		allow["claims"] = id.Claims
	}
	if id.ExpiresIn > 0 {
		allow["expires_in_ms"] = atLeastOneMs(id.ExpiresIn)
	}
	b, err := json.Marshal(map[string]any{"allow": allow})
	if err != nil {
		s.logger.Warn("zerorelay: the Authenticate handler's identity is not JSON-serializable; the connection is refused", "error", err)
		return failed(err.Error())
	}
	return b
}

func (s *Server) runAuthorize(ctx context.Context, raw json.RawMessage) []byte {
	var w struct {
		Action   string
		Resource *string
		User     *string
		Roles    []string
		Claims   json.RawMessage
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return failed("undecodable authorize call: " + err.Error())
	}
	err := s.opts.Authorize(ctx, AuthorizeRequest{Action: w.Action, Resource: deref(w.Resource), User: deref(w.User), Roles: w.Roles, Claims: w.Claims})
	if err == nil {
		return []byte(`{"allow":true}`)
	}
	message := err.Error()
	var ze *Error
	if errors.As(err, &ze) && ze.Message != "" {
		message = ze.Message
	}
	b, _ := json.Marshal(map[string]any{"allow": false, "message": message})
	return b
}

// protocolCodes are the codes a handler's *Error may pass to a client.
var protocolCodes = map[string]bool{}

func init() {
	for _, e := range []*Error{ErrBadFrame, ErrBadRequest, ErrUnsupported, ErrUnauthorized, ErrForbidden,
		ErrNotFound, ErrTooLarge, ErrRateLimited, ErrLimitExceeded, ErrInternal} {
		protocolCodes[e.Code] = true
	}
}

func (s *Server) runRPC(ctx context.Context, raw json.RawMessage) []byte {
	var w struct {
		Method  string
		Session string
		User    *string
		Data    json.RawMessage
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return failed("undecodable rpc call: " + err.Error())
	}
	internal := func(why string) []byte {
		s.failure(ctx, "zerorelay: an RPC handler failed; the call fails with internal", "method", w.Method, "error", why)
		return []byte(`{"error":{"code":"internal","message":"the rpc handler failed"}}`)
	}
	h := s.opts.RPC[w.Method]
	if h == nil {
		return internal("no handler for this method")
	}
	result, err := h(ctx, RPCCall{Method: w.Method, Data: w.Data, Session: w.Session, User: deref(w.User)})
	if err != nil {
		var ze *Error
		if errors.As(err, &ze) && protocolCodes[ze.Code] {
			b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": ze.Code, "message": ze.Message}})
			return b
		}
		return internal(err.Error())
	}
	if result == nil {
		result = json.RawMessage("null")
	}
	if !json.Valid(result) {
		return internal("the result is not JSON")
	}
	return append(append([]byte(`{"ok":`), result...), '}')
}

func (s *Server) runValidate(ctx context.Context, pattern string, raw json.RawMessage) []byte {
	var w struct {
		Group   string
		Data    json.RawMessage
		User    *string
		Session string
		Claims  json.RawMessage
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return failed("undecodable validate call: " + err.Error())
	}
	v := s.opts.Validate[pattern]
	if v == nil {
		return failed("no validator for pattern " + pattern)
	}
	verdict, err := v(ctx, ValidateRequest{Group: w.Group, Data: w.Data, User: deref(w.User), Session: w.Session, Claims: w.Claims})
	if err != nil {
		var ze *Error
		if !errors.As(err, &ze) {
			s.failure(ctx, "zerorelay: a validator failed; the publish fails with internal", "pattern", pattern, "error", err)
			return failed(err.Error())
		}
		verdict = Reject(ze.Code, ze.Message)
	}
	switch {
	case verdict.reject != nil:
		b, _ := json.Marshal(map[string]any{"reject": map[string]string{"code": verdict.reject.Code, "message": verdict.reject.Message}})
		return b
	case verdict.rewrite:
		data, err := json.Marshal(verdict.data)
		if err != nil {
			s.logger.Error("zerorelay: a validator's rewrite is not JSON-serializable; the publish fails with internal", "pattern", pattern, "error", err)
			return failed(err.Error())
		}
		return append(append([]byte(`{"rewrite":`), data...), '}')
	}
	return []byte(`{"accept":true}`)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// pendingCalls reports the calls the library still waits on (queued or
// pulled) and the handler goroutines still running.
func (s *Server) pendingCalls() (native uint64, running int, err error) {
	var n C.uint64_t
	err = s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_pending_calls(h, &n)) })
	s.callsMu.Lock()
	running = len(s.inflight)
	s.callsMu.Unlock()
	return uint64(n), running, err
}
