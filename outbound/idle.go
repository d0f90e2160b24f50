package outbound

import (
	"sync"
	"time"
)

// idleCache holds the sessions parked between messages, by destination:
// the domain, or the smarthost. It only keeps and hands out; closing a
// session is its caller's job, so that no lock is ever held across
// network I/O.
type idleCache struct {
	perKey, max            int
	idleTimeout, reuseTime time.Duration

	mu     sync.Mutex
	closed bool                     // guarded by mu
	byKey  map[string][]idleSession // guarded by mu; oldest first
	n      int                      // guarded by mu: sessions in byKey
}

type idleSession struct {
	s      *session
	parked time.Time
}

func newIdleCache(cfg Config) *idleCache {
	return &idleCache{
		perKey: cfg.MaxIdlePerDomain, max: cfg.MaxIdle,
		idleTimeout: cfg.IdleTimeout, reuseTime: cfg.ReuseTime,
		byKey: map[string][]idleSession{},
	}
}

// expired: idle too long, or too old to carry another message.
func (ic *idleCache) expired(is idleSession, now time.Time) bool {
	return now.Sub(is.parked) >= ic.idleTimeout || now.Sub(is.s.opened) >= ic.reuseTime
}

// take removes and returns the most recently parked session for key
// that can carry env, or nil. The newest first: it is the likeliest to
// be alive, and the older ones are left to expire when traffic drops.
// Expired sessions are skipped and left to the janitor.
func (ic *idleCache) take(key string, env *envelope, now time.Time) *session {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	list := ic.byKey[key]
	for i := len(list) - 1; i >= 0; i-- {
		if ic.expired(list[i], now) || !list[i].s.info.fits(env) {
			continue
		}
		s := list[i].s
		ic.remove(key, i)
		return s
	}
	return nil
}

// remove drops byKey[key][i]. Caller holds mu.
func (ic *idleCache) remove(key string, i int) {
	list := ic.byKey[key]
	copy(list[i:], list[i+1:])
	list[len(list)-1] = idleSession{}
	list = list[:len(list)-1]
	if len(list) == 0 {
		delete(ic.byKey, key)
	} else {
		ic.byKey[key] = list
	}
	ic.n--
}

// put parks s for key. It returns false, keeping nothing, once the
// cache is closed; otherwise the sessions pushed out by the bounds
// (the oldest of key past perKey, the oldest of all past max), which
// the caller closes.
func (ic *idleCache) put(key string, s *session, now time.Time) (evicted []*session, ok bool) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.closed {
		return nil, false
	}
	ic.byKey[key] = append(ic.byKey[key], idleSession{s: s, parked: now})
	ic.n++
	if len(ic.byKey[key]) > ic.perKey {
		evicted = append(evicted, ic.byKey[key][0].s)
		ic.remove(key, 0)
	}
	for ic.n > ic.max {
		evicted = append(evicted, ic.removeOldest())
	}
	return evicted, true
}

// removeOldest drops and returns the session parked longest ago. A scan
// of each destination's oldest: at most max of them, under mu, without
// I/O; cheaper to keep right than a second index. Caller holds mu and
// ic.n > 0.
func (ic *idleCache) removeOldest() *session {
	var key string
	var oldest time.Time
	for k, list := range ic.byKey {
		if key == "" || list[0].parked.Before(oldest) {
			key, oldest = k, list[0].parked
		}
	}
	s := ic.byKey[key][0].s
	ic.remove(key, 0)
	return s
}

// expire removes and returns every expired session.
func (ic *idleCache) expire(now time.Time) []*session {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	var out []*session
	for key, list := range ic.byKey {
		kept := list[:0]
		for _, is := range list {
			if ic.expired(is, now) {
				out = append(out, is.s)
			} else {
				kept = append(kept, is)
			}
		}
		clear(list[len(kept):])
		ic.n -= len(list) - len(kept)
		if len(kept) == 0 {
			delete(ic.byKey, key)
		} else {
			ic.byKey[key] = kept
		}
	}
	return out
}

// close refuses every later put and returns every idle session.
func (ic *idleCache) close() []*session {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.closed = true
	var out []*session
	for _, list := range ic.byKey {
		for _, is := range list {
			out = append(out, is.s)
		}
	}
	ic.byKey, ic.n = map[string][]idleSession{}, 0
	return out
}

// count is the number of idle sessions, for key or (key "") in all.
func (ic *idleCache) count(key string) int {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if key == "" {
		return ic.n
	}
	return len(ic.byKey[key])
}
