package zerorelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

// startWith starts a relay with handlers on a free loopback port.
func startWith(t *testing.T, opts zerorelay.ServerOptions) *zerorelay.Server {
	t.Helper()
	s, err := zerorelay.StartServerWith(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wantCode fails unless err is a zerorelay error with this code.
func wantCode(t *testing.T, err error, code string) *zerorelay.Error {
	t.Helper()
	var ze *zerorelay.Error
	if !errors.As(err, &ze) || ze.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return ze
}

// noPendingCalls waits (bounded) until neither the library nor Go holds a
// handler call.
func noPendingCalls(t *testing.T, s *zerorelay.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		native, running, err := zerorelay.PendingCalls(s)
		if err != nil {
			t.Fatal(err)
		}
		if native == 0 && running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still pending: %d in the library, %d running in Go", native, running)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal waits (bounded) for a value on ch.
func signal[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s in time", what)
	}
	var zero T
	return zero
}

func TestAuthenticateLetsInRefusesAndFailsWithUnauthorized(t *testing.T) {
	var logs logCollector
	seen := make(chan zerorelay.AuthRequest, 16)
	s := startWith(t, zerorelay.ServerOptions{
		Logger: logs.logger(),
		Authenticate: func(ctx context.Context, req zerorelay.AuthRequest) (zerorelay.Identity, error) {
			seen <- req
			switch req.Token {
			case "alice":
				return zerorelay.Identity{User: "alice", Groups: []string{"room-*"}, Claims: map[string]any{"tier": "gold"}}, nil
			case "anon":
				return zerorelay.Identity{}, nil
			case "refused":
				return zerorelay.Identity{}, &zerorelay.Error{Code: "unauthorized", Message: "no"}
			case "broken":
				return zerorelay.Identity{}, errors.New("the user store is down")
			case "bad-user":
				return zerorelay.Identity{User: "not a name"}, nil
			}
			panic("unexpected token " + req.Token)
		},
		Authorize: func(ctx context.Context, req zerorelay.AuthorizeRequest) error {
			if req.Action == "publish" && req.User == "alice" && string(req.Claims) != `{"tier":"gold"}` {
				return fmt.Errorf("claims %s", req.Claims)
			}
			return nil
		},
	})
	alice, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	req := signal(t, seen, "auth call")
	if req.Token != "alice" || !strings.HasPrefix(req.Client, "zerorelay-go/") || !strings.HasPrefix(req.Remote, "127.0.0.1:") {
		t.Fatalf("the handler was shown %+v", req)
	}
	if got := sessionOf(t, s, "alice"); got != alice.Session() {
		t.Fatalf("the server's session %s, the client's %s", got, alice.Session())
	}
	// Groups narrow what the roles allow; claims reach the authorizer.
	if err := alice.Join(ctx(t), "room-1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, alice.Join(ctx(t), "lobby"), "forbidden")
	if err := alice.Publish(ctx(t), "room-1", 1); err != nil {
		t.Fatal(err)
	}
	anon, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken("anon"))
	if err != nil {
		t.Fatal(err)
	}
	anon.Close()
	for _, token := range []string{"refused", "broken", "bad-user", "panic"} {
		_, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken(token), zerorelay.WithoutReconnect())
		wantCode(t, err, "unauthorized")
	}
	if !logs.has("the Authenticate handler failed") || !logs.has("a handler panicked") {
		t.Fatalf("failures are logged: %v", logs.lines)
	}
	noPendingCalls(t, s)
}

func TestAuthorizeAllowsNilAndRefusesAnErrorWithForbidden(t *testing.T) {
	seen := make(chan zerorelay.AuthorizeRequest, 64)
	s := startWith(t, zerorelay.ServerOptions{
		Config: map[string]any{"features": map[string]any{"client_broadcast": true}},
		Authorize: func(ctx context.Context, req zerorelay.AuthorizeRequest) error {
			seen <- req
			switch req.Resource {
			case "secret":
				return errors.New("not you")
			case "vault":
				return &zerorelay.Error{Code: "forbidden", Message: "closed today"}
			case "bomb":
				panic("boom")
			}
			return nil
		},
	})
	c := dial(t, s.URL(), "alice")
	if err := c.Join(ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	if r := signal(t, seen, "authorize call"); r.Action != "join" || r.Resource != "room" || r.User != "alice" || string(r.Claims) != "null" {
		t.Fatalf("authorize was shown %+v", r)
	}
	if ze := wantCode(t, c.Join(ctx(t), "secret"), "forbidden"); ze.Message != "not you" {
		t.Fatalf("message %q", ze.Message)
	}
	if ze := wantCode(t, c.Publish(ctx(t), "vault", 1), "forbidden"); ze.Message != "closed today" {
		t.Fatalf("message %q", ze.Message)
	}
	wantCode(t, c.Join(ctx(t), "bomb"), "internal")
	if err := c.Broadcast(ctx(t), 1); err != nil {
		t.Fatal(err)
	}
	for {
		r := signal(t, seen, "authorize call")
		if r.Action == "broadcast" {
			if r.Resource != "" {
				t.Fatalf("a broadcast has no resource: %+v", r)
			}
			break
		}
	}
	noPendingCalls(t, s)
}

func TestRPCHandlersAnswerRefuseAndFailWhileTheServerKeepsServing(t *testing.T) {
	var logs logCollector
	calls := make(chan zerorelay.RPCCall, 16)
	s := startWith(t, zerorelay.ServerOptions{
		Logger: logs.logger(),
		RPC: map[string]zerorelay.RPCHandler{
			"echo": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				calls <- call
				return call.Data, nil
			},
			"nothing": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return nil, nil
			},
			"refuse": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return nil, &zerorelay.Error{Code: "forbidden", Message: "members only"}
			},
			"plain": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return nil, errors.New("the database is down")
			},
			"odd-code": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return nil, &zerorelay.Error{Code: "timeout", Message: "not a protocol code"}
			},
			"not-json": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return json.RawMessage("{nope"), nil
			},
			"panic": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				panic("handler bug")
			},
		},
	})
	alice := dial(t, s.URL(), "alice")
	got, err := alice.RPC(ctx(t), "echo", map[string]int{"n": 1})
	if err != nil || string(got) != `{"n":1}` {
		t.Fatalf("echo: %s, %v", got, err)
	}
	call := signal(t, calls, "rpc call")
	if call.Method != "echo" || call.User != "alice" || call.Session != alice.Session() {
		t.Fatalf("the handler was shown %+v (the client's session is %s)", call, alice.Session())
	}
	if got, err := alice.RPC(ctx(t), "nothing", nil); err != nil || string(got) != "null" {
		t.Fatalf("nothing: %s, %v", got, err)
	}
	if ze := wantCode(t, must(alice.RPC(ctx(t), "refuse", nil)), "forbidden"); ze.Message != "members only" {
		t.Fatalf("message %q", ze.Message)
	}
	for _, method := range []string{"plain", "odd-code", "not-json", "panic"} {
		wantCode(t, must(alice.RPC(ctx(t), method, nil)), "internal")
	}
	if !logs.has("an RPC handler failed") || !logs.has("a handler panicked") {
		t.Fatalf("failures are logged: %v", logs.lines)
	}
	// The relay keeps serving: this client, and another one.
	if _, err := alice.RPC(ctx(t), "echo", 2); err != nil {
		t.Fatal(err)
	}
	anon, err := zerorelay.Dial(ctx(t), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.RPC(ctx(t), "echo", 3); err != nil {
		t.Fatal(err)
	}
	// Alice's second call answered before the anonymous one was made.
	if call := signal(t, calls, "rpc call"); call.User != "alice" {
		t.Fatalf("want alice's call, got %+v", call)
	}
	if call := signal(t, calls, "rpc call"); call.User != "" || call.Session != anon.Session() {
		t.Fatalf("an anonymous caller has no user: %+v", call)
	}
	noPendingCalls(t, s)
}

