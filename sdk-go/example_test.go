package zerorelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"time"

	zerorelay "github.com/zerorelay/zerorelay/sdk-go"
)

// An embedded relay whose handlers are written in Go (the README's example).
func ExampleStartServerWith() {
	tokens := map[string]string{"t-alice": "alice"}
	s, err := zerorelay.StartServerWith(zerorelay.ServerOptions{
		Authenticate: func(ctx context.Context, r zerorelay.AuthRequest) (zerorelay.Identity, error) {
			user, ok := tokens[r.Token]
			if !ok {
				return zerorelay.Identity{}, zerorelay.ErrUnauthorized // refused: 4001
			}
			return zerorelay.Identity{User: user}, nil
		},
		Authorize: func(ctx context.Context, r zerorelay.AuthorizeRequest) error {
			if r.Action == "join" && r.Resource == "admins" && r.User != "root" {
				return errors.New("admins only") // forbidden, with this message
			}
			return nil
		},
		RPC: map[string]zerorelay.RPCHandler{
			"time": func(ctx context.Context, c zerorelay.RPCCall) (json.RawMessage, error) {
				return json.Marshal(time.Now().Unix())
			},
		},
		Validate: map[string]zerorelay.Validator{
			"chat-*": func(ctx context.Context, r zerorelay.ValidateRequest) (zerorelay.Verdict, error) {
				if len(r.Data) > 1000 {
					return zerorelay.Reject("too_large", "keep it short"), nil
				}
				return zerorelay.Accept(), nil
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	log.Printf("serving %s", s.URL())
}
