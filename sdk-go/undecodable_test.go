package zerorelay_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

// sendRaw sends each payload (raw JSON text) to user `to` from a plain
// WebSocket peer: the SDK itself cannot encode a payload deeper than
// encoding/json allows.
func sendRaw(t *testing.T, url, to string, payloads ...string) {
	t.Helper()
	// A plain peer on purpose: it is the hostile sender here, not an SDK
	// client, so it writes the protocol's frames itself.
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","v":1,"user":"alice"}`))
	if _, w, err := ws.ReadMessage(); err != nil || !strings.Contains(string(w), `"welcome"`) {
		t.Fatalf("no welcome: %s %v", w, err)
	}
	for i, p := range payloads {
		frame := fmt.Sprintf(`{"type":"send","id":%d,"to":%q,"data":%s}`, i+1, to, p)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	for range payloads {
		if _, r, err := ws.ReadMessage(); err != nil || !strings.Contains(string(r), `"ok"`) {
			t.Fatalf("want ok, got %s %v", r, err)
		}
	}
	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

func TestAPayloadTooDeepToDecodeIsUndecodableForItsSeqAndTheRestArrives(t *testing.T) {
	s := startServer(t, map[string]any{"limits": map[string]any{"max_json_depth": 100000}})
	bob := dial(t, s.URL(), "bob")
	// Deeper than encoding/json's nesting limit of 10,000.
	deep := strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001)
	sendRaw(t, s.URL(), "bob", "1", deep, "3")

	got := []zerorelay.Message{next(t, bob), next(t, bob), next(t, bob)}
	for i, m := range got {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
	}
	var n int
	if err := got[0].Decode(&n); err != nil || n != 1 {
		t.Fatalf("message 1: %d %v", n, err)
	}
	if string(got[1].Data) != deep {
		t.Fatal("the deep payload is not passed on byte for byte")
	}
	var v any
	err := got[1].Decode(&v)
	var ze *zerorelay.Error
	if !errors.Is(err, zerorelay.ErrUndecodable) || !errors.As(err, &ze) || ze.Seq != 2 {
		t.Fatalf("want undecodable for seq 2, got %v", err)
	}
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Fatalf("want the decoder's error as the cause, got %v", err)
	}
	if err := got[2].Decode(&n); err != nil || n != 3 {
		t.Fatalf("message 3: %d %v", n, err)
	}

	// Still connected, still acknowledging, still sending and receiving.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sess zerorelay.SessionInfo
		all, err := s.Sessions()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range all {
			if x.User != nil && *x.User == "bob" {
				sess = x
			}
		}
		if sess.Connected && sess.Unacked == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's session: %+v", sess)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := bob.Join(ctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	if err := bob.PublishEcho(ctx(t), "g", "after"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); m.Seq != 4 || string(m.Data) != `"after"` {
		t.Fatalf("want seq 4 \"after\", got %+v", m)
	}
}
