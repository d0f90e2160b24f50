package imapd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"abox/store"
)

// mailboxSim is a mailbox as the store holds it, with the change feed
// one session's subscription would carry (lost past feedBuffer, as
// store.Subscription does).
type mailboxSim struct {
	uids    []uint32
	flags   map[uint32][]string
	modseq  uint64 // HIGHESTMODSEQ
	next    uint32 // UIDNEXT
	mods    map[uint32]uint64
	feed    []store.Change
	lost    bool
	bufSize int
}

func newMailboxSim(n, bufSize int) *mailboxSim {
	m := &mailboxSim{flags: map[uint32][]string{}, mods: map[uint32]uint64{}, modseq: 1, next: 1, bufSize: bufSize}
	for range n {
		m.add()
	}
	m.feed, m.lost = nil, false
	return m
}

func (m *mailboxSim) publish(c store.Change) {
	if m.lost {
		return
	}
	if len(m.feed) >= m.bufSize {
		m.feed, m.lost = nil, true
		return
	}
	m.feed = append(m.feed, c)
}

func (m *mailboxSim) add() {
	m.modseq++
	uid := m.next
	m.next++
	m.uids = append(m.uids, uid)
	m.flags[uid], m.mods[uid] = nil, m.modseq
	m.publish(store.Change{Kind: store.MessageAdded, UID: uid, ModSeq: m.modseq})
}

func (m *mailboxSim) remove(uid uint32) bool {
	i, ok := slices.BinarySearch(m.uids, uid)
	if !ok {
		return false
	}
	m.uids = slices.Delete(m.uids, i, i+1)
	delete(m.flags, uid)
	delete(m.mods, uid)
	m.publish(store.Change{Kind: store.MessageRemoved, UID: uid})
	return true
}

// setFlags changes a message's flags; it returns the new modseq, or 0
// when the message is gone.
func (m *mailboxSim) setFlags(uid uint32, flags []string) uint64 {
	if _, ok := m.flags[uid]; !ok {
		return 0
	}
	m.modseq++
	m.flags[uid], m.mods[uid] = flags, m.modseq
	m.publish(store.Change{Kind: store.FlagsChanged, UID: uid, Flags: flags, ModSeq: m.modseq})
	return m.modseq
}

func (m *mailboxSim) take() ([]store.Change, bool) {
	c, l := m.feed, m.lost
	m.feed, m.lost = nil, false
	return c, l
}

func (m *mailboxSim) snapshot() []stored {
	out := make([]stored, len(m.uids))
	for i, uid := range m.uids {
		out[i] = stored{uid: uid, flags: m.flags[uid], modseq: m.mods[uid]}
	}
	return out
}

// clientSim is what a client believes, built only from what it is told:
// EXISTS, EXPUNGE (or, with QRESYNC, VANISHED), and FETCH responses
// (with UID and MODSEQ).
type clientSim struct {
	t       *testing.T
	uids    []uint32 // seq n is uids[n-1]; 0 until fetched
	flags   map[uint32][]string
	modseqs map[uint32]uint64 // the last MODSEQ told per UID
}

