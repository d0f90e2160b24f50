package policy

import (
	"context"
	"net/netip"
	"time"

	"abox/store"
)

// SharedLogins is implemented by a store that several nodes share
// (store/pgstore): the failed-login counters and the known logins of
// logins.go live there, so that a guesser who spreads its tries over N
// nodes behind a balancer gets the attempts of one node, and a lockout
// set through one node holds on all (issue 18). New uses it when the
// store implements it; the embedded store does not, and one node counts
// in its memory as logins.go does, writing nothing per attempt.
//
// The counters are the ones failKeys names, with the same rules: a
// bucket of FailedLoginsPerMinute failures refilled over a minute, the
// failures in a row, a lockout of LoginLockout, a counter forgotten after
// loginForget without a failure. The known pairs are kept for
// KnownLoginTTL; KnownLogins (a bound on one node's memory) does not
// apply, the sweep removes what stopped mattering instead.
type SharedLogins interface {
	// LoginCounters returns the counters named that exist.
	LoginCounters(ctx context.Context, names []string) ([]store.LoginCounter, error)
	// CountLoginFailure counts a failure on the counters named, in one
	// step however many nodes count at once.
	CountLoginFailure(ctx context.Context, names []string, now time.Time, r store.LoginRules) error
	// CountLoginSuccess marks pair known and clears its failures, and
	// ends the streaks of the counters in reset.
	CountLoginSuccess(ctx context.Context, pair string, reset []string, now time.Time, r store.LoginRules) error
	// PruneLoginCounters removes the counters that stopped mattering
	// before before, in batches.
	PruneLoginCounters(ctx context.Context, before time.Time, batch int) (int, error)
}

const (
	// loginForget: a counter with no failure for longer (and not
	// locked) is forgotten.
	loginForget = 10 * time.Minute
	// knownRefresh: a success from a known network within this of the
	// last one recorded writes nothing when there is nothing to clear
	// (a client opening several connections costs no write each); the
	// pair is then known up to this much less than KnownLoginTTL.
	knownRefresh = time.Hour
)

// loginAttempt is what a login check read of the shared counters, for
// the failure or success that follows it.
type loginAttempt struct {
	pair     string                        // the account-and-network counter ("" without an account)
	keys     []string                      // the counters the attempt counts on (failKeys)
	counters map[string]store.LoginCounter // as read, by name
}

func (l *RateLimits) loginRules() store.LoginRules {
	return store.LoginRules{PerMinute: l.cfg.FailedLoginsPerMinute, Lock: l.cfg.LoginLockout, Forget: loginForget, KnownTTL: l.cfg.KnownLoginTTL}
}

// forgotten reports whether c says nothing any more at now: no failure
// counted, or none for loginForget and no lockout (logins.go's gc).
func forgotten(c store.LoginCounter, now time.Time) bool {
	return c.LastFailure.IsZero() || now.Sub(c.LastFailure) > loginForget && now.After(c.LockedUntil)
}

// readShared reads the counters a login from ip for account may touch
// and picks those it counts on, as failKeys does: the pair's when the
// account logged in from ip's network within KnownLoginTTL, else the
// account's; the IP's unless it is trusted.
func (l *RateLimits) readShared(ctx context.Context, ip netip.Addr, account string, now time.Time) (*loginAttempt, error) {
	a := &loginAttempt{}
	names := make([]string, 0, 3)
	if account != "" {
		a.pair = knownKey{account, loginNetwork(ip)}.failKey()
		names = append(names, a.pair, "acct:"+account)
	}
	if !l.trusted(ip) {
		names = append(names, "ip:"+ip.Unmap().String())
	}
	cs, err := l.shared.LoginCounters(ctx, names)
	if err != nil {
		return nil, err
	}
	a.counters = make(map[string]store.LoginCounter, len(cs))
	for _, c := range cs {
		a.counters[c.Key] = c
	}
	if account != "" {
		if p, ok := a.counters[a.pair]; ok && !p.LastSuccess.IsZero() && now.Sub(p.LastSuccess) <= l.cfg.KnownLoginTTL {
			a.keys = append(a.keys, a.pair)
		} else {
			a.keys = append(a.keys, "acct:"+account)
		}
	}
	if !l.trusted(ip) {
		a.keys = append(a.keys, "ip:"+ip.Unmap().String())
	}
	return a, nil
}

