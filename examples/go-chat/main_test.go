package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTwoChatClientsTalkThroughTheRelay(t *testing.T) {
	s, err := zerorelay.StartServer(map[string]any{"server": map[string]any{"listen": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, err := zerorelay.Dial(ctx, s.URL(), zerorelay.WithUser("alice"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := zerorelay.Dial(ctx, s.URL(), zerorelay.WithUser("bob"))
	if err != nil {
		t.Fatal(err)
	}
	var heard safeBuffer
	aliceIn, aliceWrite := io.Pipe()
	go chat(ctx, alice, "lobby", aliceIn, &heard)
	bobIn, bobWrite := io.Pipe()
	go chat(ctx, bob, "lobby", bobIn, io.Discard)
	// Both have joined once the group has two members.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if g, _ := s.Groups(); len(g) == 1 && g[0].Members == 2 {
			break
		}
	}
	bobWrite.Write([]byte("hello alice\n"))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(heard.String(), "<bob> hello alice") {
			break
		}
	}
	if !strings.Contains(heard.String(), "<bob> hello alice") {
		t.Fatalf("alice heard %q", heard.String())
	}
	aliceWrite.Close()
	bobWrite.Close()
}