func (c *clientSim) receive(u update, v *view, m *mailboxSim, allowExpunge bool, step int) {
	switch u.kind {
	case updateExists:
		if int(u.n) < len(c.uids) {
			c.t.Fatalf("step %d: EXISTS %d below the %d messages the client knows", step, u.n, len(c.uids))
		}
		for seq := uint32(len(c.uids)) + 1; seq <= u.n; seq++ {
			// The client asks FETCH seq (UID FLAGS); the server answers
			// from the view's numbering and the store.
			uid := v.uidAt(seq)
			if n := len(c.uids); n > 0 && uid <= c.uids[n-1] {
				c.t.Fatalf("step %d: new message %d has UID %d, not above the last known %d", step, seq, uid, c.uids[n-1])
			}
			c.uids = append(c.uids, uid)
			c.flags[uid] = m.flags[uid]
		}
	case updateExpunge:
		if v.qresync {
			c.t.Fatalf("step %d: EXPUNGE %d to a QRESYNC client", step, u.seq)
		}
		if !allowExpunge {
			c.t.Fatalf("step %d: EXPUNGE %d where expunges are forbidden", step, u.seq)
		}
		if u.seq < 1 || int(u.seq) > len(c.uids) {
			c.t.Fatalf("step %d: EXPUNGE %d with %d messages", step, u.seq, len(c.uids))
		}
		uid := c.uids[u.seq-1]
		if slices.Contains(m.uids, uid) {
			c.t.Fatalf("step %d: EXPUNGE %d (UID %d) of a message still in the mailbox", step, u.seq, uid)
		}
		c.uids = slices.Delete(c.uids, int(u.seq)-1, int(u.seq))
		delete(c.flags, uid)
	case updateVanished:
		if !allowExpunge {
			c.t.Fatalf("step %d: VANISHED %v where expunges are forbidden", step, u.uids)
		}
		if !v.qresync {
			c.t.Fatalf("step %d: VANISHED %v to a client without QRESYNC", step, u.uids)
		}
		for _, uid := range u.uids {
			i, ok := slices.BinarySearch(c.uids, uid)
			if !ok || slices.Contains(m.uids, uid) {
				c.t.Fatalf("step %d: VANISHED %d: known %v, still in the mailbox %v", step, uid, ok, slices.Contains(m.uids, uid))
			}
			c.uids = slices.Delete(c.uids, i, i+1)
			delete(c.flags, uid)
		}
	case updateFlags:
		if u.seq < 1 || int(u.seq) > len(c.uids) || c.uids[u.seq-1] != u.uid {
			c.t.Fatalf("step %d: FETCH %d (UID %d) but the client has %v", step, u.seq, u.uid, c.uids)
		}
		// RFC 7162 §3.1: a message's MODSEQ only grows, and is the one
		// of the flags told with it.
		if u.modseq == 0 || u.modseq < c.modseqs[u.uid] || u.modseq > m.modseq {
			c.t.Fatalf("step %d: FETCH UID %d MODSEQ %d after %d (mailbox at %d)", step, u.uid, u.modseq, c.modseqs[u.uid], m.modseq)
		}
		c.modseqs[u.uid] = u.modseq
		c.flags[u.uid] = u.flags
	}
}

// TestViewFollowsTheMailbox runs random changes (others' appends,
// expunges and flag changes; the session's own STOREs, EXPUNGEs and
// MOVEs; feed losses) against a view and a client that believes only
// what it is told, and checks after every step that the client's
// numbering is the view's, that no EXPUNGE came where forbidden or for a
// message still there, that numbers only ever change by EXPUNGE, and at
// the end that the client holds exactly the mailbox and its flags.
func TestViewFollowsTheMailbox(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { viewScenario(t, seed) })
	}
}

