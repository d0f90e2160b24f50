package store

import (
	"testing"
	"time"

	"abox/accounts"
)

// TestLoginHistory: records come back newest first and per account,
// pruning removes exactly the old ones in small batches, and purging an
// account's content removes its history.
func TestLoginHistory(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "a@example.kz")
	b := addAccount(t, s, "b@example.kz")
	t0 := clk.Now()
	for i := range 5 {
		r := LoginRecord{At: t0.Add(time.Duration(i) * time.Hour), Service: "imap", Address: "192.0.2.1", Outcome: "ok"}
		if err := s.RecordLogin(ctx, a.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	// Same instant twice: both kept.
	for range 2 {
		if err := s.RecordLogin(ctx, b.ID, LoginRecord{At: t0, Service: "submission", Address: "198.51.100.2", Outcome: "failed"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Logins(a.ID, 0)
	if err != nil || len(got) != 5 {
		t.Fatalf("a's history: %v %v", got, err)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].At.Before(got[i-1].At) {
			t.Fatalf("not newest first: %v", got)
		}
	}
	if got, _ := s.Logins(a.ID, 2); len(got) != 2 || !got[0].At.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("limit 2: %v", got)
	}
	if got, _ := s.Logins(b.ID, 0); len(got) != 2 || got[0].Service != "submission" {
		t.Errorf("b's history: %v", got)
	}

	// Prune everything before t0+2h, one record per transaction.
	n, err := s.PruneLogins(ctx, t0.Add(2*time.Hour), 1)
	if err != nil || n != 4 { // a's 0h and 1h, b's two
		t.Fatalf("pruned %d (%v), want 4", n, err)
	}
	if got, _ := s.Logins(a.ID, 0); len(got) != 3 {
		t.Errorf("a after pruning: %v", got)
	}
	if got, _ := s.Logins(b.ID, 0); len(got) != 0 {
		t.Errorf("b after pruning: %v", got)
	}

	// Purge: the history goes with the content.
	if _, err := s.UpdateAccount(ctx, a.Address(), "user.delete", func(x *accounts.Account) error { return x.StartDeletion("test", clk.Now()) }, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeAccount(ctx, a.Address(), clk.Now().Add(40*24*time.Hour), 0, op); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Logins(a.ID, 0); len(got) != 0 {
		t.Errorf("a's history after purge: %v", got)
	}
	// The leftover time index entries prune without error.
	if _, err := s.PruneLogins(ctx, t0.Add(24*time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	if rep, _ := s.Check(); len(rep.Problems) > 0 {
		t.Fatal(rep.Problems)
	}
}
