package zerorelay_test

// Messages received per second through the SDK, against a plain Go
// WebSocket client (gorilla/websocket) reading the same stream from the same
// relay in the same run. Run with `make bench-go` (release library).

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

const benchPayload = `{"symbol":"ZRLY","price":101.25,"seq":0,"note":"sixty-four bytes of payload...."}`

// publishLoop publishes n messages from the host, pacing itself so that the
// subscriber's outbox (4,096 by default) is never overrun: at most `window`
// messages ahead of what the subscriber has read.
func publishLoop(b *testing.B, s *zerorelay.Server, n int, read *atomic.Int64, window int64) {
	data := json.RawMessage(benchPayload)
	for i := 0; i < n; i++ {
		for int64(i)-read.Load() > window {
			time.Sleep(50 * time.Microsecond)
		}
		if _, err := s.Publish("bench", data); err != nil {
			b.Error(err)
			return
		}
	}
}

func BenchmarkReceiveSDK(b *testing.B) {
	s, err := zerorelay.StartServer(map[string]any{"server": map[string]any{"listen": "127.0.0.1:0"},
		"limits": map[string]any{"slow_consumer_bytes": 1 << 30}, "session": map[string]any{"outbox_messages": 8192}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c, err := zerorelay.Dial(ctx, s.URL(), zerorelay.WithUser("bench"), zerorelay.WithMessageBuffer(4096))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	var read atomic.Int64
	b.ResetTimer()
	start := time.Now()
	go publishLoop(b, s, b.N, &read, 2048)
	for i := 0; i < b.N; i++ {
		m := <-c.Messages()
		if len(m.Data) == 0 {
			b.Fatal("empty message")
		}
		read.Add(1)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkReceiveGorilla(b *testing.B) {
	s, err := zerorelay.StartServer(map[string]any{"server": map[string]any{"listen": "127.0.0.1:0"},
		"limits": map[string]any{"slow_consumer_bytes": 1 << 30}, "session": map[string]any{"outbox_messages": 8192}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ws, _, err := websocket.DefaultDialer.Dial(s.URL(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	// The same protocol work the SDK does: hello, join, decode each
	// message, acknowledge every 256 (the engine's default ack.batch).
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","v":1,"user":"bench"}`))
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","id":1,"group":"bench"}`))
	for got := 0; got < 2; got++ {
		if _, _, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
	var read atomic.Int64
	b.ResetTimer()
	start := time.Now()
	go publishLoop(b, s, b.N, &read, 2048)
	for i := 0; i < b.N; i++ {
		_, raw, err := ws.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		var m struct {
			Type string          `json:"type"`
			Seq  uint64          `json:"seq"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || m.Type != "message" {
			b.Fatalf("%s %v", raw, err)
		}
		if m.Seq%256 == 0 {
			ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"ack","seq":%d}`, m.Seq)))
		}
		read.Add(1)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
