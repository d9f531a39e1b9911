// Command go-chat is a terminal chat client on the Zerorelay Go SDK:
//
//	go run . -url ws://127.0.0.1:8080/ws -user alice -room lobby
//
// Each line typed is published to the room; each message in the room is
// printed. Reconnection, resume and the offline queue are the SDK's.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

type line struct {
	Text string `json:"text"`
}

// chat joins room, publishes every line read from in, and writes every
// message of the room to out until in ends.
func chat(ctx context.Context, c *zerorelay.Client, room string, in io.Reader, out io.Writer) error {
	if err := c.Join(ctx, room); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range c.Messages() {
			var l line
			if m.Decode(&l) == nil && l.Text != "" {
				fmt.Fprintf(out, "<%s> %s\n", m.From, l.Text)
			}
		}
	}()
	scanner := bufio.NewScanner(in)
	for scanner.Scan() {
		if err := c.Publish(ctx, room, line{Text: scanner.Text()}); err != nil {
			fmt.Fprintln(os.Stderr, "not sent:", err)
		}
	}
	c.Close()
	<-done
	return scanner.Err()
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "relay URL")
	user := flag.String("user", "guest", "user name (development mode)")
	room := flag.String("room", "lobby", "room to join")
	flag.Parse()
	ctx := context.Background()
	c, err := zerorelay.Dial(ctx, *url, zerorelay.WithUser(*user))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s joined %s; type to talk, Ctrl-D to leave.\n", *user, *room)
	if err := chat(ctx, c, *room, os.Stdin, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
