package policy

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Password checks are argon2id: each holds its memory cost (19 MiB by
// default) and a CPU for tens of milliseconds. Unbounded, 160 failed
// logins at once from two addresses took the server to 3 GB (issue 13).
// hashGate bounds how many run at once, in all and per client address,
// for every listener (SMTP AUTH, IMAP LOGIN, the notice API's Basic auth,
// all through Engine.Authenticate). A check that finds no free slot waits
// up to wait for one, then fails with ErrAuthBusy (a temporary failure).

// HashLimits configure the gate. Zero fields take the defaults.
type HashLimits struct {
	// Concurrent password checks running at once (default: twice the
	// number of CPUs).
	Concurrent int
	// PerAddress is how many of them one client address (an IPv4
	// address, an IPv6 /64) may have running, outside the trusted
	// networks (default 2); as many more may wait.
	PerAddress int
	// Wait is how long a check waits for a slot before failing (default
	// 2 s; negative: it does not wait).
	Wait time.Duration
}

// hashGate is a counting semaphore with per-address counts and a bounded
// queue of waiters.
type hashGate struct {
	lim        HashLimits
	maxWaiting int // waiters in all: 8 per slot
	metrics    *Metrics

	mu      sync.Mutex
	running int                         // guarded by mu
	waiting int                         // guarded by mu
	byAddr  map[netip.Prefix]*addrSlots // guarded by mu
	freed   chan struct{}               // guarded by mu; closed and replaced when a slot frees
	peak    int                         // guarded by mu; most running at once
	peakOne int                         // guarded by mu; most running at once for one address
}

type addrSlots struct{ running, waiting int }

func newHashGate(lim HashLimits, m *Metrics) *hashGate {
	return &hashGate{lim: lim, maxWaiting: 8 * lim.Concurrent, metrics: m,
		byAddr: map[netip.Prefix]*addrSlots{}, freed: make(chan struct{})}
}

// hashAddress is the unit the per-address bound counts: the IPv4 address,
// or the IPv6 /64 (one host commonly holds a whole /64).
func hashAddress(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 32
	}
	p, _ := ip.Prefix(bits)
	return p
}

// acquire takes a slot for a password check from ip; perAddress says
// whether the per-address bound applies (not to trusted networks). It
// returns the function that gives the slot back, or ErrAuthBusy.
func (g *hashGate) acquire(ctx context.Context, ip netip.Addr, perAddress bool) (func(), error) {
	key := hashAddress(ip)
	perAddr := g.lim.PerAddress
	if !perAddress {
		perAddr = g.lim.Concurrent
	}
	g.mu.Lock()
	a := g.byAddr[key]
	if a == nil {
		a = &addrSlots{}
		g.byAddr[key] = a
	}
	if g.admit(a, perAddr) {
		g.mu.Unlock()
		return g.releaser(key, a), nil
	}
	// A trusted network has no per-address bound on waiting either (it
	// had: ten logins at once from 127.0.0.1 saw two refused at once,
	// however long the wait; imaptest's stress mode).
	if g.lim.Wait < 0 || g.waiting >= g.maxWaiting || perAddress && a.waiting >= perAddr {
		g.forget(key, a)
		g.mu.Unlock()
		return nil, g.busy()
	}
	g.waiting++
	a.waiting++
	timer := time.NewTimer(g.lim.Wait)
	defer timer.Stop()
	for {
		freed := g.freed
		g.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-timer.C:
			err = g.busy()
		case <-ctx.Done():
			err = ctx.Err()
		}
		g.mu.Lock()
		if err == nil && !g.admit(a, perAddr) {
			continue
		}
		g.waiting--
		a.waiting--
		if err != nil {
			g.forget(key, a)
			g.mu.Unlock()
			return nil, err
		}
		g.mu.Unlock()
		return g.releaser(key, a), nil
	}
}

// admit takes a slot when the global and the address's bounds allow.
// Caller holds g.mu.
func (g *hashGate) admit(a *addrSlots, perAddr int) bool {
	if g.running >= g.lim.Concurrent || a.running >= perAddr {
		return false
	}
	g.running++
	a.running++
	g.peak = max(g.peak, g.running)
	g.peakOne = max(g.peakOne, a.running)
	if g.metrics != nil {
		g.metrics.hashesRunning.Set(float64(g.running))
		g.metrics.hashesPeak.Set(float64(g.peak))
	}
	return true
}

func (g *hashGate) releaser(key netip.Prefix, a *addrSlots) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.running--
			a.running--
			g.forget(key, a)
			if g.metrics != nil {
				g.metrics.hashesRunning.Set(float64(g.running))
			}
			close(g.freed)
			g.freed = make(chan struct{})
			g.mu.Unlock()
		})
	}
}

// forget drops an address with nothing running or waiting. Caller holds
// g.mu.
func (g *hashGate) forget(key netip.Prefix, a *addrSlots) {
	if a.running == 0 && a.waiting == 0 {
		delete(g.byAddr, key)
	}
}

func (g *hashGate) busy() error {
	if g.metrics != nil {
		g.metrics.authBusy.Inc()
	}
	return refuse(ErrAuthBusy, "too many logins are being checked; try again in a moment")
}
