package imapd

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// CONDSTORE (RFC 7162 §3.1): every message has a MODSEQ and every
// mailbox a HIGHESTMODSEQ in the store; this file holds the protocol's
// side of it: enabling, the FETCH and STORE modifiers, SEARCH's MODSEQ
// result. QRESYNC is in qresync.go.

// enableRFC7162 turns CONDSTORE (and with qresync, QRESYNC, which
// implies it, RFC 7162 §3.2.3) on and returns the names newly enabled
// among those asked for, for ENABLED.
func (c *conn) enableRFC7162(qresync bool) []string {
	s := c.sess
	var out []string
	if qresync {
		if !s.qresync {
			out = append(out, "QRESYNC")
		}
		s.qresync = true
		if s.sel != nil {
			s.sel.qresync = true
		}
	} else if !s.condstore {
		out = append(out, "CONDSTORE")
	}
	c.condstoreUsed()
	return out
}

// condstoreUsed notes a CONDSTORE enabling command (RFC 7162 §3.1). The
// first one issued while a mailbox is selected is answered with the
// mailbox's HIGHESTMODSEQ, which the client has not been told yet.
func (c *conn) condstoreUsed() {
	s := c.sess
	if s.condstore {
		return
	}
	s.condstore = true
	if s.sel != nil {
		c.w.Raw("* OK [HIGHESTMODSEQ ").Number(s.sel.modseq).Raw("] Highest").CRLF()
	}
}

// selectParams reads SELECT/EXAMINE's optional parameter list (RFC 7162
// §3.1.8 CONDSTORE, §3.2.5 QRESYNC).
func (c *conn) selectParams(a *wire.Args) (condstore bool, q *qresyncParams, st status, ok bool) {
	if !a.Accept(' ') {
		return false, nil, status{}, true
	}
	ok = a.List(false, func() bool {
		name, ok := a.Atom()
		if !ok {
			return false
		}
		switch strings.ToUpper(name) {
		case "CONDSTORE":
			condstore = true
			return true
		case "QRESYNC":
			if !a.SP() {
				return false
			}
			q, ok = parseQresync(a)
			return ok
		}
		return false
	})
	if !ok {
		return false, nil, badArgs(a), false
	}
	if q != nil && !c.sess.qresync {
		// RFC 7162 §3.2.5: QRESYNC before ENABLE QRESYNC is an error.
		return false, nil, status{"BAD", "", "ENABLE QRESYNC first"}, false
	}
	return condstore, q, status{}, true
}

// fetchModifiers reads FETCH's modifier list (RFC 7162 §3.1.4
// CHANGEDSINCE, §3.2.6 VANISHED). CHANGEDSINCE implies the MODSEQ item.
func (c *conn) fetchModifiers(a *wire.Args, o *imap.FetchOptions, uid bool) (vanished bool, st status, ok bool) {
	changed := false
	ok = a.List(false, func() bool {
		name, ok := a.Atom()
		if !ok {
			return false
		}
		switch strings.ToUpper(name) {
		case "CHANGEDSINCE":
			n, ok := modSeqArg(a)
			o.ChangedSince, changed = n, true
			return ok
		case "VANISHED":
			vanished = true
			return true
		}
		return false
	})
	switch {
	case !ok:
		return false, badArgs(a), false
	case vanished && (!uid || !changed || !c.sess.qresync):
		// RFC 7162 §3.2.6: only UID FETCH, with CHANGEDSINCE, once
		// QRESYNC is enabled.
		return false, status{"BAD", "", "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC"}, false
	}
	if changed {
		o.ModSeq = true
	}
	return vanished, status{}, true
}

// modSeqArg reads " n" (mod-sequence-value; CHANGEDSINCE 0 is allowed).
func modSeqArg(a *wire.Args) (uint64, bool) {
	if !a.SP() {
		return 0, false
	}
	n, ok := a.Number64()
	return uint64(n), ok
}

// storeOptions are STORE's modifiers: UNCHANGEDSINCE n (RFC 7162
// §3.1.3); 0 is a valid n (every message then fails the test).
type storeOptions struct {
	conditional    bool
	unchangedSince uint64
}

