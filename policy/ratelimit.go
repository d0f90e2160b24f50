package policy

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits holds the per-IP and per-account counters that live in
// memory: concurrent connections, messages per minute, failed logins.
// (Daily per-account counters live in the store and survive restarts.)
//
// With a store several nodes share (SharedLogins), failed logins and
// the known logins are counted there instead, for every node at once.
// The others stay per node: they bound one node's connections and work
// (a client's share of each node), and sharing them would cost a
// database write per connection or message.
type RateLimits struct {
	cfg Config

	mu       sync.Mutex
	conns    map[connKey]int              // guarded by mu
	messages map[netip.Addr]*rate.Limiter // guarded by mu
	fails    map[string]*failRecord       // guarded by mu; keys in logins.go
	known    *knownLogins                 // guarded by mu
	rcpts    map[netip.Addr]*minuteCount  // guarded by mu
	senders  map[string]*rate.Limiter     // guarded by mu; per trusted sender
	unknown  map[netip.Addr]*rate.Limiter // guarded by mu; unknown recipients per IP
	lastGC   time.Time                    // guarded by mu

	// shared, when set, keeps fails and known for every node
	// (logins_shared.go); the maps above then hold none.
	shared SharedLogins
}

type connKey struct {
	proto string
	ip    netip.Addr
}

type failRecord struct {
	limiter *rate.Limiter // failed logins per minute
	streak  int           // consecutive failures, for the growing delay
	until   time.Time     // locked out until
	seen    time.Time
}

func newRateLimits(cfg Config) *RateLimits {
	return &RateLimits{
		cfg: cfg, conns: map[connKey]int{}, messages: map[netip.Addr]*rate.Limiter{},
		fails: map[string]*failRecord{}, rcpts: map[netip.Addr]*minuteCount{}, senders: map[string]*rate.Limiter{},
		known: newKnownLogins(cfg.KnownLoginTTL, cfg.KnownLogins), unknown: map[netip.Addr]*rate.Limiter{},
	}
}

func (l *RateLimits) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.cfg.TrustedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// OpenConn counts a new connection of proto from ip. It returns a release
// function, or a Refusal when the IP already has its limit open.
func (l *RateLimits) OpenConn(proto string, ip netip.Addr) (func(), error) {
	if l.trusted(ip) {
		return func() {}, nil
	}
	k := connKey{proto, ip.Unmap()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[k] >= l.cfg.ConnectionsPerIP {
		return nil, refuse(ErrTooManyConns, "%s already has %d %s connections open", k.ip, l.cfg.ConnectionsPerIP, proto)
	}
	l.conns[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			if l.conns[k]--; l.conns[k] <= 0 {
				delete(l.conns, k)
			}
			l.mu.Unlock()
		})
	}, nil
}

// AllowMessage takes one message from ip's per-minute budget.
func (l *RateLimits) AllowMessage(ip netip.Addr, now time.Time) error {
	if l.trusted(ip) {
		return nil
	}
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gc(now)
	lim := l.messages[ip]
	if lim == nil {
		n := l.cfg.MessagesPerMinute
		lim = rate.NewLimiter(rate.Limit(float64(n)/60), n)
		l.messages[ip] = lim
	}
	if !lim.AllowN(now, 1) {
		return refuse(ErrRateLimited, "%s has sent %d messages in the last minute; try again later", ip, l.cfg.MessagesPerMinute)
	}
	return nil
}

// AllowSender takes one message from a trusted sender's per-minute
// budget (per-sender limits apply wherever it connects from).
func (l *RateLimits) AllowSender(name string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.senders[name]
	if lim == nil {
		n := l.cfg.SenderMessagesPerMinute
		lim = rate.NewLimiter(rate.Limit(float64(n)/60), n)
		l.senders[name] = lim
	}
	if !lim.AllowN(now, 1) {
		return refuse(ErrRateLimited, "sender %s has sent %d messages in the last minute; try again later", name, l.cfg.SenderMessagesPerMinute)
	}
	return nil
}

// AllowRecipient says whether a client at ip may ask about recipients
// now: past UnknownRecipientsPerHour unknown ones it may not, whether
// the next would be known or not, so its replies stop telling mailboxes
// apart (enumeration). Trusted networks are exempt.
func (l *RateLimits) AllowRecipient(ip netip.Addr, now time.Time) error {
	if l.trusted(ip) {
		return nil
	}
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim := l.unknown[ip]; lim != nil && lim.TokensAt(now) < 1 {
		return refuse(ErrRateLimited, "%s has asked for %d unknown recipients in the last hour; try again later", ip, l.cfg.UnknownRecipientsPerHour)
	}
	return nil
}

// UnknownRecipient counts a recipient refused as unknown for ip.
func (l *RateLimits) UnknownRecipient(ip netip.Addr, now time.Time) {
	if l.trusted(ip) {
		return
	}
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gc(now)
	lim := l.unknown[ip]
	if lim == nil {
		n := l.cfg.UnknownRecipientsPerHour
		lim = rate.NewLimiter(rate.Limit(float64(n)/3600), n)
		l.unknown[ip] = lim
	}
	lim.AllowN(now, 1)
}

// gc drops idle entries once a minute so memory follows the active
// clients, not every client ever seen. Caller holds l.mu.
func (l *RateLimits) gc(now time.Time) {
	if now.Sub(l.lastGC) < time.Minute {
		return
	}
	l.lastGC = now
	for _, m := range []map[netip.Addr]*rate.Limiter{l.messages, l.unknown} {
		for ip, lim := range m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(m, ip)
			}
		}
	}
	for k, f := range l.fails {
		if now.Sub(f.seen) > loginForget && now.After(f.until) {
			delete(l.fails, k)
		}
	}
}

// minuteCount counts events in the current minute.
type minuteCount struct {
	minute int64
	n      int
}

// recipientsPerMinute adds n recipients for ip and returns its total in
// the current minute.
func (l *RateLimits) recipientsPerMinute(ip netip.Addr, n int, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip = ip.Unmap()
	m := now.Unix() / 60
	c := l.rcpts[ip]
	if c == nil || c.minute != m {
		c = &minuteCount{minute: m}
		l.rcpts[ip] = c
	}
	c.n += n
	if len(l.rcpts) > 100_000 {
		for k, v := range l.rcpts {
			if v.minute != m {
				delete(l.rcpts, k)
			}
		}
	}
	return c.n
}
