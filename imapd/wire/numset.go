package wire

import "github.com/emersion/go-imap/v2"

// maxSetRanges bounds the ranges of one sequence set (a client could
// send 1,3,5,... for a whole line).
const maxSetRanges = 4096

// NumSet reads a sequence set (RFC 9051 sequence-set: numbers, ranges,
// "*", comma-separated) or "$" (RFC 5182 SEARCHRES). uid says whether
// the numbers are UIDs. 0 in a range stands for "*"; numbers must not
// be 0.
func (a *Args) NumSet(uid bool) (imap.NumSet, bool) {
	if a.Accept('$') {
		return imap.SearchRes(), true
	}
	var seq imap.SeqSet
	var uids imap.UIDSet
	for n := 0; ; n++ {
		if n >= maxSetRanges {
			a.fail("a sequence set of more than %d ranges", maxSetRanges)
			return nil, false
		}
		start, ok := a.seqNumber()
		if !ok {
			return nil, false
		}
		stop := start
		if a.Accept(':') {
			if stop, ok = a.seqNumber(); !ok {
				return nil, false
			}
		}
		if uid {
			uids.AddRange(imap.UID(start), imap.UID(stop))
		} else {
			seq.AddRange(start, stop)
		}
		if !a.Accept(',') {
			break
		}
	}
	if uid {
		return uids, true
	}
	return seq, true
}

// seqNumber reads a nz-number or "*" (0).
func (a *Args) seqNumber() (uint32, bool) {
	if a.Accept('*') {
		return 0, true
	}
	if ch := a.peek(); ch < '0' || ch > '9' {
		a.fail("expected a message number or *, found %q", a.rest(20))
		return 0, false
	}
	return a.Number(true)
}
