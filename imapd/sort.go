package imapd

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store"
	"abox/store/msginfo"
)

// SORT (RFC 5256 §3), SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267 §3).
// Sort keys come from the message records (ARRIVAL, SIZE) and the
// envelope stored at delivery (the rest): no body is read.

// sortKey is one sort criterion.
type sortKey struct {
	name    string // ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO, DISPLAYFROM, DISPLAYTO
	reverse bool
}

var sortKeyNames = map[string]bool{"ARRIVAL": true, "CC": true, "DATE": true, "FROM": true, "SIZE": true,
	"SUBJECT": true, "TO": true, "DISPLAYFROM": true, "DISPLAYTO": true}

// sortCriteria reads "(" [REVERSE SP] key *(SP [REVERSE SP] key) ")".
func sortCriteria(a *wire.Args) ([]sortKey, bool) {
	var keys []sortKey
	reverse := false
	ok := a.List(false, func() bool {
		w, ok := a.Atom()
		w = strings.ToUpper(w)
		if ok && w == "REVERSE" {
			reverse = true
			if !a.SP() {
				return false
			}
			w, ok = a.Atom()
			w = strings.ToUpper(w)
		}
		if !ok || !sortKeyNames[w] {
			return false
		}
		keys = append(keys, sortKey{w, reverse})
		reverse = false
		return true
	})
	return keys, ok && len(keys) > 0
}

// sortItem holds one matching message's sort values.
type sortItem struct {
	seq, uid      uint32
	arrival, date int64
	size          int64
	subject       string // base subject, collation key
	from, to, cc  string // first address's mailbox, collation key
	dfrom, dto    string // RFC 5957 display names, collation key
	// threading (thread.go)
	reply     bool     // the subject was a reply or forward
	messageID string   // without <>
	parents   []string // References, else In-Reply-To's first
}

// needsEnvelope says whether keys read more than the message record.
func needsEnvelope(keys []sortKey) bool {
	for _, k := range keys {
		if k.name != "ARRIVAL" && k.name != "SIZE" {
			return true
		}
	}
	return false
}

// threadKeys are what threading reads of the envelope.
var threadKeys = []sortKey{{name: "DATE"}, {name: "SUBJECT"}, {name: "MESSAGE-ID"}}

