package imapd

import (
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"abox/store"
)

// view is what a session's client knows of its selected mailbox, and
// what it must still be told (RFC 9051 §5.2, §7.5; RFC 3501 §7.4.1).
//
// The client numbers messages 1..n in UID order. n only grows by EXISTS
// and only shrinks by EXPUNGE, one message at a time, so the view never
// renumbers any other way: a message expunged elsewhere keeps its number
// (gone) until an EXPUNGE may be sent, which is not while FETCH, STORE or
// SEARCH run (their UID forms may see one, and so may every other
// command), and a new message is numbered after the last only if its UID
// is above every UID the client knows.
//
// The view follows the store's change feed (apply). When the feed drops
// changes because the session fell behind, resync compares what the
// client was told with the mailbox as stored and queues exactly the
// differences: an EXPUNGE for every message gone, EXISTS for those
// added, FLAGS for those changed since (by modseq).
//
// It writes nothing itself: updates returns the responses to send, in
// the order they must go. A view is used by one goroutine at a time (the
// session's idling mutex).
type view struct {
	uids  []uint32            // the client's numbering: seq n is uids[n-1]
	gone  map[uint32]struct{} // in uids, expunged in the store, EXPUNGE not sent yet
	added []uint32            // above uids' last, in the store, EXISTS not sent yet
	// flags holds flag changes to announce (the latest per message).
	flags map[uint32]flagChange
	// echo holds the modseqs of flag changes this session's own STORE
	// .SILENT made, until the feed brings them back: they are not
	// announced, unless another change to the message came first (RFC
	// 9051 §6.4.6: .SILENT answers nothing, but changes from elsewhere
	// are still told).
	echo map[uint32]uint64
	// modseq is the highest modseq of the mailbox whose flag changes are
	// all applied or still to come from the feed; resync announces the
	// flags of messages changed after it.
	modseq uint64
	// qresync: expunges are told by UID, VANISHED, not by EXPUNGE (RFC
	// 7162 §3.2.10); the numbering changes the same way.
	qresync bool
	// kw is the FLAGS list the client was told (keywords.go).
	kw keywordList
	// track says the session keeps update contexts (contexts.go): the
	// view then notes in touched every message whose flags changed or
	// that the client was just told of, for the contexts to look at
	// again. Without contexts nothing is noted.
	track   bool
	touched map[uint32]struct{}
}

type flagChange struct {
	flags  []string
	modseq uint64
}

// newView is the view of a mailbox just selected: the client is told
// uids (EXISTS) and fetches flags itself. modseq is the mailbox's
// HIGHESTMODSEQ read after subscribing to the feed.
func newView(uids []uint32, modseq uint64) *view {
	return &view{uids: uids, modseq: modseq}
}

// count is how many messages the client knows (its EXISTS).
func (v *view) count() int { return len(v.uids) }

