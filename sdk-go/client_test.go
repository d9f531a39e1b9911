package zerorelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

// mapsEmpty waits (bounded) until the client holds no reply bookkeeping.
func mapsEmpty(t *testing.T, c *zerorelay.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, early, abandoned := zerorelay.ClientMaps(c)
		if pending == 0 && early == 0 && abandoned == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %d pending, %d early, %d abandoned", pending, early, abandoned)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCancelledRequestsLeaveNothingBehind(t *testing.T) {
	s := startServer(t, nil)
	p := newProxy(t, s.Addr())
	c := dial(t, p.url(), "alice", zerorelay.WithQueue(4096, 64<<20, zerorelay.FailFast))
	// Offline: every request waits in the queue and is cancelled there.
	p.setDown(true)
	waitEvent(t, c, "disconnected")
	for i := range 2000 {
		cctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Publish(cctx, "g", i) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	mapsEmpty(t, c)
	// Online: a cancellation races with the answer; either way exactly one
	// reply comes, and nothing is kept for it.
	p.setDown(false)
	waitEvent(t, c, "connected")
	for i := range 2000 {
		cctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Publish(cctx, "g", i) }()
		if i%2 == 0 {
			time.Sleep(time.Duration(i%7) * 10 * time.Microsecond)
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	mapsEmpty(t, c)
	if err := c.Join(ctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	mapsEmpty(t, c)
}

func TestRepliesDoNotWaitBehindUnreadMessages(t *testing.T) {
	s := startWith(t, zerorelay.ServerOptions{
		RPC: map[string]zerorelay.RPCHandler{
			"ping": func(ctx context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
				return json.RawMessage(`"pong"`), nil
			},
		},
	})
	const buffer, sent = 4, 200
	c := dial(t, s.URL(), "alice", zerorelay.WithMessageBuffer(buffer))
	if err := c.Join(ctx(t), "feed"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= sent; i++ {
		if _, err := s.Publish("feed", i); err != nil {
			t.Fatal(err)
		}
	}
	// The application reads nothing: the channel fills.
	for deadline := time.Now().Add(10 * time.Second); len(c.Messages()) < buffer; {
		if time.Now().After(deadline) {
			t.Fatalf("the channel holds %d", len(c.Messages()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Requests still complete (each within its context's bound).
	if err := c.Publish(ctx(t), "feed", "mine"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx(t), "other"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.RPC(ctx(t), "ping", nil); err != nil || string(got) != `"pong"` {
		t.Fatalf("rpc: %s, %v", got, err)
	}
	// Reading resumes: every message once, in order.
	for i := 1; i <= sent; i++ {
		m := next(t, c)
		var n int
		if err := m.Decode(&n); err != nil || n != i || m.Seq != uint64(i) {
			t.Fatalf("want %d, got %+v (%v)", i, m, err)
		}
	}
	none(t, c, 100*time.Millisecond)
}

func TestCloseReturnsWhileTheApplicationReadsNoMessages(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.URL(), "alice", zerorelay.WithMessageBuffer(1))
	if err := c.Join(ctx(t), "feed"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := s.Publish("feed", i); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(c.Messages()) < 1; {
		if time.Now().After(deadline) {
			t.Fatal("no message arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := signal(t, closed, "Close returning"); err != nil {
		t.Fatal(err)
	}
}

func TestSessionFollowsConnectResumeAndALostSession(t *testing.T) {
	// Long enough for a resume on a loaded machine, short for the test.
	s := startServer(t, map[string]any{"session": map[string]any{"ttl_ms": 1500}})
	p := newProxy(t, s.Addr())
	c := dial(t, p.url(), "alice")
	first := c.Session()
	if first == "" || first != sessionOf(t, s, "alice") {
		t.Fatalf("the client says %q, the server %q", first, sessionOf(t, s, "alice"))
	}
	// A resume keeps the id.
	if ok, err := s.DropConnection(first); !ok || err != nil {
		t.Fatalf("drop: %v %v", ok, err)
	}
	waitEvent(t, c, "disconnected") // past the first connection's event
	if e := waitEvent(t, c, "connected"); !e.Resumed || e.Session != first {
		t.Fatalf("want a resume of %s, got %+v", first, e)
	}
	if got := c.Session(); got != first {
		t.Fatalf("after a resume: %q, want %q", got, first)
	}
	// Offline past session.ttl_ms: the relay forgets the session.
	p.setDown(true)
	waitEvent(t, c, "disconnected")
	if got := c.Session(); got != "" {
		t.Fatalf("while disconnected: %q", got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if sessions, _ := s.Sessions(); len(sessions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session did not expire")
		}
	}
	p.setDown(false)
	e := waitEvent(t, c, "connected")
	if e.Resumed || e.LostSession != first || e.Session == first {
		t.Fatalf("want a new session replacing %s, got %+v", first, e)
	}
	if got := c.Session(); got != e.Session || got != sessionOf(t, s, "alice") {
		t.Fatalf("after a lost session: %q, want %q", got, e.Session)
	}
	c.Close()
	if got := c.Session(); got != "" {
		t.Fatalf("after Close: %q", got)
	}
}
