package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mailferry/mailferry/internal/store"
)

// The operator's --max-passes cap holds when many requests start passes
// on one mailbox at once. Each request that wins finishes its pass at
// once (a worker that fails fast), so the mailbox is free again while the
// other requests are between reading the count and creating their pass:
// a check outside the transaction lets them all through.
func TestMaxPassesConcurrent(t *testing.T) { eachEngine(t, testMaxPassesConcurrent) }

func testMaxPassesConcurrent(t *testing.T, st *store.Store) {
	s := newService(t, st)
	s.SetQueue(nopQueue{})
	const limit, requesters, rounds = 2, 20, 20
	s.SetMaxPasses(limit)
	ctx := context.Background()
	alice, _ := s.EnsureOwner(ctx, "alice@example.com")
	p, err := s.CreateProject(ctx, alice.ID, ProjectInput{Name: "p", Source: Endpoint{Host: "mail.old.example"}, DestinationPreset: "dest"})
	if err != nil {
		t.Fatal(err)
	}
	// Rounds on fresh mailboxes: a race lost once is a race lost.
	for round := range rounds {
		ms, err := s.AddMailboxes(ctx, alice.ID, p.ID, []MailboxInput{{SourceEmail: fmt.Sprintf("a%d@old.example", round),
			SourcePassword: "x", DestEmail: fmt.Sprintf("a%d@new.example", round), DestPassword: "y"}})
		if err != nil {
			t.Fatal(err)
		}
		mb := ms[0].ID
		var wg sync.WaitGroup
		errs := make(chan error, requesters)
		for range requesters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					pass, err := s.StartPass(ctx, alice.ID, p.ID, PassInput{Kind: PassFull, MailboxIDs: []string{mb}})
					var ie *InputError
					switch {
					case errors.As(err, &ie):
						return // over the cap: refused, as it should be
					case errors.Is(err, ErrConflict):
						continue // another request's pass holds the mailbox
					case err != nil:
						errs <- err
						return
					}
					if err := s.FinishMailboxPass(ctx, pass.ID, mb, Outcome{Status: StatusFailed, Error: "fails fast"}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var n int
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM mailbox_passes WHERE mailbox_id = $1`, mb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != limit {
			t.Fatalf("round %d: %d concurrent requests made %d migration passes of one mailbox; --max-passes allows %d", round, requesters, n, limit)
		}
	}
}
