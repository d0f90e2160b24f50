package imapd_test

// Integration tests with a raw IMAP client: the real abox binary, real
// sockets, exact responses and response codes.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestGreetingCapabilitiesAndTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()

	t.Run("plain port", func(t *testing.T) {
		t.Parallel()
		c := dialIMAP(t, s.imap, "plain")
		caps := c.caps()
		for _, want := range []string{"IMAP4REV1", "STARTTLS", "LOGINDISABLED"} {
			if !caps[want] {
				t.Errorf("CAPABILITY before TLS lacks %s: %v", want, caps)
			}
		}
		if caps["AUTH=PLAIN"] {
			t.Errorf("CAPABILITY before TLS offers AUTH=PLAIN: %v", caps)
		}
		c.no("PRIVACYREQUIRED", "LOGIN %s %s", quote(alice), quote(password))
		if r := c.do("AUTHENTICATE PLAIN %s", plainIR(alice, password)); r.status == "OK" {
			t.Errorf("AUTHENTICATE before TLS: %s, want a refusal", r)
		}
		if r := c.do("SELECT INBOX"); r.status != "BAD" && r.status != "NO" {
			t.Errorf("SELECT before login: %s, want BAD or NO", r)
		}
		c.startTLS()
		caps = c.caps()
		if !caps["AUTH=PLAIN"] || caps["STARTTLS"] || caps["LOGINDISABLED"] {
			t.Errorf("CAPABILITY after STARTTLS: %v, want AUTH=PLAIN and neither STARTTLS nor LOGINDISABLED", caps)
		}
		c.login(alice)
		caps = c.caps()
		for _, want := range []string{"IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "SPECIAL-USE", "ENABLE",
			"ESEARCH", "LIST-STATUS", "STATUS=SIZE", "LITERAL+", "IMAP4REV2"} {
			if !caps[want] {
				t.Errorf("CAPABILITY after login lacks %s: %v", want, caps)
			}
		}
		// APPENDLIMIT without a value (RFC 7889 §3: limits vary; STATUS
		// tells the account's): see imapd/session.go appendLimit for why.
		if !caps["APPENDLIMIT"] {
			t.Errorf("CAPABILITY after login lacks APPENDLIMIT: %v", caps)
		}
		c.ok("LOGOUT")
	})

	t.Run("implicit TLS", func(t *testing.T) {
		t.Parallel()
		c := dialIMAPS(t, s.imaps, "imaps")
		caps := c.caps()
		if !caps["AUTH=PLAIN"] || caps["STARTTLS"] || caps["LOGINDISABLED"] {
			t.Errorf("imaps CAPABILITY: %v, want AUTH=PLAIN and neither STARTTLS nor LOGINDISABLED", caps)
		}
		c.ok("AUTHENTICATE PLAIN %s", plainIR(alice, password))
		c.ok("NOOP")
		c.ok("LOGOUT")
	})
}

// plainIR is a SASL PLAIN initial response (RFC 4959 SASL-IR).
func plainIR(user, pass string) string {
	return b64("\x00" + user + "\x00" + pass)
}

var (
	fetchFlaggedRE = regexp.MustCompile(`^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged`)
	expunge2RE     = regexp.MustCompile(`^\* 2 EXPUNGE$`)
)

