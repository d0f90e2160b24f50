package pgstore

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"abox/store"
)

var testLoginRules = store.LoginRules{PerMinute: 10, Lock: time.Minute, Forget: 10 * time.Minute, KnownTTL: 30 * 24 * time.Hour}

// loginCounter reads one counter through s (zero when it has none).
func loginCounter(t *testing.T, s *Store, name string) store.LoginCounter {
	t.Helper()
	cs, err := s.LoginCounters(context.Background(), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) > 1 {
		t.Fatalf("%d counters named %s", len(cs), name)
	}
	if len(cs) == 0 {
		return store.LoginCounter{}
	}
	if cs[0].Key != name {
		t.Fatalf("counter %q read back as %q", name, cs[0].Key)
	}
	return cs[0]
}

func countFailures(t *testing.T, s *Store, now time.Time, names ...string) {
	t.Helper()
	if err := s.CountLoginFailure(context.Background(), names, now, testLoginRules); err != nil {
		t.Fatal(err)
	}
}

// TestLoginCountsAcrossNodes: failures counted alternately through two
// nodes add up on one counter as on one node's memory (policy's
// TestSlowGuesserIsLocked and the per-minute bucket), and each node
// sees the other's lockout.
func TestLoginCountsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	s1 := openTest(t, false)
	s2 := openAgain(t, s1, Options{DSN: s1.pool.Config().ConnString()})
	nodes := []*Store{s1, s2}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// Spaced 7 s apart (slower than the bucket refills), the streak
	// locks: the 11th failure in a row.
	now := t0
	for i := 1; i <= 11; i++ {
		countFailures(t, nodes[i%2], now, "acct:slow@x")
		c := loginCounter(t, nodes[(i+1)%2], "acct:slow@x")
		if c.Streak != i || !c.LastFailure.Equal(now) {
			t.Fatalf("failure %d: streak %d, last %v; want %d, %v", i, c.Streak, c.LastFailure, i, now)
		}
		if locked := now.Before(c.LockedUntil); locked != (i == 11) {
			t.Fatalf("failure %d: locked until %v at %v", i, c.LockedUntil, now)
		}
		if i < 11 {
			now = now.Add(7 * time.Second)
		}
	}
	if c := loginCounter(t, s1, "acct:slow@x"); !c.LockedUntil.Equal(now.Add(time.Minute)) {
		t.Errorf("locked until %v, want a minute after the 11th failure (%v)", c.LockedUntil, now.Add(time.Minute))
	}

	// At one instant the bucket of 10 empties: the 10th failure is
	// taken, the 11th is not and locks, whatever node counts it.
	for i := 1; i <= 10; i++ {
		countFailures(t, nodes[i%2], t0, "ip:203.0.113.9")
	}
	if c := loginCounter(t, s2, "ip:203.0.113.9"); c.Streak != 10 || !c.LockedUntil.IsZero() {
		t.Fatalf("after 10 failures at once: %+v, want streak 10, not locked", c)
	}
	// A success elsewhere ends the streak, not the bucket: six seconds
	// refill one failure, the next one at that instant locks.
	if err := s1.CountLoginSuccess(ctx, "pair:b@x|198.51.100.0/24", []string{"acct:b@x", "ip:203.0.113.9"}, t0, testLoginRules); err != nil {
		t.Fatal(err)
	}
	if c := loginCounter(t, s2, "ip:203.0.113.9"); c.Streak != 0 {
		t.Fatalf("after a success: streak %d", c.Streak)
	}
	t6 := t0.Add(6 * time.Second)
	countFailures(t, s2, t6, "ip:203.0.113.9")
	if c := loginCounter(t, s1, "ip:203.0.113.9"); c.Streak != 1 || !c.LockedUntil.IsZero() {
		t.Fatalf("one failure refilled after 6 s: %+v, want streak 1, not locked", c)
	}
	countFailures(t, s1, t6, "ip:203.0.113.9")
	if c := loginCounter(t, s2, "ip:203.0.113.9"); !c.LockedUntil.Equal(t6.Add(time.Minute)) {
		t.Fatalf("a failure with the bucket empty: locked until %v, want %v", c.LockedUntil, t6.Add(time.Minute))
	}
	// A failure while locked (a race between nodes: policy refuses
	// before counting) with the bucket still empty moves it on.
	t7 := t6.Add(time.Second)
	countFailures(t, s2, t7, "ip:203.0.113.9")
	if c := loginCounter(t, s1, "ip:203.0.113.9"); !c.LockedUntil.Equal(t7.Add(time.Minute)) {
		t.Errorf("a failure while locked: until %v, want %v", c.LockedUntil, t7.Add(time.Minute))
	}

	// Ten minutes without a failure, the lockout over: a new counter.
	countFailures(t, s1, t7.Add(10*time.Minute), "ip:203.0.113.9")
	if c := loginCounter(t, s2, "ip:203.0.113.9"); c.Streak != 4 {
		t.Errorf("a failure ten minutes after the last: streak %d, want 4 (not yet forgotten)", c.Streak)
	}
	later := t7.Add(20*time.Minute + time.Nanosecond)
	countFailures(t, s1, later, "ip:203.0.113.9")
	if c := loginCounter(t, s2, "ip:203.0.113.9"); c.Streak != 1 || !c.LockedUntil.IsZero() {
		t.Errorf("a failure after ten quiet minutes: %+v, want streak 1, not locked", c)
	}
}

