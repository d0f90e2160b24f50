package policy

import (
	"container/list"
	"context"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// Failed logins are counted so that guessing is slow for the guesser and
// harmless to the subscriber (issue 13: about 14 wrong passwords from
// anywhere used to lock the real user out):
//
//   - per client IP ("ip:"), outside the trusted networks: the guessing
//     address is throttled for every account;
//   - per account, for the addresses that have not logged into it
//     recently ("acct:"): a guesser anywhere cannot go on at full speed;
//   - per account and network, for a network that has ("pair:"): the
//     subscriber at home is throttled only by failures from home.
//
// A network is the client's /24 (IPv4) or /64 (IPv6), so a home or
// mobile address that changes within its network stays known. Past
// FailedLoginsPerMinute failures on a counter within a minute, or in a
// row (no success between, none 10 minutes after the last), logins that
// count on it are refused for a minute (450 4.7.1 / NO [LIMIT]) without
// checking the password.
//
// That is one node's memory. When the store is shared by several nodes
// (SharedLogins, logins_shared.go), the same counters with the same
// rules live in the store, so that the limits hold for a client however
// many nodes it spreads its tries over.

// LoginAllowed says whether a login from ip for account may be tried now.
// After failures it returns a delay the caller waits before answering
// (growing with the streak, up to 5 s), and past the per-minute limit of
// a counter the login touches, a Refusal.
func (l *RateLimits) LoginAllowed(ip netip.Addr, account string, now time.Time) (time.Duration, error) {
	if l.shared != nil {
		d, _, err := l.loginAllowed(context.Background(), ip, account, now)
		return d, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var delay time.Duration
	for _, k := range l.failKeys(ip, account, now) {
		f := l.fails[k]
		if f == nil {
			continue
		}
		if now.Before(f.until) {
			return 0, lockedOut(f.until)
		}
		delay = max(delay, failDelay(f.streak))
	}
	return delay, nil
}

// lockedOut is the refusal of a login while a counter is locked.
func lockedOut(until time.Time) error {
	return refuse(ErrAuthLocked, "too many failed logins; try again after %s", until.UTC().Format(time.RFC3339))
}

// failDelay is how long a failure's answer waits after streak failures
// in a row.
func failDelay(streak int) time.Duration {
	return min(time.Duration(streak)*250*time.Millisecond, 5*time.Second)
}

// LoginFailed records a failed login on the counters it touches. (With
// a shared store a failure to record is not reported here: Authenticate
// uses loginFailed, which reports it.)
func (l *RateLimits) LoginFailed(ip netip.Addr, account string, now time.Time) {
	if l.shared != nil {
		l.loginFailed(context.Background(), nil, ip, account, now)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gc(now)
	for _, k := range l.failKeys(ip, account, now) {
		f := l.fails[k]
		if f == nil {
			n := l.cfg.FailedLoginsPerMinute
			f = &failRecord{limiter: rate.NewLimiter(rate.Limit(float64(n)/60), n)}
			l.fails[k] = f
		}
		f.streak++
		f.seen = now
		// The streak counts too: the growing delay (and a busy hashing
		// gate) can space a guesser's tries so that the per-minute
		// bucket refills as fast as it drains, and the limit would
		// never apply to the one client it exists for.
		if !f.limiter.AllowN(now, 1) || f.streak > l.cfg.FailedLoginsPerMinute {
			f.until = now.Add(l.cfg.LoginLockout)
		}
	}
}

// LoginSucceeded remembers ip's network as known to the account, clears
// the failures counted for that pair, and resets the streaks (the
// growing delay) of the account and the IP. (With a shared store, as
// LoginFailed.)
func (l *RateLimits) LoginSucceeded(ip netip.Addr, account string, now time.Time) {
	if l.shared != nil {
		l.loginSucceeded(context.Background(), nil, ip, account, now)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := knownKey{account, loginNetwork(ip)}
	l.known.add(k, now)
	delete(l.fails, k.failKey())
	for _, key := range []string{"acct:" + account, "ip:" + ip.Unmap().String()} {
		if f := l.fails[key]; f != nil {
			f.streak = 0
		}
	}
}

// failKeys are the counters a login attempt touches: the account's (for
// an address new to it) or the account-and-network pair's (for a known
// one), and the IP's unless it is trusted. Caller holds l.mu.
func (l *RateLimits) failKeys(ip netip.Addr, account string, now time.Time) []string {
	keys := make([]string, 0, 2)
	if account != "" {
		if k := (knownKey{account, loginNetwork(ip)}); l.known.has(k, now) {
			keys = append(keys, k.failKey())
		} else {
			keys = append(keys, "acct:"+account)
		}
	}
	if !l.trusted(ip) {
		keys = append(keys, "ip:"+ip.Unmap().String())
	}
	return keys
}

// loginNetwork is the network a login address counts as: /24 for IPv4,
// /64 for IPv6.
func loginNetwork(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

type knownKey struct {
	account string
	network netip.Prefix
}

func (k knownKey) failKey() string { return "pair:" + k.account + "|" + k.network.String() }

// knownLogins remembers the (account, network) pairs that logged in
// successfully within ttl, at most max of them: past that the least
// recently used pair is forgotten. Not safe for concurrent use.
type knownLogins struct {
	ttl   time.Duration
	max   int
	order *list.List // of *knownEntry, most recent success first
	index map[knownKey]*list.Element
}

type knownEntry struct {
	key  knownKey
	last time.Time
}

func newKnownLogins(ttl time.Duration, max int) *knownLogins {
	return &knownLogins{ttl: ttl, max: max, order: list.New(), index: map[knownKey]*list.Element{}}
}

func (k *knownLogins) has(key knownKey, now time.Time) bool {
	el := k.index[key]
	return el != nil && now.Sub(el.Value.(*knownEntry).last) <= k.ttl
}

func (k *knownLogins) add(key knownKey, now time.Time) {
	if el := k.index[key]; el != nil {
		el.Value.(*knownEntry).last = now
		k.order.MoveToFront(el)
	} else {
		k.index[key] = k.order.PushFront(&knownEntry{key: key, last: now})
	}
	for el := k.order.Back(); el != nil; el = k.order.Back() {
		e := el.Value.(*knownEntry)
		if k.order.Len() <= k.max && now.Sub(e.last) <= k.ttl {
			break
		}
		k.order.Remove(el)
		delete(k.index, e.key)
	}
}
