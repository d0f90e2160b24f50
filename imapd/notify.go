package imapd

import (
	"slices"
	"strconv"
	"strings"

	"abox/imapd/wire"
	"abox/store"
)

// NOTIFY (RFC 5465): the client names the mailboxes and the events it
// wants to hear of, and the server tells it at any time, between commands
// and while it IDLEs (§1, §5). A session that asked holds one
// subscription to its account's change feed, whatever the number of
// mailboxes named (no goroutine and no buffer per mailbox), and the
// account's mailbox names as last told, to match filters by name and to
// tell renames and deletions.

// notifyEvents is a set of RFC 5465 §5 events.
type notifyEvents uint8

const (
	evMessageNew notifyEvents = 1 << iota
	evMessageExpunge
	evFlagChange
	evMailboxName
	evSubscriptionChange

	messageEvents = evMessageNew | evMessageExpunge | evFlagChange
)

// supportedEvents is the BADEVENT answer's list (RFC 5465 §3.1, §8).
const supportedEvents = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"

// filterKind is a filter-mailboxes of RFC 5465 §6.
type filterKind uint8

const (
	filterSelected filterKind = iota + 1
	filterSelectedDelayed
	filterPersonal
	filterInboxes
	filterSubscribed
	filterSubtree
	filterMailboxes
)

// Bounds of one NOTIFY SET: the state it leaves stays small.
const (
	maxNotifyGroups = 64
	maxNotifyNames  = 1000
)

// notifyGroup is one event-group: a filter and its events (0: NONE).
type notifyGroup struct {
	filter filterKind
	names  []string // SUBTREE and MAILBOXES, decoded
	events notifyEvents
}

// dirEntry is what the session last told (or would have told) of a
// mailbox.
type dirEntry struct {
	name       string
	subscribed bool
	special    string
}

// notifier is a session's NOTIFY SET. Guarded by the session's idling
// lock (commands and the pusher take it).
type notifier struct {
	groups   []notifyGroup // the other filters, in the client's order
	selected *notifyGroup  // SELECTED or SELECTED-DELAYED, if given
	// fetch is MessageNew's fetch-att list for the selected mailbox, as
	// the client wrote it ("" for none).
	fetch string
	sub   *store.Subscription
	dir   map[uint32]dirEntry
	// stale: the feed lost changes, or reading the mailboxes failed;
	// the next flush compares everything with the store.
	stale bool
}

// matches says whether a mailbox falls under a non-selected filter
// (RFC 5465 §6). INBOXES are the mailboxes abox's delivery writes to:
// INBOX and the Junk mailbox.
func (g *notifyGroup) matches(e dirEntry) bool {
	switch g.filter {
	case filterPersonal:
		return true
	case filterInboxes:
		return e.name == "INBOX" || e.special == `\Junk`
	case filterSubscribed:
		return e.subscribed
	case filterSubtree:
		for _, n := range g.names {
			if e.name == n || strings.HasPrefix(e.name, n+"/") {
				return true
			}
		}
	case filterMailboxes:
		for _, n := range g.names {
			if e.name == n {
				return true
			}
		}
	}
	return false
}

// eventsFor returns the events the client wants for a mailbox other
// than the selected one: those of the first filter that names it.
func (n *notifier) eventsFor(e dirEntry) notifyEvents {
	for i := range n.groups {
		if n.groups[i].matches(e) {
			return n.groups[i].events
		}
	}
	return 0
}

// pushesSelected says whether the selected mailbox's changes go out
// between commands (SELECTED, SELECTED-DELAYED), and whether its
// expunges do (SELECTED only: RFC 5465 §6 delays them to a command that
// allows EXPUNGE).
func (n *notifier) pushesSelected() (updates, expunges bool) {
	if n == nil || n.selected == nil || n.selected.events == 0 {
		return false, false
	}
	return true, n.selected.filter == filterSelected
}