// TestLiveUpdates: an IDLE session hears of deliveries (EXISTS), of flag
// changes made by another session (FETCH FLAGS) and of its expunges
// (EXPUNGE), and a session that does not IDLE hears of them at its next
// command.
func TestLiveUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)

	idler := dialIMAPS(t, s.imaps, "idler")
	idler.login(alice)
	if si := idler.selectBox("SELECT", "INBOX"); si.exists != 3 {
		t.Fatalf("INBOX: %d EXISTS, want 3", si.exists)
	}
	poller := dialIMAPS(t, s.imaps, "poller")
	poller.login(alice)
	poller.selectBox("EXAMINE", "INBOX")
	other := inInbox(t, s.imaps, "other", alice)

	// A delivery reaches the idler at once.
	tag := idler.idle()
	s.mustDeliver(alice, simpleMessage(alice, "live one", "delivered during IDLE"))
	idler.waitFor(regexp.MustCompile(`^\* 4 EXISTS$`))

	// A flag change by another session arrives as FETCH FLAGS.
	r := other.ok("STORE 1 +FLAGS (\\Flagged)")
	if len(r.find("1 FETCH")) != 1 {
		t.Errorf("STORE answered\n%s\nwant one FETCH", r)
	}
	line := idler.waitFor(fetchFlaggedRE)
	t.Logf("idler got %q", line)

	// An expunge by another session arrives as EXPUNGE.
	other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
	r = other.ok("EXPUNGE")
	if got := r.find("2 EXPUNGE"); len(got) != 1 {
		t.Errorf("EXPUNGE answered\n%s\nwant * 2 EXPUNGE", r)
	}
	idler.waitFor(expunge2RE)

	// A MOVE out of the mailbox is an expunge too.
	other.ok("MOVE 1 Archive")
	idler.waitFor(regexp.MustCompile(`^\* 1 EXPUNGE$`))
	idler.done(tag)

	// Sequence numbers now: UIDs 3 and 4 are left.
	if got := idler.uids(); fmt.Sprint(got) != "[3 4]" {
		t.Errorf("idler's UIDs after the changes: %v, want [3 4]", got)
	}

	// The poller (not idling) hears all of it at its next command.
	// The EXISTS comes after the EXPUNGEs, so it counts 2.
	r = poller.ok("NOOP")
	for _, want := range []string{"1 FETCH", "2 EXPUNGE", "1 EXPUNGE", "2 EXISTS"} {
		if !r.has(want) {
			t.Errorf("poller's NOOP:\n%s\nlacks * %s", r, want)
		}
	}
	if got := poller.uids(); fmt.Sprint(got) != "[3 4]" {
		t.Errorf("poller's UIDs after NOOP: %v, want [3 4]", got)
	}

	// A delivery to another mailbox of the account is not announced.
	tag = idler.idle()
	other.ok("APPEND Archive %s", literal(crlf("Subject: elsewhere\n\nnot in INBOX\n")))
	s.mustDeliver(alice, simpleMessage(alice, "live two", "second delivery"))
	line = idler.waitFor(regexp.MustCompile(`^\* \d+ EXISTS$`))
	if line != "* 3 EXISTS" {
		t.Errorf("after an APPEND to Archive and a delivery to INBOX the idler got %q, want * 3 EXISTS", line)
	}
	idler.done(tag)

	// IDLE with no mailbox selected waits quietly for DONE.
	idler.ok("UNSELECT")
	tag = idler.idle()
	s.mustDeliver(alice, simpleMessage(alice, "live three", "nobody selected"))
	idler.done(tag)
	idler.ok("LOGOUT")
}

// TestPersistenceAcrossRestart: UIDVALIDITY, UIDs and flags survive a
// restart, and UIDs are never reused.
func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)

	c := dialIMAPS(t, s.imaps, "before")
	c.login(alice)
	before := c.selectBox("SELECT", "INBOX")
	c.ok("STORE 1 +FLAGS (\\Flagged $Custom)")
	c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE")
	uidsBefore := c.uids()
	if fmt.Sprint(uidsBefore) != "[1 2]" {
		t.Fatalf("UIDs before restart: %v, want [1 2]", uidsBefore)
	}
	c.ok("CREATE Kept")
	keptBefore := c.status("Kept", "UIDVALIDITY")
	c.ok("LOGOUT")
	s.Stop()

	s = e.start()
	c = dialIMAPS(t, s.imaps, "after")
	c.login(alice)
	after := c.selectBox("SELECT", "INBOX")
	if after.uidValidity != before.uidValidity {
		t.Errorf("INBOX UIDVALIDITY %d after restart, was %d", after.uidValidity, before.uidValidity)
	}
	if got := c.uids(); fmt.Sprint(got) != fmt.Sprint(uidsBefore) {
		t.Errorf("UIDs after restart: %v, were %v", got, uidsBefore)
	}
	r := c.ok("FETCH 1 (FLAGS)")
	if f := r.find("1 FETCH"); len(f) != 1 || !strings.Contains(f[0], `\Flagged`) || !strings.Contains(f[0], "$Custom") {
		t.Errorf("flags after restart:\n%s\nwant \\Flagged $Custom", r)
	}
	if got := c.status("INBOX", "UIDNEXT"); got != 4 {
		t.Errorf("UIDNEXT after restart: %d, want 4", got)
	}
	if got := c.status("Kept", "UIDVALIDITY"); got != keptBefore {
		t.Errorf("UIDVALIDITY of Kept after restart: %d, was %d", got, keptBefore)
	}
	s.mustDeliver(alice, simpleMessage(alice, "after restart", "new"))
	c.ok("NOOP")
	if got := c.uids(); fmt.Sprint(got) != "[1 2 4]" {
		t.Errorf("UIDs after a new delivery: %v, want [1 2 4] (UID 3 must not be reused)", got)
	}
	c.ok("LOGOUT")
	e.Check()
}

