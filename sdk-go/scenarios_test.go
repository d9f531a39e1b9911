package zerorelay_test

// The scenario suite (tests/scenarios/scenarios.json) run with the Go SDK:
// each row is a subtest against a fresh embedded relay. The step vocabulary
// is in tests/scenarios/README.md; a step this runner does not implement
// fails its row. Identifiers start with scen so that they cannot collide
// with the other test files of the package.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

type scenStep = map[string]any

type scenSuite struct {
	WaitMS     int                 `json:"wait_ms"`
	Vocabulary map[string][]string `json:"vocabulary"`
	Scenarios  []struct {
		Name   string         `json:"name"`
		Config map[string]any `json:"config"`
		Steps  []scenStep     `json:"steps"`
	} `json:"scenarios"`
}

func TestScenarios(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "tests", "scenarios", "scenarios.json"))
	if err != nil {
		t.Fatal(err)
	}
	var suite scenSuite
	if err := json.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	for _, row := range suite.Scenarios {
		t.Run(row.Name, func(t *testing.T) {
			r := &scenRun{t: t, wait: time.Duration(suite.WaitMS) * time.Millisecond,
				peers: map[string]*scenPeer{}, pending: map[string]*scenPending{}}
			r.start(row.Config)
			for i, step := range row.Steps {
				allowed, ok := suite.Vocabulary[scenStr(step, "do")]
				if !ok {
					t.Fatalf("step %d: unknown step %q", i+1, step["do"])
				}
				for k := range step {
					if k != "do" && !slices.Contains(allowed, k) {
						t.Fatalf("step %d (%s): unknown key %s", i+1, step["do"], k)
					}
				}
				if err := r.step(step); err != nil {
					text, _ := json.Marshal(step)
					t.Fatalf("step %d %s: %v", i+1, text, err)
				}
			}
		})
	}
}