func (n *notifier) close() {
	if n != nil && n.sub != nil {
		n.sub.Close()
		n.sub = nil
	}
}

func dirOf(mbs []store.Mailbox) map[uint32]dirEntry {
	dir := make(map[uint32]dirEntry, len(mbs))
	for _, mb := range mbs {
		if !mb.Deleting {
			dir[mb.ID] = dirEntry{mb.Name, mb.Subscribed, mb.SpecialUse}
		}
	}
	return dir
}

// stopNotify ends NOTIFY (NOTIFY NONE, UNAUTHENTICATE, the end of the
// session).
func (s *session) stopNotify() {
	s.notify.close()
	s.notify = nil
}

// pushPending says whether a pusher has something to write now.
func (s *session) pushPending(between bool) bool {
	sel := s.sel != nil && s.sel.sub != nil && s.sel.sub.Pending()
	if between {
		up, _ := s.notify.pushesSelected()
		sel = sel && up
	}
	return sel || s.notify != nil && s.notify.sub != nil && s.notify.sub.Pending()
}

// armBetween lets the feed wake a pusher between commands while NOTIFY
// is on (RFC 5465 §5: events are sent at any time). Called with no lock
// held, when no command runs.
func (s *session) armBetween() {
	s.idling.Lock()
	if s.notify == nil || s.acct == nil || s.conn.closing.Load() {
		s.idling.Unlock()
		return
	}
	s.idleW = &UpdateWriter{w: s.conn.w, c: s.conn}
	s.between = true
	s.armed.Store(true)
	pending := s.pushPending(true)
	s.idling.Unlock()
	if pending {
		s.wake()
	}
}

// notifyLine is one response NOTIFY sends: a mailbox's LIST (MailboxName,
// SubscriptionChange, RFC 5465 §5.4, §5.5) or its STATUS (message events
// of a mailbox not selected, §5.1-§5.3).
type notifyLine struct {
	list   bool
	attrs  string // LIST: `\NonExistent`, `\Subscribed` or ""
	name   string
	old    string // LIST after a rename: OLDNAME
	status store.Mailbox
	modseq bool // STATUS: HIGHESTMODSEQ too (CONDSTORE enabled)
}

func (s *session) isSelected(id uint32) bool { return s.sel != nil && s.sel.mbox.ID == id }

// statusLine is the STATUS a message event of mb sends: what a client
// needs to see that the mailbox changed and whether to look (MESSAGES,
// UIDNEXT, UIDVALIDITY, UNSEEN; HIGHESTMODSEQ after CONDSTORE).
// A mailbox watched for FlagChange gets HIGHESTMODSEQ too, CONDSTORE
// enabled or not: without it a flag change moves no number in the STATUS
// (RFC 5465 §5.3; Dovecot and imaptest's notify script do the same).
func (s *session) statusLine(mb store.Mailbox, ev notifyEvents) notifyLine {
	return notifyLine{name: mb.Name, status: mb, modseq: s.condstore || ev&evFlagChange != 0}
}

func (c *conn) writeNotifyLines(w *wire.Writer, lines []notifyLine) {
	for _, l := range lines {
		if l.list {
			w.Raw("* LIST (").Raw(l.attrs).Raw(`) "/" `)
			writeMailbox(w, l.name, c.utf8)
			if l.old != "" {
				w.Raw(` ("OLDNAME" (`)
				writeMailbox(w, l.old, c.utf8)
				w.Raw("))")
			}
			w.CRLF()
			continue
		}
		mb := l.status
		w.Raw("* STATUS ")
		writeMailbox(w, l.name, c.utf8)
		w.Raw(" (MESSAGES ").Number(uint64(mb.Messages)).Raw(" UIDNEXT ").Number(uint64(mb.UIDNext)).
			Raw(" UIDVALIDITY ").Number(uint64(mb.UIDValidity)).Raw(" UNSEEN ").Number(uint64(mb.Unseen))
		if l.modseq {
			w.Raw(" HIGHESTMODSEQ ").Number(mb.HighestModSeq)
		}
		w.Raw(")").CRLF()
	}
}