var statusItemRE = regexp.MustCompile(`([A-Z]+) (\d+)`)

// status returns one numeric STATUS item of a mailbox.
func (c *imapConn) status(mailbox, item string) uint64 {
	c.t.Helper()
	r := c.ok("STATUS %s (%s)", quote(mailbox), item)
	for _, l := range r.find("STATUS ") {
		for _, m := range statusItemRE.FindAllStringSubmatch(l[strings.LastIndex(l, "("):], -1) {
			if m[1] == item {
				n, _ := strconv.ParseUint(m[2], 10, 64)
				return n
			}
		}
	}
	c.t.Fatalf("%s: STATUS %s (%s):\n%s\nhas no %s", c.name, mailbox, item, r, item)
	return 0
}

// TestIsolation: bob sees nothing of alice's, by any name.
func TestIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	s := e.start()
	s.deliverCorpus(alice)
	s.mustDeliver(bob, simpleMessage(bob, "for bob", "bob's own letter"))

	a := dialIMAPS(t, s.imaps, "alice")
	a.login(alice)
	a.ok("CREATE Private")
	a.ok("APPEND Private %s", literal(crlf("Subject: secret\n\nalice's secret\n")))
	aliceBefore := e.usage(alice)

	b := dialIMAPS(t, s.imaps, "bob")
	b.login(bob)
	r := b.ok(`LIST "" "*"`)
	var names []string
	for _, l := range r.find("LIST ") {
		names = append(names, l[strings.LastIndex(l, " ")+1:])
	}
	if got := strings.Join(names, " "); got != `INBOX "Archive" "Drafts" "Junk" "Sent" "Trash"` {
		t.Errorf("bob's LIST:\n%s\nwant only his six mailboxes", r)
	}
	for _, l := range r.untagged {
		if strings.Contains(strings.ToLower(l), "alice") || strings.Contains(l, "Private") {
			t.Errorf("bob's LIST shows %q", l)
		}
	}
	if r := b.ok(`LIST "" "%%/%%"`); len(r.untagged) != 0 {
		t.Errorf(`bob's LIST "" "%%/%%":`+"\n%s\nwant nothing", r)
	}
	r = b.ok("NAMESPACE")
	if got := r.find("NAMESPACE"); len(got) != 1 || got[0] != `* NAMESPACE (("" "/")) NIL NIL` {
		t.Errorf("NAMESPACE:\n%s\nwant no other-users or shared namespace", r)
	}

	others := []string{
		alice + "/INBOX", alice, "alice/INBOX", "user/alice", "user.alice", "user/" + alice + "/INBOX",
		"Other Users/" + alice + "/INBOX", "#shared/alice/INBOX", "~alice/INBOX", "../" + alice + "/INBOX",
		"/INBOX", "Private", alice + "/Private",
	}
	for _, name := range others {
		if r := b.do("SELECT %s", quote(name)); r.status == "OK" {
			t.Errorf("bob: SELECT %q succeeded:\n%s", name, r)
		}
		if r := b.do("EXAMINE %s", quote(name)); r.status == "OK" {
			t.Errorf("bob: EXAMINE %q succeeded:\n%s", name, r)
		}
		if r := b.do("STATUS %s (MESSAGES UIDNEXT)", quote(name)); r.status == "OK" || r.has("STATUS") {
			t.Errorf("bob: STATUS %q:\n%s\nwant NO and no data", name, r)
		}
	}

	if si := b.selectBox("SELECT", "INBOX"); si.exists != 1 {
		t.Errorf("bob's INBOX: %d EXISTS, want 1", si.exists)
	}
	r = b.do("UID FETCH 1:* (UID BODY.PEEK[])")
	if got := r.find("1 FETCH"); r.status != "OK" || len(r.untagged) != 1 || len(got) != 1 || !strings.Contains(got[0], "bob's own letter") {
		t.Errorf("bob: UID FETCH 1:*:\n%s\nwant his one letter only", r)
	}
	for _, cmd := range []string{"FETCH 2:3 (BODY.PEEK[])", "UID FETCH 2:3 (BODY.PEEK[])", "UID FETCH 1:* (BODY.PEEK[2])"} {
		r = b.do("%s", cmd)
		for _, l := range r.untagged {
			if strings.Contains(l, "kazpost") || strings.Contains(l, "Monthly report") || strings.Contains(l, "zebrafish") {
				t.Errorf("bob: %s shows alice's mail:\n%s", cmd, r)
			}
		}
	}
	r = b.ok("SEARCH TEXT kazpost")
	if l := r.find("SEARCH"); len(l) != 1 || l[0] != "* SEARCH" {
		t.Errorf("bob: SEARCH TEXT kazpost:\n%s\nwant nothing", r)
	}
	for _, name := range others {
		if r := b.do("COPY 1 %s", quote(name)); r.status == "OK" {
			t.Errorf("bob: COPY 1 %q succeeded:\n%s", name, r)
		}
		if r := b.do("APPEND %s %s", quote(name), literal(crlf("Subject: from bob\n\nhi\n"))); r.status == "OK" {
			t.Errorf("bob: APPEND %q succeeded:\n%s", name, r)
		}
	}
	b.ok("MOVE 1 Archive")

	// UNAUTHENTICATE (RFC 8437) and a login as alice on the same
	// connection: nothing of bob's session remains, and the other way
	// round.
	b.ok("SELECT INBOX")
	b.ok("UNAUTHENTICATE")
	if r := b.do("FETCH 1:* (UID)"); r.status == "OK" || r.has("FETCH") {
		t.Errorf("FETCH after UNAUTHENTICATE:\n%s\nwant a refusal", r)
	}
	if r := b.do("STATUS INBOX (MESSAGES)"); r.status == "OK" {
		t.Errorf("STATUS after UNAUTHENTICATE:\n%s\nwant a refusal", r)
	}
	b.login(alice)
	if r := b.do("FETCH 1 (UID)"); r.status == "OK" {
		t.Errorf("FETCH right after logging in as alice on bob's old connection:\n%s\nwant a refusal (nothing selected)", r)
	}
	if n := b.status("INBOX", "MESSAGES"); n != 3 {
		t.Errorf("alice's INBOX on bob's old connection: %d messages, want 3", n)
	}
	b.ok("UNAUTHENTICATE")
	b.login(bob)
	if n := b.status("Archive", "MESSAGES"); n != 1 {
		t.Errorf("bob's Archive after UNAUTHENTICATE and LOGIN: %d messages, want 1", n)
	}
	b.ok("LOGOUT")

	if got := e.usage(alice); got != aliceBefore {
		t.Errorf("alice's usage changed from %+v to %+v by bob's commands", aliceBefore, got)
	}
	a.selectBox("EXAMINE", "INBOX")
	if got := a.uids(); fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("alice's INBOX after bob's attempts: UIDs %v, want [1 2 3]", got)
	}
	if got := a.status("Private", "MESSAGES"); got != 1 {
		t.Errorf("alice's Private: %d messages, want 1", got)
	}
	if got := a.status("Archive", "MESSAGES"); got != 0 {
		t.Errorf("alice's Archive: %d messages after bob's MOVE to his Archive, want 0", got)
	}
	a.ok("LOGOUT")
}

