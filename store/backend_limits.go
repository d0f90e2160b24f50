package store

import "time"

// Failed-login counting shared by several nodes (issue 18). The embedded
// store keeps none of this: one node counts in its own memory
// (policy/logins.go). A store that several nodes share (store/pgstore)
// keeps the counters, so that N nodes behind a balancer give a
// password guesser the attempts of one; policy decides with these types
// which counters an attempt touches and what their state means.

// LoginCounter is one failed-login counter as a shared store keeps it,
// named by policy's key ("ip:…", "acct:…", "pair:…").
type LoginCounter struct {
	Key string
	// Streak is the failures in a row (no success between).
	Streak int
	// LastFailure is when the last failure was counted; zero: none since
	// the counter was new or, for a pair, since its last success.
	LastFailure time.Time
	// LockedUntil is when a lockout ends (zero or past: none).
	LockedUntil time.Time
	// LastSuccess is a pair's last successful login (zero for the
	// others): the pair is known while it is recent.
	LastSuccess time.Time
}

// LoginRules are policy's failed-login rules, which a shared store
// applies as it counts a failure in one statement (so that two nodes
// counting at once both count).
type LoginRules struct {
	// PerMinute is the size of each counter's bucket of failures,
	// refilled over a minute, and the longest streak allowed.
	PerMinute int
	// Lock is how long a counter past either limit refuses logins.
	Lock time.Duration
	// Forget: a counter with no failure for longer, and not locked,
	// starts again (a new bucket, no streak).
	Forget time.Duration
	// KnownTTL is how long a successful login keeps its pair known.
	KnownTTL time.Duration
}