// sortItems reads the sort values of the messages uids (ascending),
// fetchChunk at a time. With withRefs it also reads each header's
// References field in place (THREAD=REFERENCES). Messages expunged
// meanwhile are left out.
func (s *session) sortItems(uids []uint32, keys []sortKey, withRefs bool) ([]sortItem, error) {
	envelope := needsEnvelope(keys)
	addrKeys := false
	for _, k := range keys {
		switch k.name {
		case "FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO":
			addrKeys = true
		}
	}
	v := s.sel
	items := make([]sortItem, 0, len(uids))
	for start := 0; start < len(uids); start += fetchChunk {
		msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, v.mbox.ID, uids[start:min(start+fetchChunk, len(uids))])
		if err != nil {
			return nil, err
		}
		base := len(items)
		for _, m := range msgs {
			items = append(items, sortItem{seq: v.seqOf(m.UID), uid: m.UID, arrival: m.InternalDate.Unix(),
				date: m.InternalDate.Unix(), size: m.Size})
		}
		if !envelope {
			continue
		}
		ids := make([]uint64, len(msgs))
		for i := range msgs {
			ids[i] = msgs[i].Blob
		}
		read := s.srv.cfg.Store.ReadStructures
		if withRefs {
			read = s.srv.cfg.Store.ReadBodies
		}
		err = read(ids, func(i int, body, structure []byte) error {
			decode := msginfo.DecodeEnvelope
			if addrKeys {
				decode = msginfo.DecodeEnvelopes
			}
			info, err := decode(structure)
			if err != nil {
				return nil // an unreadable structure sorts as empty
			}
			it := &items[base+i]
			it.fill(info.Envelope, keys)
			if info.Own != nil {
				it.fillOwn(info.Own, keys)
			}
			if withRefs && body != nil {
				it.parents = references(body[:min(info.HeaderSize, int64(len(body)))], info.Envelope.InReplyTo)
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return items, nil
}

// fill sets the envelope's sort values that keys use (RFC 5256 §3,
// RFC 5957 §3): collation keys cost an allocation each, so only those.
func (it *sortItem) fill(e *imap.Envelope, keys []sortKey) {
	for _, k := range keys {
		switch k.name {
		case "DATE":
			if !e.Date.IsZero() {
				it.date = e.Date.Unix() // UTC seconds; else INTERNALDATE
			}
		case "SUBJECT":
			base, reply := baseSubject(e.Subject)
			it.subject, it.reply = collationKey(base), reply
		case "FROM":
			it.from = mailboxKey(e.From)
		case "TO":
			it.to = mailboxKey(e.To)
		case "CC":
			it.cc = mailboxKey(e.Cc)
		case "DISPLAYFROM":
			it.dfrom = displayKey(e.From)
		case "DISPLAYTO":
			it.dto = displayKey(e.To)
		case "MESSAGE-ID":
			it.messageID = e.MessageID
		}
	}
}

// fillOwn sets the address keys from the header's own address lists,
// which keep groups and broken addresses as FETCH ENVELOPE shows them
// (the decoded lists drop both): the first element's addr-mailbox is a
// group's name for a group (RFC 5256 §3 reads the ENVELOPE), and a
// display name falls back to what the ENVELOPE shows.
func (it *sortItem) fillOwn(e *msginfo.Envelope, keys []sortKey) {
	for _, k := range keys {
		switch k.name {
		case "FROM":
			it.from = ownMailboxKey(e.From)
		case "TO":
			it.to = ownMailboxKey(e.To)
		case "CC":
			it.cc = ownMailboxKey(e.Cc)
		case "DISPLAYFROM":
			it.dfrom = ownDisplayKey(e.From)
		case "DISPLAYTO":
			it.dto = ownDisplayKey(e.To)
		}
	}
}

func ownMailboxKey(l []msginfo.Address) string {
	if len(l) == 0 {
		return ""
	}
	return collationKey(l[0].Mailbox)
}

func ownDisplayKey(l []msginfo.Address) string {
	if len(l) == 0 {
		return ""
	}
	a := l[0]
	addr := a.Mailbox
	if a.Host != "" && !a.GroupStart {
		addr += "@" + a.Host
	}
	return displayName(a.Name, addr)
}

// mailboxKey is the first address's addr-mailbox (RFC 5256 §3), or ""
// when there is none.
func mailboxKey(l []imap.Address) string {
	if len(l) == 0 {
		return ""
	}
	return collationKey(l[0].Mailbox)
}

// displayKey is the first address's display name, decoded, or its
// addr-spec when it has none (RFC 5957 §3).
func displayKey(l []imap.Address) string {
	if len(l) == 0 {
		return ""
	}
	return displayName(l[0].Name, l[0].Addr())
}

// displayName is the collation key of a display name, decoded, or of
// addr when the name is empty (RFC 5957 §3).
func displayName(name, addr string) string {
	if strings.Contains(name, "=?") {
		if d, err := wordDecoder.DecodeHeader(name); err == nil {
			name = d
		}
	}
	if strings.TrimSpace(name) == "" {
		name = addr
	}
	return collationKey(name)
}

// compareBy orders two items by the keys, then in mailbox order (RFC
// 5256 §3: ties by sequence number, whatever REVERSE says). Mailbox
// order is compared by UID, which orders as the sequence numbers do and,
// unlike them, stays valid while an update context (contexts.go) keeps
// the items across EXPUNGE and EXISTS.
func compareBy(keys []sortKey) func(a, b sortItem) int {
	return func(a, b sortItem) int {
		for _, k := range keys {
			var c int
			switch k.name {
			case "ARRIVAL":
				c = cmp.Compare(a.arrival, b.arrival)
			case "DATE":
				c = cmp.Compare(a.date, b.date)
			case "SIZE":
				c = cmp.Compare(a.size, b.size)
			case "SUBJECT":
				c = strings.Compare(a.subject, b.subject)
			case "FROM":
				c = strings.Compare(a.from, b.from)
			case "TO":
				c = strings.Compare(a.to, b.to)
			case "CC":
				c = strings.Compare(a.cc, b.cc)
			case "DISPLAYFROM":
				c = strings.Compare(a.dfrom, b.dfrom)
			case "DISPLAYTO":
				c = strings.Compare(a.dto, b.dto)
			}
			if k.reverse {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.uid, b.uid)
	}
}

// Sort returns the matching messages in the order keys give.
func (s *session) Sort(keys []sortKey, criteria *imap.SearchCriteria, save bool) ([]sortItem, error) {
	done, err := s.enter("SORT")
	defer done()
	if err != nil {
		return nil, err
	}
	uids, _, err := s.searchMatches(criteria)
	if err != nil {
		return nil, err
	}
	if save {
		s.sel.saved = uids
	}
	items, err := s.sortItems(uids, keys, false)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	slices.SortFunc(items, compareBy(keys))
	return items, nil
}