// TestOverQuota: at its message quota an account refuses APPEND and COPY
// with NO [OVERQUOTA]; a MOVE inside the account raises nothing and is
// allowed; the storage quota counts bytes.
func TestOverQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)
	e.OK("user", "set", alice, "--quota-messages", "3")

	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	small := crlf("Subject: small\n\nsmall\n")
	c.no("OVERQUOTA", "APPEND INBOX %s", literal(small))
	c.ok("NOOP") // the refused literal left the stream in step
	c.no("OVERQUOTA", "APPEND Drafts (\\Draft) %s", literal(small))

	// With a synchronizing literal the refusal may come before or after
	// the literal; either way the session stays usable.
	tag := c.nextTag()
	c.send(fmt.Sprintf("%s APPEND INBOX {%d}\r\n", tag, len(small)))
	line, err := c.readResponse(ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(line, "+") {
		c.send(small + "\r\n")
		r, err := c.readTagged(tag, "APPEND {sync}")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NO" || r.code() != "OVERQUOTA" {
			t.Errorf("APPEND with a synchronizing literal over quota: %s, want NO [OVERQUOTA]", r)
		}
	} else if !strings.HasPrefix(line, tag+" NO [OVERQUOTA]") {
		t.Errorf("APPEND with a synchronizing literal over quota: %q, want + or NO [OVERQUOTA]", line)
	}
	c.ok("NOOP")

	c.selectBox("SELECT", "INBOX")
	c.no("OVERQUOTA", "COPY 1 Archive")
	c.no("OVERQUOTA", "UID COPY 1:3 Trash")
	if got := c.status("Archive", "MESSAGES"); got != 0 {
		t.Errorf("Archive holds %d after refused COPYs, want 0", got)
	}
	r := c.ok("MOVE 1 Archive")
	if !r.has("OK [COPYUID") && !strings.Contains(r.text, "COPYUID") {
		t.Errorf("MOVE at quota:\n%s\nwant COPYUID", r)
	}
	if u := e.usage(alice); u.Messages != 3 {
		t.Errorf("usage after the refusals and a MOVE: %+v, want 3 messages", u)
	}
	if err := deliver(s.smtp, "office@gov.kz", []string{alice}, simpleMessage(alice, "over", "quota")); err == nil || !strings.Contains(err.Error(), "452") {
		t.Errorf("SMTP delivery at quota: %v, want 452 4.2.2", err)
	}

	// Storage: room for a few bytes only, seen by a new session.
	used := e.usage(alice).StorageBytes
	e.OK("user", "set", alice, "--quota-messages", "default", "--quota-storage", fmt.Sprintf("%dB", used+100))
	c2 := dialIMAPS(t, s.imaps, "alice-2")
	c2.login(alice)
	c2.no("OVERQUOTA", "APPEND INBOX %s", literal(crlf("Subject: big\n\n"+strings.Repeat("x", 500)+"\n")))
	tiny := crlf("Subject: tiny\n\nx\n")
	c2.ok("APPEND INBOX %s", literal(tiny))
	c2.selectBox("SELECT", "INBOX")
	c2.no("OVERQUOTA", "COPY 1:2 Trash")
	c2.ok("LOGOUT")

	// Doubtful, not asserted: a session opened before `user set` keeps
	// the account's quota overrides of its login (a `class set` applies
	// to it at once).
	if r := c.do("APPEND INBOX %s", literal(tiny)); r.status != "OK" {
		t.Logf("NOTE: after `user set --quota-messages default --quota-storage %dB`, a session opened before it: APPEND of %d bytes got %s (usage %+v): the session applies the quota of its login",
			used+100, len(tiny), r, e.usage(alice))
	}
	c.ok("LOGOUT")
	e.Check()
}

