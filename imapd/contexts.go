package imapd

import (
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// Update contexts: SEARCH and SORT with RETURN (UPDATE) (RFC 5267 §4.3,
// CONTEXT=SEARCH and CONTEXT=SORT).
//
// A context keeps the result the client holds, as UIDs, in the order it
// was given (mailbox order for SEARCH, the sort order for SORT), and the
// search program with its message sets fixed at the command: sequence
// numbers, "*" and "$" keep naming the messages they named then. The
// view notes every message whose flags change and every message the
// client is told of by EXISTS (view.touch); flush then matches the
// program again against those messages only, reading the store before it
// writes anything, and tells the differences as REMOVEFROM and ADDTO
// after the EXISTS, so new sequence numbers are valid (§4.3.3). An
// expunged message leaves the contexts holding it by a REMOVEFROM written
// before its EXPUNGE or VANISHED (§4.3.4), from membership alone. Sort
// keys never change, so a message stays where it is in a SORT context
// until it leaves it.
//
// Positions: a SEARCH context says 0 (§4.3.3 and §4.3.4 allow it for
// SEARCH) and gives its set in mailbox order, as §4.3.3 recommends. A SORT
// context gives 1-based positions in sort order, one pair per run of
// neighbours, pairs in order, each position counted after the pairs
// before it are applied (§4.3.2: the client applies them in order).
//
// The contexts belong to the selected mailbox (selected.contexts), so
// they end when it is deselected, as §4.3 says updates do.

// maxUpdateContexts bounds the contexts a session keeps; past it a search
// asking for UPDATE still answers, with an untagged NO [NOUPDATE] (§4.3.1).
const maxUpdateContexts = 10

// maxContextMessages bounds the messages a session's contexts keep in
// all (a SORT context holds a sort record for each, about 150 bytes):
// past it a search asking for UPDATE answers with NOUPDATE too, so a
// session's contexts stay within some 15 MB whatever the mailbox.
var maxContextMessages = 100_000

// updateContext is one searching command whose result the client keeps
// current. Used under the session's idling mutex, as the view.
type updateContext struct {
	tag      string
	uid      bool                 // UID SEARCH, UID SORT: updates name UIDs
	criteria *imap.SearchCriteria // message sets fixed (fixCriteria)
	keys     []sortKey            // SORT's order; nil for SEARCH
	uids     []uint32             // SEARCH: the result, ascending
	items    []sortItem           // SORT: the result, in sort order
	in       map[uint32]struct{}  // SORT: the UIDs of items
}

// has says whether uid is in the context's result.
func (uc *updateContext) has(uid uint32) bool {
	if uc.keys == nil {
		_, ok := slices.BinarySearch(uc.uids, uid)
		return ok
	}
	_, ok := uc.in[uid]
	return ok
}

// contextPair is a context position and the UIDs at it, in the
// context's order (RFC 5267 §5: context-position SP sequence-set).
type contextPair struct {
	pos  uint32
	uids []uint32
}

// remove takes the UIDs in gone out of the result and returns the
// REMOVEFROM pairs that tell it.
func (uc *updateContext) remove(gone map[uint32]struct{}) []contextPair {
	if len(gone) == 0 {
		return nil
	}
	if uc.keys == nil {
		var out []uint32
		uc.uids = slices.DeleteFunc(uc.uids, func(uid uint32) bool {
			_, g := gone[uid]
			if g {
				out = append(out, uid)
			}
			return g
		})
		if len(out) == 0 {
			return nil
		}
		return []contextPair{{0, out}}
	}
	var pairs []contextPair
	removed := 0 // before the run being read: later positions move down by it
	for i := 0; i < len(uc.items); {
		if _, g := gone[uc.items[i].uid]; !g {
			i++
			continue
		}
		p := contextPair{pos: uint32(i + 1 - removed)}
		for ; i < len(uc.items); i++ {
			if _, g := gone[uc.items[i].uid]; !g {
				break
			}
			p.uids = append(p.uids, uc.items[i].uid)
		}
		removed += len(p.uids)
		pairs = append(pairs, p)
	}
	if removed == 0 {
		return nil
	}
	uc.items = slices.DeleteFunc(uc.items, func(it sortItem) bool {
		_, g := gone[it.uid]
		return g
	})
	for uid := range gone {
		delete(uc.in, uid)
	}
	return pairs
}

// addUIDs puts new matches (ascending, none in the result) into a SEARCH
// context and returns the ADDTO pair that tells them.
func (uc *updateContext) addUIDs(uids []uint32) []contextPair {
	if len(uids) == 0 {
		return nil
	}
	uc.uids = append(uc.uids, uids...)
	slices.Sort(uc.uids)
	return []contextPair{{0, uids}}
}

// addItems puts new matches (none in the result) into a SORT context
// at their places in sort order and returns the ADDTO pairs that tell
// them: inserted in this order, each run lands at its final position.
func (uc *updateContext) addItems(items []sortItem) []contextPair {
	if len(items) == 0 {
		return nil
	}
	order := compareBy(uc.keys)
	slices.SortFunc(items, order)
	merged := make([]sortItem, 0, len(uc.items)+len(items))
	var pairs []contextPair
	i, j := 0, 0
	for i < len(uc.items) || j < len(items) {
		if j == len(items) || i < len(uc.items) && order(uc.items[i], items[j]) < 0 {
			merged = append(merged, uc.items[i])
			i++
			continue
		}
		pos := uint32(len(merged) + 1)
		if n := len(pairs); n > 0 && pairs[n-1].pos+uint32(len(pairs[n-1].uids)) == pos {
			pairs[n-1].uids = append(pairs[n-1].uids, items[j].uid)
		} else {
			pairs = append(pairs, contextPair{pos, []uint32{items[j].uid}})
		}
		merged = append(merged, items[j])
		uc.in[items[j].uid] = struct{}{}
		j++
	}
	uc.items = merged
	return pairs
}

// writeContextUpdate writes `* ESEARCH (TAG "t") [UID] ITEM (pos set
// ...)`; num turns a UID into what the context names messages by.
func writeContextUpdate(w *wire.Writer, uc *updateContext, item string, pairs []contextPair, num func(uint32) uint32) {
	w.Raw(`* ESEARCH (TAG `).String(uc.tag).Raw(")")
	if uc.uid {
		w.Raw(" UID")
	}
	w.SP().Raw(item).Raw(" (")
	for i, p := range pairs {
		if i > 0 {
			w.SP()
		}
		nums := make([]uint32, len(p.uids))
		for k, uid := range p.uids {
			nums[k] = num(uid)
		}
		w.Number(uint64(p.pos)).SP().Raw(orderedSet(nums))
	}
	w.Raw(")").CRLF()
}

// lineWriter writes whole responses: on a command's output, or flushed
// one by one by the IDLE and NOTIFY pusher (UpdateWriter).
type lineWriter interface {
	write(fn func(w *wire.Writer)) error
}

// contextTag finds the context of a searching command's tag.
func (v *selected) contextTag(tag string) int {
	return slices.IndexFunc(v.contexts, func(uc *updateContext) bool { return uc.tag == tag })
}

// size is how many messages the context keeps.
func (uc *updateContext) size() int {
	if uc.keys != nil {
		return len(uc.items)
	}
	return len(uc.uids)
}

// addContext keeps uc updated; it says why not, keeping nothing, when
// the session has maxUpdateContexts already or the results would pass
// maxContextMessages.
func (s *session) addContext(uc *updateContext) string {
	v := s.sel
	if len(v.contexts) >= maxUpdateContexts {
		return fmt.Sprintf("Too many searches kept updated (at most %d); CANCELUPDATE one", maxUpdateContexts)
	}
	kept := uc.size()
	for _, c := range v.contexts {
		kept += c.size()
	}
	if kept > maxContextMessages {
		return fmt.Sprintf("Too many messages to keep updated (at most %d in all); narrow the search", maxContextMessages)
	}
	if uc.keys != nil {
		uc.in = make(map[uint32]struct{}, len(uc.items))
		for _, it := range uc.items {
			uc.in[it.uid] = struct{}{}
		}
	}
	v.contexts = append(v.contexts, uc)
	v.track = true
	return ""
}

// cancelContexts ends the contexts of tags (CANCELUPDATE, RFC 5267
// §4.3.5) and returns the tags that had none.
func (s *session) cancelContexts(tags []string) (unknown []string) {
	v := s.sel
	for _, tag := range tags {
		i := v.contextTag(tag)
		if i < 0 {
			unknown = append(unknown, tag)
			continue
		}
		v.contexts = slices.Delete(v.contexts, i, i+1)
	}
	if len(v.contexts) == 0 {
		v.track = false
		clear(v.touched)
	}
	return unknown
}

// contextsExpunged writes, before the EXPUNGE or VANISHED responses of
// the messages uids, the REMOVEFROM of every context holding any of them
// (RFC 5267 §4.3.4). seqs are their sequence numbers until those
// responses (parallel to uids): all valid at once, since the EXPUNGEs go
// highest first.
func (s *session) contextsExpunged(w lineWriter, seqs, uids []uint32) error {
	v := s.sel
	if len(v.contexts) == 0 || len(uids) == 0 {
		return nil
	}
	gone := make(map[uint32]struct{}, len(uids))
	seqOf := make(map[uint32]uint32, len(uids))
	for i, uid := range uids {
		gone[uid] = struct{}{}
		seqOf[uid] = seqs[i]
	}
	for _, uc := range v.contexts {
		pairs := uc.remove(gone)
		if len(pairs) == 0 {
			continue
		}
		num := func(uid uint32) uint32 {
			if uc.uid {
				return uid
			}
			return seqOf[uid]
		}
		if err := w.write(func(w *wire.Writer) { writeContextUpdate(w, uc, "REMOVEFROM", pairs, num) }); err != nil {
			return err
		}
	}
	return nil
}

// refreshContexts matches every context's program again against the
// messages touched since the last time and writes the differences:
// REMOVEFROM, then ADDTO, per context. It reads everything before it
// changes a context or writes. Called once the numbering is final for
// this round of updates (after EXPUNGE and EXISTS).
func (s *session) refreshContexts(w lineWriter) error {
	v := s.sel
	if len(v.contexts) == 0 {
		return nil
	}
	touched := v.takeTouched()
	if len(touched) == 0 {
		return nil
	}
	changes := make([]contextChange, len(v.contexts))
	for i, uc := range v.contexts {
		var err error
		if changes[i], err = s.readContextChange(uc, touched); err != nil {
			// Every context stays as it was; the messages are looked at
			// again at the next update.
			s.log.Warn("updating SEARCH/SORT contexts", "mailbox", v.mbox.Name, "err", err)
			for _, uid := range touched {
				v.touch(uid)
			}
			return nil
		}
	}
	for i, uc := range v.contexts {
		c := &changes[i]
		removed := uc.remove(c.gone)
		var added []contextPair
		if uc.keys != nil {
			added = uc.addItems(c.items)
		} else {
			added = uc.addUIDs(c.added)
		}
		num := func(uid uint32) uint32 {
			if uc.uid {
				return uid
			}
			return v.seqOf(uid)
		}
		if len(removed) > 0 {
			if err := w.write(func(w *wire.Writer) { writeContextUpdate(w, uc, "REMOVEFROM", removed, num) }); err != nil {
				return err
			}
		}
		if len(added) > 0 {
			if err := w.write(func(w *wire.Writer) { writeContextUpdate(w, uc, "ADDTO", added, num) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// contextChange is how the touched messages change a context's result.
type contextChange struct {
	gone  map[uint32]struct{} // to leave the result
	added []uint32            // to join it (SEARCH), ascending
	items []sortItem          // to join it (SORT), with their sort values
}

// readContextChange reads how the touched messages change uc's result. A
// message that cannot be read (expunged meanwhile) stays as it is: its
// EXPUNGE takes it out.
func (s *session) readContextChange(uc *updateContext, touched []uint32) (contextChange, error) {
	var c contextChange
	matched, _, found, err := s.matchUIDs(uc.criteria, touched, true)
	if err != nil {
		return c, err
	}
	isMatch := make(map[uint32]bool, len(matched))
	for _, uid := range matched {
		isMatch[uid] = true
		if !uc.has(uid) {
			c.added = append(c.added, uid)
		}
	}
	for _, uid := range found {
		if !isMatch[uid] && uc.has(uid) {
			if c.gone == nil {
				c.gone = map[uint32]struct{}{}
			}
			c.gone[uid] = struct{}{}
		}
	}
	if uc.keys != nil && len(c.added) > 0 {
		c.items, err = s.sortItems(c.added, uc.keys, false)
	}
	return c, err
}

// fixCriteria fixes the message sets of a program kept by an update
// context to the messages they name now: sequence sets become UID sets
// (a sequence number names another message after an EXPUNGE) and a UID
// set with "*" loses it (its last message now). Called as the search
// runs, with the view it ran on.
func (s *session) fixCriteria(cr *imap.SearchCriteria) {
	v := s.sel
	for _, set := range cr.SeqNum {
		uids, _ := v.resolve(set)
		cr.UID = append(cr.UID, uidSetOf(uids))
	}
	cr.SeqNum = nil
	for i, set := range cr.UID {
		if set.Dynamic() {
			uids, _ := v.resolve(set)
			cr.UID[i] = uidSetOf(uids)
		}
	}
	for i := range cr.Not {
		s.fixCriteria(&cr.Not[i])
	}
	for i := range cr.Or {
		s.fixCriteria(&cr.Or[i][0])
		s.fixCriteria(&cr.Or[i][1])
	}
}

// startContext keeps the result of a searching command with RETURN
// (UPDATE) current, or, past the limit, writes the untagged NO
// [NOUPDATE] of RFC 5267 §4.3.1 (the command still answers).
func (c *conn) startContext(uc *updateContext) {
	c.sess.fixCriteria(uc.criteria)
	if why := c.sess.addContext(uc); why != "" {
		c.w.Raw("* NO [NOUPDATE ").String(uc.tag).Raw("] ").Raw(why).CRLF()
	}
}

// cmdCancelUpdate answers CANCELUPDATE (RFC 5267 §4.3.5): one or more
// quoted tags of searching commands whose updates end. A tag with no
// context is answered NO, after the others are cancelled.
func cmdCancelUpdate(c *conn, _ string, a *wire.Args, _ bool) status {
	var tags []string
	for a.Accept(' ') {
		t, ok := a.AString()
		if !ok {
			return badArgs(a)
		}
		tags = append(tags, t)
	}
	if len(tags) == 0 {
		return status{"BAD", "", "CANCELUPDATE needs the tags of searches to cancel"}
	}
	if a.End() != nil {
		return badArgs(a)
	}
	if unknown := c.sess.cancelContexts(tags); len(unknown) > 0 {
		return status{"NO", "", fmt.Sprintf("No search kept updated with tag %q", unknown[0])}
	}
	return okWith("", "CANCELUPDATE completed")
}
