// The README's Go quick start, against the relay at ZR_URL. The install test
// copies this file into a fresh module that requires the SDK from dist/.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/zerorelay/zerorelay/sdk-go"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := os.Getenv("ZR_URL")
	alice, err := zerorelay.Dial(ctx, url, zerorelay.WithUser("alice"))
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := zerorelay.Dial(ctx, url, zerorelay.WithUser("bob"))
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	if err := bob.Join(ctx, "room"); err != nil {
		log.Fatal(err)
	}
	if err := alice.Publish(ctx, "room", map[string]string{"text": "hello"}); err != nil {
		log.Fatal(err)
	}
	select {
	case m := <-bob.Messages():
		var data struct{ Text string }
		if err := json.Unmarshal(m.Data, &data); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s\n", m.From, data.Text) // alice: hello
	case <-ctx.Done():
		log.Fatal("no message within 30 s")
	}
}