// TestLoginRefusals: wrong passwords, blocked and deleted accounts.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	carol := e.addUser("carol")
	s := e.start()
	early := inInbox(t, s.imaps, "open-before-block", alice)
	e.OK("user", "block", alice, "--reason", "fraud check")
	e.OK("user", "delete", bob)

	c := dialIMAPS(t, s.imaps, "client")
	c.no("AUTHENTICATIONFAILED", "LOGIN %s %s", quote(carol), quote("wrong password, clearly"))
	c.no("AUTHENTICATIONFAILED", "LOGIN %s %s", quote("nobody@"+domain), quote(password))
	c.no("AUTHENTICATIONFAILED", "LOGIN carol %s", quote(password)) // no domain
	r := c.no("CONTACTADMIN", "LOGIN %s %s", quote(alice), quote(password))
	if !strings.Contains(r.text, "blocked") {
		t.Errorf("blocked login: %q, want the text to say blocked", r.text)
	}
	c.no("CONTACTADMIN", "AUTHENTICATE PLAIN %s", plainIR(alice, password))
	c.no("EXPIRED", "LOGIN %s %s", quote(bob), quote(password))
	c.no("EXPIRED", "AUTHENTICATE PLAIN %s", plainIR(bob, password))
	// A blocked account's wrong password says nothing about the account.
	c.no("AUTHENTICATIONFAILED", "LOGIN %s %s", quote(alice), quote("wrong password, clearly"))
	c.login(carol)
	c.ok("LOGOUT")

	// A session that logged in before the block ends with it (SPEC: a
	// blocked account has no access).
	if r, err := early.try("STATUS INBOX (MESSAGES)"); err == nil && r.status == "OK" {
		t.Errorf("a session opened before `user block` still works after it: %s", r)
	}

	e.OK("user", "unblock", alice)
	e.OK("user", "restore", bob)
	for _, u := range []string{alice, bob} {
		c := dialIMAPS(t, s.imaps, u)
		c.login(u)
		c.ok("LOGOUT")
	}
}

