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
	return s.feed.Subscribe(account, wake)
}

// SubscribeAll returns a subscription to every account's changes (wake
// as for Subscribe).
func (s *Store) SubscribeAll(wake func()) *Subscription { return s.feed.SubscribeAll(wake) }

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

// NewFeed returns an empty feed, for a backend other than the embedded
// one (store/pgstore) that publishes the changes it learns of.
func NewFeed() *Feed { return newFeed() }

// Subscribe is Store.Subscribe on a feed of another backend.
func (f *Feed) Subscribe(account uint64, wake func()) *Subscription {
	sub := &Subscription{account: account, feed: f, wake: wake}
	f.mu.Lock()
	m := f.subs[account]
	if m == nil {
		m = map[*Subscription]struct{}{}
		f.subs[account] = m
	}
	m[sub] = struct{}{}
	f.mu.Unlock()
	return sub
}

// SubscribeAll is Store.SubscribeAll on a feed of another backend.
func (f *Feed) SubscribeAll(wake func()) *Subscription {
	sub := &Subscription{any: true, feed: f, wake: wake}
	f.mu.Lock()
	f.all[sub] = struct{}{}
	f.mu.Unlock()
	return sub
}

// Publish hands committed changes, in commit order, to the subscribers.
func (f *Feed) Publish(changes []Change) { f.publish(changes) }

// LoseAll marks every subscription as having lost changes (a backend
// that could not hear some commits, such as one whose notification
// connection dropped): each subscriber reloads its state from the store.
func (f *Feed) LoseAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	lose := func(sub *Subscription) {
		sub.mu.Lock()
		if sub.closed || sub.lost {
			sub.mu.Unlock()
			return
		}
		wasEmpty := len(sub.pending) == 0
		sub.pending, sub.lost = nil, true
		sub.mu.Unlock()
		if wasEmpty && sub.wake != nil {
			sub.wake()
		}
	}
	for _, m := range f.subs {
		for sub := range m {
			lose(sub)
		}
	}
	for sub := range f.all {
		lose(sub)
	}
}

// CloseAll ends every subscription (the backend is closing).
func (f *Feed) CloseAll() { f.closeAll() }
