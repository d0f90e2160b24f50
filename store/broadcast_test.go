package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"abox/accounts"
)

// addAccounts creates n accounts quickly, many per transaction.
func addAccounts(t testing.TB, s *Store, n int) {
	t.Helper()
	if ok, _ := s.HasDomain("example.kz"); !ok {
		s.AddDomain(ctx, "example.kz", op)
	}
	for start := 0; start < n; start += 500 {
		err := s.update(ctx, func(tx *txn) error {
			for i := start; i < min(start+500, n); i++ {
				if _, err := tx.createAccount(accounts.Account{Login: fmt.Sprintf("user%06d", i), Domain: "example.kz"}, Audit{Actor: ActorSystem}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestBroadcastResumesWithoutDuplicatesOrGaps(t *testing.T) {
	s, _ := openTest(t)
	const n = 10_000
	addAccounts(t, s, n)
	// One full mailbox is skipped and reported.
	full, _ := s.Account("user000042@example.kz")
	body := msg(7)
	b, resumed, err := s.StartBroadcast(ctx, Broadcast{Source: "src", Sender: "kazpost"}, body, nil, false)
	if err != nil || resumed {
		t.Fatal(err, resumed)
	}
	pick := func(a *accounts.Account) (Recipient, error) {
		if a.ID == full.ID {
			return Recipient{MaxMessages: -1 + 1, MaxBytes: 1}, nil
		}
		return Recipient{NotReceived: true}, nil
	}
	// Run a third of it, then "crash": forget the record in hand.
	for i := 0; i < 3; i++ {
		if b, err = s.BroadcastStep(ctx, b.ID, 1000, pick); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, s)
	again, resumed, err := s.StartBroadcast(ctx, Broadcast{Source: "src", Sender: "kazpost"}, body, nil, false)
	if err != nil || !resumed || again.ID != b.ID || again.Cursor != b.Cursor {
		t.Fatalf("resume: %+v resumed=%v err=%v", again, resumed, err)
	}
	// A cancelled context stops nothing half-way: each step is whole.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.BroadcastStep(cctx, b.ID, 1000, pick); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled step: %v", err)
	}
	for !again.Done {
		if again, err = s.BroadcastStep(ctx, again.ID, 1000, pick); err != nil {
			t.Fatal(err)
		}
	}
	if again.Delivered != n-1 || again.Skipped != 1 || again.Scanned != n {
		t.Fatalf("final %+v", again)
	}
	rep := mustCheck(t, s)
	if rep.Bodies != 1 || rep.Messages != n-1 {
		t.Fatalf("bodies %d messages %d", rep.Bodies, rep.Messages)
	}
	// Every account but the full one has exactly one copy.
	for _, addr := range []string{"user000000@example.kz", "user005000@example.kz", "user009999@example.kz"} {
		a, _ := s.Account(addr)
		if u, _ := s.Usage(a.ID); u.Messages != 1 {
			t.Fatalf("%s has %d messages", addr, u.Messages)
		}
	}
}