// TestLoginSuccessAcrossNodes: a success through one node makes the pair
// known and clears its failures for the other, and ends the streaks it
// names; the pair's known time never goes back.
func TestLoginSuccessAcrossNodes(t *testing.T) {
	ctx := context.Background()
	s1 := openTest(t, false)
	s2 := openAgain(t, s1, Options{DSN: s1.pool.Config().ConnString()})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pair := "pair:a@x|198.51.100.0/24"
	for range 12 {
		countFailures(t, s1, t0, pair, "acct:a@x", "ip:198.51.100.7")
	}
	if c := loginCounter(t, s2, pair); !t0.Before(c.LockedUntil) || c.Streak != 12 {
		t.Fatalf("pair after 12 failures: %+v", c)
	}
	t1 := t0.Add(2 * time.Minute)
	if err := s2.CountLoginSuccess(ctx, pair, []string{"acct:a@x", "ip:198.51.100.7"}, t1, testLoginRules); err != nil {
		t.Fatal(err)
	}
	c := loginCounter(t, s1, pair)
	if c.Streak != 0 || !c.LastFailure.IsZero() || !c.LockedUntil.IsZero() || !c.LastSuccess.Equal(t1) {
		t.Errorf("pair after a success: %+v, want known at %v, no failures", c, t1)
	}
	for _, name := range []string{"acct:a@x", "ip:198.51.100.7"} {
		if c := loginCounter(t, s1, name); c.Streak != 0 || c.LastFailure.IsZero() {
			t.Errorf("%s after a success: %+v, want its streak ended, its last failure kept", name, c)
		}
	}
	// After a success, a failure on the pair starts a new counter.
	countFailures(t, s1, t1, pair)
	if c := loginCounter(t, s2, pair); c.Streak != 1 || !c.LockedUntil.IsZero() || !c.LastSuccess.Equal(t1) {
		t.Errorf("pair's first failure after its success: %+v", c)
	}
	// A node whose clock is behind does not move the known time back.
	if err := s1.CountLoginSuccess(ctx, pair, nil, t0, testLoginRules); err != nil {
		t.Fatal(err)
	}
	if c := loginCounter(t, s2, pair); !c.LastSuccess.Equal(t1) {
		t.Errorf("known at %v after an earlier success, want %v", c.LastSuccess, t1)
	}
	// Names of any length are counters.
	long := "acct:" + strings.Repeat("x", 10_000)
	countFailures(t, s2, t0, long)
	if c := loginCounter(t, s1, long); c.Streak != 1 {
		t.Errorf("a 10,000-byte name: %+v", c)
	}
}

// TestLoginCountsConcurrent: failures counted at once through two nodes
// are all counted (no update lost between nodes), on counters named in
// either order; successes and failures at once do not fail (a deadlock
// between them is retried).
func TestLoginCountsConcurrent(t *testing.T) {
	ctx := context.Background()
	s1 := openTest(t, false)
	s2 := openAgain(t, s1, Options{DSN: s1.pool.Config().ConnString()})
	nodes := []*Store{s1, s2}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	wide := testLoginRules
	wide.PerMinute = 100
	run := func(n int, fn func(i int, names []string) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				names := []string{"acct:c@x", "ip:192.0.2.1"}
				if i%2 == 1 {
					names = []string{"ip:192.0.2.1", "acct:c@x"}
				}
				errs <- fn(i, names)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	run(30, func(i int, names []string) error {
		return nodes[i%2].CountLoginFailure(ctx, names, t0, wide)
	})
	for _, name := range []string{"acct:c@x", "ip:192.0.2.1"} {
		var tokens float64
		if err := s1.pool.QueryRow(ctx, `SELECT tokens FROM login_counters WHERE key = $1`, loginKey(name)).Scan(&tokens); err != nil {
			t.Fatal(err)
		}
		if c := loginCounter(t, s2, name); c.Streak != 30 || tokens != 70 || !c.LockedUntil.IsZero() {
			t.Errorf("%s after 30 failures at once through two nodes: streak %d, %v failures left of 100, %+v; want 30, 70",
				name, c.Streak, tokens, c)
		}
	}
	run(40, func(i int, names []string) error {
		if i%4 == 0 {
			return nodes[i%2].CountLoginSuccess(ctx, "pair:c@x|192.0.2.0/24", names, t0, wide)
		}
		return nodes[i%2].CountLoginFailure(ctx, append(names, "pair:c@x|192.0.2.0/24"), t0, wide)
	})
}

// TestPruneLoginCounters: rows go once their failures are forgotten,
// their lockout over and their pair no longer known, in batches.
func TestPruneLoginCounters(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		countFailures(t, s, t0, "acct:"+strings.Repeat("p", i+1)+"@x")
	}
	for range 11 {
		countFailures(t, s, t0, "ip:192.0.2.1") // locked for a minute; forgotten 10 minutes on
	}
	if err := s.CountLoginSuccess(ctx, "pair:p@x|192.0.2.0/24", nil, t0, testLoginRules); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneLoginCounters(ctx, t0.Add(10*time.Minute), 2); err != nil || n != 0 {
		t.Fatalf("prune at 10 minutes: %d, %v; want none (the edge of forgetting)", n, err)
	}
	if n, err := s.PruneLoginCounters(ctx, t0.Add(10*time.Minute+time.Nanosecond), 2); err != nil || n != 6 {
		t.Fatalf("prune past 10 minutes in batches of 2: %d, %v; want the 6 failure counters", n, err)
	}
	if c := loginCounter(t, s, "pair:p@x|192.0.2.0/24"); !c.LastSuccess.Equal(t0) {
		t.Fatalf("the known pair was pruned before its TTL: %+v", c)
	}
	if n, err := s.PruneLoginCounters(ctx, t0.Add(testLoginRules.KnownTTL+time.Nanosecond), 100); err != nil || n != 1 {
		t.Errorf("prune past the TTL: %d, %v; want the pair", n, err)
	}
}
