package zerorelay

import (
	"context"
	"log/slog"
	"time"
)

// QueuePolicy says what happens to a request made while the offline queue
// is full.
type QueuePolicy string

const (
	// FailFast refuses the new request with ErrQueueFull.
	FailFast QueuePolicy = "fail_fast"
	// DropOldest drops the oldest queued request (it fails with
	// ErrQueueFull) and queues the new one.
	DropOldest QueuePolicy = "drop_oldest"
)

// Option configures Dial.
type Option func(*options)

// TokenProvider returns a fresh token and how long it is valid (0: no
// expiry). It is asked before every connection attempt and before the token
// expires (the client then sends a refresh).
type TokenProvider func(ctx context.Context) (token string, validFor time.Duration, err error)

type options struct {
	native        map[string]any
	tokens        TokenProvider
	logger        *slog.Logger
	messageBuffer int
	connectWait   time.Duration
}

func newOptions(opts []Option) *options {
	o := &options{
		native:        map[string]any{"client_name": "zerorelay-go/" + Version()},
		messageBuffer: 1024,
		connectWait:   10 * time.Second,
	}
	for _, f := range opts {
		f(o)
	}
	return o
}

func (o *options) section(name string) map[string]any {
	s, ok := o.native[name].(map[string]any)
	if !ok {
		s = map[string]any{}
		o.native[name] = s
	}
	return s
}

// WithToken sets the token sent in hello (and on every reconnect).
func WithToken(token string) Option { return func(o *options) { o.native["token"] = token } }

// WithTokenProvider asks p for a token before every connection attempt and
// before the current token expires. It takes precedence over WithToken.
func WithTokenProvider(p TokenProvider) Option { return func(o *options) { o.tokens = p } }

// WithUser names the user; servers honour it in development mode only.
func WithUser(user string) Option { return func(o *options) { o.native["user"] = user } }

// WithHeader adds an HTTP header to the WebSocket upgrade request.
func WithHeader(name, value string) Option {
	return func(o *options) { o.section("headers")[name] = value }
}

// WithReconnect sets the backoff: delays are random in [0, min(max,
// base*2^n)]; maxAttempts 0 means retry forever.
func WithReconnect(base, max time.Duration, maxAttempts int) Option {
	return func(o *options) {
		r := o.section("reconnect")
		r["base_ms"] = base.Milliseconds()
		r["cap_ms"] = max.Milliseconds()
		if maxAttempts > 0 {
			r["max_attempts"] = maxAttempts
		}
	}
}

// WithoutReconnect disables reconnection.
func WithoutReconnect() Option {
	return func(o *options) { o.section("reconnect")["enabled"] = false }
}

// WithQueue bounds the offline queue.
func WithQueue(maxMessages, maxBytes int, policy QueuePolicy) Option {
	return func(o *options) {
		q := o.section("queue")
		q["max_messages"] = maxMessages
		q["max_bytes"] = maxBytes
		q["full"] = string(policy)
	}
}

// WithRequestTimeout bounds how long a sent request waits for its answer.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.native["request_timeout_ms"] = d.Milliseconds() }
}

// WithConnectTimeout bounds each connection attempt and how long Dial waits.
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) {
		o.native["connect_timeout_ms"] = d.Milliseconds()
		o.connectWait = d
	}
}

// WithCAFile trusts the CA certificates in a PEM file for wss://, on top of
// the system's roots.
func WithCAFile(path string) Option { return func(o *options) { o.native["ca_file"] = path } }

// WithPersistPath keeps the offline queue and resume state in a file, so a
// process restarted while offline loses nothing it had accepted.
func WithPersistPath(path string) Option {
	return func(o *options) { o.native["persist_path"] = path }
}

// WithLogger sends the client's lifecycle events and the core library's log
// records to l (by default they are discarded).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMessageBuffer sizes the Messages channel (default 1024). When it is
// full, the client stops pulling messages from the engine until the
// application reads; requests still complete (see Client for what happens
// when the application stops reading for longer).
func WithMessageBuffer(n int) Option { return func(o *options) { o.messageBuffer = n } }

// WithOption sets any engine option by its JSON name (see the Rust
// ClientOptions), for options without a helper.
func WithOption(name string, value any) Option {
	return func(o *options) { o.native[name] = value }
}
