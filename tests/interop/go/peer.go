// The Go peer of the interop test (see ../README.md).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

func main() {
	url, name, others := os.Args[1], os.Args[2], strings.Split(os.Args[3], ",")
	n, _ := strconv.Atoi(os.Args[4])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := zerorelay.Dial(ctx, url, zerorelay.WithUser(name))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	if err := c.Join(ctx, "interop"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && in.Text() != "go" {
	}
	errs := make(chan error, n*(1+len(others)))
	go func() {
		for i := 0; i < n; i++ {
			// Submitted in order; the answers are awaited in the background.
			errs <- c.Publish(ctx, "interop", map[string]int{"i": i})
			for _, o := range others {
				errs <- c.SendToUser(ctx, o, map[string]int{"i": i})
			}
		}
	}()
	got := map[string][]int{}
	expected := len(others) * n * 2
	deadline := time.After(20 * time.Second)
	for count := 0; count < expected; count++ {
		select {
		case m := <-c.Messages():
			var d struct{ I int }
			if err := m.Decode(&d); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			key := m.From + ":" + m.Kind
			got[key] = append(got[key], d.I)
		case <-deadline:
			count = expected
		}
	}
	for i := 0; i < n*(1+len(others)); i++ {
		if err := <-errs; err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// Anything delivered twice would arrive now.
	extra := time.After(300 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case m := <-c.Messages():
			var d struct{ I int }
			_ = m.Decode(&d)
			key := m.From + ":" + m.Kind
			got[key] = append(got[key], d.I)
		case <-extra:
			waiting = false
		}
	}
	out, _ := json.Marshal(map[string]any{"name": name, "got": got})
	fmt.Println(string(out))
}
