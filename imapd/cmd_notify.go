package imapd

import (
	"bufio"
	"strings"

	"abox/imapd/wire"
)

// cmdNotify answers NOTIFY SET and NOTIFY NONE (RFC 5465 §3.1). A SET
// replaces the previous one whole; a refused one leaves it as it was.
func cmdNotify(c *conn, _ string, a *wire.Args, _ bool) status {
	s := c.sess
	if !a.SP() {
		return badArgs(a)
	}
	if a.AcceptWord("NONE") {
		if a.End() != nil {
			return badArgs(a)
		}
		s.stopNotify()
		return okWith("", "NOTIFY completed")
	}
	if !a.AcceptWord("SET") || !a.SP() {
		return status{"BAD", "", "Expected NOTIFY SET or NOTIFY NONE"}
	}
	sendStatus := false
	if a.AcceptWord("STATUS") {
		sendStatus = true
		if !a.SP() {
			return badArgs(a)
		}
	}
	n := &notifier{}
	for {
		if st, ok := c.notifyGroup(a, n); !ok {
			return st
		}
		if !a.Accept(' ') {
			break
		}
	}
	if a.End() != nil {
		return badArgs(a)
	}
	done, err := s.enter("NOTIFY")
	done()
	if err != nil {
		return answer("NOTIFY", err)
	}
	// Subscribe before reading the names: a change committed in between
	// comes again and is recognised against the names read.
	n.sub = s.srv.cfg.Store.Subscribe(s.acct.ID, s.wake)
	mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
	if err != nil {
		n.close()
		return answer("NOTIFY", noFor(err, s.log))
	}
	n.dir = dirOf(mbs)
	s.stopNotify()
	s.notify = n
	if sendStatus {
		// RFC 5465 §3.1: STATUS of every mailbox named, other than the
		// selected one.
		var lines []notifyLine
		for _, mb := range mbs {
			e, ok := n.dir[mb.ID]
			if ok && n.eventsFor(e)&messageEvents != 0 && !s.isSelected(mb.ID) {
				lines = append(lines, s.statusLine(mb, n.eventsFor(e)))
			}
		}
		c.writeNotifyLines(c.w, lines)
	}
	return okWith("", "NOTIFY completed")
}

// notifyGroup reads one event-group (RFC 5465 §8) into n.
func (c *conn) notifyGroup(a *wire.Args, n *notifier) (status, bool) {
	if len(n.groups) >= maxNotifyGroups {
		return status{"BAD", "", "Too many event groups"}, false
	}
	if !a.Expect('(', `"("`) {
		return badArgs(a), false
	}
	g := notifyGroup{}
	word, _ := a.Atom()
	switch strings.ToUpper(word) {
	case "SELECTED":
		g.filter = filterSelected
	case "SELECTED-DELAYED":
		g.filter = filterSelectedDelayed
	case "PERSONAL":
		g.filter = filterPersonal
	case "INBOXES":
		g.filter = filterInboxes
	case "SUBSCRIBED":
		g.filter = filterSubscribed
	case "SUBTREE":
		g.filter = filterSubtree
	case "MAILBOXES":
		g.filter = filterMailboxes
	default:
		return status{"BAD", "", "Unknown mailbox filter " + word}, false
	}
	if g.filter == filterSubtree || g.filter == filterMailboxes {
		if st, ok := c.notifyNames(a, n, &g); !ok {
			return st, false
		}
	}
	if !a.SP() {
		return badArgs(a), false
	}
	if st, ok := c.notifyEvents(a, n, &g); !ok {
		return st, false
	}
	if !a.Expect(')', `")"`) {
		return badArgs(a), false
	}
	if g.filter == filterSelected || g.filter == filterSelectedDelayed {
		if n.selected != nil {
			return status{"BAD", "", "Only one SELECTED or SELECTED-DELAYED filter"}, false
		}
		n.selected = &g
		return status{}, true
	}
	n.groups = append(n.groups, g)
	return status{}, true
}

// notifyNames reads one-or-more-mailbox. A name that does not exist is
// kept: it matches once such a mailbox is created (RFC 5465 §6 lets the
// server ignore it; abox watches the name instead, so a client that
// names a mailbox before creating it hears of it).
func (c *conn) notifyNames(a *wire.Args, n *notifier, g *notifyGroup) (status, bool) {
	if !a.SP() {
		return badArgs(a), false
	}
	total := 0
	for i := range n.groups {
		total += len(n.groups[i].names)
	}
	one := func() bool {
		name, ok, _ := c.mailboxArg(a)
		if ok {
			g.names = append(g.names, name)
		}
		return ok && total+len(g.names) <= maxNotifyNames
	}
	ok := false
	if a.Peek() == '(' {
		ok = a.List(false, one)
	} else {
		ok = one()
	}
	if !ok {
		if total+len(g.names) > maxNotifyNames {
			return status{"BAD", "", "Too many mailboxes named"}, false
		}
		return status{"BAD", "", "Bad mailbox name in NOTIFY"}, false
	}
	return status{}, true
}

