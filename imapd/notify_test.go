package imapd_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// NOTIFY (RFC 5465) over real sockets to the real binary. No check here
// waits for something not to happen: an absence is checked against a
// command answered after the change was committed (a NOOP, or a later
// event the server must send after it).

// TestNotifyStatusOfOtherMailboxWhileIdle: a delivery by SMTP into a
// mailbox that is not selected reaches a client that IDLEs after NOTIFY
// as STATUS (RFC 5465 §5.2), one per mailbox however many messages came.
func TestNotifyStatusOfOtherMailboxWhileIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "notifier")
	c.login(alice)
	if !c.caps()["NOTIFY"] {
		t.Fatal("NOTIFY not advertised after login")
	}
	c.selectBox("SELECT", "Archive")
	c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew MessageExpunge FlagChange))")
	tag := c.idle()
	s.mustDeliver(alice, simpleMessage(alice, "to INBOX", "one"))
	line := c.waitFor(regexp.MustCompile(`^\* STATUS INBOX \(MESSAGES 1 `))
	if !strings.Contains(line, "UIDNEXT 2 ") || !strings.Contains(line, "UIDVALIDITY ") {
		t.Errorf("STATUS after a delivery: %q", line)
	}
	c.done(tag)
	// Between commands too, without IDLE (RFC 5465 §5: at any time).
	s.mustDeliver(alice, simpleMessage(alice, "to INBOX", "two"))
	c.waitFor(regexp.MustCompile(`^\* STATUS INBOX \(MESSAGES 2 `))
	// The selected mailbox's changes never come as STATUS.
	o := dialIMAPS(t, s.imaps, "other")
	o.login(alice)
	o.ok("APPEND Archive {5+}\r\nhello")
	c.waitFor(regexp.MustCompile(`^\* 1 EXISTS$`))
	r := c.ok("NOOP")
	if r.has(`STATUS "Archive"`) {
		t.Errorf("STATUS of the selected mailbox: %s", r)
	}
}

// TestNotifyMailboxNameFromAnotherSession: CREATE, RENAME and DELETE in
// another session come as LIST (RFC 5465 §5.4), SUBSCRIBE and
// UNSUBSCRIBE as LIST with or without \Subscribed (§5.5); NOTIFY NONE
// stops them.
func TestNotifyMailboxNameFromAnotherSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "notifier")
	c.login(alice)
	c.ok("NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
	o := dialIMAPS(t, s.imaps, "other")
	o.login(alice)

	tag := c.idle()
	o.ok("CREATE Projects")
	c.waitFor(regexp.MustCompile(`^\* LIST \((\\Subscribed)?\) "/" "Projects"$`))
	o.ok("RENAME Projects Work")
	c.waitFor(regexp.MustCompile(`^\* LIST \((\\Subscribed)?\) "/" "Work" \("OLDNAME" \("Projects"\)\)$`))
	// Toggled from whatever CREATE left, each change awaited before the
	// next (two at once may cancel out: events are coalesced).
	order := []string{"UNSUBSCRIBE", "SUBSCRIBE"}
	if !o.ok(`LSUB "" Work`).has("LSUB") {
		order = []string{"SUBSCRIBE", "UNSUBSCRIBE"}
	}
	for _, cmd := range order {
		o.ok("%s Work", cmd)
		attrs := `\\Subscribed`
		if cmd == "UNSUBSCRIBE" {
			attrs = ""
		}
		c.waitFor(regexp.MustCompile(`^\* LIST \(` + attrs + `\) "/" "Work"$`))
	}
	o.ok("DELETE Work")
	c.waitFor(regexp.MustCompile(`^\* LIST \(\\NonExistent\) "/" "Work"$`))
	c.done(tag)

	c.ok("NOTIFY NONE")
	o.ok("CREATE Later")
	if r := c.ok("NOOP"); r.has("LIST") {
		t.Errorf("LIST after NOTIFY NONE: %s", r)
	}
}

// TestNotifySelectedPushesNewAndExpunged: SELECTED sends the selected
// mailbox's EXISTS with MessageNew's fetch attributes, and EXPUNGE, with
// no command in progress (RFC 5465 §5.2, §5.3); the fetch does not set
// \Seen.
func TestNotifySelectedPushesNewAndExpunged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "notifier", alice)
	c.ok("NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge))")
	s.mustDeliver(alice, simpleMessage(alice, "pushed", "body"))
	c.waitFor(regexp.MustCompile(`^\* 1 EXISTS$`))
	line := c.waitFor(regexp.MustCompile(`^\* 1 FETCH `))
	if !strings.Contains(line, "UID 1 ") || !strings.Contains(line, "BODY[HEADER.FIELDS (Subject)]") || !strings.Contains(line, "Subject: pushed") {
		t.Errorf("FETCH of the new message: %q", line)
	}
	o := inInbox(t, s.imaps, "other", alice)
	if r := o.ok("FETCH 1 FLAGS"); strings.Contains(r.String(), `\Seen`) {
		t.Errorf("the notification set \\Seen: %s", r)
	}
	o.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	o.ok("EXPUNGE")
	c.waitFor(regexp.MustCompile(`^\* 1 EXPUNGE$`))
}

