package imapd

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// The commands of the selected state (RFC 9051 §6.4).

// cmdClose answers CLOSE (expunging silently, unless EXAMINEd) and
// UNSELECT (RFC 3691).
func cmdClose(c *conn, _ string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	s := c.sess
	if c.cmdName == "CLOSE" && !s.sel.readOnly {
		if err := s.Expunge(&ExpungeWriter{w: c.w, silent: true}, nil); err != nil {
			return answer("CLOSE", err)
		}
	}
	s.Unselect()
	return okWith("", c.cmdName+" completed")
}

func cmdExpunge(c *conn, _ string, a *wire.Args, uid bool) status {
	var set *imap.UIDSet
	if uid {
		if !a.SP() {
			return badArgs(a)
		}
		ns, ok := a.NumSet(true)
		if !ok {
			return badArgs(a)
		}
		u, _ := ns.(imap.UIDSet)
		if imap.IsSearchRes(ns) {
			u = savedUIDs(c)
		}
		set = &u
	}
	if a.End() != nil {
		return badArgs(a)
	}
	if err := c.sess.Expunge(&ExpungeWriter{w: c.w}, set); err != nil || !c.sess.condstore {
		return answer("EXPUNGE", err)
	}
	return c.expungedModSeq()
}

// savedUIDs is the SEARCHRES result ($) as a UID set.
func savedUIDs(c *conn) imap.UIDSet {
	var u imap.UIDSet
	for _, uid := range c.sess.sel.saved {
		u.AddNum(imap.UID(uid))
	}
	return u
}

// cmdFetch answers FETCH and UID FETCH (RFC 9051 §6.4.5).
func cmdFetch(c *conn, _ string, a *wire.Args, uid bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	set, ok := a.NumSet(uid)
	if !ok || !a.SP() {
		return badArgs(a)
	}
	items, ok := a.FetchItems()
	if !ok {
		return badArgs(a)
	}
	o := &imap.FetchOptions{UID: uid}
	vanished := false
	if a.Accept(' ') {
		var st status
		if vanished, st, ok = c.fetchModifiers(a, o, uid); !ok {
			return st
		}
	}
	if a.End() != nil {
		return badArgs(a)
	}
	fw := &FetchWriter{w: c.w, names: map[any]string{}}
	for _, it := range items {
		switch it.Kind {
		case wire.FetchUID:
			o.UID = true
		case wire.FetchFlags:
			o.Flags = true
		case wire.FetchInternalDate:
			o.InternalDate = true
		case wire.FetchRFC822Size:
			o.RFC822Size = true
		case wire.FetchEnvelope:
			o.Envelope = true
		case wire.FetchBody:
			fw.body = true
			if o.BodyStructure == nil {
				o.BodyStructure = &imap.FetchItemBodyStructure{}
			}
		case wire.FetchBodyStructure:
			fw.bodyStr = true
			o.BodyStructure = &imap.FetchItemBodyStructure{Extended: true}
		case wire.FetchRFC822:
			sec := &imap.FetchItemBodySection{}
			o.BodySection = append(o.BodySection, sec)
			fw.names[sec] = "RFC822"
		case wire.FetchRFC822Header:
			sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
			o.BodySection = append(o.BodySection, sec)
			fw.names[sec] = "RFC822.HEADER"
		case wire.FetchRFC822Text:
			sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}
			o.BodySection = append(o.BodySection, sec)
			fw.names[sec] = "RFC822.TEXT"
		case wire.FetchSection:
			ws := it.Section
			sec := &imap.FetchItemBodySection{Specifier: ws.Specifier, Part: ws.Part, Partial: ws.Partial, Peek: ws.Peek}
			if ws.Not {
				sec.HeaderFieldsNot = ws.Fields
			} else {
				sec.HeaderFields = ws.Fields
			}
			o.BodySection = append(o.BodySection, sec)
			fw.names[sec] = "BODY[" + ws.Spec + "]" + origin(ws.Partial)
		case wire.FetchBinary:
			ws := it.Section
			sec := &imap.FetchItemBinarySection{Part: ws.Part, Partial: ws.Partial, Peek: ws.Peek}
			o.BinarySection = append(o.BinarySection, sec)
			fw.names[sec] = "BINARY[" + ws.Spec + "]" + origin(ws.Partial)
		case wire.FetchBinarySize:
			sec := &imap.FetchItemBinarySectionSize{Part: it.Section.Part}
			o.BinarySectionSize = append(o.BinarySectionSize, sec)
			fw.names[sec] = "BINARY.SIZE[" + it.Section.Spec + "]"
		case wire.FetchModSeq:
			o.ModSeq = true
		default:
			if !fw.extra.add(it) {
				return status{"BAD", "", "FETCH item not supported"}
			}
		}
	}
	if imap.IsSearchRes(set) {
		set = savedUIDs(c)
	}
	if o.ModSeq {
		c.condstoreUsed() // RFC 7162 §3.1
	}
	if vanished {
		// RFC 7162 §3.2.6: the UIDs of the set expunged since, first.
		gone, err := c.sess.vanishedSince(o.ChangedSince, set.(imap.UIDSet))
		if err != nil {
			return answer(fetchName(uid), err)
		}
		writeVanishedEarlier(c.w, gone)
	}
	return answer(fetchName(uid), c.sess.Fetch(fw, set, o))
}

