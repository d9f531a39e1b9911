package zerorelay_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

const jwtSecret = "a-test-secret-that-is-long-enough-for-hs256"

// hs256 signs claims as a JWT with HMAC-SHA256, from the standard library alone.
func hs256(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	part := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := part(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestATokenProviderKeepsOneSessionAliveAcrossExpiringJWTs(t *testing.T) {
	s := startServer(t, map[string]any{"auth": map[string]any{"jwt": map[string]any{"secret": jwtSecret, "leeway_s": 0}}})
	var mu sync.Mutex
	var expiries []int64
	// A plain token: no validity is given (0), so only the relay's
	// refresh_required makes the client ask again. exp is whole seconds,
	// rounded up so that each token lives two seconds or more: the relay's
	// notice comes a tenth of the lifetime ahead of expiry, and rounding
	// down would leave tokens of barely one second and a notice only
	// ~110 ms ahead: a stall that long would let one lapse.
	provider := func(context.Context) (string, time.Duration, error) {
		exp := (time.Now().UnixMilli()+999)/1000 + 2
		mu.Lock()
		expiries = append(expiries, exp)
		mu.Unlock()
		return hs256(t, jwtSecret, map[string]any{"sub": "alice", "exp": exp}), 0, nil
	}
	c, err := zerorelay.Dial(ctx(t), s.URL(), zerorelay.WithTokenProvider(provider),
		zerorelay.WithReconnect(20*time.Millisecond, 200*time.Millisecond, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	session := sessionOf(t, s, "alice")

	// Three expiries: the first three tokens each replaced by the next one
	// before it ran out (about 6.5 s).
	third := int64(0)
	for deadline := time.Now().Add(20 * time.Second); third == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		if len(expiries) >= 4 {
			third = expiries[2]
		}
		mu.Unlock()
	}
	if third == 0 {
		t.Fatalf("the provider was asked %d times in 20 s, want at least 4", len(expiries))
	}
	time.Sleep(time.Until(time.Unix(third, 0)) + 20*time.Millisecond)
	if err := c.Join(ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishEcho(ctx(t), "room", "still here"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c); string(m.Data) != `"still here"` || m.From != "alice" {
		t.Fatalf("got %+v", m)
	}

	// The events so far: one welcome, for that session, and nothing else
	// (a credential that lapsed would show as disconnected, reconnecting
	// and a second connected).
	var seen []zerorelay.Event
	for drained := false; !drained; {
		select {
		case e := <-c.Events():
			seen = append(seen, e)
		default:
			drained = true
		}
	}
	if len(seen) != 1 || seen[0].Type != "connected" || seen[0].Session != session || seen[0].Resumed {
		t.Fatalf("want only the first welcome, got %+v", seen)
	}
	sessions, err := s.Sessions()
	if err != nil || len(sessions) != 1 || sessions[0].ID != session || !sessions[0].Connected {
		t.Fatalf("want the one session %s, got %+v (%v)", session, sessions, err)
	}
}