// TestManyChangesWhileAway: a session that does not read its updates
// while another session makes more changes than the change feed buffers
// still ends up with the right view at its next command (the overflow
// reload): expunges, new messages and flags.
func TestManyChangesWhileAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()

	w := dialIMAPS(t, s.imaps, "writer")
	w.login(alice)
	const n = 40
	for i := range n {
		w.ok("APPEND INBOX %s", literal(crlf(fmt.Sprintf("Subject: message %d\n\nbody %d\n", i+1, i+1))))
	}
	away := dialIMAPS(t, s.imaps, "away")
	away.login(alice)
	if si := away.selectBox("SELECT", "INBOX"); si.exists != n {
		t.Fatalf("INBOX: %d EXISTS, want %d", si.exists, n)
	}
	idler := inInbox(t, s.imaps, "idler", alice)
	tag := idler.idle()

	w.selectBox("SELECT", "INBOX")
	for range 15 { // 1,200 flag changes
		w.ok(`STORE 1:* +FLAGS.SILENT (\Flagged)`)
		w.ok(`STORE 1:* -FLAGS.SILENT (\Flagged)`)
	}
	w.ok(`STORE 1:10 +FLAGS.SILENT (\Deleted)`)
	w.ok("EXPUNGE")
	w.ok(`UID STORE 11 +FLAGS.SILENT (\Answered)`)
	w.ok("APPEND INBOX %s", literal(crlf("Subject: last\n\nlast\n")))
	w.ok("NOOP")

	want := "[11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41]"
	r := away.ok("NOOP")
	if got := len(r.find("")) - len(r.find("OK")); got == 0 {
		t.Errorf("NOOP after the storm told nothing:\n%s", r)
	}
	expunges := 0
	for _, l := range r.untagged {
		if strings.HasSuffix(l, " EXPUNGE") {
			expunges++
		}
	}
	if expunges != 10 {
		t.Errorf("NOOP after the storm: %d EXPUNGEs, want 10:\n%s", expunges, trim(r.String()))
	}
	if got := away.uids(); fmt.Sprint(got) != want {
		t.Errorf("UIDs of the session away: %v, want %s", got, want)
	}
	idler.waitFor(regexp.MustCompile(`^\* 31 EXISTS$`))
	idler.done(tag)
	if got := idler.uids(); fmt.Sprint(got) != want {
		t.Errorf("UIDs of the idler: %v, want %s", got, want)
	}
	for _, c := range []*imapConn{away, idler} {
		r := c.ok("FETCH 1:* (UID FLAGS)")
		for _, l := range r.find("") {
			if !strings.Contains(l, " FETCH ") {
				continue
			}
			flagged := strings.Contains(l, `\Flagged`) || strings.Contains(l, `\Deleted`)
			answered := strings.Contains(l, `\Answered`)
			if flagged || answered != strings.Contains(l, "UID 11 ") {
				t.Errorf("%s: flags after the storm: %q", c.name, l)
			}
		}
		c.ok("LOGOUT")
	}
}
