package zerorelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

// A session lost while an RPC is pending: the relay has routed the call
// (its handler holds it), the connection is cut and the session ended on
// the server, and the client's reconnect gets a new session. The call made
// without options fails with ErrUnknownOutcome and is not called again;
// the one made with Resend is sent again in the new session (the handler
// sees it twice) and answered.
func TestALostSessionFailsAPendingRPCWithUnknownOutcomeUnlessItIsResent(t *testing.T) {
	var logs logCollector
	release := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{}
	calls := make(chan string, 16)
	s := startWith(t, zerorelay.ServerOptions{
		Config: map[string]any{"server": map[string]any{"listen": "127.0.0.1:0"}},
		RPC: map[string]zerorelay.RPCHandler{
			"hold": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				key := string(call.Data)
				mu.Lock()
				seen[key]++
				first := seen[key] == 1
				mu.Unlock()
				calls <- key
				if first && key != `"marker"` {
					// Held until the test ends: this answer never reaches
					// the client.
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return call.Data, nil
			},
		},
		Logger: logs.logger(),
	})
	// Runs before the server's Close (cleanups run last-in first-out).
	t.Cleanup(func() { close(release) })
	p := newProxy(t, s.Addr())
	c := dial(t, p.url(), "alice", zerorelay.WithRequestTimeout(time.Minute))
	old := c.Session()
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type answer struct {
		data json.RawMessage
		err  error
	}
	lost := make(chan answer, 1)
	kept := make(chan answer, 1)
	go func() { d, err := c.RPC(rctx, "hold", "lost"); lost <- answer{d, err} }()
	go func() { d, err := c.RPC(rctx, "hold", "kept", zerorelay.Resend()); kept <- answer{d, err} }()
	got := map[string]bool{signal(t, calls, "a first call"): true, signal(t, calls, "a second call"): true}
	if !got[`"lost"`] || !got[`"kept"`] {
		t.Fatalf("the handler saw %v", got)
	}

	// Both were routed. The connection is cut, then the session ended on
	// the relay (as when it expires), so the reconnect cannot resume it.
	p.setDown(true)
	waitEvent(t, c, "disconnected")
	if existed, err := s.Disconnect(old); !existed || err != nil {
		t.Fatalf("disconnect %s: %v %v", old, existed, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if sessions, _ := s.Sessions(); len(sessions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session did not end")
		}
	}
	p.setDown(false)
	if e := waitEvent(t, c, "connected"); e.Resumed || e.LostSession != old {
		t.Fatalf("want a new session replacing %s, got %+v", old, e)
	}

	a := signal(t, lost, "the default call's answer")
	if !errors.Is(a.err, zerorelay.ErrUnknownOutcome) {
		t.Fatalf("the default call: want unknown_outcome, got %s %v", a.data, a.err)
	}
	wantCode(t, a.err, "unknown_outcome")
	a = signal(t, kept, "the resent call's answer")
	if a.err != nil || string(a.data) != `"kept"` {
		t.Fatalf("the resent call: %s %v", a.data, a.err)
	}
	if again := signal(t, calls, "the resent call"); again != `"kept"` {
		t.Fatalf("resent: %s", again)
	}
	// A marker sent after everything the reconnect re-sent.
	if d, err := c.RPC(rctx, "hold", "marker"); err != nil || string(d) != `"marker"` {
		t.Fatalf("marker: %s %v", d, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[`"lost"`] != 1 || seen[`"kept"`] != 2 || seen[`"marker"`] != 1 {
		t.Fatalf("calls per argument: %v", seen)
	}
}

// Every request that takes options accepts Resend and is delivered as
// usual; BroadcastEcho reaches the sender too.
func TestRequestsWithResendAreDeliveredAsUsual(t *testing.T) {
	s := startServer(t, map[string]any{
		"features": map[string]any{"client_broadcast": true},
		"limits":   map[string]any{"broadcast_per_sec": 100},
	})
	alice := dial(t, s.URL(), "alice")
	bob := dial(t, s.URL(), "bob")
	for _, c := range []*zerorelay.Client{alice, bob} {
		if err := c.Join(ctx(t), "room"); err != nil {
			t.Fatal(err)
		}
	}
	both := []*zerorelay.Client{bob, alice}
	steps := []struct {
		data string
		do   func(data string) error
		to   []*zerorelay.Client
	}{
		{"publish", func(d string) error { return alice.Publish(ctx(t), "room", d, zerorelay.Resend()) }, both[:1]},
		{"publish echo", func(d string) error { return alice.PublishEcho(ctx(t), "room", d, zerorelay.Resend()) }, both},
		{"broadcast", func(d string) error { return alice.Broadcast(ctx(t), d, zerorelay.Resend()) }, both[:1]},
		{"broadcast echo", func(d string) error { return alice.BroadcastEcho(ctx(t), d, zerorelay.Resend()) }, both},
		{"send to user", func(d string) error { return alice.SendToUser(ctx(t), "bob", d, zerorelay.Resend()) }, both[:1]},
		{"send to session", func(d string) error { return alice.SendToSession(ctx(t), bob.Session(), d, zerorelay.Resend()) }, both[:1]},
		{"a nil option is ignored", func(d string) error { return alice.Publish(ctx(t), "room", d, nil) }, both[:1]},
	}
	for _, st := range steps {
		if err := st.do(st.data); err != nil {
			t.Fatalf("%s: %v", st.data, err)
		}
		for _, to := range st.to {
			var got string
			if err := next(t, to).Decode(&got); err != nil || got != st.data {
				t.Fatalf("%s: got %q (%v)", st.data, got, err)
			}
		}
	}
	// Alice got only the echoes: her next message is the last step's echo.
	if err := alice.PublishEcho(ctx(t), "room", "end"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := next(t, alice).Decode(&got); err != nil || got != "end" {
		t.Fatalf("alice got %q (%v)", got, err)
	}
}