// loginAllowed is LoginAllowed with the context of the login; with a
// shared store it also returns what it read, for loginFailed and
// loginSucceeded.
func (l *RateLimits) loginAllowed(ctx context.Context, ip netip.Addr, account string, now time.Time) (time.Duration, *loginAttempt, error) {
	if l.shared == nil {
		d, err := l.LoginAllowed(ip, account, now)
		return d, nil, err
	}
	a, err := l.readShared(ctx, ip, account, now)
	if err != nil {
		return 0, nil, err
	}
	var delay time.Duration
	for _, k := range a.keys {
		c, ok := a.counters[k]
		if !ok || forgotten(c, now) {
			continue
		}
		if now.Before(c.LockedUntil) {
			return 0, nil, lockedOut(c.LockedUntil)
		}
		delay = max(delay, failDelay(c.Streak))
	}
	return delay, a, nil
}

// loginFailed is LoginFailed after loginAllowed: with a shared store it
// counts on the counters that check read, and returns the store's
// error (the login then fails as temporarily refused, not as a wrong
// password the guesser may go on from).
func (l *RateLimits) loginFailed(ctx context.Context, a *loginAttempt, ip netip.Addr, account string, now time.Time) error {
	if l.shared == nil {
		l.LoginFailed(ip, account, now)
		return nil
	}
	if a == nil {
		var err error
		if a, err = l.readShared(ctx, ip, account, now); err != nil {
			return err
		}
	}
	return l.shared.CountLoginFailure(ctx, a.keys, now, l.loginRules())
}

// loginSucceeded is LoginSucceeded after loginAllowed. With a shared
// store it writes nothing when the check read nothing to clear and the
// pair's known time is recent (knownRefresh).
func (l *RateLimits) loginSucceeded(ctx context.Context, a *loginAttempt, ip netip.Addr, account string, now time.Time) error {
	if l.shared == nil {
		l.LoginSucceeded(ip, account, now)
		return nil
	}
	reset := []string{"acct:" + account, "ip:" + ip.Unmap().String()}
	if a != nil && a.nothingToClear(reset, now) {
		return nil
	}
	pair := knownKey{account, loginNetwork(ip)}.failKey()
	return l.shared.CountLoginSuccess(ctx, pair, reset, now, l.loginRules())
}

// nothingToClear reports whether a success after the check that read a
// would change nothing that matters: the pair known within knownRefresh
// with no failure of its own, and no streak on the counters in reset.
func (a *loginAttempt) nothingToClear(reset []string, now time.Time) bool {
	p, ok := a.counters[a.pair]
	if !ok || !p.LastFailure.IsZero() || p.LastSuccess.IsZero() || now.Sub(p.LastSuccess) > knownRefresh || now.Before(p.LastSuccess) {
		return false
	}
	for _, k := range reset {
		if c, ok := a.counters[k]; ok && c.Streak > 0 && !forgotten(c, now) {
			return false
		}
	}
	return true
}

// sweepLoginCounters removes the shared counters that stopped mattering
// (bookkeeping: nothing to report). They are live state, so the cut is
// the engine's clock, never the sweep's time (a sweep run as of a later
// date would lift lockouts).
func (e *Engine) sweepLoginCounters(ctx context.Context, _ time.Time, dryRun bool, _ func(SweepAction)) error {
	if dryRun || e.Limits.shared == nil {
		return nil
	}
	_, err := e.Limits.shared.PruneLoginCounters(ctx, e.clock(), 1000)
	return err
}
