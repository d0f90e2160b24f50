package store

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
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
	// ChangesLost is the last change a subscriber that fell behind
	// receives: Lost is true, later changes are dropped, and the
	// subscriber must reload its state. It wakes a reader that waits on
	// C, which the Lost flag alone cannot do.
	ChangesLost
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

// subBuffer bounds how far a subscriber may fall behind before it is
// marked as having lost changes. Its channel holds one more, for the
// ChangesLost marker.
const subBuffer = 32

// Feed fans committed changes out to subscribers, per account.
type Feed struct {
	mu   sync.Mutex
	subs map[uint64]map[*Subscription]struct{} // guarded by mu
	all  map[*Subscription]struct{}            // guarded by mu
}

// Subscription receives the changes of one account (or of all). If the
// subscriber falls more than subBuffer changes behind, Lost becomes true,
// a ChangesLost change is its last, and further changes are dropped: the
// subscriber must reload its state.
type Subscription struct {
	C       <-chan Change
	c       chan Change
	lost    atomic.Bool
	account uint64
	any     bool
	feed    *Feed
	once    sync.Once
}

func newFeed() *Feed {
	return &Feed{subs: map[uint64]map[*Subscription]struct{}{}, all: map[*Subscription]struct{}{}}
}

// Subscribe returns a subscription to the changes of one account.
func (s *Store) Subscribe(account uint64) *Subscription {
	sub := &Subscription{c: make(chan Change, subBuffer+1), account: account, feed: s.feed}
	sub.C = sub.c
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

// SubscribeAll returns a subscription to every account's changes.
func (s *Store) SubscribeAll() *Subscription {
	sub := &Subscription{c: make(chan Change, subBuffer+1), any: true, feed: s.feed}
	sub.C = sub.c
	s.feed.mu.Lock()
	s.feed.all[sub] = struct{}{}
	s.feed.mu.Unlock()
	return sub
}

// Lost reports whether changes were dropped because the subscriber fell
// behind.
func (sub *Subscription) Lost() bool { return sub.lost.Load() }

// Close ends the subscription and closes C.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		f := sub.feed
		f.mu.Lock()
		if sub.any {
			delete(f.all, sub)
		} else if m := f.subs[sub.account]; m != nil {
			delete(m, sub)
			if len(m) == 0 {
				delete(f.subs, sub.account)
			}
		}
		close(sub.c)
		f.mu.Unlock()
	})
}

func (f *Feed) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		for sub := range f.subs[c.Account] {
			sub.send(c)
		}
		for sub := range f.all {
			sub.send(c)
		}
	}
}

// send never blocks: the writer must not wait on a slow reader. Only
// send puts changes on sub.c, under f.mu, so the length it sees can only
// shrink: below subBuffer the change fits, and at subBuffer the marker
// still fits. Lost is set before the marker is sent, so a reader that
// takes the marker (or drains the channel after it) sees it; setting
// the flag after a failed send instead left a window in which the reader
// emptied the channel, saw Lost false and waited for ever.
// Caller holds f.mu.
func (sub *Subscription) send(c Change) {
	if sub.lost.Load() {
		return
	}
	if len(sub.c) < subBuffer {
		sub.c <- c
		return
	}
	sub.lost.Store(true)
	sub.c <- Change{Kind: ChangesLost, Account: sub.account}
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
