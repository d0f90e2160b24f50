package policy

import (
	"net/netip"
	"testing"
	"time"
)

func TestKnownLogins(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(acct, ip string) knownKey {
		return knownKey{acct, loginNetwork(netip.MustParseAddr(ip))}
	}
	k := newKnownLogins(30*24*time.Hour, 2)
	k.add(key("a@x", "192.0.2.7"), t0)
	for _, tc := range []struct {
		name string
		key  knownKey
		at   time.Time
		want bool
	}{
		{"same address", key("a@x", "192.0.2.7"), t0, true},
		{"same /24", key("a@x", "192.0.2.200"), t0, true},
		{"other /24", key("a@x", "192.0.3.7"), t0, false},
		{"other account", key("b@x", "192.0.2.7"), t0, false},
		{"IPv4-mapped IPv6", key("a@x", "::ffff:192.0.2.9"), t0, true},
		{"at the end of 30 days", key("a@x", "192.0.2.7"), t0.Add(30 * 24 * time.Hour), true},
		{"after 30 days", key("a@x", "192.0.2.7"), t0.Add(30*24*time.Hour + time.Second), false},
	} {
		if got := k.has(tc.key, tc.at); got != tc.want {
			t.Errorf("%s: known %v, want %v", tc.name, got, tc.want)
		}
	}
	// Bounded: the least recently successful pair goes first.
	k.add(key("b@x", "2001:db8:1:2::1"), t0.Add(time.Hour))
	k.add(key("a@x", "192.0.2.7"), t0.Add(2*time.Hour)) // a is recent again
	k.add(key("c@x", "198.51.100.1"), t0.Add(3*time.Hour))
	if k.has(key("b@x", "2001:db8:1:2::ffff"), t0.Add(3*time.Hour)) {
		t.Error("the least recently used pair was kept past the bound of 2")
	}
	if !k.has(key("a@x", "192.0.2.1"), t0.Add(3*time.Hour)) || !k.has(key("c@x", "198.51.100.1"), t0.Add(3*time.Hour)) {
		t.Error("a recently used pair was evicted")
	}
	if len(k.index) != 2 || k.order.Len() != 2 {
		t.Errorf("%d pairs indexed, %d listed; want 2", len(k.index), k.order.Len())
	}
}

// TestFailedLoginsByNetwork: failures from an address new to the account
// lock it for new addresses only; a network that logged in stays
// allowed, until its success is older than the TTL.
func TestFailedLoginsByNetwork(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimits(Config{FailedLoginsPerMinute: 3, KnownLoginTTL: 30 * 24 * time.Hour, KnownLogins: 10, LoginLockout: time.Minute})
	home, attacker, stranger := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("192.0.2.1")
	l.LoginSucceeded(home, "a@x", t0)
	for range 5 {
		l.LoginFailed(attacker, "a@x", t0)
	}
	if _, err := l.LoginAllowed(attacker, "b@x", t0); err == nil {
		t.Error("the guessing address may go on with another account")
	}
	if _, err := l.LoginAllowed(stranger, "a@x", t0); err == nil {
		t.Error("an address new to the account may go on guessing it")
	}
	if d, err := l.LoginAllowed(home, "a@x", t0); err != nil || d != 0 {
		t.Errorf("the subscriber's own network: delay %v, %v; want no delay, allowed", d, err)
	}
	// The subscriber mistyping at home counts on the pair only.
	for range 5 {
		l.LoginFailed(home, "a@x", t0)
	}
	if _, err := l.LoginAllowed(home, "a@x", t0); err == nil {
		t.Error("failures from the subscriber's own network are not limited")
	}
	l.LoginSucceeded(netip.MustParseAddr("198.51.100.8"), "a@x", t0.Add(2*time.Minute))
	later := t0.Add(2*time.Minute + 31*24*time.Hour)
	if _, err := l.LoginAllowed(home, "a@x", later); err != nil {
		t.Errorf("after its lock ended: %v", err)
	}
	for range 5 {
		l.LoginFailed(attacker, "a@x", later)
	}
	if _, err := l.LoginAllowed(home, "a@x", later); err == nil {
		t.Error("a network whose last success is past the TTL is still exempt from the account's counter")
	}
}

// TestSlowGuesserIsLocked: a guesser whose tries are spaced by the
// server's own growing delay (here 7 s apart, slower than the bucket's
// refill of one every 6 s) is still locked after FailedLoginsPerMinute
// failures in a row, and a success ends the row.
func TestSlowGuesserIsLocked(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimits(Config{FailedLoginsPerMinute: 10, KnownLoginTTL: time.Hour, KnownLogins: 10, LoginLockout: time.Minute})
	attacker := netip.MustParseAddr("203.0.113.9")
	now := t0
	tries := 0
	for ; tries < 30; tries++ {
		if _, err := l.LoginAllowed(attacker, "a@x", now); err != nil {
			break
		}
		l.LoginFailed(attacker, "a@x", now)
		now = now.Add(7 * time.Second)
	}
	if tries != 11 {
		t.Errorf("locked after %d failures spaced 7 s apart; want after 11 (the 11th locks)", tries)
	}
	// After the minute one more try is allowed, and its failure locks
	// again at once.
	now = now.Add(time.Minute)
	if _, err := l.LoginAllowed(attacker, "a@x", now); err != nil {
		t.Fatalf("after the minute: %v", err)
	}
	l.LoginFailed(attacker, "a@x", now)
	if _, err := l.LoginAllowed(attacker, "a@x", now.Add(time.Second)); err == nil {
		t.Error("a failure continuing the row did not lock again")
	}
	// A success ends the row (the attacker's address is not trusted, so
	// its own counter is reset only by its own success).
	now = now.Add(2 * time.Minute)
	l.LoginSucceeded(attacker, "a@x", now)
	l.LoginFailed(attacker, "b@x", now)
	if _, err := l.LoginAllowed(attacker, "b@x", now); err != nil {
		t.Errorf("one failure after a success locks: %v", err)
	}
}

// TestLoginLockoutConfigured: login-lockout sets how long a counter past
// its limit refuses logins, through New's defaults as serve builds it.
func TestLoginLockoutConfigured(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	attacker := netip.MustParseAddr("203.0.113.9")
	for _, lock := range []time.Duration{0, 10 * time.Second, 5 * time.Minute} {
		e := New(nil, Config{LoginLockout: lock})
		want := lock
		if lock == 0 {
			want = time.Minute // the default
		}
		l := e.Limits
		for range 11 {
			l.LoginFailed(attacker, "a@x", t0)
		}
		if _, err := l.LoginAllowed(attacker, "a@x", t0.Add(want-time.Second)); err == nil {
			t.Errorf("lockout %v: a login %v after the 11th failure was allowed", lock, want-time.Second)
		}
		if _, err := l.LoginAllowed(attacker, "a@x", t0.Add(want+time.Second)); err != nil {
			t.Errorf("lockout %v: a login %v after the 11th failure was refused: %v", lock, want+time.Second, err)
		}
	}
}
