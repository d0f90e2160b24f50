package imapd

import (
	"fmt"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store"
)

// OBJECTID (RFC 8474) and SAVEDATE (RFC 8514): identifiers and dates
// the store already keeps, and the FETCH, STATUS and SEARCH items that
// show them.
//
// MAILBOXID is the mailbox's UIDVALIDITY: the store takes it from one
// counter that never goes back, a mailbox keeps it for life (RENAME
// included, SPEC: "UIDVALIDITY never changes for a mailbox that still
// exists"), and a mailbox created again under an old name gets a new one,
// as RFC 8474 §4 asks. The mailbox's own number is not used: the store
// reuses it after a DELETE.
//
// EMAILID is the stored body's blob id. Bodies are immutable and
// reference-counted; COPY and MOVE point the new record at the same blob,
// so a message keeps its EMAILID wherever it goes (RFC 8474 §5.1), and
// byte-identical copies that share a body (APPENDed twice, a broadcast)
// share it too, which §5.1 allows for identical content. Blob ids come
// from a sequence that never goes back, so an id is never reused.
//
// THREADID is NIL: abox does not thread at delivery, which RFC 8474
// §5.2 allows; SEARCH THREADID then matches nothing.

// objectIDCaps are the capabilities of this file's extensions.
var objectIDCaps = []string{"OBJECTID", "SAVEDATE"}

// mailboxID is a mailbox's MAILBOXID.
func mailboxID(mb *store.Mailbox) string { return fmt.Sprintf("M%08x", mb.UIDValidity) }

// emailID is the EMAILID of a message with this body.
func emailID(blob uint64) string { return fmt.Sprintf("E%016x", blob) }

// fetchExtras are the FETCH items go-imap's FetchOptions has no field
// for.
type fetchExtras struct {
	saveDate, emailID, threadID bool
	preview, previewLazy        bool
}

// add records an extension item; it reports false for others.
func (x *fetchExtras) add(it wire.FetchItem) bool {
	switch it.Kind {
	case wire.FetchSaveDate:
		x.saveDate = true
	case wire.FetchEmailID:
		x.emailID = true
	case wire.FetchThreadID:
		x.threadID = true
	case wire.FetchPreview:
		// Asked twice, once without LAZY: the client wants it now.
		x.previewLazy = it.Lazy && (!x.preview || x.previewLazy)
		x.preview = true
	default:
		return false
	}
	return true
}

// writeFetchExtras writes the extension items of one message's FETCH
// response.
func (s *session) writeFetchExtras(r *FetchResponseWriter, it *fetchItem, x *fetchExtras) error {
	if x.saveDate {
		// RFC 8514 §4: when the message was saved in this mailbox
		// (delivery, APPEND, COPY or MOVE), the retention clock.
		r.sep().Raw("SAVEDATE ").DateTime(it.m.AddedAt)
	}
	if x.emailID {
		r.sep().Raw("EMAILID (").Raw(emailID(it.m.Blob)).Raw(")")
	}
	if x.threadID {
		r.sep().Raw("THREADID NIL")
	}
	if x.preview {
		return s.writePreview(r, it, x.previewLazy)
	}
	return nil
}

// statusExtras are the STATUS items go-imap's StatusOptions has no
// field for.
type statusExtras struct {
	mailboxID bool
}

// writeStatusExtras adds the extension items of a STATUS response for
// the mailbox of that name.
func (s *session) writeStatusExtras(w *wire.Writer, x *statusExtras, name string) {
	if x == nil || !x.mailboxID {
		return
	}
	mb, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, name)
	if err != nil {
		return // gone meanwhile: its other items were already read
	}
	w.Raw(" MAILBOXID (").Raw(mailboxID(&mb)).Raw(")")
}

// writeSelectedMailboxID writes SELECT's untagged OK [MAILBOXID]
// (RFC 8474 §4.1).
func (c *conn) writeSelectedMailboxID() {
	if sel := c.sess.sel; sel != nil {
		c.w.Raw("* OK [MAILBOXID (").Raw(mailboxID(&sel.mbox)).Raw(")] Ok").CRLF()
	}
}

// recordKeys are the search keys answered from the message records
// alone (save date, EMAILID, THREADID).
func recordKey(op wire.SearchOp) bool {
	switch op {
	case wire.SearchSaveSince, wire.SearchSaveBefore, wire.SearchSaveOn, wire.SearchSaveSupported,
		wire.SearchEmailID, wire.SearchThreadID:
		return true
	}
	return false
}

// recordSearch answers a record key as the UIDs of the selected
// mailbox's messages that match it, which the search then intersects
// like any UID set: one read of the records, no body.
func (s *session) recordSearch(k wire.SearchKey) (imap.UIDSet, error) {
	var set imap.UIDSet
	if k.Op == wire.SearchThreadID {
		return set, nil // no message has a THREADID
	}
	msgs, err := s.srv.cfg.Store.Messages(s.acct.ID, s.sel.mbox.ID, 0, 0)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	for i := range msgs {
		if recordMatches(&msgs[i], k) {
			set.AddNum(imap.UID(msgs[i].UID))
		}
	}
	return set, nil
}

// recordMatches tests one record. Save dates compare by day, without
// time or zone, as every SEARCH date does (RFC 8514 §5, RFC 9051
// §6.4.4).
func recordMatches(m *store.Message, k wire.SearchKey) bool {
	saved := date(m.AddedAt)
	switch k.Op {
	case wire.SearchSaveSince:
		return !saved.Before(date(k.Date))
	case wire.SearchSaveBefore:
		return saved.Before(date(k.Date))
	case wire.SearchSaveOn:
		return saved.Equal(date(k.Date))
	case wire.SearchSaveSupported:
		return true // every mailbox keeps save dates (RFC 8514 §5)
	case wire.SearchEmailID:
		return k.Value == emailID(m.Blob) // object ids are case-sensitive
	}
	return false
}