// seqOf returns uid's sequence number, or 0 when the client does not know
// it.
func (v *view) seqOf(uid uint32) uint32 {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// uidAt returns the UID of sequence number seq (1-based, <= count).
func (v *view) uidAt(seq uint32) uint32 { return v.uids[seq-1] }

// isGone reports whether a message the client knows was expunged.
func (v *view) isGone(uid uint32) bool {
	_, ok := v.gone[uid]
	return ok
}

// last is the highest UID known to the view (told or to be announced).
func (v *view) last() uint32 {
	if n := len(v.added); n > 0 {
		return v.added[n-1]
	}
	if n := len(v.uids); n > 0 {
		return v.uids[n-1]
	}
	return 0
}

// apply takes one committed change of the selected mailbox, in commit
// order. The caller makes sure no change was lost before it (resync).
func (v *view) apply(c store.Change) {
	switch c.Kind {
	case store.MessageAdded:
		// Changes committed before the view's snapshot come again:
		// anything at or below the last UID is known already.
		if c.UID > v.last() {
			v.added = append(v.added, c.UID)
			v.kw.learn(c.Flags)
		}
		v.modseq = max(v.modseq, c.ModSeq)
	case store.MessageRemoved:
		v.remove(c.UID)
		v.modseq = max(v.modseq, c.ModSeq)
	case store.FlagsChanged:
		v.modseq = max(v.modseq, c.ModSeq)
		if v.seqOf(c.UID) == 0 || v.isGone(c.UID) {
			return // unknown yet (the client fetches them) or going
		}
		v.kw.learn(c.Flags)
		v.touch(c.UID) // even the session's own change: a context may change
		old, queued := v.flags[c.UID]
		if e, ok := v.echo[c.UID]; ok && e == c.ModSeq {
			delete(v.echo, c.UID)
			if !queued {
				return // the session's own silent change: nothing new
			}
		}
		if !queued || old.modseq < c.ModSeq {
			if v.flags == nil {
				v.flags = map[uint32]flagChange{}
			}
			v.flags[c.UID] = flagChange{c.Flags, c.ModSeq}
		}
	}
}

// touch notes that uid's flags changed, or that the client was just told
// of it, while contexts want to know (track).
func (v *view) touch(uid uint32) {
	if !v.track {
		return
	}
	if v.touched == nil {
		v.touched = map[uint32]struct{}{}
	}
	v.touched[uid] = struct{}{}
}

// takeTouched returns the touched messages the client knows and that
// are not going (an expunged one leaves its contexts with its EXPUNGE),
// ascending, and forgets them all.
func (v *view) takeTouched() []uint32 {
	if len(v.touched) == 0 {
		return nil
	}
	out := make([]uint32, 0, len(v.touched))
	for uid := range v.touched {
		if v.seqOf(uid) != 0 && !v.isGone(uid) {
			out = append(out, uid)
		}
	}
	clear(v.touched)
	slices.Sort(out)
	return out
}

// remove notes that uid is no longer in the store.
func (v *view) remove(uid uint32) {
	if i, ok := slices.BinarySearch(v.added, uid); ok {
		v.added = slices.Delete(v.added, i, i+1) // never announced
		return
	}
	if v.seqOf(uid) == 0 {
		return
	}
	if v.gone == nil {
		v.gone = map[uint32]struct{}{}
	}
	v.gone[uid] = struct{}{}
}

// answered records that a response of the session's own command gave
// the client uid's flags as of modseq (STORE, or FETCH setting \Seen).
// The caller has applied the feed up to that change, so every queued
// change up to modseq is older news and is dropped.
func (v *view) answered(uid uint32, modseq uint64) {
	if f, ok := v.flags[uid]; ok && f.modseq <= modseq {
		delete(v.flags, uid)
	}
}

// expectEcho records a flag change of the session's own STORE .SILENT,
// before the feed is applied up to it (see echo); forgetEchoes drops
// what the feed did not bring back (it was lost, and resync told it).
func (v *view) expectEcho(uid uint32, modseq uint64) {
	if v.echo == nil {
		v.echo = map[uint32]uint64{}
	}
	v.echo[uid] = modseq
}

func (v *view) forgetEchoes() { clear(v.echo) }

// expunged notes messages this session's own command removed (EXPUNGE,
// MOVE); their EXPUNGE responses go out with the other pending ones.
func (v *view) expunged(uids []uint32) {
	for _, uid := range uids {
		v.remove(uid)
	}
}

// stored is one message as the store holds it now, for resync.
type stored struct {
	uid    uint32
	flags  []string
	modseq uint64
}

// resync brings the view in line with the mailbox as stored now (msgs,
// in UID order), after the feed lost changes. Called after taking the
// feed's loss and before any later change is applied, so every change
// committed after the snapshot comes from the feed, and those committed
// before it are in msgs. It returns how many stored messages the client
// can never be shown: UIDs below one it was told that it was not told
// (a new message must be numbered after the last; they would need
// re-selecting). That is always 0 unless changes were lost unnoticed.
func (v *view) resync(msgs []stored) (invisible int) {
	in := make(map[uint32]*stored, len(msgs))
	for i := range msgs {
		in[msgs[i].uid] = &msgs[i]
	}
	for _, uid := range v.uids {
		if _, ok := in[uid]; !ok {
			v.remove(uid)
		}
	}
	for _, uid := range slices.Clone(v.added) {
		if _, ok := in[uid]; !ok {
			v.remove(uid)
		}
	}
	last := v.last()
	top := v.modseq
	for i := range msgs {
		m := &msgs[i]
		top = max(top, m.modseq)
		switch {
		case m.uid > last:
			v.added = append(v.added, m.uid)
		case v.seqOf(m.uid) != 0:
			if m.modseq > v.modseq && !v.isGone(m.uid) {
				if v.flags == nil {
					v.flags = map[uint32]flagChange{}
				}
				v.flags[m.uid] = flagChange{m.flags, m.modseq}
				v.touch(m.uid)
			}
		default:
			if _, ok := slices.BinarySearch(v.added, m.uid); !ok {
				invisible++
			}
		}
	}
	v.modseq = top
	return invisible
}

// update is one untagged response the view asks for.
type update struct {
	kind   updateKind
	seq    uint32   // FETCH FLAGS, EXPUNGE
	uid    uint32   // FETCH FLAGS, EXPUNGE
	flags  []string // FETCH FLAGS
	modseq uint64   // FETCH FLAGS: the change's MODSEQ (CONDSTORE)
	n      uint32   // EXISTS
	uids   []uint32 // VANISHED
	seqs   []uint32 // VANISHED: the numbers uids had until then
}

type updateKind uint8

const (
	updateFlags updateKind = iota + 1
	updateExpunge
	updateExists
	updateVanished
	updateKeywords // FLAGS and PERMANENTFLAGS (keywords.go)
)

// updates returns what to tell the client now and takes it as told:
// flag changes (by the numbering the client has), then, when expunges
// are allowed, an EXPUNGE for every message gone (highest number first,
// so the lower numbers in the list keep their meaning), then EXISTS.
func (v *view) updates(allowExpunge bool) []update {
	var out []update
	if v.kw.pending {
		// New keywords first: the FETCH FLAGS below may show them.
		out = append(out, update{kind: updateKeywords})
	}
	if len(v.flags) > 0 {
		uids := make([]uint32, 0, len(v.flags))
		for uid := range v.flags {
			uids = append(uids, uid)
		}
		slices.Sort(uids)
		for _, uid := range uids {
			// A message expunged since keeps its number until its
			// EXPUNGE, which follows.
			if seq := v.seqOf(uid); seq != 0 {
				out = append(out, update{kind: updateFlags, seq: seq, uid: uid, flags: v.flags[uid].flags, modseq: v.flags[uid].modseq})
			}
		}
		clear(v.flags)
	}
	if allowExpunge && v.qresync {
		if seqs, uids := v.takeGone(); len(uids) > 0 {
			// Highest first from takeGone: ascending for VANISHED.
			slices.Reverse(seqs)
			slices.Reverse(uids)
			out = append(out, update{kind: updateVanished, uids: uids, seqs: seqs})
		}
	} else if allowExpunge {
		seqs, uids := v.takeGone()
		for i, seq := range seqs {
			out = append(out, update{kind: updateExpunge, seq: seq, uid: uids[i]})
		}
	}
	if len(v.added) > 0 {
		for _, uid := range v.added {
			v.touch(uid)
		}
		v.uids = append(v.uids, v.added...)
		v.added = nil
		out = append(out, update{kind: updateExists, n: uint32(len(v.uids))})
	}
	return out
}

// takeGone removes the gone messages from the numbering and returns
// their sequence numbers, highest first, and their UIDs, in the same
// order.
func (v *view) takeGone() (seqs, uids []uint32) {
	if len(v.gone) == 0 {
		return nil, nil
	}
	seqs = make([]uint32, 0, len(v.gone))
	for uid := range v.gone {
		if seq := v.seqOf(uid); seq != 0 {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] > seqs[j] })
	uids = make([]uint32, len(seqs))
	for i, seq := range seqs {
		uids[i] = v.uids[seq-1]
	}
	v.uids = slices.DeleteFunc(v.uids, func(uid uint32) bool { return v.isGone(uid) })
	clear(v.gone)
	return seqs, uids
}