// storeModifiers reads STORE's optional modifier list.
func storeModifiers(a *wire.Args) (storeOptions, bool) {
	var o storeOptions
	if a.Peek() != '(' {
		return o, true
	}
	ok := a.List(false, func() bool {
		name, ok := a.Atom()
		if !ok || !strings.EqualFold(name, "UNCHANGEDSINCE") {
			return false
		}
		o.conditional = true
		o.unchangedSince, ok = modSeqArg(a)
		return ok
	}) && a.SP()
	return o, ok
}

// modifiedError is STORE's answer when some messages failed the
// UNCHANGEDSINCE test: OK [MODIFIED set] (RFC 7162 §3.1.3), by sequence
// number for STORE and by UID for UID STORE.
func modifiedError(nums []uint32, uid bool) error {
	var set imap.NumSet
	if uid {
		var u imap.UIDSet
		for _, n := range nums {
			u.AddNum(imap.UID(n))
		}
		set = u
	} else {
		var s imap.SeqSet
		s.AddNum(nums...)
		set = s
	}
	return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode("MODIFIED " + set.String()), Text: "Conditional STORE failed"}
}

// hasModSeqKey says whether a search program uses MODSEQ anywhere: then
// the result carries the highest modseq of the messages found (RFC 7162
// §3.1.5).
func hasModSeqKey(k wire.SearchKey) bool {
	if k.Op == wire.SearchModSeq {
		return true
	}
	for _, ch := range k.Children {
		if hasModSeqKey(ch) {
			return true
		}
	}
	return false
}

// searchModSeq is the highest modseq among the messages found (UIDs).
func (s *session) searchModSeq(uids []uint32) (uint64, error) {
	var top uint64
	for start := 0; start < len(uids); start += fetchChunk {
		msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, s.sel.mbox.ID, uids[start:min(start+fetchChunk, len(uids))])
		if err != nil {
			return 0, noFor(err, s.log)
		}
		for _, m := range msgs {
			top = max(top, m.ModSeq)
		}
	}
	return top, nil
}

// minMaxUIDs are the UIDs of the MIN and MAX an ESEARCH returns (numbers
// are UIDs for UID SEARCH, else sequence numbers).
func (s *session) minMaxUIDs(d *imap.SearchData, o *imap.SearchOptions, uid bool) []uint32 {
	var out []uint32
	for _, n := range []struct {
		want bool
		num  uint32
	}{{o.ReturnMin, d.Min}, {o.ReturnMax, d.Max}} {
		switch {
		case !n.want || n.num == 0:
		case uid:
			out = append(out, n.num)
		case int(n.num) <= s.sel.count():
			out = append(out, s.sel.uidAt(n.num))
		}
	}
	return out
}

// searchResultUIDs are the UIDs of a SEARCH result.
func (s *session) searchResultUIDs(d *imap.SearchData) []uint32 {
	nums, _ := numsOf(d.All)
	if _, bySeq := d.All.(imap.SeqSet); !bySeq {
		return nums
	}
	out := make([]uint32, 0, len(nums))
	for _, seq := range nums {
		if int(seq) <= s.sel.count() {
			out = append(out, s.sel.uidAt(seq))
		}
	}
	return out
}

// writeFlagsModSeq writes an unsolicited flag change once CONDSTORE is
// on: UID and MODSEQ with it (RFC 7162 §3.1: every untagged FETCH then
// carries both).
func (u *UpdateWriter) writeFlagsModSeq(seq, uid uint32, flags []string, modseq uint64) error {
	return u.write(func(w *wire.Writer) {
		w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (UID ").Number(uint64(uid))
		w.Raw(" MODSEQ (").Number(modseq).Raw(") FLAGS ").Flags(flags).Raw(")").CRLF()
	})
}

// expungedModSeq is EXPUNGE's OK once CONDSTORE is on: with the
// HIGHESTMODSEQ its expunges raised (RFC 7162 §3.2.7's example). It is
// the view's, after applying the feed (the expunges were published
// before the store returned): every change up to it is told before the
// tagged OK, so a client that resyncs from it misses nothing.
func (c *conn) expungedModSeq() status {
	c.sess.syncFeed() // a distributed store publishes them through PostgreSQL
	c.sess.drain()
	return okWith(fmt.Sprintf("HIGHESTMODSEQ %d", c.sess.sel.modseq), "EXPUNGE completed")
}

// modSeqText is " (MODSEQ n)" after SEARCH's numbers.
func modSeqText(n uint64) string { return fmt.Sprintf(" (MODSEQ %d)", n) }
