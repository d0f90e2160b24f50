package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"abox/store"
)

// Transport carries one message to one destination domain and reports
// each recipient's outcome (package outbound; tests may use another).
// It never retries: the sender loop decides what happens next.
type Transport interface {
	Send(ctx context.Context, domain string, m *OutMessage) OutResult
}

// OutMessage is what a Transport sends.
type OutMessage struct {
	From       string // reverse-path ("" the null one)
	Recipients []OutRecipient
	Body       []byte
	// MAIL parameters (see Envelope).
	SMTPUTF8, EightBit, RequireTLS bool
	Ret, EnvID                     string
}

// OutRecipient is a recipient with its DSN parameters.
type OutRecipient struct {
	Address string
	Notify  []string
	ORcpt   string
}

// OutStatus is a recipient's outcome of one attempt.
type OutStatus int

const (
	OutDelivered OutStatus = iota + 1 // the server took it (250 to DATA)
	OutDeferred                       // try again later
	OutFailed                         // permanent failure
)

// OutOutcome is one recipient's outcome with the reply that decided it.
type OutOutcome struct {
	Status   OutStatus
	Code     int
	Enhanced string
	Text     string
	// Remote says the reply came from the remote server (else it is
	// ours: DNS, connection, TLS policy); RemoteMTA names that server.
	Remote    bool
	RemoteMTA string
}

// Reply renders the outcome as "code enhanced text".
func (o OutOutcome) Reply() string {
	return strings.TrimSpace(fmt.Sprintf("%d %s %s", o.Code, o.Enhanced, o.Text))
}

// OutResult is a Transport's report of one attempt.
type OutResult struct {
	Recipients  []OutOutcome // parallel to OutMessage.Recipients
	Host        string       // the server that answered
	TLS         string       // "none" or version and cipher
	Security    string       // dane, mta-sts, starttls, none, smarthost
	SupportsDSN bool         // the server took the DSN parameters
}

// sender is the outbound sender loop's state.
type sender struct {
	e    *Engine
	cfg  *OutboundConfig
	wake chan struct{}

	mu      sync.Mutex
	busy    map[string]int           // attempts leased or running per domain; guarded by mu
	limiter map[string]*rate.Limiter // per domain, when DomainRate is set; guarded by mu
}

// RunOutbound runs the sender loop until ctx ends: it leases due queue
// entries, sends each through the Transport (at most Concurrency at
// once, PerDomain to one domain: a domain at its limit keeps its entries
// due while others are taken), records the outcome, and sends the
// delivery status notifications. It returns once every attempt it
// started has been recorded.
func (e *Engine) RunOutbound(ctx context.Context) error {
	if e.cfg.Outbound == nil || e.cfg.Outbound.Transport == nil {
		return errors.New("policy: outbound mail is not configured")
	}
	q := &sender{e: e, cfg: e.cfg.Outbound, wake: make(chan struct{}, 1), busy: map[string]int{}, limiter: map[string]*rate.Limiter{}}
	e.out.Store(q)
	defer e.out.Store(nil)
	// No attempt of an earlier process is still running.
	if n, err := e.store.QueueReleaseLeases(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was attempted
		}
		return err
	} else if n > 0 {
		q.cfg.Logger.Info("outbound: attempts interrupted by the last stop are due again", "entries", n)
	}
	slots := make(chan struct{}, q.cfg.Concurrency)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastFree := time.Time{}
	try := true // something may be due: lease (a logged write) rather than peek
	for {
		if free := cap(slots) - len(slots); free > 0 && try {
			entries, err := e.store.QueueLease(ctx, free, q.cfg.Lease, q.saturated)
			// A full disk is the store's to report (once, at ERROR); the
			// loop tries again at its next tick.
			if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrNoSpace) {
				q.cfg.Logger.Error("outbound: reading the queue", "err", err)
			}
			for _, en := range entries {
				q.reserve(en.Domain)
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					q.attempt(ctx, en)
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			if len(entries) == free {
				continue // more may be due
			}
		}
		if time.Since(lastFree) >= time.Second {
			lastFree = time.Now()
			if _, err := e.store.QueueReleaseBodies(ctx, 1000); err != nil && ctx.Err() == nil {
				q.cfg.Logger.Error("outbound: releasing finished bodies", "err", err)
			}
		}
		try = false
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
			try = true
		case <-freed:
			try = true
		case <-tick.C:
			// A retry or an expired lease comes due: a read, so that an
			// idle server writes nothing.
			try = e.store.QueueDueBefore(e.clock())
		}
	}
}