func viewScenario(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	bufSize := []int{2, 8, 32}[seed%3]
	m := newMailboxSim(rng.IntN(20), bufSize)
	v := newView(slices.Clone(m.uids), m.modseq)
	v.qresync = seed%2 == 1 // half the runs tell expunges by UID (VANISHED)
	c := &clientSim{t: t, uids: slices.Clone(m.uids), flags: map[uint32][]string{}, modseqs: map[uint32]uint64{}}
	flagSets := [][]string{nil, {`\Seen`}, {`\Flagged`}, {`\Seen`, `\Flagged`}, {`$Junk`}}
	randomUID := func() uint32 {
		if len(m.uids) == 0 {
			return 1
		}
		return m.uids[rng.IntN(len(m.uids))]
	}
	// drain is the session's: take the feed, resync after a loss.
	drain := func() {
		changes, lost := m.take()
		if lost {
			if n := v.resync(m.snapshot()); n != 0 {
				t.Fatalf("resync: %d messages the client can never see", n)
			}
			return
		}
		for _, ch := range changes {
			v.apply(ch)
		}
	}
	flush := func(step int, allowExpunge bool) {
		drain()
		for _, u := range v.updates(allowExpunge) {
			c.receive(u, v, m, allowExpunge, step)
		}
		if !slices.Equal(c.uids, v.uids) {
			t.Fatalf("step %d: the client numbers %v, the view %v", step, c.uids, v.uids)
		}
	}
	for step := range 400 {
		switch r := rng.IntN(100); {
		case r < 25: // a delivery or an APPEND elsewhere
			for range 1 + rng.IntN(3) {
				m.add()
			}
		case r < 40: // an expunge elsewhere
			m.remove(randomUID())
		case r < 60: // a flag change elsewhere
			m.setFlags(randomUID(), flagSets[rng.IntN(len(flagSets))])
		case r < 70: // the session's own STORE (silent or not)
			if v.count() == 0 {
				continue
			}
			seq := uint32(1 + rng.IntN(v.count()))
			uid := v.uidAt(seq)
			flags := flagSets[rng.IntN(len(flagSets))]
			mod := m.setFlags(uid, flags)
			if mod == 0 {
				continue // expunged elsewhere: STORE changes nothing
			}
			silent := rng.IntN(2) == 0
			if silent {
				v.expectEcho(uid, mod)
			}
			drain()
			v.forgetEchoes()
			if !silent {
				v.answered(uid, mod)
				c.flags[uid] = flags // the tagged command's FETCH
			} else {
				c.flags[uid] = flags // the client knows what it set
			}
			flush(step, false) // STORE forbids EXPUNGE
		case r < 78: // the session's own EXPUNGE or MOVE of some messages
			var removed []uint32
			for range 1 + rng.IntN(3) {
				if uid := randomUID(); m.remove(uid) {
					removed = append(removed, uid)
				}
			}
			v.expunged(removed)
			seqs, uids := v.takeGone() // as session.writeGone
			if v.qresync {
				slices.Sort(uids)
				c.receive(update{kind: updateVanished, uids: uids}, v, m, true, step)
			} else {
				for _, seq := range seqs {
					c.receive(update{kind: updateExpunge, seq: seq}, v, m, true, step)
				}
			}
			flush(step, true)
		case r < 88: // FETCH, STORE or SEARCH ends: no EXPUNGE
			flush(step, false)
		default: // any other command, or an IDLE wake-up
			flush(step, true)
		}
	}
	flush(-1, true)
	if !slices.Equal(c.uids, m.uids) {
		t.Fatalf("at the end the client has %v, the mailbox %v", c.uids, m.uids)
	}
	for _, uid := range m.uids {
		if !slices.Equal(c.flags[uid], m.flags[uid]) {
			t.Errorf("at the end the client has UID %d with flags %v, the mailbox %v", uid, c.flags[uid], m.flags[uid])
		}
	}
}