// notifyFlush sends what the feed brought for NOTIFY since the last
// time: LIST for the mailboxes created, deleted, renamed or
// (un)subscribed, then one STATUS per mailbox whose messages changed,
// however many changes it had (coalesced). After a loss in the feed
// every difference from the names last told is sent, and a STATUS for
// every mailbox named.
func (s *session) notifyFlush(u *UpdateWriter) error {
	n := s.notify
	if n == nil || n.sub == nil {
		return nil
	}
	changes, lost := n.sub.Take()
	if len(changes) == 0 && !lost && !n.stale {
		return nil
	}
	touched := map[uint32]notifyEvents{}
	names := lost || n.stale
	for _, c := range changes {
		switch c.Kind {
		case store.MessageAdded:
			touched[c.Mailbox] |= evMessageNew
		case store.MessageRemoved:
			touched[c.Mailbox] |= evMessageExpunge
		case store.FlagsChanged:
			touched[c.Mailbox] |= evFlagChange
		case store.MailboxCreated, store.MailboxDeleted, store.MailboxRenamed, store.SubscriptionChanged:
			names = true
		}
	}
	if len(touched) == 0 && !names {
		return nil
	}
	mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
	if err != nil {
		n.stale = true
		s.log.Warn("NOTIFY: reading the mailboxes; retrying at the next change", "err", err)
		return nil
	}
	var lines []notifyLine
	if names {
		lines = n.diff(dirOf(mbs))
	}
	for _, mb := range mbs {
		ev := touched[mb.ID]
		if lost || n.stale {
			ev = messageEvents
		}
		e, ok := n.dir[mb.ID]
		if ev == 0 || !ok || s.isSelected(mb.ID) || n.eventsFor(e)&ev == 0 {
			continue
		}
		lines = append(lines, s.statusLine(mb, n.eventsFor(e)))
	}
	n.stale = false
	if len(lines) == 0 {
		return nil
	}
	return u.write(func(w *wire.Writer) { s.conn.writeNotifyLines(w, lines) })
}

// diff tells the changes between the names last told and now, as LIST
// responses for the mailboxes whose filter asked for them, and keeps
// now's names.
func (n *notifier) diff(now map[uint32]dirEntry) []notifyLine {
	var lines []notifyLine
	for _, id := range sortedIDs(n.dir) {
		old := n.dir[id]
		if _, ok := now[id]; !ok && n.eventsFor(old)&evMailboxName != 0 {
			lines = append(lines, notifyLine{list: true, attrs: `\NonExistent`, name: old.name})
		}
	}
	for _, id := range sortedIDs(now) {
		e := now[id]
		old, had := n.dir[id]
		ev := n.eventsFor(e)
		switch {
		case !had && ev&evMailboxName != 0:
			lines = append(lines, notifyLine{list: true, attrs: subscribedAttr(e), name: e.name})
		case had && old.name != e.name && (ev|n.eventsFor(old))&evMailboxName != 0:
			lines = append(lines, notifyLine{list: true, attrs: subscribedAttr(e), name: e.name, old: old.name})
		case had && old.subscribed != e.subscribed && ev&evSubscriptionChange != 0:
			lines = append(lines, notifyLine{list: true, attrs: subscribedAttr(e), name: e.name})
		}
	}
	n.dir = now
	return lines
}

func subscribedAttr(e dirEntry) string {
	if e.subscribed {
		return `\Subscribed`
	}
	return ""
}

func sortedIDs(m map[uint32]dirEntry) []uint32 {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// seqRange writes from:to as a sequence set.
func seqRange(from, to uint32) string {
	if from == to {
		return strconv.FormatUint(uint64(from), 10)
	}
	return strconv.FormatUint(uint64(from), 10) + ":" + strconv.FormatUint(uint64(to), 10)
}