// saturated says whether a domain has all its attempts, counting the
// taken ones the current lease holds for it (QueueLease's skip): its
// entries stay due, so one slow destination never fills every slot.
func (q *sender) saturated(domain string, taken int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy[domain]+taken >= q.cfg.PerDomain
}

// reserve counts a leased entry's attempt against its domain. Only the
// loop reserves, after a lease that respected saturated, so a domain
// never has more than PerDomain.
func (q *sender) reserve(domain string) {
	q.mu.Lock()
	q.busy[domain]++
	q.mu.Unlock()
}

// release ends an attempt's reservation.
func (q *sender) release(domain string) {
	q.mu.Lock()
	if q.busy[domain]--; q.busy[domain] <= 0 {
		delete(q.busy, domain)
	}
	q.mu.Unlock()
}

// pace waits for the domain's rate (DomainRate), false when ctx ends.
func (q *sender) pace(ctx context.Context, domain string) bool {
	if q.cfg.DomainRate <= 0 {
		return true
	}
	q.mu.Lock()
	lim := q.limiter[domain]
	if lim == nil {
		if len(q.limiter) > 10_000 {
			clear(q.limiter)
		}
		lim = rate.NewLimiter(rate.Limit(q.cfg.DomainRate), max(1, int(q.cfg.DomainRate)))
		q.limiter[domain] = lim
	}
	q.mu.Unlock()
	return lim.Wait(ctx) == nil
}