// notifyEvents reads events: NONE or a list (RFC 5465 §5, §8).
func (c *conn) notifyEvents(a *wire.Args, n *notifier, g *notifyGroup) (status, bool) {
	if a.AcceptWord("NONE") {
		return status{}, true
	}
	selected := g.filter == filterSelected || g.filter == filterSelectedDelayed
	var unsupported bool
	one := func() bool {
		name, ok := a.Atom()
		if !ok {
			return false
		}
		switch strings.ToLower(name) {
		case "messagenew":
			g.events |= evMessageNew
			if a.Peek() == ' ' {
				// fetch-att list, only after MessageNew
				m := a.Mark()
				a.Accept(' ')
				if a.Peek() != '(' {
					a.Rewind(m)
					return true
				}
				return c.notifyFetch(a, n, selected)
			}
		case "messageexpunge":
			g.events |= evMessageExpunge
		case "flagchange":
			g.events |= evFlagChange
		case "mailboxname":
			g.events |= evMailboxName
		case "subscriptionchange":
			g.events |= evSubscriptionChange
		case "annotationchange", "mailboxmetadatachange", "servermetadatachange":
			unsupported = true
		default:
			a.Expect(0, "an event")
			return false
		}
		return true
	}
	if !a.List(false, one) {
		return badArgs(a), false
	}
	news, expunges := g.events&evMessageNew != 0, g.events&evMessageExpunge != 0
	switch {
	case unsupported:
		return status{"NO", "BADEVENT " + supportedEvents, "Event not supported"}, false
	// The pairing keeps a client's sequence numbers right, so it binds
	// the selected mailbox only; for others each event alone is a
	// STATUS (as Dovecot, and imaptest's notify script, have it).
	case selected && news != expunges:
		return status{"BAD", "", "MessageNew and MessageExpunge go together for the selected mailbox (RFC 5465 §5)"}, false
	case selected && g.events&evFlagChange != 0 && g.events&evMessageNew == 0:
		return status{"BAD", "", "FlagChange needs MessageNew and MessageExpunge for the selected mailbox (RFC 5465 §5)"}, false
	case selected && g.events&^messageEvents != 0:
		return status{"BAD", "", "SELECTED takes message events only"}, false
	}
	return status{}, true
}

// notifyFetch reads MessageNew's fetch attributes, which only the
// selected mailbox's new messages get (RFC 5465 §5.2), and keeps them as
// written. A body section must be PEEK: a notification is not a read.
func (c *conn) notifyFetch(a *wire.Args, n *notifier, selected bool) bool {
	if !selected {
		a.Expect(0, "no fetch attributes outside SELECTED")
		return false
	}
	m := a.Mark()
	items, ok := a.FetchItems()
	if !ok {
		return false
	}
	for _, it := range items {
		switch it.Kind {
		case wire.FetchRFC822, wire.FetchRFC822Text:
			a.Expect(0, "BODY.PEEK rather than RFC822 or RFC822.TEXT")
			return false
		case wire.FetchSection, wire.FetchBinary:
			if !it.Section.Peek {
				a.Expect(0, "BODY.PEEK or BINARY.PEEK")
				return false
			}
		}
	}
	text, ok := a.Since(m)
	if !ok {
		a.Expect(0, "fetch attributes without literals")
		return false
	}
	n.fetch = text
	return true
}

// notifyFetchNew sends the fetch attributes of NOTIFY's MessageNew for
// the selected mailbox's messages from..to, right after their EXISTS, by
// running FETCH on them (so every item is answered as FETCH answers it).
func (s *session) notifyFetchNew(u *UpdateWriter, from, to uint32) {
	text := "notify FETCH " + seqRange(from, to) + " " + s.notify.fetch + "\r\n"
	cmd, err := wire.NewReader(bufio.NewReader(strings.NewReader(text))).ReadCommand()
	if err != nil {
		s.log.Warn("NOTIFY fetch attributes", "err", err)
		return
	}
	c := s.conn
	run := func() {
		name := c.cmdName
		c.cmdName = "FETCH"
		if st := cmdFetch(c, cmd.Tag, cmd.Args(), false); st.typ != "OK" {
			s.log.Debug("NOTIFY fetch of new messages", "answer", st.text)
		}
		c.cmdName = name
	}
	if u.c == nil {
		run()
		return
	}
	c.writeLocked(func() {
		c.inRun.Store(true)
		run()
		c.inRun.Store(false)
	})
}
