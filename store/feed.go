package store

import (
	"encoding/binary"
	"sync"
)

// ChangeKind says what a Change reports.
type ChangeKind uint8

// The kinds of change the feed carries.
const (
	MessageAdded   ChangeKind = iota + 1 // UID, Flags, ModSeq set
	FlagsChanged                         // UID, Flags, ModSeq set
	MessageRemoved                       // UID set (expunged)
	MailboxCreated
	MailboxDeleted
	MailboxRenamed
	AccountChanged // state, class or credentials changed
	// SubscriptionChanged: a mailbox was subscribed or unsubscribed
	// (NOTIFY's SubscriptionChange, RFC 5465 §5.5).
	SubscriptionChanged
)

// Change is one committed change, published after its commit in commit
// order.
type Change struct {
	Kind    ChangeKind
	Account uint64
	Mailbox uint32
	UID     uint32
	Flags   []string
	ModSeq  uint64
}

// subBuffer bounds how many changes a subscription holds for a
// subscriber that has not taken them; past it the subscription drops
// them and reports that changes were lost.
const subBuffer = 32

// Feed fans committed changes out to subscribers, per account.
type Feed struct {
	mu   sync.Mutex
	subs map[uint64]map[*Subscription]struct{} // guarded by mu
	all  map[*Subscription]struct{}            // guarded by mu
}

// Subscription holds the changes of one account (or of all) until the
// subscriber takes them. It costs nothing while empty: no channel and no
// goroutine wait on it, so a million idle IMAP sessions hold a million
// empty subscriptions, not a million buffers. The subscriber learns of
// new changes from its wake function.
type Subscription struct {
	mu      sync.Mutex
	pending []Change // guarded by mu; nil when empty
	lost    bool     // guarded by mu: more than subBuffer were dropped
	closed  bool     // guarded by mu
	wake    func()
	account uint64
	any     bool
	feed    *Feed
}

func newFeed() *Feed {
	return &Feed{subs: map[uint64]map[*Subscription]struct{}{}, all: map[*Subscription]struct{}{}}
}

// Subscribe returns a subscription to the changes of one account. wake,
// if not nil, is called each time a change (or the loss of changes)
// arrives at a subscription that held nothing: the subscriber should
// then Take. wake runs on the publishing goroutine with the feed locked,
// so it must return at once and must not call into the store.
func (s *Store) Subscribe(account uint64, wake func()) *Subscription {
	sub := &Subscription{account: account, feed: s.feed, wake: wake}
	s.feed.mu.Lock()
	m := s.feed.subs[account]
	if m == nil {
		m = map[*Subscription]struct{}{}
		s.feed.subs[account] = m
	}
	m[sub] = struct{}{}
	s.feed.mu.Unlock()
	return sub
}

// SubscribeAll returns a subscription to every account's changes (wake
// as for Subscribe).
func (s *Store) SubscribeAll(wake func()) *Subscription {
	sub := &Subscription{any: true, feed: s.feed, wake: wake}
	s.feed.mu.Lock()
	s.feed.all[sub] = struct{}{}
	s.feed.mu.Unlock()
	return sub
}

// Take returns the changes published since the last Take, in commit
// order, and whether changes were lost: when more than subBuffer waited,
// the held ones were dropped (none is returned) and the subscriber must
// reload its state from the store; changes published after this Take
// arrive as usual.
func (sub *Subscription) Take() (changes []Change, lost bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	changes, lost = sub.pending, sub.lost
	sub.pending, sub.lost = nil, false
	return changes, lost
}

// Pending reports whether Take would return something.
func (sub *Subscription) Pending() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return len(sub.pending) > 0 || sub.lost
}

// Close ends the subscription: nothing more arrives.
func (sub *Subscription) Close() {
	f := sub.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	sub.mu.Lock()
	already := sub.closed
	sub.closed, sub.pending = true, nil
	sub.mu.Unlock()
	if already {
		return
	}
	if sub.any {
		delete(f.all, sub)
	} else if m := f.subs[sub.account]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(f.subs, sub.account)
		}
	}
}

func (f *Feed) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		for sub := range f.subs[c.Account] {
			sub.add(c)
		}
		for sub := range f.all {
			sub.add(c)
		}
	}
}

// add never blocks: the writer must not wait on a slow subscriber. Past
// subBuffer the held changes are dropped and the subscription is marked
// lost, which bounds its memory. Caller holds f.mu.
func (sub *Subscription) add(c Change) {
	sub.mu.Lock()
	if sub.closed || sub.lost {
		sub.mu.Unlock()
		return
	}
	wasEmpty := len(sub.pending) == 0
	if len(sub.pending) < subBuffer {
		sub.pending = append(sub.pending, c)
	} else {
		sub.pending, sub.lost = nil, true
	}
	sub.mu.Unlock()
	if wasEmpty && sub.wake != nil {
		sub.wake()
	}
}

func (f *Feed) closeAll() {
	f.mu.Lock()
	var subs []*Subscription
	for _, m := range f.subs {
		for sub := range m {
			subs = append(subs, sub)
		}
	}
	for sub := range f.all {
		subs = append(subs, sub)
	}
	f.mu.Unlock()
	for _, sub := range subs {
		sub.Close()
	}
}

func decodeU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
