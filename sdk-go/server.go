package zerorelay

/*
#include <stdlib.h>
#include "zerorelay.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"sync"
)

// Server is a relay embedded in this process (the same server the
// `zerorelay` command runs).
type Server struct {
	mu     sync.RWMutex
	h      *C.zr_server
	addr   string
	scheme string // "ws", or "wss" when the relay serves TLS

	eventsOnce sync.Once
	events     chan ServerEvent
	stopOnce   sync.Once
	done       chan struct{}

	// Handlers (StartServerWith).
	opts      ServerOptions
	logger    *slog.Logger
	coreLogs  bool
	callsCtx  context.Context
	stopCalls context.CancelFunc
	callsMu   sync.Mutex
	inflight  map[uint64]context.CancelFunc // calls being handled, by id
	callsDone chan struct{}                 // closed when pullCalls has stopped (nil without handlers)
}

// ServerEvent is something that happened to a session on an embedded
// server.
type ServerEvent struct {
	// Type is "connected" (a client was welcomed), "disconnected" (a
	// connection ended; the session stays resumable unless "ended" follows),
	// "ended" (the session ended for good: closed by its client, by the
	// host, or expired) or "lagged" (the reader fell more than 1,024 events
	// behind and Missed were dropped).
	Type    string `json:"type"`
	Session string `json:"session"`
	User    string `json:"user"` // empty for anonymous sessions
	Resumed bool   `json:"resumed"`
	Remote  string `json:"remote"`
	Reason  string `json:"reason"`
	Missed  uint64 `json:"missed"`
}

// SessionInfo describes a session on an embedded server.
type SessionInfo struct {
	ID        string   `json:"id"`
	User      *string  `json:"user"`
	Connected bool     `json:"connected"`
	Groups    []string `json:"groups"`
	LastSeq   uint64   `json:"last_seq"`
	Unacked   int      `json:"unacked"`
}

// GroupInfo describes a group on an embedded server.
type GroupInfo struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

// ServerStats are an embedded relay's counters (the numbers the Node and
// Python servers' stats() return).
type ServerStats struct {
	ConnectionsAccepted uint64 `json:"connections_accepted"` // since start
	ConnectionsOpen     int    `json:"connections_open"`     // now
	Sessions            int    `json:"sessions"`             // live or resumable
	Deliveries          uint64 `json:"deliveries"`           // queued on sessions since start
	Dropped             uint64 `json:"dropped"`              // dropped by outbox bounds (announced as gaps)
	SlowConsumers       uint64 `json:"slow_consumers"`       // connections closed as slow consumers
	Trimmed             uint64 `json:"trimmed"`              // dropped to keep session.outbox_total_bytes
	OutboxBytes         uint64 `json:"outbox_bytes"`         // held by all outboxes now
}

// StartServer starts a relay without handlers: StartServerWith(ServerOptions{Config: config}).
// config is anything that marshals to the configuration's JSON form (the
// TOML file's sections and keys), or nil for the defaults. server.listen
// defaults to a free port on 127.0.0.1 (the same default in every SDK; the
// zerorelay command keeps 127.0.0.1:8080).
func StartServer(config any) (*Server, error) {
	return StartServerWith(ServerOptions{Config: config})
}

// StartServerWith starts a relay with handlers written in Go: an
// authenticator, an authorizer, RPC methods and validators (see
// ServerOptions). Each handler call runs in a goroutine of its own, so a
// slow one holds up no other, with a context that is cancelled when the
// relay stops waiting for it (its timeout passed, or the server closes).
func StartServerWith(opts ServerOptions) (*Server, error) {
	// The handlers' maps are read while the server runs: a copy, so that
	// the caller may change theirs.
	opts.RPC = maps.Clone(opts.RPC)
	opts.Validate = maps.Clone(opts.Validate)
	config := opts.Config
	cfg := map[string]any{}
	if config != nil {
		b, err := json.Marshal(config)
		if err == nil {
			err = json.Unmarshal(b, &cfg)
		}
		if err != nil {
			return nil, &Error{Code: "invalid_argument", Message: "config must be a JSON object: " + err.Error()}
		}
	}
	server, ok := cfg["server"].(map[string]any)
	if cfg["server"] == nil {
		server, ok = map[string]any{}, true
	}
	if !ok {
		return nil, &Error{Code: "invalid_argument", Message: "config: `server` must be an object"}
	}
	if _, set := server["listen"]; !set {
		server["listen"] = "127.0.0.1:0"
	}
	cfg["server"] = server
	b, _ := json.Marshal(cfg)
	text := string(b)
	c := cstr(text)
	defer free(c)
	s := &Server{done: make(chan struct{}), scheme: "ws", opts: opts, logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	// The relay serves wss:// when [tls] names a certificate (the
	// configuration refuses a cert_file without a key_file).
	if tls, _ := cfg["tls"].(map[string]any); tls != nil {
		if f, _ := tls["cert_file"].(string); f != "" {
			s.scheme = "wss"
		}
	}
	spec, handlers := opts.handlerSpec()
	start := func() C.zr_status { return C.zr_status(C.zr_server_start(c, &s.h)) }
	if handlers {
		cs := cstr(spec)
		defer free(cs)
		start = func() C.zr_status { return C.zr_status(C.zr_server_start_with_handlers(c, cs, &s.h)) }
	}
	if err := call(start); err != nil {
		return nil, err
	}
	var out *C.char
	if err := call(func() C.zr_status { return C.zr_status(C.zr_server_address(s.h, &out)) }); err != nil {
		C.zr_server_free(s.h)
		return nil, err
	}
	s.addr, _ = takeString(out)
	if opts.Logger != nil {
		forwardCoreLogs(opts.Logger)
		s.coreLogs = true
	}
	if handlers {
		s.callsCtx, s.stopCalls = context.WithCancel(context.Background())
		s.inflight = map[uint64]context.CancelFunc{}
		s.callsDone = make(chan struct{})
		go s.pullCalls()
	}
	return s, nil
}

// Addr is the bound address, host:port.
func (s *Server) Addr() string { return s.addr }

// URL is the WebSocket URL clients connect to: wss:// when the relay
// serves TLS (tls.cert_file and tls.key_file in the configuration).
func (s *Server) URL() string { return s.scheme + "://" + s.addr + "/ws" }

func (s *Server) with(f func(h *C.zr_server) C.zr_status) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return ErrClosed
	}
	return call(func() C.zr_status { return f(s.h) })
}

func (s *Server) withData(data any, f func(h *C.zr_server, d *C.char) C.zr_status) error {
	d, err := marshal(data)
	if err != nil {
		return err
	}
	defer free(d)
	return s.with(func(h *C.zr_server) C.zr_status { return f(h, d) })
}

// Publish sends data to a group's members; it returns how many sessions it reached.
func (s *Server) Publish(group string, data any) (int, error) {
	g := cstr(group)
	defer free(g)
	var n C.uint64_t
	err := s.withData(data, func(h *C.zr_server, d *C.char) C.zr_status {
		return C.zr_status(C.zr_server_publish(h, g, d, &n))
	})
	return int(n), err
}

// SendToUser sends data to every session of a user (ErrNotFound when none).
func (s *Server) SendToUser(user string, data any) (int, error) {
	u := cstr(user)
	defer free(u)
	var n C.uint64_t
	err := s.withData(data, func(h *C.zr_server, d *C.char) C.zr_status {
		return C.zr_status(C.zr_server_send_to_user(h, u, d, &n))
	})
	return int(n), err
}

// SendToSession sends data to one session (ErrNotFound when it does not exist).
func (s *Server) SendToSession(session string, data any) error {
	id := cstr(session)
	defer free(id)
	return s.withData(data, func(h *C.zr_server, d *C.char) C.zr_status {
		return C.zr_status(C.zr_server_send_to_session(h, id, d))
	})
}

// Broadcast sends data to every session.
func (s *Server) Broadcast(data any) (int, error) {
	var n C.uint64_t
	err := s.withData(data, func(h *C.zr_server, d *C.char) C.zr_status {
		return C.zr_status(C.zr_server_broadcast(h, d, &n))
	})
	return int(n), err
}

// Disconnect ends a session (its client gets close code 4005).
func (s *Server) Disconnect(session string) (bool, error) {
	id := cstr(session)
	defer free(id)
	var existed C.bool
	err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_disconnect(h, id, &existed)) })
	return bool(existed), err
}

// RevokeSession revokes a session: its client gets close code 4006 and the
// session ends (it cannot be resumed).
func (s *Server) RevokeSession(session string) (bool, error) {
	id := cstr(session)
	defer free(id)
	var existed C.bool
	err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_revoke_session(h, id, &existed)) })
	return bool(existed), err
}

// RevokeUser revokes every session of a user (close 4006) and returns how
// many it ended.
func (s *Server) RevokeUser(user string) (int, error) {
	u := cstr(user)
	defer free(u)
	var n C.uint64_t
	err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_revoke_user(h, u, &n)) })
	return int(n), err
}

// DropConnection drops a session's connection as a network failure would;
// the client reconnects and resumes.
func (s *Server) DropConnection(session string) (bool, error) {
	id := cstr(session)
	defer free(id)
	var existed C.bool
	err := s.with(func(h *C.zr_server) C.zr_status {
		return C.zr_status(C.zr_server_drop_connection(h, id, &existed))
	})
	return bool(existed), err
}

// Sessions lists the sessions.
func (s *Server) Sessions() ([]SessionInfo, error) {
	var out *C.char
	if err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_sessions(h, &out)) }); err != nil {
		return nil, err
	}
	text, _ := takeString(out)
	var v []SessionInfo
	return v, json.Unmarshal([]byte(text), &v)
}

// Groups lists the non-empty groups.
func (s *Server) Groups() ([]GroupInfo, error) {
	var out *C.char
	if err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_groups(h, &out)) }); err != nil {
		return nil, err
	}
	text, _ := takeString(out)
	var v []GroupInfo
	return v, json.Unmarshal([]byte(text), &v)
}

// Presence returns who is in a group: its users with their session counts.
func (s *Server) Presence(group string) (Presence, error) {
	g := cstr(group)
	defer free(g)
	var out *C.char
	var p Presence
	if err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_presence(h, g, &out)) }); err != nil {
		return p, err
	}
	text, _ := takeString(out)
	return p, json.Unmarshal([]byte(text), &p)
}

// Stats returns the relay's counters.
func (s *Server) Stats() (ServerStats, error) {
	var out *C.char
	var st ServerStats
	if err := s.with(func(h *C.zr_server) C.zr_status { return C.zr_status(C.zr_server_stats(h, &out)) }); err != nil {
		return st, err
	}
	text, _ := takeString(out)
	return st, json.Unmarshal([]byte(text), &st)
}

// Close shuts the server down gracefully (clients get 1001) and frees it.
// Handler calls still running are abandoned: their contexts are cancelled,
// the relay fails them, and Close does not wait for them to return.
func (s *Server) Close() error {
	s.stopOnce.Do(func() { close(s.done) })
	// Stopping fails the pending calls and wakes the goroutines that wait
	// in the library, which hold the read lock; then the handle is freed
	// under the write lock.
	s.mu.RLock()
	if s.h != nil {
		C.zr_server_stop(s.h)
	}
	s.mu.RUnlock()
	if s.callsDone != nil {
		s.stopCalls()
		<-s.callsDone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return nil
	}
	C.zr_server_free(s.h)
	s.h = nil
	if s.coreLogs {
		stopCoreLogs(s.opts.Logger)
	}
	return nil
}

// Events returns the channel of what happens to sessions from the first
// call on (the same channel on every call). It is closed when the server
// closes. Read it: while it is full, events wait, and more than 1,024
// waiting ones are reported as a "lagged" event.
func (s *Server) Events() <-chan ServerEvent {
	s.eventsOnce.Do(func() {
		s.events = make(chan ServerEvent, 256)
		// The first call subscribes, so it happens here, before Events
		// returns: a client that connects right after is reported. It
		// waits for nothing and can only find what the channel holds.
		first, ok := s.fetchEvents(0)
		for _, e := range first {
			s.events <- e
		}
		if !ok {
			close(s.events)
			return
		}
		go s.pullEvents()
	})
	return s.events
}

// fetchEvents waits up to timeoutMs for at most 256 events; ok is false
// once the server is closed or closing.
func (s *Server) fetchEvents(timeoutMs uint32) (batch []ServerEvent, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return nil, false
	}
	var out *C.char
	err := call(func() C.zr_status {
		return C.zr_status(C.zr_server_next_events(s.h, C.uint32_t(timeoutMs), 256, &out))
	})
	if err != nil {
		return nil, false // the server is shutting down
	}
	if out == nil {
		return nil, true
	}
	text, _ := takeString(out)
	if json.Unmarshal([]byte(text), &batch) != nil {
		return nil, false
	}
	return batch, true
}

func (s *Server) pullEvents() {
	defer close(s.events)
	for {
		batch, ok := s.fetchEvents(100)
		if !ok {
			return
		}
		if batch == nil {
			select {
			case <-s.done:
				return
			default:
				continue
			}
		}
		for _, e := range batch {
			select {
			case s.events <- e:
			case <-s.done:
				return
			}
		}
	}
}
