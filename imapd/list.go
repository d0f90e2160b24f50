package imapd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/store"
)

// specialUse maps the stored attribute to go-imap's.
var specialUse = map[string]imap.MailboxAttr{
	`\Sent`: imap.MailboxAttrSent, `\Drafts`: imap.MailboxAttrDrafts, `\Trash`: imap.MailboxAttrTrash,
	`\Junk`: imap.MailboxAttrJunk, `\Archive`: imap.MailboxAttrArchive, `\All`: imap.MailboxAttrAll,
	`\Flagged`: imap.MailboxAttrFlagged,
}

// maxListPatterns bounds the patterns of one LIST (RFC 5258 allows a
// list): each costs up to a step per byte of every name, so thousands of
// distinct patterns, which fit in go-imap's 50 KiB command, would cost
// seconds of CPU. Clients send one or two.
const maxListPatterns = 16

// List answers LIST and LSUB (RFC 9051 §6.3.9, RFC 5258, RFC 5819,
// RFC 6154). Special-use attributes are always given, on plain LIST too.
func (s *session) List(w *ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	done, err := s.enter("LIST")
	defer done()
	if err != nil {
		return err
	}
	if len(patterns) > maxListPatterns {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("At most %d patterns in one LIST", maxListPatterns)}
	}
	if len(patterns) == 0 || len(patterns) == 1 && patterns[0] == "" {
		// RFC 9051 §6.3.9: an empty pattern asks for the delimiter
		// (go-imap passes it as no pattern at all).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: listDelim, Mailbox: ""})
	}
	mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
	if err != nil {
		return noFor(err, s.log)
	}
	if options.SelectSubscribed {
		if mbs, err = s.withGone(mbs); err != nil {
			return noFor(err, s.log)
		}
	}
	entries := listing(mbs, ref, patterns, options, nil)
	if w.lsub {
		entries = lsubSuperiors(mbs, entries, ref, patterns)
	}
	var childInfo map[string]bool
	if options.SelectSubscribed && options.SelectRecursiveMatch {
		entries, childInfo = recursiveMatch(mbs, entries, ref, patterns)
	}
	for _, e := range entries {
		data := s.listData(e, options)
		if e.mb.ID == goneID {
			data = goneData(e.mb.Name, w.lsub)
		}
		if childInfo[e.mb.Name] {
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// listEntry is one mailbox a LIST answers with: a mailbox of the
// account, or (mb.ID == 0) a superior that does not exist but has
// children, listed \Noselect so a client walking the hierarchy finds
// them (RFC 9051 §6.3.9).
type listEntry struct {
	mb          store.Mailbox
	hasChildren bool
}

// listing selects and orders the entries LIST answers with: INBOX first,
// then by name. Its work is linear in the names' total length (times the
// hierarchy depth, for the superiors) plus the matcher's, which is
// bounded per name (listPattern); work, when not nil, counts it.
func listing(mbs []store.Mailbox, ref string, patterns []string, o *imap.ListOptions, work *int) []listEntry {
	exists := make(map[string]bool, len(mbs))
	for _, mb := range mbs {
		exists[mb.Name] = true
	}
	// Every proper superior of a name has children; those that do not
	// exist become \Noselect entries.
	parents := map[string]bool{}
	all := make([]listEntry, 0, len(mbs))
	for _, mb := range mbs {
		all = append(all, listEntry{mb: mb})
	}
	for _, mb := range mbs {
		name := mb.Name
		for i := 0; i < len(name); i++ {
			if name[i] != listDelim {
				continue
			}
			p := name[:i]
			if work != nil {
				*work += len(p)
			}
			if parents[p] {
				continue
			}
			parents[p] = true
			if !exists[p] {
				all = append(all, listEntry{mb: store.Mailbox{Name: p}})
			}
		}
	}
	slices.SortFunc(all, func(a, b listEntry) int {
		switch {
		case a.mb.Name == b.mb.Name:
			return 0
		case a.mb.Name == "INBOX":
			return -1
		case b.mb.Name == "INBOX":
			return 1
		}
		return strings.Compare(a.mb.Name, b.mb.Name)
	})
	m := newListMatcher(ref, patterns)
	out := all[:0]
	for _, e := range all {
		if !m.match(e.mb.Name, work) {
			continue
		}
		virtual := e.mb.ID == 0
		if o.SelectSubscribed && (virtual || !e.mb.Subscribed) {
			continue
		}
		if _, special := specialUse[e.mb.SpecialUse]; o.SelectSpecialUse && (virtual || !special) {
			continue
		}
		e.hasChildren = parents[e.mb.Name]
		out = append(out, e)
	}
	return out
}

// listData is the LIST response for one entry.
func (s *session) listData(e listEntry, o *imap.ListOptions) *imap.ListData {
	data := &imap.ListData{Mailbox: e.mb.Name, Delim: listDelim}
	if e.mb.ID == 0 {
		// A \Noselect placeholder: no status, no subscription.
		data.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren}
		return data
	}
	if attr, ok := specialUse[e.mb.SpecialUse]; ok {
		data.Attrs = append(data.Attrs, attr)
	}
	if e.hasChildren {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if e.mb.Subscribed && (o.ReturnSubscribed || o.SelectSubscribed) {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	if o.ReturnStatus != nil {
		data.Status = statusOf(&e.mb, o.ReturnStatus, s)
	}
	return data
}