// resolve turns a sequence or UID set into the view's UIDs (ascending)
// with their sequence numbers. "*" is the last message of the view.
func (v *view) resolve(set imap.NumSet) (uids []uint32, seqs []uint32) {
	n := uint32(len(v.uids))
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			for seq := max(start, 1); seq <= min(stop, n); seq++ {
				seqs = append(seqs, seq)
			}
		}
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		for _, seq := range seqs {
			uids = append(uids, v.uids[seq-1])
		}
	case imap.UIDSet:
		var last uint32
		if n > 0 {
			last = v.uids[n-1]
		}
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = last
			}
			if stop == 0 {
				stop = last
			}
			if start > stop {
				start, stop = stop, start
			}
			i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= start })
			for ; i < len(v.uids) && v.uids[i] <= stop; i++ {
				uids = append(uids, v.uids[i])
				seqs = append(seqs, uint32(i+1))
			}
		}
		if len(set) > 1 {
			order := make([]int, len(uids))
			for i := range order {
				order[i] = i
			}
			sort.Slice(order, func(a, b int) bool { return uids[order[a]] < uids[order[b]] })
			u2, s2 := make([]uint32, 0, len(uids)), make([]uint32, 0, len(uids))
			for i, o := range order {
				if i > 0 && uids[o] == u2[len(u2)-1] {
					continue
				}
				u2, s2 = append(u2, uids[o]), append(s2, seqs[o])
			}
			uids, seqs = u2, s2
		}
	}
	return uids, seqs
}