// TestViewOverflowNeverRenumbers is the case: the session falls
// behind (more changes than the feed holds), new messages keep coming;
// the client must never see a number reused for another UID without an
// EXPUNGE in between.
func TestViewOverflowNeverRenumbers(t *testing.T) {
	m := newMailboxSim(5, 32)
	v := newView(slices.Clone(m.uids), m.modseq)
	c := &clientSim{t: t, uids: slices.Clone(m.uids), flags: map[uint32][]string{}, modseqs: map[uint32]uint64{}}
	for range 40 { // UIDs 6..45: the feed overflows
		m.add()
	}
	changes, lost := m.take()
	if !lost || changes != nil {
		t.Fatalf("the feed did not overflow")
	}
	v.resync(m.snapshot())
	m.add() // UID 46, after the loss
	changes, _ = m.take()
	for _, ch := range changes {
		v.apply(ch)
	}
	for _, u := range v.updates(false) { // during a FETCH
		c.receive(u, v, m, false, 1)
	}
	if len(c.uids) != 46 || c.uids[5] != 6 || c.uids[45] != 46 {
		t.Fatalf("after the overflow the client numbers %v", c.uids)
	}
	// Expunges elsewhere while the session is behind: they wait for a
	// moment that allows them, then go highest first.
	for _, uid := range []uint32{3, 10, 44} {
		m.remove(uid)
	}
	for range 40 {
		m.setFlags(20, []string{`\Seen`})
	}
	_, lost = m.take()
	if !lost {
		t.Fatal("the feed did not overflow")
	}
	v.resync(m.snapshot())
	var seqs []uint32
	for _, u := range v.updates(false) {
		if u.kind == updateExpunge {
			t.Fatalf("EXPUNGE during FETCH")
		}
		c.receive(u, v, m, false, 2)
	}
	if c.flags[20] == nil {
		t.Errorf("the flags changed while the feed was lost were not told")
	}
	for _, u := range v.updates(true) {
		if u.kind == updateExpunge {
			seqs = append(seqs, u.seq)
		}
		c.receive(u, v, m, true, 3)
	}
	if fmt.Sprint(seqs) != "[44 10 3]" {
		t.Errorf("EXPUNGEs %v, want [44 10 3] (highest first)", seqs)
	}
	if !slices.Equal(c.uids, m.uids) {
		t.Errorf("client %v, mailbox %v", c.uids, m.uids)
	}
}

// TestViewSilentStore: .SILENT suppresses the echo of the session's own
// change, not a change made elsewhere before it.
func TestViewSilentStore(t *testing.T) {
	m := newMailboxSim(3, 32)
	v := newView(slices.Clone(m.uids), m.modseq)
	// Alone: nothing to tell.
	mod := m.setFlags(2, []string{`\Seen`})
	v.expectEcho(2, mod)
	changes, _ := m.take()
	for _, ch := range changes {
		v.apply(ch)
	}
	v.forgetEchoes()
	if u := v.updates(true); len(u) != 0 {
		t.Errorf("a silent STORE alone told %v", u)
	}
	// After a change elsewhere: the client learns the result.
	m.setFlags(2, []string{`\Seen`, `\Flagged`})
	mod = m.setFlags(2, []string{`\Flagged`})
	v.expectEcho(2, mod)
	changes, _ = m.take()
	for _, ch := range changes {
		v.apply(ch)
	}
	v.forgetEchoes()
	u := v.updates(true)
	if len(u) != 1 || u[0].kind != updateFlags || fmt.Sprint(u[0].flags) != `[\Flagged]` {
		t.Errorf("a silent STORE after a change elsewhere told %v, want FETCH (FLAGS (\\Flagged))", u)
	}
	// A plain STORE's answer makes older queued changes old news.
	m.setFlags(1, []string{`\Draft`})
	mod = m.setFlags(1, []string{`\Seen`})
	changes, _ = m.take()
	for _, ch := range changes {
		v.apply(ch)
	}
	v.answered(1, mod)
	if u := v.updates(true); len(u) != 0 {
		t.Errorf("after a STORE's answer: %v, want nothing", u)
	}
}

// TestViewExpungeOfUnannouncedMessage: a message added and expunged
// before the client heard of it is never mentioned.
func TestViewExpungeOfUnannouncedMessage(t *testing.T) {
	m := newMailboxSim(2, 32)
	v := newView(slices.Clone(m.uids), m.modseq)
	m.add()
	m.add()
	m.remove(3)
	changes, _ := m.take()
	for _, ch := range changes {
		v.apply(ch)
	}
	u := v.updates(true)
	if len(u) != 1 || u[0].kind != updateExists || u[0].n != 3 || v.uidAt(3) != 4 {
		t.Errorf("updates %v (view %v), want only EXISTS 3 with UID 4 third", u, v.uids)
	}
}
