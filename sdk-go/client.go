package zerorelay

/*
#include <stdlib.h>
#include "zerorelay.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unsafe"
)

// Message is a delivered message. Each arrives exactly once, in order.
type Message struct {
	Seq         uint64          `json:"seq"`
	Kind        string          `json:"kind"` // "direct", "group" or "broadcast"
	From        string          `json:"from"` // empty for anonymous senders and the host
	FromSession string          `json:"from_session"`
	Group       string          `json:"group"`
	Data        json.RawMessage `json:"data"`
	TS          int64           `json:"ts"` // server time, Unix milliseconds
}

// Decode unmarshals the payload into v. A payload v cannot take (nested
// deeper than encoding/json's limit of 10,000, a number out of range, the
// wrong shape) is an *Error with code undecodable (errors.Is(err,
// ErrUndecodable)) and Seq set to this message's seq; it unwraps to the
// decoder's error. Only this message is affected: the payload stays in Data,
// and the messages after it arrive as usual.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Data, v); err != nil {
		return &Error{Code: "undecodable", Message: fmt.Sprintf("message %d could not be decoded: %v", m.Seq, err), Seq: m.Seq, cause: err}
	}
	return nil
}

// Time is when the server routed the message.
func (m Message) Time() time.Time { return time.UnixMilli(m.TS) }

// Event is a lifecycle event: connected, disconnected, reconnecting, loss,
// error, rejoined or closed.
type Event struct {
	Type        string        // the event type
	Session     string        // connected
	User        string        // connected
	Resumed     bool          // connected
	LostSession string        // connected, when the server could not resume
	CloseCode   int           // disconnected (0 when none)
	Reason      string        // disconnected, closed
	WillRetry   bool          // disconnected
	Attempt     int           // reconnecting
	Delay       time.Duration // reconnecting
	FromSeq     uint64        // loss
	ToSeq       uint64        // loss
	ErrorCode   string        // error; closed, when the relay refused the connection
	Message     string        // error
	Seq         uint64        // error about one message (code undecodable), else 0
	Groups      []string      // rejoined
	Group       string        // presence_change, presence_summary
	Change      string        // presence_change: "join" or "leave"
	Joined      uint64        // presence_summary: users who joined since the last
	Left        uint64        // presence_summary: users who left since the last
	Present     uint64        // presence_summary: users present now
}

type wireEvent struct {
	Type        string          `json:"type"`
	Session     string          `json:"session"`
	User        *string         `json:"user"`
	Resumed     bool            `json:"resumed"`
	LostSession *string         `json:"lost_session"`
	Code        json.RawMessage `json:"code"`
	Reason      string          `json:"reason"`
	WillRetry   bool            `json:"will_retry"`
	Attempt     int             `json:"attempt"`
	DelayMS     int64           `json:"delay_ms"`
	FromSeq     uint64          `json:"from_seq"`
	ToSeq       uint64          `json:"to_seq"`
	Message     string          `json:"message"`
	Seq         uint64          `json:"seq"`
	Groups      []string        `json:"groups"`
	Group       string          `json:"group"`
	Change      string          `json:"change"`
	Joined      uint64          `json:"joined"`
	Left        uint64          `json:"left"`
	Present     uint64          `json:"present"`
	// reply
	Request uint64          `json:"request"`
	OK      bool            `json:"ok"`
	Data    json.RawMessage `json:"data"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type result struct {
	data json.RawMessage
	err  error
}

// Client is a connection to a relay that reconnects, resumes and queues by
// itself. Its methods are safe for concurrent use.
//
// Two goroutines pull from the engine: one takes messages and lifecycle
// events, the other replies to requests. So a request's answer never waits
// behind messages the application has not read yet: when the application
// stops reading Messages(), the channel's buffer (WithMessageBuffer) fills,
// the event goroutine stops pulling, and then the engine's own bounded
// buffer (4,096 events) fills; only then does the engine stop reading the
// socket, so that TCP pushes back on the relay, whose outbox bounds apply
// (messages past them are announced as a loss, or a consumer too slow for
// too long is disconnected; see the relay's [session] settings). Until the
// engine's buffer is full, requests complete as usual; past it, a reply
// waits behind the messages the relay sent before it.
type Client struct {
	hmu      sync.RWMutex // held (read) by every call that uses h; Close frees under the write lock
	freed    bool
	h        *C.zr_client
	messages chan Message
	events   chan Event
	logger   *slog.Logger

	mu      sync.Mutex
	pending map[uint64]chan result
	// Each request gets exactly one reply from the library. early holds a
	// reply that beat its request's registration (until do takes it);
	// abandoned holds the requests whose caller stopped waiting (until
	// their reply comes and both are dropped).
	early     map[uint64]result
	abandoned map[uint64]struct{}

	connected   chan struct{}
	connectOnce sync.Once
	closing     chan struct{} // closed when Close starts: undelivered messages are dropped
	eventsDone  chan struct{} // closed when the event pump has stopped
	done        chan struct{} // closed when both pumps have stopped
	closeOnce   sync.Once
	closeErr    error
	lastErr     *Error // the relay's refusal (the engine's code on the closed event), for Dial's failure
	reason      string
	tokens      TokenProvider
}

// Dial connects to a relay (ws:// or wss://) and waits until the server
// welcomes the client, the connect timeout passes, or ctx ends.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	native, err := json.Marshal(o.native)
	if err != nil {
		return nil, &Error{Code: "invalid_argument", Message: err.Error()}
	}
	curl, cnative := cstr(url), cstr(string(native))
	defer free(curl)
	defer free(cnative)
	var h *C.zr_client
	start := func() C.zr_status { return C.zr_status(C.zr_client_start(curl, cnative, &h)) }
	if o.tokens != nil {
		start = func() C.zr_status {
			return C.zr_status(C.zr_client_start_with_token_provider(curl, cnative, &h))
		}
	}
	if err := call(start); err != nil {
		return nil, err
	}
	// Replies are pulled on their own (pumpReplies), never behind messages.
	if err := call(func() C.zr_status { return C.zr_status(C.zr_client_split_replies(h)) }); err != nil {
		C.zr_client_free(h)
		return nil, err
	}
	c := &Client{
		h:          h,
		messages:   make(chan Message, o.messageBuffer),
		events:     make(chan Event, 256),
		logger:     o.logger,
		pending:    map[uint64]chan result{},
		early:      map[uint64]result{},
		abandoned:  map[uint64]struct{}{},
		connected:  make(chan struct{}),
		closing:    make(chan struct{}),
		eventsDone: make(chan struct{}),
		done:       make(chan struct{}),
		tokens:     o.tokens,
	}
	if c.logger == nil {
		c.logger = slog.New(discard{})
	} else {
		forwardCoreLogs(c.logger)
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); c.pump(); close(c.eventsDone) }()
	go func() { defer pumps.Done(); c.pumpReplies() }()
	go func() { pumps.Wait(); c.failPending(ErrClosed); close(c.done) }()
	timer := time.NewTimer(o.connectWait)
	defer timer.Stop()
	select {
	case <-c.connected:
		return c, nil
	case <-c.done:
		c.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.lastErr != nil {
			return nil, c.lastErr
		}
		return nil, &Error{Code: "connection", Message: c.reason}
	case <-timer.C:
		c.Close()
		return nil, &Error{Code: "connection", Message: fmt.Sprintf("not connected within %s", o.connectWait)}
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// Messages delivers each message once, in order. It is closed after Close
// (messages not yet delivered then are dropped: the session has ended).
//
// Its buffer is WithMessageBuffer (1,024 by default). While it is full,
// the client stops pulling messages and lifecycle events from the engine,
// but requests still complete: see Client for what happens when the
// application stops reading for longer.
func (c *Client) Messages() <-chan Message { return c.messages }

// Events delivers lifecycle events. It is a best-effort feed: when its
// buffer is full, events are dropped (they are always logged).
func (c *Client) Events() <-chan Event { return c.events }

// pump pulls message and event batches through the C ABI and dispatches
// them; pumpReplies pulls the replies. They are the only goroutines reading
// the library's events; no callback ever enters Go.
func (c *Client) pump() {
	defer close(c.messages)
	defer close(c.events)
	for {
		var out *C.uint8_t
		var n C.size_t
		st := C.zr_client_next_batch(c.h, 250, 512, &out, &n)
		if st == C.ZR_ERR_CLOSED {
			return
		}
		if st != C.ZR_OK {
			c.logger.Error("zerorelay: pulling events failed", "status", int(st))
			return
		}
		if out == nil {
			continue
		}
		batch := C.GoBytes(unsafe.Pointer(out), C.int(n))
		C.zr_bytes_free(out, n)
		c.dispatchBatch(batch)
	}
}

// pumpReplies pulls replies (and token requests) on their own, so that they
// never wait behind undelivered messages. It stops once the event pump has
// read the end of the events and every reply was read.
func (c *Client) pumpReplies() {
	for {
		var out *C.char
		st := C.zr_client_next_replies(c.h, 1000, 256, &out)
		if st == C.ZR_ERR_CLOSED {
			return
		}
		if st != C.ZR_OK {
			c.logger.Error("zerorelay: pulling replies failed", "status", int(st))
			return
		}
		text, ok := takeString(out)
		if !ok {
			select {
			case <-c.eventsDone:
				// The event pump stopped without reading the end (it failed):
				// nothing will end this pull otherwise.
				return
			default:
				continue
			}
		}
		var batch []wireEvent
		if err := json.Unmarshal([]byte(text), &batch); err != nil {
			c.logger.Error("zerorelay: undecodable replies", "error", err)
			continue
		}
		for i := range batch {
			c.dispatch(&batch[i])
		}
	}
}

// deliver hands a message to the application, or drops it once Close has
// started (nobody may be reading any more).
func (c *Client) deliver(m Message) {
	select {
	case c.messages <- m:
	case <-c.closing:
	}
}

// dispatchBatch decodes zr_client_next_batch's records (see zerorelay.h):
// messages are binary, everything else JSON. Records are decoded one by
// one: a record that does not decode is logged and skipped, and the rest of
// the batch is still dispatched. (Payloads are never decoded here: they stay
// json.RawMessage until the application calls Message.Decode.)
func (c *Client) dispatchBatch(b []byte) {
	for len(b) > 0 {
		if len(b) < 5 {
			c.logger.Error("zerorelay: truncated event batch", "bytes", len(b))
			return
		}
		tag, n := b[0], int(binary.LittleEndian.Uint32(b[1:5]))
		if len(b) < 5+n {
			c.logger.Error("zerorelay: truncated event batch", "bytes", len(b))
			return
		}
		rec := b[5 : 5+n]
		b = b[5+n:]
		switch tag {
		case 1:
			m, err := decodeMessage(rec)
			if err != nil {
				c.logger.Error("zerorelay: undecodable message record", "error", err)
				continue
			}
			c.deliver(m)
		case 2:
			var e wireEvent
			if err := json.Unmarshal(rec, &e); err != nil {
				c.logger.Error("zerorelay: undecodable event", "error", err)
				continue
			}
			c.dispatch(&e)
		}
	}
}

var errBatch = errors.New("truncated event batch")

var kinds = [...]string{"direct", "group", "broadcast"}

func decodeMessage(r []byte) (Message, error) {
	if len(r) < 17 || int(r[16]) >= len(kinds) {
		return Message{}, errBatch
	}
	m := Message{
		Seq:  binary.LittleEndian.Uint64(r[0:8]),
		TS:   int64(binary.LittleEndian.Uint64(r[8:16])),
		Kind: kinds[r[16]],
	}
	r = r[17:]
	for _, dst := range []*string{&m.From, &m.FromSession, &m.Group} {
		if len(r) < 2 {
			return Message{}, errBatch
		}
		n := int(binary.LittleEndian.Uint16(r[0:2]))
		r = r[2:]
		if n == 0xFFFF {
			continue
		}
		if len(r) < n {
			return Message{}, errBatch
		}
		*dst = string(r[:n])
		r = r[n:]
	}
	if len(r) < 4 {
		return Message{}, errBatch
	}
	n := int(binary.LittleEndian.Uint32(r[0:4]))
	if len(r) < 4+n {
		return Message{}, errBatch
	}
	m.Data = json.RawMessage(r[4 : 4+n])
	return m, nil
}

func (c *Client) dispatch(e *wireEvent) {
	switch e.Type {
	case "reply":
		r := result{data: e.Data}
		if !e.OK && e.Error != nil {
			r.err = errorFromCode(e.Error.Code, e.Error.Message)
		}
		c.mu.Lock()
		ch, ok := c.pending[e.Request]
		if ok {
			delete(c.pending, e.Request)
		} else if _, gone := c.abandoned[e.Request]; gone {
			delete(c.abandoned, e.Request)
		} else {
			c.early[e.Request] = r
		}
		c.mu.Unlock()
		if ok {
			ch <- r
		}
		return
	}
	ev := Event{
		Type: e.Type, Session: e.Session, Resumed: e.Resumed, Reason: e.Reason,
		WillRetry: e.WillRetry, Attempt: e.Attempt, Delay: time.Duration(e.DelayMS) * time.Millisecond,
		FromSeq: e.FromSeq, ToSeq: e.ToSeq, Message: e.Message, Groups: e.Groups,
		Group: e.Group, Change: e.Change, Joined: e.Joined, Left: e.Left, Present: e.Present,
	}
	if e.User != nil {
		ev.User = *e.User
	}
	if e.LostSession != nil {
		ev.LostSession = *e.LostSession
	}
	switch e.Type {
	case "connected":
		c.logger.Info("zerorelay: connected", "session", ev.Session, "resumed", ev.Resumed)
		c.connectOnce.Do(func() { close(c.connected) })
	case "disconnected":
		_ = json.Unmarshal(e.Code, &ev.CloseCode)
		c.logger.Info("zerorelay: disconnected", "code", ev.CloseCode, "reason", ev.Reason, "will_retry", ev.WillRetry)
		c.mu.Lock()
		c.reason = ev.Reason
		c.mu.Unlock()
	case "reconnecting":
		c.logger.Debug("zerorelay: reconnecting", "attempt", ev.Attempt, "delay", ev.Delay)
	case "loss":
		c.logger.Warn("zerorelay: messages lost", "from_seq", ev.FromSeq, "to_seq", ev.ToSeq, "reason", ev.Reason)
	case "error":
		_ = json.Unmarshal(e.Code, &ev.ErrorCode)
		ev.Seq = e.Seq
		c.logger.Warn("zerorelay: error", "code", ev.ErrorCode, "message", ev.Message, "seq", ev.Seq)
	case "rejoined":
		c.logger.Info("zerorelay: rejoined groups", "groups", ev.Groups)
	case "token_needed":
		if c.tokens != nil {
			go c.provideToken()
		}
		return
	case "closed":
		_ = json.Unmarshal(e.Code, &ev.ErrorCode)
		c.logger.Info("zerorelay: closed", "reason", ev.Reason, "code", ev.ErrorCode)
		c.mu.Lock()
		c.reason = ev.Reason
		if ev.ErrorCode != "" {
			c.lastErr = &Error{Code: ev.ErrorCode, Message: ev.Reason}
		}
		c.mu.Unlock()
	}
	select {
	case c.events <- ev:
	default:
	}
}

// provideToken asks the application's provider and hands the answer to
// the engine (outside the event goroutine: the provider may block).
func (c *Client) provideToken() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token, validFor, err := c.tokens(ctx)
	ct := cstr(token)
	defer free(ct)
	var cerr *C.char
	if err != nil {
		cerr = cstr(err.Error())
		defer free(cerr)
	}
	c.hmu.RLock()
	defer c.hmu.RUnlock()
	if c.freed {
		return
	}
	if e := call(func() C.zr_status {
		return C.zr_status(C.zr_client_set_token(c.h, ct, C.uint64_t(validFor.Milliseconds()), cerr))
	}); e != nil {
		c.logger.Warn("zerorelay: the token could not be handed over", "error", e)
	}
}

func (c *Client) failPending(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.pending {
		delete(c.pending, id)
		ch <- result{err: err}
	}
	clear(c.early)
	clear(c.abandoned)
}

// Session is the session id the relay gave this client, or "" while it is
// not connected (connecting, reconnecting, or closed). It is the same id
// after a resume, and a new one after the relay lost the session (the
// "connected" event then names the lost one in LostSession).
func (c *Client) Session() string {
	c.hmu.RLock()
	defer c.hmu.RUnlock()
	if c.freed {
		return ""
	}
	var out *C.char
	if call(func() C.zr_status { return C.zr_status(C.zr_client_session(c.h, &out)) }) != nil {
		return ""
	}
	s, _ := takeString(out)
	return s
}

// do submits a request and waits for its answer, ctx's end, or Close.
func (c *Client) do(ctx context.Context, submit func(out *C.uint64_t) C.zr_status) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-c.done:
		return nil, ErrClosed
	default:
	}
	var id C.uint64_t
	c.hmu.RLock()
	if c.freed {
		c.hmu.RUnlock()
		return nil, ErrClosed
	}
	err := call(func() C.zr_status { return submit(&id) })
	c.hmu.RUnlock()
	if err != nil {
		return nil, err
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if r, ok := c.early[uint64(id)]; ok {
		delete(c.early, uint64(id))
		c.mu.Unlock()
		return r.data, r.err
	}
	c.pending[uint64(id)] = ch
	c.mu.Unlock()
	select {
	case r := <-ch:
		return r.data, r.err
	case <-c.done:
		// Registered after the pumps stopped: no reply will come.
		select {
		case r := <-ch:
			return r.data, r.err
		default:
		}
		c.mu.Lock()
		delete(c.pending, uint64(id))
		c.mu.Unlock()
		return nil, ErrClosed
	case <-ctx.Done():
		c.mu.Lock()
		if _, waiting := c.pending[uint64(id)]; waiting {
			// Its one reply (the answer, or "cancelled") is still to come:
			// remember to drop it.
			delete(c.pending, uint64(id))
			c.abandoned[uint64(id)] = struct{}{}
		}
		// Otherwise the reply is already in ch, and nothing is stored.
		c.mu.Unlock()
		c.hmu.RLock()
		if !c.freed {
			C.zr_client_cancel(c.h, id)
		}
		c.hmu.RUnlock()
		return nil, ctx.Err()
	}
}

func marshal(v any) (*C.char, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Code: "invalid_argument", Message: "data is not JSON-serializable: " + err.Error()}
	}
	return cstr(string(b)), nil
}

// Join joins a group; it is re-joined automatically if the session is lost.
func (c *Client) Join(ctx context.Context, group string) error {
	g := cstr(group)
	defer free(g)
	_, err := c.do(ctx, func(out *C.uint64_t) C.zr_status { return C.zr_status(C.zr_client_join(c.h, g, out)) })
	return err
}

// JoinWithPresence joins a group and asks to be told who joins and leaves
// it: presence_change events (a user's first session joining, their last
// leaving) and, in large groups, presence_summary events.
func (c *Client) JoinWithPresence(ctx context.Context, group string) error {
	g := cstr(group)
	defer free(g)
	_, err := c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_join_with_presence(c.h, g, out))
	})
	return err
}

// PresenceMember is a user in a group, with how many of their sessions are
// members.
type PresenceMember struct {
	User     string `json:"user"`
	Sessions int    `json:"sessions"`
}

// Presence is who is in a group: its users, sorted, and the member sessions
// without a user.
type Presence struct {
	Group     string           `json:"group"`
	Members   []PresenceMember `json:"members"`
	Anonymous int              `json:"anonymous"`
}

// Presence asks who is in a group (the relay's roles must allow presence
// on it).
func (c *Client) Presence(ctx context.Context, group string) (Presence, error) {
	var p Presence
	g := cstr(group)
	defer free(g)
	data, err := c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_presence(c.h, g, out))
	})
	if err != nil {
		return p, err
	}
	err = json.Unmarshal(data, &p)
	return p, err
}

// Leave leaves a group.
func (c *Client) Leave(ctx context.Context, group string) error {
	g := cstr(group)
	defer free(g)
	_, err := c.do(ctx, func(out *C.uint64_t) C.zr_status { return C.zr_status(C.zr_client_leave(c.h, g, out)) })
	return err
}

// RequestOption changes one request (Publish, PublishEcho, Broadcast,
// BroadcastEcho, SendToUser, SendToSession, RPC). See Resend.
type RequestOption func(*requestOptions)

type requestOptions struct {
	resend bool
}

// Resend makes a request be re-sent if the relay loses the session after
// the request may have been routed: the client reconnects, the relay
// cannot resume the session ("connected" event with Resumed false and
// LostSession set), and the request is sent again in the new session, with
// its answer returned as usual.
//
// Without it such a request fails with ErrUnknownOutcome (it may or may not
// have been delivered), so that nothing is routed twice. Use Resend for
// requests that are idempotent, or whose duplicate the application accepts
// (an RPC handler may then see the same call twice). A request that never
// reached a connection is always sent, and a session that resumes never
// repeats a request, whatever the option. Join, Leave and Presence are
// always re-sent.
//
//	err := c.Publish(ctx, "prices", tick, zerorelay.Resend())
func Resend() RequestOption { return func(o *requestOptions) { o.resend = true } }

// flags maps the options to the C ABI's request flags.
func flags(opts []RequestOption) C.uint32_t {
	var o requestOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.resend {
		return C.ZR_RESEND
	}
	return 0
}

// Publish sends data (any JSON-serializable value) to a group's members.
// Options: Resend.
func (c *Client) Publish(ctx context.Context, group string, data any, opts ...RequestOption) error {
	return c.publish(ctx, group, data, false, opts)
}

// PublishEcho is Publish, delivering to this client too.
func (c *Client) PublishEcho(ctx context.Context, group string, data any, opts ...RequestOption) error {
	return c.publish(ctx, group, data, true, opts)
}

func (c *Client) publish(ctx context.Context, group string, data any, echo bool, opts []RequestOption) error {
	d, err := marshal(data)
	if err != nil {
		return err
	}
	defer free(d)
	g := cstr(group)
	defer free(g)
	f := flags(opts)
	_, err = c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_publish_with(c.h, g, d, C.bool(echo), f, out))
	})
	return err
}

// Broadcast sends data to every session but this one. Options: Resend.
func (c *Client) Broadcast(ctx context.Context, data any, opts ...RequestOption) error {
	return c.broadcast(ctx, data, false, opts)
}

// BroadcastEcho is Broadcast, delivering to this client too.
func (c *Client) BroadcastEcho(ctx context.Context, data any, opts ...RequestOption) error {
	return c.broadcast(ctx, data, true, opts)
}

func (c *Client) broadcast(ctx context.Context, data any, echo bool, opts []RequestOption) error {
	d, err := marshal(data)
	if err != nil {
		return err
	}
	defer free(d)
	f := flags(opts)
	_, err = c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_broadcast_with(c.h, d, C.bool(echo), f, out))
	})
	return err
}

// SendToUser sends data to every session of a user (but this one).
// Options: Resend.
func (c *Client) SendToUser(ctx context.Context, user string, data any, opts ...RequestOption) error {
	d, err := marshal(data)
	if err != nil {
		return err
	}
	defer free(d)
	u := cstr(user)
	defer free(u)
	f := flags(opts)
	_, err = c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_send_to_user_with(c.h, u, d, f, out))
	})
	return err
}

// SendToSession sends data to one session. Options: Resend.
func (c *Client) SendToSession(ctx context.Context, session string, data any, opts ...RequestOption) error {
	d, err := marshal(data)
	if err != nil {
		return err
	}
	defer free(d)
	s := cstr(session)
	defer free(s)
	f := flags(opts)
	_, err = c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_send_to_session_with(c.h, s, d, f, out))
	})
	return err
}

// RPC calls a host method and returns its JSON result. Options: Resend
// (for a method that is safe to call twice).
func (c *Client) RPC(ctx context.Context, method string, arg any, opts ...RequestOption) (json.RawMessage, error) {
	a, err := marshal(arg)
	if err != nil {
		return nil, err
	}
	defer free(a)
	m := cstr(method)
	defer free(m)
	f := flags(opts)
	return c.do(ctx, func(out *C.uint64_t) C.zr_status {
		return C.zr_status(C.zr_client_rpc_with(c.h, m, a, f, out))
	})
}

// Close closes the connection cleanly (the session ends on the server),
// stops the event pump and frees the native client. It is safe to call
// more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.closeErr = call(func() C.zr_status { return C.zr_status(C.zr_client_close(c.h)) })
		<-c.done
		c.hmu.Lock()
		c.freed = true
		C.zr_client_free(c.h)
		c.hmu.Unlock()
		if c.logger != nil {
			stopCoreLogs(c.logger)
		}
	})
	return c.closeErr
}

type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
