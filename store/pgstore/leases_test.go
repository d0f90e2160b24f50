package pgstore

import (
	"context"
	"testing"
	"time"
)

// TestLeases: one holder at a time across two nodes; a lease is renewed
// by its holder, refused to another while it runs, taken over once it
// has expired (a dead node), and free at once when released.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	a := openTest(t, false)
	b := openAgain(t, a, Options{DSN: a.pool.Config().ConnConfig.ConnString()})

	take := func(s *Store, name, holder string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := s.TryLease(ctx, name, holder, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("TryLease(%s, %s) = %v, want %v", name, holder, got, want)
		}
	}
	take(a, "sweeps", "node-a", time.Minute, true)
	take(b, "sweeps", "node-b", time.Minute, false)
	take(a, "sweeps", "node-a", time.Minute, true) // renewal
	take(b, "evidence-heads", "node-b", time.Minute, true)
	take(a, "evidence-heads", "node-a", time.Minute, false)

	ls, err := b.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Name != "evidence-heads" || ls[0].Holder != "node-b" || ls[1].Name != "sweeps" || ls[1].Holder != "node-a" || ls[0].Expired {
		t.Fatalf("leases: %+v", ls)
	}

	// A release by another holder changes nothing; by the holder, the
	// lease is free at once.
	if err := b.ReleaseLease(ctx, "sweeps", "node-b"); err != nil {
		t.Fatal(err)
	}
	take(b, "sweeps", "node-b", time.Minute, false)
	if err := a.ReleaseLease(ctx, "sweeps", "node-a"); err != nil {
		t.Fatal(err)
	}
	take(b, "sweeps", "node-b", time.Minute, true)

	// node-b dies holding "sweeps" (its lease is made to have run out,
	// as it would after its time to live without renewals): node-a
	// takes it over, and node-b, back, cannot renew it.
	if _, err := a.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = 'sweeps'`); err != nil {
		t.Fatal(err)
	}
	if ls, _ := a.Leases(ctx); !ls[1].Expired {
		t.Fatalf("an expired lease not reported so: %+v", ls)
	}
	take(a, "sweeps", "node-a", time.Minute, true)
	take(b, "sweeps", "node-b", time.Minute, false)

	// A short lease runs out by itself.
	take(a, "short", "node-a", 50*time.Millisecond, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := b.TryLease(ctx, "short", "node-b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 50 ms lease never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, err := a.TryLease(ctx, "", "node-a", time.Minute); err == nil {
		t.Error("a lease without a name was taken")
	}
}
