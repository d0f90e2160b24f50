package policy

import (
	"errors"
	"testing"
	"time"
)

// TestCommandBudgets: an account's IMAP commands spend one bucket,
// whatever the session; past the burst a command waits its turn (never
// refused at the standard rate), and only a wait past MaxCommandWait is
// refused. Times come from a moved clock, never the wall.
func TestCommandBudgets(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type step struct {
		name      string
		account   uint64
		perMinute int64
		burst     int64
		at        time.Duration // after t0
		n         int           // commands at that instant
		wantWait  time.Duration // of the last of them
		wantErr   bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"the burst goes at once", []step{
			{"a first sync's 150,000 commands", 1, 600, 150_000, 0, 150_000, 0, false},
			{"the next waits a token (0.1 s)", 1, 600, 150_000, 0, 1, 100 * time.Millisecond, false},
			{"ten more in the same instant queue up", 1, 600, 150_000, 0, 10, 1100 * time.Millisecond, false},
		}},
		{"one budget per account, not per session or login", []step{
			{"session one", 1, 600, 10, 0, 6, 0, false},
			{"session two shares it", 1, 600, 10, 0, 4, 0, false},
			{"a reconnect does not refill it", 1, 600, 10, 0, 1, 100 * time.Millisecond, false},
			{"another account has its own", 2, 600, 10, 0, 10, 0, false},
		}},
		{"it refills at the sustained rate", []step{
			{"spend the burst", 1, 60, 5, 0, 5, 0, false},
			{"three seconds give three", 1, 60, 5, 3 * time.Second, 3, 0, false},
			{"the fourth waits", 1, 60, 5, 3 * time.Second, 1, time.Second, false},
		}},
		{"a wait past MaxCommandWait is refused, and costs nothing", []step{
			{"spend the burst", 1, 6, 2, 0, 2, 0, false},
			{"the next would wait 10 s: at the bound", 1, 6, 2, 0, 1, 10 * time.Second, false},
			{"one more would wait 20 s", 1, 6, 2, 0, 1, 0, true},
			{"and again: the refusal took no token", 1, 6, 2, 0, 1, 0, true},
			{"twenty seconds on, two more came: one is there", 1, 6, 2, 20 * time.Second, 1, 0, false},
			{"and the next waits its 10 s", 1, 6, 2, 20 * time.Second, 1, 10 * time.Second, false},
		}},
		{"a class change applies at once", []step{
			{"spend the burst", 1, 600, 3, 0, 3, 0, false},
			{"a larger burst", 1, 600, 100, 0, 1, 100 * time.Millisecond, false},
			{"rate 0 is unlimited", 1, 0, 100, 0, 1000, 0, false},
			{"burst 0 is unlimited", 1, 600, 0, 0, 1000, 0, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newCommandBudgets()
			for _, s := range tc.steps {
				var wait time.Duration
				var err error
				for range s.n {
					if wait, err = b.Take(s.account, s.perMinute, s.burst, t0.Add(s.at)); err != nil {
						break
					}
				}
				if (err != nil) != s.wantErr || err != nil && !errors.Is(err, ErrRateLimited) {
					t.Fatalf("%s: error %v, want one: %v", s.name, err, s.wantErr)
				}
				if d := wait - s.wantWait; d < -time.Millisecond || d > time.Millisecond {
					t.Fatalf("%s: wait %v, want %v", s.name, wait, s.wantWait)
				}
			}
		})
	}
}

// TestCommandBudgetsForgetFullBuckets: buckets that have refilled are
// dropped, so memory follows the accounts active lately.
func TestCommandBudgetsForgetFullBuckets(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := newCommandBudgets()
	for acct := range uint64(1000) {
		b.Take(acct, 600, 100, t0)
	}
	for range 1000 {
		b.Take(5000, 600, 1000, t0) // empty: 100 s to refill
	}
	if n := len(b.buckets); n != 1001 {
		t.Fatalf("%d buckets, want 1001", n)
	}
	b.Take(6000, 600, 100, t0.Add(time.Minute))
	if n := len(b.buckets); n != 2 {
		t.Errorf("%d buckets after the refilled ones were dropped, want 2", n)
	}
}
