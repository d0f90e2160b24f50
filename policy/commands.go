package policy

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"abox/accounts"
)

// MaxCommandWait bounds how long an IMAP command over its account's rate
// waits for its turn. A client's own commands come one after another, so
// one session waits at most a token's time (0.1 s at the standard 600 a
// minute); only many sessions hammering one account at once, or a class
// slower than 6 commands a minute, queue longer, and then the command is
// refused NO [LIMIT]. It stays under the 20 s after which mbsync, by
// default, gives up on a silent server.
const MaxCommandWait = 10 * time.Second

// CommandBudgets hold every account's IMAP command budget (the terms'
// "requests per period"): a token bucket per account, shared by all its
// sessions and kept across reconnects (in memory: a restart forgets it).
// The burst lets a client sync a whole mailbox at full speed; past it
// commands go at the class's sustained rate. A command counts once,
// however many messages it names.
type CommandBudgets struct {
	mu      sync.Mutex
	buckets map[uint64]*rate.Limiter // guarded by mu
	lastGC  time.Time                // guarded by mu
}

func newCommandBudgets() *CommandBudgets {
	return &CommandBudgets{buckets: map[uint64]*rate.Limiter{}}
}

// Take spends one command of an account's budget at now. It returns how
// long the command must wait for its turn (0 within the burst), or a
// Refusal (ErrRateLimited) when that would be longer than MaxCommandWait.
// A rate or burst of 0 means unlimited; a changed class applies at once.
func (b *CommandBudgets) Take(account uint64, perMinute, burst int64, now time.Time) (time.Duration, error) {
	if perMinute <= 0 || burst <= 0 {
		return 0, nil
	}
	limit := rate.Limit(float64(perMinute) / 60)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gc(now)
	lim := b.buckets[account]
	if lim == nil {
		lim = rate.NewLimiter(limit, int(burst))
		b.buckets[account] = lim
	}
	if lim.Limit() != limit {
		lim.SetLimitAt(now, limit)
	}
	if lim.Burst() != int(burst) {
		lim.SetBurstAt(now, int(burst))
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if !r.OK() || wait > MaxCommandWait {
		r.CancelAt(now)
		return 0, refuse(ErrRateLimited, "too many commands: your account allows %d a minute after a burst of %d; slow down", perMinute, burst)
	}
	return wait, nil
}

// gc drops, once a minute, the buckets that have refilled: a full bucket
// is what a new one would be. Caller holds b.mu.
func (b *CommandBudgets) gc(now time.Time) {
	if now.Sub(b.lastGC) < time.Minute {
		return
	}
	b.lastGC = now
	for acct, lim := range b.buckets {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(b.buckets, acct)
		}
	}
}

// IMAPCommand spends one IMAP command of the account's budget now; see
// CommandBudgets.Take.
func (e *Engine) IMAPCommand(a *accounts.Account) (time.Duration, error) {
	lim, err := e.LimitsOf(a)
	if err != nil {
		return 0, fmt.Errorf("limits of %s: %w", a.Address(), err)
	}
	return e.Commands.Take(a.ID, lim.IMAPCommandsPerMinute, lim.IMAPCommandBurst, e.clock())
}