func fetchName(uid bool) string {
	if uid {
		return "UID FETCH"
	}
	return "FETCH"
}

// origin is the "<n>" a partial section's answer carries (RFC 9051
// §7.5.2: only the origin octet, not the length).
func origin(p *imap.SectionPartial) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("<%d>", p.Offset)
}

// cmdStore answers STORE and UID STORE (RFC 9051 §6.4.6).
func cmdStore(c *conn, _ string, a *wire.Args, uid bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	set, ok := a.NumSet(uid)
	if !ok || !a.SP() {
		return badArgs(a)
	}
	so, ok := storeModifiers(a)
	if !ok {
		return badArgs(a)
	}
	item, ok := a.Atom()
	if !ok || !a.SP() {
		return badArgs(a)
	}
	f := &imap.StoreFlags{}
	item = strings.ToUpper(item)
	switch {
	case strings.HasPrefix(item, "+"):
		f.Op, item = imap.StoreFlagsAdd, item[1:]
	case strings.HasPrefix(item, "-"):
		f.Op, item = imap.StoreFlagsDel, item[1:]
	}
	switch item {
	case "FLAGS":
	case "FLAGS.SILENT":
		f.Silent = true
	default:
		return status{"BAD", "", "STORE takes FLAGS, +FLAGS or -FLAGS (.SILENT)"}
	}
	one := func() bool {
		fl, ok := a.Flag(false)
		f.Flags = append(f.Flags, imap.Flag(fl))
		return ok
	}
	if a.Peek() == '(' {
		ok = a.List(true, one)
	} else {
		ok = one()
		for ok && a.Accept(' ') {
			ok = one()
		}
	}
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	if imap.IsSearchRes(set) {
		set = savedUIDs(c)
	}
	if so.conditional {
		c.condstoreUsed() // RFC 7162 §3.1
	}
	return answer("STORE", c.sess.Store(&FetchWriter{w: c.w}, set, f, so))
}

func cmdCopy(c *conn, _ string, a *wire.Args, uid bool) status {
	set, dest, st, ok := copyArgs(c, a, uid)
	if !ok {
		return st
	}
	if c.cmdName == "MOVE" {
		return answer("MOVE", c.sess.Move(&MoveWriter{w: c.w}, set, dest))
	}
	d, err := c.sess.Copy(set, dest)
	if err != nil {
		return answer("COPY", err)
	}
	return okWith(fmt.Sprintf("COPYUID %d %s %s", d.UIDValidity, d.SourceUIDs.String(), d.DestUIDs.String()), "COPY completed")
}

func cmdMove(c *conn, tag string, a *wire.Args, uid bool) status { return cmdCopy(c, tag, a, uid) }

func copyArgs(c *conn, a *wire.Args, uid bool) (imap.NumSet, string, status, bool) {
	if !a.SP() {
		return nil, "", badArgs(a), false
	}
	set, ok := a.NumSet(uid)
	if !ok || !a.SP() {
		return nil, "", badArgs(a), false
	}
	dest, ok, bad := c.mailboxArg(a)
	if !ok {
		return nil, "", bad, false
	}
	if a.End() != nil {
		return nil, "", badArgs(a), false
	}
	if imap.IsSearchRes(set) {
		set = savedUIDs(c)
	}
	return set, dest, status{}, true
}

