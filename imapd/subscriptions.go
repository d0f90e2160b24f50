package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/store"
)

// Subscriptions in LSUB and LIST (SUBSCRIBED) (RFC 3501 §6.3.9, RFC 5258
// §3.1): a subscribed name whose mailbox was deleted is still listed
// (store/subscriptions.go), \Noselect in LSUB and \NonExistent in LIST.
// And LSUB with "%" lists a superior that is not itself subscribed but
// has a subscribed name below the level the pattern reaches, \Noselect,
// so a client walking the tree level by level finds it (RFC 3501
// §6.3.9's "news.comp.mail.misc" example).

// goneID marks a listing entry for a subscribed name without a mailbox.
const goneID = ^uint32(0)

// withGone adds the account's subscribed names that have no mailbox.
func (s *session) withGone(mbs []store.Mailbox) ([]store.Mailbox, error) {
	gone, err := s.srv.cfg.Store.GoneSubscriptions(s.acct.ID)
	if err != nil {
		return nil, err
	}
	for _, name := range gone {
		mbs = append(mbs, store.Mailbox{ID: goneID, Name: name, Subscribed: true})
	}
	return mbs, nil
}

// goneData is the LIST or LSUB response for a gone subscribed name.
func goneData(name string, lsub bool) *imap.ListData {
	d := &imap.ListData{Mailbox: name, Delim: listDelim}
	if lsub {
		d.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
	} else {
		d.Attrs = []imap.MailboxAttr{imap.MailboxAttrNonExistent, imap.MailboxAttrSubscribed}
	}
	return d
}

// lsubSuperiors adds to LSUB's entries each superior the patterns match
// of a subscribed name they do not match, when the superior is not
// listed already; its entry is a \Noselect placeholder (ID 0).
func lsubSuperiors(mbs []store.Mailbox, entries []listEntry, ref string, patterns []string) []listEntry {
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		listed[e.mb.Name] = true
	}
	m := newListMatcher(ref, patterns)
	added := false
	for _, mb := range mbs {
		if !mb.Subscribed || listed[mb.Name] {
			continue
		}
		name := mb.Name
		for i := strings.LastIndexByte(name, listDelim); i > 0; i = strings.LastIndexByte(name[:i], listDelim) {
			p := name[:i]
			if listed[p] {
				break
			}
			if m.match(p, nil) {
				listed[p] = true
				entries = append(entries, listEntry{mb: store.Mailbox{Name: p}, hasChildren: true})
				added = true
				break
			}
		}
	}
	if added {
		sortEntries(entries)
	}
	return entries
}

// recursiveMatch is LIST (SUBSCRIBED RECURSIVEMATCH) (RFC 5258 §3.5,
// §4): a name the patterns match that has a subscribed descendant the
// patterns do not match is listed, subscribed or not, with CHILDINFO
// ("SUBSCRIBED"). It returns the entries with those added, and the
// names that carry CHILDINFO.
func recursiveMatch(mbs []store.Mailbox, entries []listEntry, ref string, patterns []string) ([]listEntry, map[string]bool) {
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		listed[e.mb.Name] = true
	}
	byName := make(map[string]store.Mailbox, len(mbs))
	for _, mb := range mbs {
		byName[mb.Name] = mb
	}
	m := newListMatcher(ref, patterns)
	info := map[string]bool{}
	for _, mb := range mbs {
		if !mb.Subscribed || m.match(mb.Name, nil) {
			continue
		}
		name := mb.Name
		for i := strings.LastIndexByte(name, listDelim); i > 0; i = strings.LastIndexByte(name[:i], listDelim) {
			p := name[:i]
			if info[p] || !m.match(p, nil) {
				continue
			}
			info[p] = true
			if !listed[p] {
				listed[p] = true
				e := listEntry{mb: store.Mailbox{Name: p}, hasChildren: true}
				if parent, ok := byName[p]; ok && parent.ID != goneID {
					e.mb = parent
				}
				entries = append(entries, e)
			}
		}
	}
	if len(info) > 0 {
		sortEntries(entries)
	}
	return entries, info
}

// sortEntries puts INBOX first, then the names in order, as listing
// does.
func sortEntries(entries []listEntry) {
	slices.SortFunc(entries, func(a, b listEntry) int {
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
}
