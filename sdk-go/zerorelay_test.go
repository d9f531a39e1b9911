package zerorelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

func startServer(t *testing.T, config map[string]any) *zerorelay.Server {
	t.Helper()
	if config == nil {
		config = map[string]any{}
	}
	server, _ := config["server"].(map[string]any)
	if server == nil {
		server = map[string]any{}
		config["server"] = server
	}
	if _, ok := server["listen"]; !ok {
		server["listen"] = "127.0.0.1:0"
	}
	s, err := zerorelay.StartServer(config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, url, user string, opts ...zerorelay.Option) *zerorelay.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]zerorelay.Option{zerorelay.WithUser(user), zerorelay.WithReconnect(20*time.Millisecond, 200*time.Millisecond, 0)}, opts...)
	c, err := zerorelay.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func next(t *testing.T, c *zerorelay.Client) zerorelay.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatal("messages closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message in time")
	}
	return zerorelay.Message{}
}

func none(t *testing.T, c *zerorelay.Client, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(d):
	}
}

func TestDirectGroupAndBroadcastMessages(t *testing.T) {
	s := startServer(t, map[string]any{"features": map[string]any{"client_broadcast": true}})
	alice := dial(t, s.URL(), "alice")
	bob := dial(t, s.URL(), "bob")
	if err := bob.Join(ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish(ctx(t), "room", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	m := next(t, bob)
	var got struct{ N int }
	if err := m.Decode(&got); err != nil || got.N != 1 || m.From != "alice" || m.Group != "room" || m.Kind != "group" || m.Seq != 1 {
		t.Fatalf("got %+v (%v)", m, err)
	}
	if m.Time().Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("timestamp %v", m.Time())
	}
	if err := bob.SendToUser(ctx(t), "alice", "direct"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, alice); string(m.Data) != `"direct"` || m.Kind != "direct" {
		t.Fatalf("got %+v", m)
	}
	if err := alice.Broadcast(ctx(t), []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); string(m.Data) != `[1,2]` || m.Kind != "broadcast" {
		t.Fatalf("got %+v", m)
	}
	none(t, alice, 100*time.Millisecond)
	if err := alice.PublishEcho(ctx(t), "room", "echo"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); string(m.Data) != `"echo"` {
		t.Fatalf("got %+v", m)
	}
	// Host-originated.
	if n, err := s.Publish("room", "from host"); err != nil || n != 1 {
		t.Fatalf("publish from host: %d %v", n, err)
	}
	if m := next(t, bob); m.From != "" || m.FromSession != "" || string(m.Data) != `"from host"` {
		t.Fatalf("got %+v", m)
	}
	sessions, err := s.Sessions()
	if err != nil || len(sessions) != 2 {
		t.Fatalf("sessions %v %v", sessions, err)
	}
	if err := alice.SendToSession(ctx(t), sessionOf(t, s, "bob"), "to the session"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); string(m.Data) != `"to the session"` {
		t.Fatalf("got %+v", m)
	}
}

func waitEvent(t *testing.T, c *zerorelay.Client, typ string) zerorelay.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-c.Events():
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

func sessionOf(t *testing.T, s *zerorelay.Server, user string) string {
	t.Helper()
	sessions, err := s.Sessions()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range sessions {
		if x.User != nil && *x.User == user {
			return x.ID
		}
	}
	t.Fatalf("no session of %s", user)
	return ""
}

func TestTypedErrorsWorkWithErrorsIs(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.URL(), "alice")
	err := c.SendToUser(ctx(t), "nobody", 1)
	if !errors.Is(err, zerorelay.ErrNotFound) {
		t.Fatalf("want not_found, got %v", err)
	}
	var ze *zerorelay.Error
	if !errors.As(err, &ze) || ze.Message == "" {
		t.Fatalf("want a message, got %v", err)
	}
	if _, err := c.RPC(ctx(t), "nope", nil); !errors.Is(err, zerorelay.ErrNotFound) {
		t.Fatalf("want not_found, got %v", err)
	}
	if err := c.Join(ctx(t), "bad name"); !errors.Is(err, zerorelay.ErrInvalidArgument) {
		t.Fatalf("want invalid_argument, got %v", err)
	}
	if err := c.Publish(ctx(t), "room", make(chan int)); !errors.Is(err, zerorelay.ErrInvalidArgument) {
		t.Fatalf("want invalid_argument, got %v", err)
	}
	if _, err := s.Publish("bad name", 1); !errors.Is(err, zerorelay.ErrBadRequest) {
		t.Fatalf("want bad_request, got %v", err)
	}
	if _, err := s.SendToUser("ghost", 1); !errors.Is(err, zerorelay.ErrNotFound) {
		t.Fatalf("want not_found, got %v", err)
	}
}