// cmdSearch answers SEARCH and UID SEARCH (RFC 9051 §6.4.4) with
// SEARCH for IMAP4rev1 clients and ESEARCH (RFC 4731) when asked for
// with RETURN or after ENABLE IMAP4rev2, saving with RETURN (SAVE) (RFC
// 5182), with PARTIAL results and kept updated with UPDATE (RFC 5267 §4,
// CONTEXT=SEARCH).
func cmdSearch(c *conn, tag string, a *wire.Args, uid bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	ret, st, ok := parseReturn(a)
	if !ok {
		return st
	}
	esearch := c.rev2 || ret.given
	o := &imap.SearchOptions{ReturnMin: ret.min, ReturnMax: ret.max, ReturnAll: ret.all,
		ReturnCount: ret.count, ReturnSave: ret.save}
	if a.AcceptWord("CHARSET") {
		if !a.SP() {
			return badArgs(a)
		}
		cs, ok := a.AString()
		if !ok || !a.SP() {
			return badArgs(a)
		}
		if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "US-ASCII") {
			return status{"NO", "BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset"}
		}
	}
	keys, ok := a.SearchKeys()
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	if st, ok := c.updateTagFree(tag, ret); !ok {
		return st
	}
	criteria, err := searchCriteria(c, keys)
	if err != nil {
		return status{"BAD", "", err.Error()}
	}
	withModSeq := hasModSeqKey(keys)
	if withModSeq {
		c.condstoreUsed() // RFC 7162 §3.1
	}
	kind := numKindSeq
	if uid {
		kind = numKindUID
	}
	d, err := c.sess.Search(kind, criteria, o)
	if err != nil {
		return answer("SEARCH", err)
	}
	if withModSeq && d.Count > 0 {
		// RFC 7162 §3.1.5: the highest modseq of the messages found,
		// or of those returned when ESEARCH returns only MIN and MAX.
		found := c.sess.searchResultUIDs(d)
		if esearch && (o.ReturnMin || o.ReturnMax) && !o.ReturnAll && !o.ReturnCount && ret.partial == nil {
			found = c.sess.minMaxUIDs(d, o, uid)
		}
		if d.ModSeq, err = c.sess.searchModSeq(found); err != nil {
			return answer("SEARCH", err)
		}
	}
	if ret.update {
		c.startContext(&updateContext{tag: tag, uid: uid, criteria: criteria, uids: c.sess.searchResultUIDs(d)})
	}
	w := c.w
	if !esearch {
		w.Raw("* SEARCH")
		if nums, ok := numsOf(d.All); ok {
			for _, n := range nums {
				w.SP().Number(uint64(n))
			}
		}
		if d.ModSeq > 0 {
			w.Raw(modSeqText(d.ModSeq))
		}
		w.CRLF()
		return okWith("", "SEARCH completed")
	}
	if !ret.esearchBody() {
		return okWith("", "SEARCH completed") // RFC 5182 §2.1: SAVE alone answers no ESEARCH
	}
	w.Raw(`* ESEARCH (TAG `).String(tag).Raw(")")
	if uid {
		w.Raw(" UID")
	}
	if d.Count > 0 {
		if o.ReturnMin {
			w.Raw(" MIN ").Number(uint64(d.Min))
		}
		if o.ReturnMax {
			w.Raw(" MAX ").Number(uint64(d.Max))
		}
		if o.ReturnAll && d.All != nil {
			w.Raw(" ALL ").Raw(d.All.String())
		}
	}
	if ret.partial != nil {
		nums, _ := numsOf(d.All)
		writePartial(w, ret.partial, nums) // in mailbox order (§4.4)
	}
	if o.ReturnCount {
		w.Raw(" COUNT ").Number(uint64(d.Count))
	}
	if d.ModSeq > 0 {
		w.Raw(" MODSEQ ").Number(d.ModSeq) // RFC 7162 §3.1.5 for ESEARCH
	}
	w.CRLF()
	return okWith("", "SEARCH completed")
}

// updateTagFree refuses UPDATE under the tag of a search still kept
// updated: RFC 5267 §4.3 answers it BAD (its updates would be ambiguous).
func (c *conn) updateTagFree(tag string, ret searchReturn) (status, bool) {
	if ret.update && c.sess.sel.contextTag(tag) >= 0 {
		return status{"BAD", "", "Tag " + tag + " already names a search kept updated (RFC 5267 §4.3)"}, false
	}
	return status{}, true
}