// attempt sends one leased entry and records the outcome. Whatever
// happens the entry is written back (or stays leased until its lease
// ends, if even that fails).
func (q *sender) attempt(ctx context.Context, en store.QueueEntry) {
	e := q.e
	defer q.release(en.Domain)
	if !q.pace(ctx, en.Domain) {
		return // stopping: the lease is released at the next start
	}
	var pending []int
	msg := &OutMessage{From: en.From, SMTPUTF8: en.SMTPUTF8, EightBit: en.EightBit, RequireTLS: en.RequireTLS, Ret: en.Ret, EnvID: en.EnvID}
	for i, r := range en.Recipients {
		if r.Status == store.QueuePending {
			pending = append(pending, i)
			msg.Recipients = append(msg.Recipients, OutRecipient{Address: r.Address, Notify: r.Notify, ORcpt: r.ORcpt})
		}
	}
	body, err := e.store.QueueBody(&en)
	var res OutResult
	if err != nil {
		q.cfg.Logger.Error("outbound: reading a queued message", "entry", en.ID, "err", err)
		res.Recipients = make([]OutOutcome, len(pending))
		for i := range res.Recipients {
			res.Recipients[i] = OutOutcome{Status: OutDeferred, Code: 451, Enhanced: "4.3.0", Text: "the queued message could not be read"}
		}
	} else {
		msg.Body = stripReturnPath(body)
		res = q.cfg.Transport.Send(ctx, en.Domain, msg)
	}
	// Whatever the remote side answered is recorded, also when the loop
	// is stopping: a 250 not written down would send the letter twice.
	ctx = context.WithoutCancel(ctx)
	now := e.clock()
	en.Attempts++
	en.LastAttempt = now.UTC()
	expired := now.Sub(en.CreatedAt) >= q.cfg.Lifetime
	var failed, delivered, delayed []int
	for k, i := range pending {
		o := OutOutcome{Status: OutDeferred, Code: 451, Enhanced: "4.3.0", Text: "no outcome reported"}
		if k < len(res.Recipients) {
			o = res.Recipients[k]
		}
		r := &en.Recipients[i]
		r.Reply, r.At = o.Reply(), now.UTC()
		if o.RemoteMTA != "" {
			r.Reply = o.RemoteMTA + ": " + r.Reply
		}
		switch {
		case o.Status == OutDelivered:
			r.Status = store.QueueDelivered
			delivered = append(delivered, i)
		case o.Status == OutFailed:
			r.Status = store.QueueFailed
			failed = append(failed, i)
		case expired:
			r.Status = store.QueueFailed
			r.Reply = fmt.Sprintf("gave up after %s: %s", q.cfg.Lifetime, r.Reply)
			failed = append(failed, i)
		default:
			delayed = append(delayed, i)
		}
		e.metrics.outAttempt(o)
	}
	if len(delayed) > 0 {
		en.LastError = en.Recipients[delayed[0]].Reply
	} else {
		en.LastError = ""
	}
	q.cfg.Logger.Info("outbound attempt", "entry", en.ID, "domain", en.Domain, "message_id", en.MessageID, "host", res.Host,
		"tls", res.TLS, "security", res.Security, "delivered", len(delivered), "failed", len(failed), "deferred", len(delayed), "attempt", en.Attempts)
	// Notifications go out before the entry is updated: after a crash
	// in between one may go twice, never not at all.
	if en.From != "" {
		var bounce []int
		for _, i := range failed {
			if notifyWants(en.Recipients[i].Notify, "FAILURE") {
				bounce = append(bounce, i)
			}
		}
		q.notify(ctx, &en, bounce, dsnFailed, res)
		var success []int
		for _, i := range delivered {
			if notifyWants(en.Recipients[i].Notify, "SUCCESS") && !res.SupportsDSN {
				success = append(success, i)
			}
		}
		q.notify(ctx, &en, success, dsnRelayed, res)
		if q.cfg.DelayWarning > 0 && !en.DelayWarned && len(delayed) > 0 && now.Sub(en.CreatedAt) >= q.cfg.DelayWarning {
			var warn []int
			for _, i := range delayed {
				if notifyWants(en.Recipients[i].Notify, "DELAY") {
					warn = append(warn, i)
				}
			}
			q.notify(ctx, &en, warn, dsnDelayed, res)
			en.DelayWarned = true
		}
	}
	en.NextAttempt = now.Add(q.backoff(en.Attempts))
	if end := en.CreatedAt.Add(q.cfg.Lifetime); en.NextAttempt.After(end) {
		en.NextAttempt = end // the last attempt is at the end of the lifetime
	}
	if err := e.store.QueueUpdate(ctx, &en); err != nil {
		q.cfg.Logger.Error("outbound: recording an attempt (the entry is tried again when its lease ends)", "entry", en.ID, "err", err)
	}
}

// backoff is the wait after the n-th attempt: RetryMin doubling up to
// RetryMax.
func (q *sender) backoff(n int) time.Duration {
	d := q.cfg.RetryMin
	for i := 1; i < n && d < q.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, q.cfg.RetryMax)
}

// notify sends one delivery status notification about recipients idx
// of en to its sender, and logs (never fails the attempt) when it
// cannot.
func (q *sender) notify(ctx context.Context, en *store.QueueEntry, idx []int, action dsnAction, res OutResult) {
	if len(idx) == 0 {
		return
	}
	if err := q.e.sendDSN(ctx, en, idx, action, res); err != nil {
		q.cfg.Logger.Error("outbound: a delivery status notification could not be sent", "entry", en.ID, "to", en.From, "action", string(action), "err", err)
		return
	}
	q.e.metrics.outDSN(action)
}
