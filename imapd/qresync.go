package imapd

import (
	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// QRESYNC (RFC 7162 §3.2): a client that remembers a mailbox's
// UIDVALIDITY and HIGHESTMODSEQ reselects it and is told only what
// changed: VANISHED (EARLIER) for the messages expunged since, FETCH for
// those whose flags changed or that are new. Once enabled, expunges are
// reported by UID (VANISHED), never by sequence number (EXPUNGE).

// qresyncParams is SELECT's QRESYNC parameter (RFC 7162 §3.2.5). The
// sequence match data is read and not used: the store remembers every
// expunge back to the mailbox's floor (store/vanished.go), and below it
// the answer is every UID missing, limited by the known UIDs.
type qresyncParams struct {
	uidValidity uint32
	modseq      uint64
	known       imap.UIDSet // nil: every UID
}

// parseQresync reads "(uidvalidity modseq [known-uids [seq-match-data]])".
func parseQresync(a *wire.Args) (*qresyncParams, bool) {
	q := &qresyncParams{}
	if !a.Expect('(', "(") {
		return nil, false
	}
	v, ok := a.Number(true)
	if !ok || !a.SP() {
		return nil, false
	}
	n, ok := a.Number64()
	if !ok || n == 0 {
		return nil, false
	}
	q.uidValidity, q.modseq = v, uint64(n)
	if a.Accept(' ') && a.Peek() != '(' {
		set, ok := a.NumSet(true)
		if !ok {
			return nil, false
		}
		q.known, _ = set.(imap.UIDSet)
		if !a.Accept(' ') {
			return q, a.Expect(')', ")")
		}
	}
	if a.Peek() == '(' {
		a.Accept('(')
		if _, ok := a.NumSet(false); !ok || !a.SP() {
			return nil, false
		}
		if _, ok := a.NumSet(true); !ok || !a.Expect(')', ")") {
			return nil, false
		}
	}
	return q, a.Expect(')', ")")
}

// uidContains is UIDSet.Contains with "*" as the highest UID there is.
func uidContains(set imap.UIDSet, uid uint32) bool {
	for _, r := range set {
		start, stop := uint32(r.Start), uint32(r.Stop)
		if start == 0 {
			start = ^uint32(0)
		}
		if stop == 0 {
			stop = ^uint32(0)
		}
		if start > stop {
			start, stop = stop, start
		}
		if uid >= start && uid <= stop {
			return true
		}
	}
	return false
}

// vanishedSince returns the UIDs expunged since modseq that the client
// may know (in within, when set), none of them still in the view. Below
// the mailbox's floor (records pruned or from before they were kept) it
// is every UID up to the last the view knows that is not in it (RFC 7162
// §3.2.5.1 allows reporting UIDs that never existed), as ranges: the
// gaps between the UIDs the view holds.
func (s *session) vanishedSince(modseq uint64, within imap.UIDSet) (imap.UIDSet, error) {
	v := s.sel
	uids, complete, err := s.srv.cfg.Store.Vanished(s.acct.ID, v.mbox.ID, modseq)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	var out imap.UIDSet
	if complete {
		for _, uid := range uids {
			if (within == nil || uidContains(within, uid)) && v.seqOf(uid) == 0 {
				out.AddNum(imap.UID(uid))
			}
		}
		return out, nil
	}
	prev := uint32(0)
	gap := func(next uint32) {
		if next > prev+1 {
			out = append(out, imap.UIDRange{Start: imap.UID(prev + 1), Stop: imap.UID(next - 1)})
		}
		prev = next
	}
	for _, uid := range v.uids {
		gap(uid)
	}
	for _, uid := range v.added {
		gap(uid)
	}
	if within == nil {
		return out, nil
	}
	return intersectUIDs(out, within, v.last()), nil
}

// intersectUIDs is the part of a (ascending ranges, no "*") inside b,
// whose "*" stands for last.
func intersectUIDs(a, b imap.UIDSet, last uint32) imap.UIDSet {
	var out imap.UIDSet
	for _, rb := range b {
		bs, be := uint32(rb.Start), uint32(rb.Stop)
		if bs == 0 {
			bs = last
		}
		if be == 0 {
			be = last
		}
		if bs > be {
			bs, be = be, bs
		}
		for _, ra := range a {
			lo, hi := max(uint32(ra.Start), bs), min(uint32(ra.Stop), be)
			if lo <= hi {
				out.AddRange(imap.UID(lo), imap.UID(hi))
			}
		}
	}
	return out
}

// writeVanishedEarlier writes "* VANISHED (EARLIER) uids" (nothing for
// none).
func writeVanishedEarlier(w *wire.Writer, uids imap.UIDSet) {
	if len(uids) == 0 {
		return
	}
	w.Raw("* VANISHED (EARLIER) ").Raw(uids.String()).CRLF()
}

func uidSetOf(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// qresyncSelect sends what a client resynchronising with SELECT
// (QRESYNC ...) must learn (RFC 7162 §3.2.5): the UIDs expunged since
// its modseq, then FETCH (UID FLAGS MODSEQ) of every message changed or
// added since. With another UIDVALIDITY the client's state is worthless
// and nothing more is sent (it fetches everything anew).
func (s *session) qresyncSelect(w *wire.Writer, q *qresyncParams) error {
	v := s.sel
	if q.uidValidity != v.mbox.UIDValidity {
		return nil
	}
	gone, err := s.vanishedSince(q.modseq, q.known)
	if err != nil {
		return err
	}
	writeVanishedEarlier(w, gone)
	changed := v.changed // read by Select with the UIDs
	v.changed = nil
	for _, m := range changed {
		seq := v.seqOf(m.UID)
		if seq == 0 {
			continue // arrived after the snapshot: EXISTS and FETCH follow
		}
		s.announceKeywords(w, m.Flags)
		w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (UID ").Number(uint64(m.UID))
		w.Raw(" FLAGS ").Flags(s.withRecent(m.UID, m.Flags)).Raw(" MODSEQ (").Number(m.ModSeq).Raw("))").CRLF()
	}
	return w.Err()
}

// WriteVanished writes "* VANISHED uids" for expunges the client is told
// of once QRESYNC is on (RFC 7162 §3.2.10), unless silent (CLOSE).
func (e *ExpungeWriter) WriteVanished(uids []uint32) error {
	if e.silent || len(uids) == 0 {
		return nil
	}
	return (&UpdateWriter{w: e.w}).WriteVanished(uids)
}

// WriteVanished writes "* VANISHED uids".
func (m *MoveWriter) WriteVanished(uids []uint32) error {
	return (&UpdateWriter{w: m.w}).WriteVanished(uids)
}

// WriteVanished writes "* VANISHED uids".
func (u *UpdateWriter) WriteVanished(uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	return u.write(func(w *wire.Writer) { w.Raw("* VANISHED ").Raw(uidSetOf(uids).String()).CRLF() })
}