func numsOf(set imap.NumSet) ([]uint32, bool) {
	switch s := set.(type) {
	case imap.SeqSet:
		return s.Nums()
	case imap.UIDSet:
		uids, ok := s.Nums()
		out := make([]uint32, len(uids))
		for i, u := range uids {
			out[i] = uint32(u)
		}
		return out, ok
	}
	return nil, false
}

// searchCriteria turns a parsed program into the criteria the search
// code matches.
func searchCriteria(c *conn, k wire.SearchKey) (*imap.SearchCriteria, error) {
	cr := &imap.SearchCriteria{}
	var err error
	add := func(k wire.SearchKey) {
		if err != nil {
			return
		}
		var sub *imap.SearchCriteria
		sub, err = searchCriteria(c, k)
		if err == nil {
			cr.And(sub)
			if sub.ModSeq != nil && (cr.ModSeq == nil || sub.ModSeq.ModSeq > cr.ModSeq.ModSeq) {
				cr.ModSeq = sub.ModSeq // And leaves MODSEQ out
			}
		}
	}
	switch k.Op {
	case wire.SearchAll:
	case wire.SearchAnd:
		for _, ch := range k.Children {
			add(ch)
		}
	case wire.SearchOr:
		l, err1 := searchCriteria(c, k.Children[0])
		r, err2 := searchCriteria(c, k.Children[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad OR")
		}
		cr.Or = append(cr.Or, [2]imap.SearchCriteria{*l, *r})
	case wire.SearchNot:
		n, err := searchCriteria(c, k.Children[0])
		if err != nil {
			return nil, err
		}
		cr.Not = append(cr.Not, *n)
	case wire.SearchSeq:
		if imap.IsSearchRes(k.Set) {
			cr.UID = append(cr.UID, savedUIDs(c))
		} else {
			cr.SeqNum = append(cr.SeqNum, k.Set.(imap.SeqSet))
		}
	case wire.SearchUID:
		if imap.IsSearchRes(k.Set) {
			cr.UID = append(cr.UID, savedUIDs(c))
		} else {
			cr.UID = append(cr.UID, k.Set.(imap.UIDSet))
		}
	case wire.SearchFlag:
		cr.Flag = append(cr.Flag, imap.Flag(k.Flag))
	case wire.SearchNoFlag:
		cr.NotFlag = append(cr.NotFlag, imap.Flag(k.Flag))
	case wire.SearchNew:
		cr.Flag = append(cr.Flag, imap.Flag(`\Recent`))
		cr.NotFlag = append(cr.NotFlag, imap.FlagSeen)
	case wire.SearchHeader:
		cr.Header = append(cr.Header, imap.SearchCriteriaHeaderField{Key: k.Field, Value: k.Value})
	case wire.SearchBody:
		cr.Body = append(cr.Body, k.Value)
	case wire.SearchText:
		cr.Text = append(cr.Text, k.Value)
	case wire.SearchSince:
		cr.Since = k.Date
	case wire.SearchBefore:
		cr.Before = k.Date
	case wire.SearchOn:
		cr.Since, cr.Before = k.Date, k.Date.AddDate(0, 0, 1)
	case wire.SearchSentSince:
		cr.SentSince = k.Date
	case wire.SearchSentBefore:
		cr.SentBefore = k.Date
	case wire.SearchSentOn:
		cr.SentSince, cr.SentBefore = k.Date, k.Date.AddDate(0, 0, 1)
	case wire.SearchLarger:
		cr.Larger = k.N
	case wire.SearchSmaller:
		cr.Smaller = k.N
	case wire.SearchOlder, wire.SearchYounger:
		set, err := c.sess.within(k.Op == wire.SearchOlder, k.N)
		if err != nil {
			return nil, err
		}
		cr.UID = append(cr.UID, set)
	case wire.SearchModSeq:
		cr.ModSeq = &imap.SearchCriteriaModSeq{ModSeq: uint64(k.N)}
	default:
		if !recordKey(k.Op) {
			return nil, fmt.Errorf("search key not supported")
		}
		set, err := c.sess.recordSearch(k)
		if err != nil {
			return nil, err
		}
		cr.UID = append(cr.UID, set)
	}
	return cr, err
}