func TestAuthFailureIsUnauthorized(t *testing.T) {
	s := startServer(t, map[string]any{"auth": map[string]any{"tokens": map[string]string{"good": "alice"}}})
	_, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken("bad"))
	if !errors.Is(err, zerorelay.ErrUnauthorized) {
		t.Fatalf("want unauthorized, got %v", err)
	}
	c, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithToken("good"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestResumeAcrossAForcedDisconnect(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.URL(), "alice")
	if err := c.Join(ctx(t), "feed"); err != nil {
		t.Fatal(err)
	}
	session := sessionOf(t, s, "alice")
	if ok, err := s.DropConnection(session); !ok || err != nil {
		t.Fatalf("drop: %v %v", ok, err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := s.Publish("feed", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		m := next(t, c)
		var n int
		m.Decode(&n)
		if n != i || m.Seq != uint64(i) {
			t.Fatalf("want %d, got %+v", i, m)
		}
	}
	none(t, c, 200*time.Millisecond)
	if got := sessionOf(t, s, "alice"); got != session {
		t.Fatalf("the session was not resumed: %s != %s", got, session)
	}
}

func TestOfflineQueueFlushesOnReconnect(t *testing.T) {
	s := startServer(t, nil)
	sub := dial(t, s.URL(), "sub")
	if err := sub.Join(ctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, s.Addr())
	pub := dial(t, p.url(), "pub")
	p.setDown(true)
	// While the network is down, publishes wait in the queue, in order.
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func(i int) { errs <- pub.Publish(ctx(t), "g", i) }(i)
	}
	none(t, sub, 200*time.Millisecond)
	p.setDown(false)
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 3 {
		seen[string(next(t, sub).Data)] = true
	}
	none(t, sub, 100*time.Millisecond)
}

func TestAFullOfflineQueueFailsFast(t *testing.T) {
	s := startServer(t, nil)
	p := newProxy(t, s.Addr())
	c := dial(t, p.url(), "alice", zerorelay.WithQueue(1, 1<<20, zerorelay.FailFast))
	p.setDown(true)
	waitEvent(t, c, "disconnected")
	first := make(chan error, 1)
	go func() { first <- c.Join(ctx(t), "a") }()
	time.Sleep(100 * time.Millisecond)
	if err := c.Join(ctx(t), "b"); !errors.Is(err, zerorelay.ErrQueueFull) {
		t.Fatalf("want queue_full, got %v", err)
	}
	p.setDown(false)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestContextCancellation(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := zerorelay.Dial(cancelled, "ws://127.0.0.1:9/ws"); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// Dialing a port nobody listens on gives up when the context ends.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := zerorelay.Dial(short, "ws://127.0.0.1:9/ws"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}
	// A request waiting offline stops waiting with its context.
	s := startServer(t, nil)
	c := dial(t, s.URL(), "alice")
	s.Close()
	waiting, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	if err := c.Join(waiting, "g"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	s := startServer(t, nil)
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		c := dial(t, s.URL(), "alice")
		if err := c.Join(ctx(t), "g"); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal("a second Close is fine:", err)
		}
		if err := c.Join(ctx(t), "g"); !errors.Is(err, zerorelay.ErrClosed) {
			t.Fatalf("want closed, got %v", err)
		}
		if _, ok := <-c.Messages(); ok {
			t.Fatal("messages stay open")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines leaked: %d before, %d after", before, n)
	}
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if sessions, _ := s.Sessions(); len(sessions) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("closed clients' sessions remain")
}

func TestLifecycleEventsAndLogger(t *testing.T) {
	s := startServer(t, nil)
	var logs logCollector
	c := dial(t, s.URL(), "alice", zerorelay.WithLogger(logs.logger()))
	if _, err := s.DropConnection(sessionOf(t, s, "alice")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for !(seen["disconnected"] && seen["reconnecting"] && seen["connected"]) {
		select {
		case e := <-c.Events():
			seen[e.Type] = true
			if e.Type == "disconnected" && !e.WillRetry {
				t.Fatalf("%+v", e)
			}
		case <-timeout:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if !logs.has("zerorelay: disconnected") {
		t.Fatal("lifecycle events reach the logger")
	}
}

func TestEveryErrorCodeHasASentinel(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "tests", "vectors", "codes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		ErrorCodes  []struct{ Code string } `json:"error_codes"`
		ClientCodes []string                `json:"client_codes"`
	}
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.ErrorCodes) == 0 || len(table.ClientCodes) == 0 {
		t.Fatal("empty code tables")
	}
	codes := table.ClientCodes
	for _, c := range table.ErrorCodes {
		codes = append(codes, c.Code)
	}
	for _, code := range codes {
		err := &zerorelay.Error{Code: code, Message: "x"}
		matched := false
		for _, s := range zerorelay.Sentinels() {
			if errors.Is(err, s) {
				matched = true
			}
		}
		if !matched {
			t.Errorf("no sentinel for %q", code)
		}
	}
}

func TestTokenProviderIsAskedOnEveryConnection(t *testing.T) {
	s := startServer(t, map[string]any{"auth": map[string]any{"tokens": map[string]string{"t-1": "alice", "t-2": "alice"}}})
	var asked atomic.Int32
	provider := func(ctx context.Context) (string, time.Duration, error) {
		n := asked.Add(1)
		if n > 2 {
			n = 2
		}
		return fmt.Sprintf("t-%d", n), 0, nil
	}
	c, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithTokenProvider(provider),
		zerorelay.WithReconnect(20*time.Millisecond, 200*time.Millisecond, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := s.DropConnection(sessionOf(t, s, "alice")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); asked.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if asked.Load() < 2 {
		t.Fatalf("provider asked %d times", asked.Load())
	}
	if err := c.Join(ctx(t), "g"); err != nil {
		t.Fatal(err)
	}
}

func TestAFailingTokenProviderIsUnauthorized(t *testing.T) {
	s := startServer(t, map[string]any{"auth": map[string]any{"tokens": map[string]string{"t-1": "alice"}}})
	provider := func(ctx context.Context) (string, time.Duration, error) { return "wrong", 0, nil }
	_, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithTokenProvider(provider))
	if !errors.Is(err, zerorelay.ErrUnauthorized) {
		t.Fatalf("want unauthorized, got %v", err)
	}
}

func TestAnEmbeddedServerDefaultsToAFreeLoopbackPort(t *testing.T) {
	s, err := zerorelay.StartServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":8080") {
		t.Fatalf("want a free port on 127.0.0.1, got %s", s.Addr())
	}
	if _, err := zerorelay.StartServer(map[string]any{"server": "x"}); err == nil || !strings.Contains(err.Error(), "`server` must be an object") {
		t.Fatalf("want a refusal of a bad server section, got %v", err)
	}
}

func TestTheServerReportsSessionEvents(t *testing.T) {
	s := startServer(t, nil)
	events := s.Events()
	c := dial(t, s.URL(), "alice")
	want := func(typ string) zerorelay.ServerEvent {
		t.Helper()
		select {
		case e := <-events:
			if e.Type != typ {
				t.Fatalf("want %s, got %+v", typ, e)
			}
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", typ)
		}
		return zerorelay.ServerEvent{}
	}
	e := want("connected")
	if e.User != "alice" || e.Resumed || !strings.HasPrefix(e.Remote, "127.0.0.1:") {
		t.Fatalf("connected: %+v", e)
	}
	s.DropConnection(e.Session)
	want("disconnected")
	if r := want("connected"); !r.Resumed || r.Session != e.Session {
		t.Fatalf("want a resume of %s, got %+v", e.Session, r)
	}
	c.Close()
	want("disconnected")
	if end := want("ended"); end.Reason != "session closed" {
		t.Fatalf("ended: %+v", end)
	}
	s.Close()
	select {
	case _, open := <-events:
		if open {
			t.Fatal("want the channel closed after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel stayed open after Close")
	}
}

func TestRevokingAUserOrASessionClosesItsClientsForGood(t *testing.T) {
	s := startServer(t, nil)
	a1 := dial(t, s.URL(), "alice")
	a2 := dial(t, s.URL(), "alice")
	b := dial(t, s.URL(), "bob")
	if n, err := s.RevokeUser("alice"); err != nil || n != 2 {
		t.Fatalf("RevokeUser: %d, %v", n, err)
	}
	if ok, err := s.RevokeSession(sessionOf(t, s, "bob")); err != nil || !ok {
		t.Fatalf("RevokeSession: %v, %v", ok, err)
	}
	for _, c := range []*zerorelay.Client{a1, a2, b} {
		if e := waitEvent(t, c, "closed"); !strings.Contains(e.Reason, "revoked") {
			t.Fatalf("closed for %q", e.Reason)
		}
		if err := c.Join(ctx(t), "g"); !errors.Is(err, zerorelay.ErrClosed) {
			t.Fatalf("a revoked client still joins: %v", err)
		}
	}
	if sessions, err := s.Sessions(); err != nil || len(sessions) != 0 {
		t.Fatalf("revoked sessions remain: %v %v", sessions, err)
	}
	if ok, err := s.RevokeSession("s_nope"); err != nil || ok {
		t.Fatalf("RevokeSession of nothing: %v, %v", ok, err)
	}
	if n, err := s.RevokeUser("nobody"); err != nil || n != 0 {
		t.Fatalf("RevokeUser of nobody: %d, %v", n, err)
	}
}

func TestPresenceAcrossTabsAndUsers(t *testing.T) {
	s := startServer(t, nil)
	w := dial(t, s.URL(), "watcher")
	if err := w.JoinWithPresence(ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	tab1 := dial(t, s.URL(), "alice")
	tab2 := dial(t, s.URL(), "alice")
	for _, c := range []*zerorelay.Client{tab1, tab2} {
		if err := c.Join(ctx(t), "room"); err != nil {
			t.Fatal(err)
		}
	}
	if e := waitEvent(t, w, "presence_change"); e.Group != "room" || e.User != "alice" || e.Change != "join" {
		t.Fatalf("got %+v", e)
	}
	p, err := tab1.Presence(ctx(t), "room")
	if err != nil {
		t.Fatal(err)
	}
	want := zerorelay.Presence{Group: "room", Members: []zerorelay.PresenceMember{{User: "alice", Sessions: 2}, {User: "watcher", Sessions: 1}}}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	if hp, err := s.Presence("room"); err != nil || fmt.Sprint(hp) != fmt.Sprint(want) {
		t.Fatalf("the server says %+v (%v)", hp, err)
	}
	if _, err := s.Presence("not a name"); !errors.Is(err, zerorelay.ErrBadRequest) {
		t.Fatalf("a bad name: %v", err)
	}
	// Only the user's last session leaving is a leave.
	if err := tab1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tab2.Close(); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, w, "presence_change"); e.User != "alice" || e.Change != "leave" {
		t.Fatalf("got %+v", e)
	}
}