// TestNotifySelectedDelayedHoldsExpunges: under SELECTED-DELAYED a new
// message is announced at once but an expunge waits for a command that
// allows EXPUNGE (RFC 5465 §6).
func TestNotifySelectedDelayedHoldsExpunges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.mustDeliver(alice, simpleMessage(alice, "first", "body"))
	c := inInbox(t, s.imaps, "notifier", alice)
	c.ok("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))")
	o := inInbox(t, s.imaps, "other", alice)
	o.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	o.ok("EXPUNGE")
	s.mustDeliver(alice, simpleMessage(alice, "second", "body"))
	// Committed after the expunge: had the expunge been pushed it would
	// have come first.
	var seen []string
	for {
		line, err := c.readResponse(ioTimeout)
		if err != nil {
			t.Fatalf("waiting for EXISTS (saw %q): %v", seen, err)
		}
		seen = append(seen, line)
		if line == "* 2 EXISTS" {
			break
		}
	}
	for _, l := range seen {
		if strings.Contains(l, "EXPUNGE") {
			t.Errorf("EXPUNGE pushed under SELECTED-DELAYED: %q", seen)
		}
	}
	if r := c.ok("NOOP"); !slices.Contains(r.untagged, "* 1 EXPUNGE") {
		t.Errorf("NOOP did not carry the held EXPUNGE: %s", r)
	}
}

// TestNotifyStatusOptionAndMissingMailbox: NOTIFY SET STATUS answers
// STATUS for every mailbox named but the selected one (RFC 5465 §3.1); a
// filter naming a mailbox that does not exist is accepted and applies
// once the mailbox is created.
func TestNotifyStatusOptionAndMissingMailbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "notifier", alice)
	r := c.ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
	for _, name := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if !r.has(`STATUS "` + name + `" (`) {
			t.Errorf("no STATUS for %s: %s", name, r)
		}
	}
	if r.has("STATUS INBOX") {
		t.Errorf("STATUS of the selected mailbox: %s", r)
	}
	r = c.ok("NOTIFY SET (MAILBOXES (Later Nowhere) (MessageNew MessageExpunge))")
	if len(r.untagged) != 0 {
		t.Errorf("NOTIFY SET without STATUS answered %s", r)
	}
	o := dialIMAPS(t, s.imaps, "other")
	o.login(alice)
	o.ok("CREATE Later")
	o.ok("APPEND Later {5+}\r\nhello")
	o.ok("APPEND Archive {5+}\r\nhello")
	r = c.ok("NOOP")
	if got := r.find(`STATUS "Later" (MESSAGES 1 `); len(got) != 1 {
		t.Errorf("NOOP after an APPEND to a mailbox named before it existed: %s", r)
	}
	if r.has(`STATUS "Archive"`) {
		t.Errorf("STATUS of a mailbox no filter names: %s", r)
	}
}

// TestNotifySyntax: malformed NOTIFY commands are BAD, unsupported events
// NO [BADEVENT], and neither changes the NOTIFY in force.
func TestNotifySyntax(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "notifier", alice)
	for _, cmd := range []string{
		"NOTIFY",
		"NOTIFY SET",
		"NOTIFY BOGUS",
		"NOTIFY NONE extra",
		"NOTIFY SET (SELECTED (MessageNew))",
		"NOTIFY SET (SELECTED (MessageExpunge))",
		"NOTIFY SET (SELECTED (FlagChange))",
		"NOTIFY SET (ELSEWHERE (MailboxName))",
		"NOTIFY SET (PERSONAL (Bogus))",
		"NOTIFY SET (PERSONAL ())",
		"NOTIFY SET (PERSONAL (MailboxName)",
		"NOTIFY SET (SELECTED (MailboxName))",
		"NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))",
		"NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))",
		"NOTIFY SET (SELECTED (MessageNew (BODY[]) MessageExpunge))",
		"NOTIFY SET (SELECTED (MessageNew (NOSUCHITEM) MessageExpunge))",
		"NOTIFY SET (MAILBOXES (MessageNew MessageExpunge))",
		"NOTIFY SET STATUS",
	} {
		if r := c.do("%s", cmd); r.status != "BAD" {
			t.Errorf("%s: got %s, want BAD", cmd, r)
		}
	}
	c.no("BADEVENT", "NOTIFY SET (PERSONAL (AnnotationChange))")
	c.no("BADEVENT", "NOTIFY SET (PERSONAL (MailboxMetadataChange))")
	c.ok("NOTIFY SET (PERSONAL NONE)")
	c.ok("notify set (selected-delayed (messagenew messageexpunge flagchange)) (subtree INBOX (MailboxName))")
	c.ok("NOTIFY NONE")
}

// TestNotifyManyMailboxesOneSubscription: NOTIFY over 300 mailboxes
// costs the session no goroutine per mailbox, and the changes one
// command makes to a mailbox come as one STATUS (coalesced): the COPY of
// five messages answers one STATUS of its destination, not five.
func TestNotifyManyMailboxesOneSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for i := range 5 {
		s.mustDeliver(alice, simpleMessage(alice, "m", strings.Repeat("x", i+1)))
	}
	c := inInbox(t, s.imaps, "notifier", alice)
	const boxes = 300
	for i := range boxes {
		c.ok("CREATE Box%03d", i)
	}
	before := s.goroutines(t)
	r := c.ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
	if got := len(r.find("STATUS ")); got != boxes+5 {
		t.Errorf("NOTIFY SET STATUS answered %d STATUS, want %d (every mailbox but INBOX)", got, boxes+5)
	}
	if after := s.goroutines(t); after > before+5 {
		t.Errorf("goroutines %d -> %d after NOTIFY over %d mailboxes", before, after, boxes)
	}
	r = c.ok("COPY 1:5 Box150")
	if got := r.find(`STATUS "Box150" `); len(got) != 1 || !strings.Contains(got[0], "MESSAGES 5 ") {
		t.Errorf("COPY of 5 messages under NOTIFY: %s", r)
	}
	tag := c.idle()
	o := dialIMAPS(t, s.imaps, "other")
	o.login(alice)
	o.ok("APPEND Box299 {5+}\r\nhello")
	c.waitFor(regexp.MustCompile(`^\* STATUS "Box299" \(MESSAGES 1 `))
	c.done(tag)
}
