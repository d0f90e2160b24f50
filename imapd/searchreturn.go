package imapd

import (
	"strings"

	"abox/imapd/wire"
)

// searchReturn is what a SEARCH or SORT asks to be returned: ESEARCH's
// options (RFC 4731 §3.1, for SORT RFC 5267 §3.1), SEARCHRES's SAVE (RFC
// 5182) and the options of CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4):
// CONTEXT, UPDATE and PARTIAL.
type searchReturn struct {
	given                      bool // RETURN was there: the answer is an ESEARCH
	min, max, all, count, save bool
	update                     bool          // keep the result updated (§4.3)
	partial                    *partialRange // PARTIAL (§4.4)
}

// partialRange is PARTIAL's range of result positions, lo <= hi: "4:2"
// is "2:4" (RFC 5267 §4.4).
type partialRange struct{ lo, hi uint32 }

// parseReturn reads an optional "RETURN (options) " before the rest of a
// SEARCH or SORT. A missing RETURN, an empty list or one with CONTEXT
// alone asks for ALL (RFC 4731 §3.1: "RETURN ()" is "RETURN (ALL)");
// UPDATE alone asks for nothing but the updates, as Dovecot answers and
// imaptest's search-context-update expects.
func parseReturn(a *wire.Args) (searchReturn, status, bool) {
	var r searchReturn
	if !a.AcceptWord("RETURN") {
		r.all = true
		return r, status{}, true
	}
	r.given = true
	bad := ""
	ok := a.SP() && a.List(true, func() bool {
		opt, ok := a.Atom()
		switch strings.ToUpper(opt) {
		case "MIN":
			r.min = true
		case "MAX":
			r.max = true
		case "ALL":
			r.all = true
		case "COUNT":
			r.count = true
		case "SAVE":
			r.save = true
		case "CONTEXT":
			// A hint that the program is used again (§4.2): every
			// search is as quick without it here.
		case "UPDATE":
			r.update = true
		case "PARTIAL":
			if r.partial != nil {
				bad = "PARTIAL may be given once (RFC 5267 §4.4)"
				return false
			}
			r.partial = &partialRange{}
			ok = ok && a.SP() && partialArg(a, r.partial)
		default:
			return false
		}
		return ok
	}) && a.SP()
	if bad != "" {
		return r, status{"BAD", "", bad}, false
	}
	if !ok {
		return r, badArgs(a), false
	}
	if r.partial != nil && r.all {
		return r, status{"BAD", "", "PARTIAL and ALL exclude each other (RFC 5267 §4.4)"}, false
	}
	if !r.min && !r.max && !r.count && !r.save && !r.update && r.partial == nil {
		r.all = true
	}
	return r, status{}, true
}

// partialArg reads partial-range = nz-number ":" nz-number (RFC 5267
// §5: no "*", no single number).
func partialArg(a *wire.Args, p *partialRange) bool {
	lo, ok := a.Number(true)
	if !ok || !a.Expect(':', `":" in a PARTIAL range`) {
		return false
	}
	hi, ok := a.Number(true)
	if !ok {
		return false
	}
	p.lo, p.hi = min(lo, hi), max(lo, hi)
	return true
}

// esearchBody says whether the ESEARCH response has anything to carry:
// SAVE alone answers none (RFC 5182 §2.1), UPDATE alone the bare
// correlator, which opens the context for the client (RFC 5267 §4.3).
func (r *searchReturn) esearchBody() bool {
	return r.min || r.max || r.all || r.count || r.partial != nil || r.update
}

// writePartial writes " PARTIAL (lo:hi set)": the results at positions
// lo to hi of nums (the whole result, in the command's order), or NIL
// when there are none there (RFC 5267 §4.4).
func writePartial(w *wire.Writer, p *partialRange, nums []uint32) {
	w.Raw(" PARTIAL (").Number(uint64(p.lo)).Raw(":").Number(uint64(p.hi)).SP()
	if uint64(p.lo) > uint64(len(nums)) {
		w.NIL()
	} else {
		w.Raw(orderedSet(nums[p.lo-1 : min(uint64(p.hi), uint64(len(nums)))]))
	}
	w.Raw(")")
}