// wantErr is nil when err is a zerorelay error with this code.
func wantErr(err error, code string) error {
	var ze *zerorelay.Error
	if !errors.As(err, &ze) || ze.Code != code {
		return fmt.Errorf("want %s, got %v", code, err)
	}
	return nil
}

// must drops a result and keeps the error.
func must(_ json.RawMessage, err error) error { return err }

func TestValidatorsAcceptRejectAndRewrite(t *testing.T) {
	s := startWith(t, zerorelay.ServerOptions{
		Validate: map[string]zerorelay.Validator{
			"chat-*": func(ctx context.Context, req zerorelay.ValidateRequest) (zerorelay.Verdict, error) {
				var text string
				if err := json.Unmarshal(req.Data, &text); err != nil {
					return zerorelay.Reject("", "text only"), nil
				}
				switch {
				case text == "spam":
					return zerorelay.Reject("forbidden", "no spam"), nil
				case text == "typed":
					return zerorelay.Verdict{}, &zerorelay.Error{Code: "too_large", Message: "too long"}
				case text == "broken":
					return zerorelay.Verdict{}, errors.New("the filter is down")
				case text == "panic":
					panic("filter bug")
				case text == "nothing":
					return zerorelay.Rewrite(nil), nil
				case strings.HasPrefix(text, "<b>"):
					if req.User != "alice" || req.Group != "chat-1" || req.Session == "" {
						return zerorelay.Reject("", fmt.Sprintf("shown %+v", req)), nil
					}
					return zerorelay.Rewrite(strings.TrimSuffix(strings.TrimPrefix(text, "<b>"), "</b>")), nil
				}
				return zerorelay.Accept(), nil
			},
		},
	})
	alice := dial(t, s.URL(), "alice")
	bob := dial(t, s.URL(), "bob")
	if err := bob.Join(ctx(t), "chat-1"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx(t), "chat-1", "hello"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx(t), "chat-1", "<b>bold</b>"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx(t), "chat-1", "nothing"); err != nil {
		t.Fatal(err)
	}
	if ze := wantCode(t, alice.Publish(ctx(t), "chat-1", 7), "bad_request"); ze.Message != "text only" {
		t.Fatalf("message %q", ze.Message)
	}
	if ze := wantCode(t, alice.Publish(ctx(t), "chat-1", "spam"), "forbidden"); ze.Message != "no spam" {
		t.Fatalf("message %q", ze.Message)
	}
	wantCode(t, alice.Publish(ctx(t), "chat-1", "typed"), "too_large")
	wantCode(t, alice.Publish(ctx(t), "chat-1", "broken"), "internal")
	wantCode(t, alice.Publish(ctx(t), "chat-1", "panic"), "internal")
	// Other groups are not validated.
	if err := bob.Join(ctx(t), "news"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx(t), "news", 7); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"hello"`, `"bold"`, `null`, `7`} {
		if m := next(t, bob); string(m.Data) != want {
			t.Fatalf("want %s, got %s", want, m.Data)
		}
	}
	none(t, bob, 100*time.Millisecond)
	noPendingCalls(t, s)
}

func TestHandlersThatNeverAnswerTimeOutWithTheRelaysCodeAndLeaveNothingPending(t *testing.T) {
	entered := make(chan string, 16)
	gaveUp := make(chan string, 16)
	hang := func(ctx context.Context, what string) {
		entered <- what
		<-ctx.Done() // cancelled when the relay stops waiting
		gaveUp <- what
	}
	s := startWith(t, zerorelay.ServerOptions{
		// Long enough for the handlers that do answer on a loaded machine;
		// the hung ones run at once, so the test waits about one of them.
		Config: map[string]any{"limits": map[string]any{"authorize_timeout_ms": 2000, "validate_timeout_ms": 2000, "rpc_timeout_ms": 2000}},
		Authenticate: func(ctx context.Context, req zerorelay.AuthRequest) (zerorelay.Identity, error) {
			if req.Token == "slow" {
				hang(ctx, "auth")
				return zerorelay.Identity{}, ctx.Err()
			}
			return zerorelay.Identity{User: req.Token}, nil
		},
		AuthTimeout: 2 * time.Second,
		Authorize: func(ctx context.Context, req zerorelay.AuthorizeRequest) error {
			if req.Action == "join" && req.Resource == "slow" {
				hang(ctx, "authorize")
			}
			return nil
		},
		RPC: map[string]zerorelay.RPCHandler{
			"slow": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				hang(ctx, "rpc")
				return nil, nil
			},
		},
		Validate: map[string]zerorelay.Validator{
			"v-*": func(ctx context.Context, req zerorelay.ValidateRequest) (zerorelay.Verdict, error) {
				if string(req.Data) == `"slow"` {
					hang(ctx, "validate")
				}
				return zerorelay.Accept(), nil
			},
		},
	})
	// One client per hung request: a connection's later frames wait
	// behind its authorize call.
	clients := make([]*zerorelay.Client, 3)
	for i := range clients {
		c, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken(fmt.Sprintf("user-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
	}
	c := clients[0]
	errs := make(chan error, 4)
	go func() {
		_, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken("slow"), zerorelay.WithoutReconnect())
		errs <- wantErr(err, "unauthorized")
	}()
	go func() { errs <- wantErr(clients[0].Join(ctx(t), "slow"), "internal") }()
	go func() { errs <- wantErr(must(clients[1].RPC(ctx(t), "slow", nil)), "internal") }()
	go func() { errs <- wantErr(clients[2].Publish(ctx(t), "v-1", "slow"), "internal") }()
	for range 4 {
		if err := signal(t, errs, "a timed-out request"); err != nil {
			t.Fatal(err)
		}
	}
	// Each hung handler saw its context cancelled, and nothing is left.
	got := map[string]bool{}
	for range 4 {
		got[signal(t, gaveUp, "cancelled handler")] = true
	}
	if len(got) != 4 {
		t.Fatalf("cancelled: %v", got)
	}
	noPendingCalls(t, s)
	// The connection carries on.
	if err := c.Publish(ctx(t), "v-1", "fast"); err != nil {
		t.Fatal(err)
	}
	noPendingCalls(t, s)
}

func TestASlowHandlerHoldsUpNoOtherCall(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	s := startWith(t, zerorelay.ServerOptions{
		RPC: map[string]zerorelay.RPCHandler{
			"slow": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				entered <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
				return json.RawMessage(`"slow"`), nil
			},
			"fast": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return json.RawMessage(`"fast"`), nil
			},
		},
	})
	a := dial(t, s.URL(), "alice")
	b := dial(t, s.URL(), "bob")
	slow := make(chan error, 1)
	go func() {
		got, err := a.RPC(ctx(t), "slow", nil)
		if err == nil && string(got) != `"slow"` {
			err = fmt.Errorf("got %s", got)
		}
		slow <- err
	}()
	signal(t, entered, "slow handler")
	for _, c := range []*zerorelay.Client{a, b} {
		if got, err := c.RPC(ctx(t), "fast", nil); err != nil || string(got) != `"fast"` {
			t.Fatalf("fast: %s, %v", got, err)
		}
	}
	close(release)
	if err := signal(t, slow, "slow answer"); err != nil {
		t.Fatal(err)
	}
	noPendingCalls(t, s)
}

func TestClosingWithHandlerCallsPendingReturnsPromptly(t *testing.T) {
	entered := make(chan struct{}, 8)
	cancelled := make(chan struct{}, 8)
	s, err := zerorelay.StartServerWith(zerorelay.ServerOptions{
		RPC: map[string]zerorelay.RPCHandler{
			"forever": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				entered <- struct{}{}
				<-ctx.Done()
				cancelled <- struct{}{}
				return nil, ctx.Err()
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.URL(), "alice", zerorelay.WithoutReconnect())
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- must(c.RPC(ctx(t), "forever", nil)) }()
	}
	for range 3 {
		signal(t, entered, "handler call")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := signal(t, closed, "Close returning"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		signal(t, cancelled, "cancelled context")
		if err := signal(t, results, "rpc result"); err == nil {
			t.Fatal("an rpc on a closed server succeeded")
		}
	}
	if _, err := s.Stats(); !errors.Is(err, zerorelay.ErrClosed) {
		t.Fatalf("a closed server: %v", err)
	}
}

func TestServerStatsCountConnectionsSessionsAndDeliveries(t *testing.T) {
	s := startServer(t, nil)
	a := dial(t, s.URL(), "alice")
	b := dial(t, s.URL(), "bob")
	if err := b.Join(ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := a.Publish(ctx(t), "room", i); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		next(t, b)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.ConnectionsAccepted != 2 || st.ConnectionsOpen != 2 || st.Sessions != 2 || st.Deliveries != 3 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAServerWithoutHandlersStillStartsAndRefusesABadHandlerSetup(t *testing.T) {
	s := startWith(t, zerorelay.ServerOptions{Config: map[string]any{"server": map[string]any{"listen": "127.0.0.1:0"}}})
	c := dial(t, s.URL(), "alice")
	if err := c.Join(ctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := zerorelay.StartServerWith(zerorelay.ServerOptions{
		RPC: map[string]zerorelay.RPCHandler{"bad name": func(context.Context, zerorelay.RPCCall) (json.RawMessage, error) { return nil, nil }},
	}); !errors.Is(err, zerorelay.ErrInvalidArgument) {
		t.Fatalf("a bad method name: %v", err)
	}
}