func scenHS256(secret string, claims map[string]any) string {
	part := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := part(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func scenStr(step scenStep, key string) string { s, _ := step[key].(string); return s }
func scenNum(step scenStep, key string) int    { n, _ := step[key].(float64); return int(n) }

// scenNull is how an empty string of the Go API reads in a scenario: null.
func scenNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type scenPeer struct {
	c   *zerorelay.Client
	net *proxy

	mu     sync.Mutex
	tokens []int64 // each token's exp; 0 for a call that failed
	events []map[string]any
	msgs   []zerorelay.Message
	cursor int
	read   int
}

// scenOutcome is a request's result (JSON) or its error code.
type scenOutcome struct {
	result any
	err    string
}

type scenPending struct {
	done chan struct{}
	out  scenOutcome
}

// scenQueued reports the first time a Client method waits on Done: the
// methods queue the request before they wait for its answer. It lets the
// runner start requests without waiting for their answers and still make
// them in step order.
type scenQueued struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (q *scenQueued) Done() <-chan struct{} {
	q.once.Do(func() { close(q.waiting) })
	return q.Context.Done()
}

type scenRun struct {
	t       *testing.T
	wait    time.Duration
	ctx     context.Context
	server  *zerorelay.Server
	stopped bool
	peers   map[string]*scenPeer
	pending map[string]*scenPending
}

func (r *scenRun) start(config map[string]any) {
	cfg := map[string]any{}
	for k, v := range config {
		cfg[k] = v
	}
	server := map[string]any{"listen": "127.0.0.1:0"}
	if s, ok := cfg["server"].(map[string]any); ok {
		for k, v := range s {
			server[k] = v
		}
	}
	cfg["server"] = server
	s, err := zerorelay.StartServerWith(zerorelay.ServerOptions{Config: cfg, RPC: map[string]zerorelay.RPCHandler{
		"echo": func(_ context.Context, call zerorelay.RPCCall) (json.RawMessage, error) {
			data := call.Data
			if len(data) == 0 {
				data = json.RawMessage("null")
			}
			return json.Marshal(map[string]any{"data": data, "user": scenNull(call.User)})
		},
	}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.server = s
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	r.t.Cleanup(func() {
		cancel()
		for _, p := range r.peers {
			p.c.Close()
		}
		if !r.stopped {
			s.Close()
		}
	})
}

// until polls check until it holds, for at most the suite's wait.
func (r *scenRun) until(what string, check func() bool) error {
	deadline := time.Now().Add(r.wait)
	for !check() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %s", what, r.wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func (r *scenRun) peer(name string) (*scenPeer, error) {
	p, ok := r.peers[name]
	if !ok {
		return nil, fmt.Errorf("no client %q in this scenario", name)
	}
	return p, nil
}

// session is the session of a client's latest welcome.
func (r *scenRun) session(name string) (string, error) {
	p, err := r.peer(name)
	if err != nil {
		return "", err
	}
	var s string
	err = r.until("session of "+name, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.events {
			if e["type"] == "connected" {
				s = e["session"].(string)
			}
		}
		return s != ""
	})
	return s, err
}

// expectEvent waits for the next event after the last one matched that has
// the step's fields.
func (r *scenRun) expectEvent(step scenStep, typ string, fields ...string) error {
	p, err := r.peer(scenStr(step, "client"))
	if err != nil {
		return err
	}
	return r.until(fmt.Sprintf("%s event like %v", typ, step), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
	next:
		for i := p.cursor; i < len(p.events); i++ {
			e := p.events[i]
			if e["type"] != typ {
				continue
			}
			for _, f := range fields {
				if want, ok := step[f]; ok && !reflect.DeepEqual(e[f], want) {
					continue next
				}
			}
			p.cursor = i + 1
			return true
		}
		return false
	})
}

func (r *scenRun) connect(step scenStep) error {
	p := &scenPeer{}
	opts := []zerorelay.Option{zerorelay.WithReconnect(20*time.Millisecond, 200*time.Millisecond, 0)}
	if u, ok := step["user"].(string); ok {
		opts = append(opts, zerorelay.WithUser(u))
	}
	if tok, ok := step["token"].(string); ok {
		opts = append(opts, zerorelay.WithToken(tok))
	}
	if q, ok := step["queue"].(map[string]any); ok {
		opts = append(opts, zerorelay.WithQueue(scenNum(q, "max_messages"), 1<<20, zerorelay.FailFast))
	}
	if spec, ok := step["token_provider"].(map[string]any); ok {
		var fail []int
		if f, ok := spec["fail_calls"].([]any); ok {
			for _, n := range f {
				fail = append(fail, int(n.(float64)))
			}
		}
		opts = append(opts, zerorelay.WithTokenProvider(func(context.Context) (string, time.Duration, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			call := len(p.tokens) + 1
			if slices.Contains(fail, call) {
				p.tokens = append(p.tokens, 0)
				return "", 0, fmt.Errorf("the scenario fails call %d", call)
			}
			exp := int64(math.Ceil(float64(time.Now().UnixNano())/1e9)) + int64(scenNum(spec, "ttl_s"))
			p.tokens = append(p.tokens, exp)
			return scenHS256(scenStr(spec, "jwt_secret"), map[string]any{"sub": scenStr(spec, "sub"), "exp": exp}), 0, nil
		}))
	}
	url := r.server.URL()
	if step["proxy"] == true {
		p.net = newProxy(r.t, r.server.Addr())
		url = p.net.url()
	}
	c, err := zerorelay.Dial(r.ctx, url, opts...)
	if _, ok := step["error"]; ok {
		// A connect that must fail: no client is kept.
		var out scenOutcome
		var ze *zerorelay.Error
		switch {
		case errors.As(err, &ze):
			out.err = ze.Code
		case err != nil:
			out.err = err.Error()
		default:
			c.Close()
		}
		return scenCheck(step, out)
	}
	if err != nil {
		return err
	}
	p.c = c
	r.peers[scenStr(step, "as")] = p
	go func() {
		for m := range c.Messages() {
			p.mu.Lock()
			p.msgs = append(p.msgs, m)
			p.mu.Unlock()
		}
	}()
	go func() {
		for e := range c.Events() {
			var ev map[string]any
			switch e.Type {
			case "connected":
				ev = map[string]any{"session": e.Session, "user": scenNull(e.User), "resumed": e.Resumed}
			case "disconnected":
				ev = map[string]any{"code": nil, "will_retry": e.WillRetry}
				if e.CloseCode != 0 {
					ev["code"] = float64(e.CloseCode)
				}
			case "error":
				ev = map[string]any{"code": e.ErrorCode}
			case "closed":
				ev = map[string]any{}
			default:
				continue
			}
			ev["type"] = e.Type
			p.mu.Lock()
			p.events = append(p.events, ev)
			p.mu.Unlock()
		}
	}()
	return nil
}

// call makes the SDK call a request step names.
func (r *scenRun) call(ctx context.Context, c *zerorelay.Client, step scenStep, session string) scenOutcome {
	var res json.RawMessage
	var err error
	switch step["do"] {
	case "join":
		err = c.Join(ctx, scenStr(step, "group"))
	case "leave":
		err = c.Leave(ctx, scenStr(step, "group"))
	case "publish":
		if step["echo"] == true {
			err = c.PublishEcho(ctx, scenStr(step, "group"), step["data"])
		} else {
			err = c.Publish(ctx, scenStr(step, "group"), step["data"])
		}
	case "send":
		if to, ok := step["to"].(string); ok {
			err = c.SendToUser(ctx, to, step["data"])
		} else {
			err = c.SendToSession(ctx, session, step["data"])
		}
	case "broadcast":
		err = c.Broadcast(ctx, step["data"])
	case "rpc":
		res, err = c.RPC(ctx, scenStr(step, "method"), step["data"])
	}
	var ze *zerorelay.Error
	switch {
	case errors.As(err, &ze):
		return scenOutcome{err: ze.Code}
	case err != nil:
		return scenOutcome{err: err.Error()}
	}
	var out scenOutcome
	if len(res) > 0 {
		if err := json.Unmarshal(res, &out.result); err != nil {
			return scenOutcome{err: "undecodable result: " + err.Error()}
		}
	}
	return out
}

// check compares an outcome with a step's error / result.
func scenCheck(step scenStep, out scenOutcome) error {
	if want, ok := step["error"]; ok {
		if out.err != want {
			return fmt.Errorf("expected error %v, got %+v", want, out)
		}
		return nil
	}
	if out.err != "" {
		return fmt.Errorf("expected success, got error %s", out.err)
	}
	if want, ok := step["result"]; ok && !reflect.DeepEqual(out.result, want) {
		return fmt.Errorf("expected result %v, got %v", want, out.result)
	}
	return nil
}

func (r *scenRun) request(step scenStep) error {
	p, err := r.peer(scenStr(step, "client"))
	if err != nil {
		return err
	}
	var session string
	if name, ok := step["session_of"].(string); ok {
		if session, err = r.session(name); err != nil {
			return err
		}
	}
	if name, ok := step["pending"].(string); ok {
		q := &scenQueued{Context: r.ctx, waiting: make(chan struct{})}
		pend := &scenPending{done: make(chan struct{})}
		r.pending[name] = pend
		go func() { pend.out = r.call(q, p.c, step, session); close(pend.done) }()
		select {
		case <-q.waiting:
		case <-pend.done:
		case <-time.After(r.wait):
			return fmt.Errorf("the request was not made within %s", r.wait)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.wait)
	defer cancel()
	return scenCheck(step, r.call(ctx, p.c, step, session))
}

func (r *scenRun) step(step scenStep) error {
	var p *scenPeer
	if name, ok := step["client"].(string); ok {
		var err error
		if p, err = r.peer(name); err != nil {
			return err
		}
	}
	s := r.server
	hostTarget := func() (string, error) { return r.session(scenStr(step, "client")) }
	switch kind := scenStr(step, "do"); kind {
	case "connect":
		return r.connect(step)
	case "close":
		return p.c.Close()
	case "join", "leave", "publish", "send", "broadcast", "rpc":
		return r.request(step)
	case "await":
		pend, ok := r.pending[scenStr(step, "pending")]
		if !ok {
			return fmt.Errorf("no pending request %v", step["pending"])
		}
		select {
		case <-pend.done:
			return scenCheck(step, pend.out)
		case <-time.After(r.wait):
			return fmt.Errorf("no answer within %s", r.wait)
		}
	case "expect_message":
		var m zerorelay.Message
		err := r.until("message on "+scenStr(step, "client"), func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.read < len(p.msgs) {
				m = p.msgs[p.read]
				p.read++
				return true
			}
			return false
		})
		if err != nil {
			return err
		}
		var data any
		if err := json.Unmarshal(m.Data, &data); err != nil {
			return err
		}
		got := map[string]any{"from": scenNull(m.From), "kind": m.Kind, "group": scenNull(m.Group), "data": data}
		for _, f := range []string{"from", "kind", "group", "data"} {
			if want, ok := step[f]; ok && !reflect.DeepEqual(got[f], want) {
				return fmt.Errorf("message %v should have %s %v", got, f, want)
			}
		}
		return nil
	case "expect_no_message":
		time.Sleep(time.Duration(scenNum(step, "within_ms")) * time.Millisecond)
		p.mu.Lock()
		defer p.mu.Unlock()
		if extra := p.msgs[p.read:]; len(extra) > 0 {
			return fmt.Errorf("no message should have arrived, got %d", len(extra))
		}
		return nil
	case "expect_connected":
		return r.expectEvent(step, "connected", "user", "resumed")
	case "expect_disconnect":
		return r.expectEvent(step, "disconnected", "code", "will_retry")
	case "expect_error":
		return r.expectEvent(step, "error", "code")
	case "expect_closed":
		return r.expectEvent(step, "closed")
	case "expect_no_event":
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.events {
			if e["type"] == step["event"] {
				return fmt.Errorf("unexpected event %v", e)
			}
		}
		return nil
	case "expect_sessions":
		return r.until(fmt.Sprintf("%d sessions of %s", scenNum(step, "count"), step["user"]), func() bool {
			list, err := s.Sessions()
			n := 0
			for _, x := range list {
				if x.User != nil && *x.User == step["user"] {
					n++
				}
			}
			return err == nil && n == scenNum(step, "count")
		})
	case "outlive_token":
		// Token n+1 was issued (the relay asked before n expired) and n's
		// expiry has passed.
		n := scenNum(step, "token")
		return r.until(fmt.Sprintf("the expiry of token %d", n), func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.tokens) > n && p.tokens[n-1] != 0 && time.Now().Unix() >= p.tokens[n-1]+1
		})
	case "cut", "kick", "revoke":
		session, err := hostTarget()
		if err != nil {
			return err
		}
		var existed bool
		switch kind {
		case "cut":
			existed, err = s.DropConnection(session)
		case "kick":
			existed, err = s.Disconnect(session)
		default:
			existed, err = s.RevokeSession(session)
		}
		if err == nil && !existed {
			err = fmt.Errorf("%s: no session %s", kind, session)
		}
		return err
	case "offline", "online":
		if p.net == nil {
			return fmt.Errorf(`%s needs a client connected with "proxy": true`, kind)
		}
		p.net.setDown(kind == "offline")
		return nil
	case "stop_server":
		r.stopped = true
		return s.Close()
	case "host_publish":
		_, err := s.Publish(scenStr(step, "group"), step["data"])
		return err
	case "host_send":
		if to, ok := step["to"].(string); ok {
			_, err := s.SendToUser(to, step["data"])
			return err
		}
		session, err := r.session(scenStr(step, "session_of"))
		if err != nil {
			return err
		}
		return s.SendToSession(session, step["data"])
	case "host_broadcast":
		_, err := s.Broadcast(step["data"])
		return err
	default:
		return fmt.Errorf("the Go runner does not implement step %q", kind)
	}
}
