package imapd_test

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4) with raw commands over
// real sockets: PARTIAL results, and searches kept updated (UPDATE) by
// this session's STORE, another session's STORE and EXPUNGE, mail
// delivered by SMTP, until CANCELUPDATE or the mailbox is deselected.
// No check waits for something not to happen: an absence is checked
// in the answer to a command sent after the change was committed (the
// store publishes a change to every session before the command that made
// it is answered).

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// tagged sends command under a tag of the test's choosing (a search
// kept updated is named by its tag) and returns its responses.
func (c *imapConn) tagged(tag, command string) resp {
	c.t.Helper()
	c.send(tag + " " + command + "\r\n")
	r, err := c.readTagged(tag, command)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// esearch returns the ESEARCH responses of a response for tag.
func esearch(r resp, tag string) []string {
	return r.find(`ESEARCH (TAG "` + tag + `")`)
}

// index is the position of the first untagged response that starts with
// prefix (after "* "), or -1.
func index(r resp, prefix string) int {
	for i, u := range r.untagged {
		if strings.HasPrefix(strings.ToUpper(strings.TrimPrefix(u, "* ")), strings.ToUpper(prefix)) {
			return i
		}
	}
	return -1
}

// wantESEARCH checks that r holds exactly the ESEARCH responses want
// for tag, in that order.
func wantESEARCH(t *testing.T, r resp, tag string, want ...string) {
	t.Helper()
	got := esearch(r, tag)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: ESEARCH for %s:\n got %q\nwant %q\nall:\n%s", r.cmd, tag, got, want, r)
	}
}

func TestContextCapabilities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "caps")
	if caps := c.caps(); caps["CONTEXT=SEARCH"] || caps["CONTEXT=SORT"] {
		t.Errorf("CONTEXT=* before login: %v", caps)
	}
	c.login(alice)
	caps := c.caps()
	for _, cp := range []string{"CONTEXT=SEARCH", "CONTEXT=SORT", "ESEARCH", "ESORT", "SORT"} {
		if !caps[cp] {
			t.Errorf("capability %s not advertised", cp)
		}
	}
	// CANCELUPDATE is a command of the selected state.
	if r := c.do(`CANCELUPDATE "x"`); r.status != "BAD" {
		t.Errorf("CANCELUPDATE without a mailbox: %s", r)
	}
}

// TestContextPartial: PARTIAL over SEARCH (mailbox order) and SORT (sort
// order), by number and UID, past the end, reversed ranges, and the
// ranges RFC 5267 §5 does not allow.
func TestContextPartial(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	c := inInbox(t, s.imaps, "partial", alice)
	c.ok("STORE 3 +FLAGS (\\Deleted)")
	c.ok("EXPUNGE")  // UIDs no longer 1-5: a UID answer is told from a number
	uids := c.uids() // messages 1,2,4,5 of the corpus
	if len(uids) != 4 {
		t.Fatalf("want 4 messages, got %v", uids)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 1:1) ALL", "PARTIAL (1:1 1)"},
		{"SEARCH RETURN (PARTIAL 2:3) ALL", "PARTIAL (2:3 2:3)"},
		{"SEARCH RETURN (PARTIAL 3:2) ALL", "PARTIAL (2:3 2:3)"},
		{"SEARCH RETURN (PARTIAL 2:10) ALL", "PARTIAL (2:10 2:4)"},
		{"SEARCH RETURN (PARTIAL 5:9) ALL", "PARTIAL (5:9 NIL)"},
		{"SEARCH RETURN (PARTIAL 1:2) 2:4", "PARTIAL (1:2 2:3)"},
		{"SEARCH RETURN (PARTIAL 1:2) SUBJECT nothing-like-this", "PARTIAL (1:2 NIL)"},
		{"SEARCH RETURN (PARTIAL 1:1 COUNT MIN MAX) 2:4", "MIN 2 MAX 4 PARTIAL (1:1 2) COUNT 3"},
		{"SEARCH RETURN (CONTEXT PARTIAL 2:2) ALL", "PARTIAL (2:2 2)"},
		{"UID SEARCH RETURN (PARTIAL 2:3) ALL", fmt.Sprintf("UID PARTIAL (2:3 %d,%d)", uids[1], uids[2])},
		{"UID SEARCH RETURN (PARTIAL 9:9) ALL", "UID PARTIAL (9:9 NIL)"},
		// Dates of messages 1,2,4,5: Jan 3, 5, 4, 6: seqs 1 3 2 4.
		{"SORT RETURN (PARTIAL 1:4) (DATE) UTF-8 ALL", "PARTIAL (1:4 1,3,2,4)"},
		{"SORT RETURN (PARTIAL 2:3) (DATE) UTF-8 ALL", "PARTIAL (2:3 3,2)"},
		{"SORT RETURN (PARTIAL 3:2) (REVERSE DATE) UTF-8 ALL", "PARTIAL (2:3 2:3)"},
		{"SORT RETURN (PARTIAL 4:8) (DATE) UTF-8 ALL", "PARTIAL (4:8 4)"},
		{"SORT RETURN (PARTIAL 5:8) (DATE) UTF-8 ALL", "PARTIAL (5:8 NIL)"},
		{"SORT RETURN (COUNT PARTIAL 1:2) (REVERSE DATE) UTF-8 ALL", "PARTIAL (1:2 4,2) COUNT 4"},
		{"UID SORT RETURN (PARTIAL 1:2) (DATE) UTF-8 ALL", fmt.Sprintf("UID PARTIAL (1:2 %d,%d)", uids[0], uids[2])},
	} {
		r := c.ok("%s", tc.cmd)
		l := r.find("ESEARCH ")
		want := fmt.Sprintf(`* ESEARCH (TAG "a%d") %s`, c.tag, tc.want)
		if len(l) != 1 || l[0] != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, l, want)
		}
	}
	for _, cmd := range []string{
		"SEARCH RETURN (PARTIAL 1) ALL",
		"SEARCH RETURN (PARTIAL 1:*) ALL",
		"SEARCH RETURN (PARTIAL *:1) ALL",
		"SEARCH RETURN (PARTIAL 0:3) ALL",
		"SEARCH RETURN (PARTIAL -1:3) ALL",
		"SEARCH RETURN (PARTIAL) ALL",
		"SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
		"SEARCH RETURN (ALL PARTIAL 1:2) ALL",
		"SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
		"SORT RETURN (PARTIAL 1) (ARRIVAL) UTF-8 ALL",
		"SORT RETURN (PARTIAL 1:*) (ARRIVAL) UTF-8 ALL",
		"SORT RETURN (PARTIAL *:1) (ARRIVAL) UTF-8 ALL",
		"SORT RETURN (PARTIAL 1:2 ALL) (ARRIVAL) UTF-8 ALL",
		"SEARCH RETURN (UPDATE NONSENSE) ALL",
	} {
		if r := c.do("%s", cmd); r.status != "BAD" || r.has("ESEARCH") {
			t.Errorf("%s: got\n%s\nwant BAD and no ESEARCH", cmd, r)
		}
	}
}

// TestContextUpdateSearch: SEARCH and UID SEARCH with RETURN (UPDATE)
// follow this session's STORE, another session's STORE and EXPUNGE, this
// session's EXPUNGE and a delivery by SMTP, with REMOVEFROM before the
// EXPUNGE it is about and ADDTO after the EXISTS; CANCELUPDATE ends one.
func TestContextUpdateSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	c := inInbox(t, s.imaps, "updated", alice)
	o := inInbox(t, s.imaps, "other", alice)
	uids := c.uids()

	r := c.tagged("S1", "SEARCH RETURN (UPDATE) SEEN")
	wantESEARCH(t, r, "S1", `* ESEARCH (TAG "S1")`)
	r = c.tagged("U1", "UID SEARCH RETURN (UPDATE ALL COUNT) UNSEEN")
	wantESEARCH(t, r, "U1", fmt.Sprintf(`* ESEARCH (TAG "U1") UID ALL %d:%d COUNT 5`, uids[0], uids[4]))

	// This session's STORE: the FETCH answers, then the updates.
	r = c.ok("STORE 1,2,4 +FLAGS (\\Seen)")
	wantESEARCH(t, r, "S1", `* ESEARCH (TAG "S1") ADDTO (0 1:2,4)`)
	wantESEARCH(t, r, "U1", fmt.Sprintf(`* ESEARCH (TAG "U1") UID REMOVEFROM (0 %d:%d,%d)`, uids[0], uids[1], uids[3]))
	// .SILENT answers no FETCH, but the contexts still change.
	r = c.ok("STORE 2 -FLAGS.SILENT (\\Seen)")
	wantESEARCH(t, r, "S1", `* ESEARCH (TAG "S1") REMOVEFROM (0 2)`)
	wantESEARCH(t, r, "U1", fmt.Sprintf(`* ESEARCH (TAG "U1") UID ADDTO (0 %d)`, uids[1]))
	// A STORE that changes no result says nothing.
	r = c.ok("STORE 1 +FLAGS (\\Flagged)")
	wantESEARCH(t, r, "S1")
	wantESEARCH(t, r, "U1")

	// Another session's STORE, told at this session's next command.
	o.ok("STORE 3,5 +FLAGS (\\Seen)")
	r = c.ok("NOOP")
	if !r.has("3 FETCH") || !r.has("5 FETCH") {
		t.Errorf("NOOP after another session's STORE: no FETCH:\n%s", r)
	}
	wantESEARCH(t, r, "S1", `* ESEARCH (TAG "S1") ADDTO (0 3,5)`)
	wantESEARCH(t, r, "U1", fmt.Sprintf(`* ESEARCH (TAG "U1") UID REMOVEFROM (0 %d,%d)`, uids[2], uids[4]))

	// Another session's EXPUNGE of message 3 (in S1): REMOVEFROM by its
	// number, before its EXPUNGE.
	o.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
	o.ok("EXPUNGE")
	r = c.ok("NOOP")
	wantESEARCH(t, r, "S1", `* ESEARCH (TAG "S1") REMOVEFROM (0 3)`)
	wantESEARCH(t, r, "U1")
	if i, j := index(r, `ESEARCH (TAG "S1") REMOVEFROM`), index(r, "3 EXPUNGE"); i < 0 || j < 0 || i > j {
		t.Errorf("REMOVEFROM not before the EXPUNGE:\n%s", r)
	}
	// Now 1 2 4 5 of the corpus are 1 2 3 4; S1 holds 1,3,4, U1 2.

	// This session's EXPUNGE of its messages 2 and 4: U1 loses 2, S1
	// loses 4, each before the EXPUNGE of that message.
	c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("EXPUNGE")
	wantESEARCH(t, r, "S1", `* ESEARCH (TAG "S1") REMOVEFROM (0 4)`)
	wantESEARCH(t, r, "U1", fmt.Sprintf(`* ESEARCH (TAG "U1") UID REMOVEFROM (0 %d)`, uids[1]))
	if i, j := index(r, `ESEARCH (TAG "S1") REMOVEFROM`), index(r, "4 EXPUNGE"); i < 0 || j < 0 || i > j {
		t.Errorf("REMOVEFROM not before its EXPUNGE:\n%s", r)
	}
	if i, j := index(r, `ESEARCH (TAG "U1") UID REMOVEFROM`), index(r, "2 EXPUNGE"); i < 0 || j < 0 || i > j {
		t.Errorf("REMOVEFROM not before its EXPUNGE:\n%s", r)
	}
	// Left: corpus 1 and 4 as 1 and 2, both \Seen: S1 1:2, U1 empty.

	// Mail delivered by SMTP joins U1 (unseen) after its EXISTS, while
	// the session IDLEs.
	tag := c.idle()
	s.mustDeliver(alice, simpleMessage(alice, "new", "fresh mail"))
	var seen []string
	for {
		l := c.waitFor(regexp.MustCompile(`^\* (3 EXISTS|ESEARCH )`))
		seen = append(seen, l)
		if strings.HasPrefix(l, "* ESEARCH") {
			break
		}
	}
	c.done(tag)
	newUID := uids[4] + 1
	if want := []string{"* 3 EXISTS", fmt.Sprintf(`* ESEARCH (TAG "U1") UID ADDTO (0 %d)`, newUID)}; strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("delivery while IDLE: got %q, want %q", seen, want)
	}

	// CANCELUPDATE ends S1 only.
	c.ok(`CANCELUPDATE "S1"`)
	o.ok("STORE 1:3 FLAGS (\\Flagged)") // all unseen now
	r = c.ok("NOOP")
	if !r.has("1 FETCH") {
		t.Fatalf("NOOP after another session's STORE: no FETCH:\n%s", r)
	}
	wantESEARCH(t, r, "S1")
	wantESEARCH(t, r, "U1", fmt.Sprintf(`* ESEARCH (TAG "U1") UID ADDTO (0 %d,%d)`, uids[0], uids[3]))
	c.no("", `CANCELUPDATE "S1"`)
	c.no("", `CANCELUPDATE "U1" "nosuch"`) // U1 cancelled, nosuch told
	o.ok("STORE 1:3 +FLAGS (\\Seen)")
	r = c.ok("NOOP")
	wantESEARCH(t, r, "U1")
	for _, cmd := range []string{"CANCELUPDATE", `CANCELUPDATE ("S1")`, `CANCELUPDATE "S1" `} {
		if r := c.do("%s", cmd); r.status != "BAD" {
			t.Errorf("%s: got %s, want BAD", cmd, r)
		}
	}
}

// TestContextUpdateRules: a tag in use by a search kept updated is BAD
// for another (RFC 5267 §4.3); past ten contexts a search is answered
// with NO [NOUPDATE] and not updated (§4.3.1); deselecting ends them all;
// UPDATE with MIN, MAX and SAVE keeps their meaning for the answer and
// updates the whole result (§4.3: no interaction).
func TestContextUpdateRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	c := inInbox(t, s.imaps, "rules", alice)

	c.tagged("T0", "SEARCH RETURN (UPDATE) FLAGGED")
	if r := c.tagged("T0", "SEARCH RETURN (UPDATE) ALL"); r.status != "BAD" {
		t.Errorf("UPDATE under a tag in use: %s", r)
	}
	if r := c.tagged("T0", "SORT RETURN (UPDATE) (ARRIVAL) UTF-8 ALL"); r.status != "BAD" {
		t.Errorf("SORT UPDATE under a tag in use: %s", r)
	}
	if r := c.tagged("T0", "SEARCH RETURN (COUNT) ALL"); r.status != "OK" {
		t.Errorf("a search without UPDATE under a tag in use: %s", r)
	}
	for i := 1; i < 10; i++ {
		if r := c.tagged(fmt.Sprintf("T%d", i), "SEARCH RETURN (UPDATE) FLAGGED"); r.status != "OK" || r.has("NO ") {
			t.Fatalf("context %d: %s", i+1, r)
		}
	}
	r := c.tagged("T10", "SEARCH RETURN (UPDATE COUNT) FLAGGED")
	if r.status != "OK" || index(r, `NO [NOUPDATE "T10"]`) != 0 || !r.has(`ESEARCH (TAG "T10") COUNT 0`) {
		t.Errorf("an eleventh context: got\n%s\nwant * NO [NOUPDATE \"T10\"], the COUNT and OK", r)
	}
	r = c.ok("STORE 1 +FLAGS (\\Flagged)")
	for i := range 10 {
		tag := fmt.Sprintf("T%d", i)
		wantESEARCH(t, r, tag, fmt.Sprintf(`* ESEARCH (TAG "%s") ADDTO (0 1)`, tag))
	}
	wantESEARCH(t, r, "T10")
	c.ok(`CANCELUPDATE "T3" "T7"`)
	if r := c.tagged("T11", "SORT RETURN (UPDATE) (ARRIVAL) UTF-8 FLAGGED"); r.status != "OK" || r.has("NO ") {
		t.Errorf("a context after CANCELUPDATE freed one: %s", r)
	}

	// Deselecting ends every context: none is told after SELECT again.
	c.ok("UNSELECT")
	c.selectBox("SELECT", "INBOX")
	r = c.ok("STORE 2 +FLAGS (\\Flagged)")
	if r.has("ESEARCH") {
		t.Errorf("a context outlived UNSELECT:\n%s", r)
	}
	c.no("", `CANCELUPDATE "T0"`)

	// UPDATE with MIN, MAX and SAVE: the answer is MIN and MAX, $ is
	// the result then; the updates are about every match.
	r = c.tagged("M1", "SEARCH RETURN (UPDATE MIN MAX SAVE) FLAGGED")
	wantESEARCH(t, r, "M1", `* ESEARCH (TAG "M1") MIN 1 MAX 2`)
	r = c.ok("STORE 3:4 +FLAGS (\\Flagged)")
	wantESEARCH(t, r, "M1", `* ESEARCH (TAG "M1") ADDTO (0 3:4)`)
	if r := c.ok("SEARCH $"); !r.has("SEARCH 1 2") {
		t.Errorf("SAVE with UPDATE: $ is\n%s\nwant 1 2", r)
	}
	// SAVE alone answers no ESEARCH (RFC 5182 §2.1); with UPDATE the
	// bare correlator.
	r = c.tagged("M2", "SEARCH RETURN (SAVE UPDATE) DELETED")
	wantESEARCH(t, r, "M2", `* ESEARCH (TAG "M2")`)

	// A sequence set in the program names the messages it named when
	// the search ran, not those that take their numbers.
	r = c.tagged("Q1", "SEARCH RETURN (UPDATE ALL) 2:3 SEEN")
	wantESEARCH(t, r, "Q1", `* ESEARCH (TAG "Q1")`)
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE") // the old 2:3 are now 1:2
	r = c.ok("STORE 1:4 +FLAGS (\\Seen)")
	wantESEARCH(t, r, "Q1", `* ESEARCH (TAG "Q1") ADDTO (0 1:2)`)
}

// TestContextUpdateSort: SORT with RETURN (UPDATE) tells positions in
// sort order (RFC 5267 §4.3.2-4.3.4): messages joining land where the
// sort puts them, several removed at once are told run by run, each
// position counted after the runs before it, an expunged one before its
// EXPUNGE, and new mail after its EXISTS.
func TestContextUpdateSort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	c := inInbox(t, s.imaps, "sorted", alice)
	o := inInbox(t, s.imaps, "other", alice)
	uids := c.uids()
	// By DATE the corpus is 3 1 4 2 5.
	r := c.tagged("D", "SORT RETURN (UPDATE ALL) (DATE) UTF-8 SEEN")
	wantESEARCH(t, r, "D", `* ESEARCH (TAG "D")`)
	r = c.tagged("R", "UID SORT RETURN (UPDATE ALL) (REVERSE DATE) UTF-8 ALL")
	wantESEARCH(t, r, "R", fmt.Sprintf(`* ESEARCH (TAG "R") UID ALL %d,%d,%d,%d,%d`, uids[4], uids[1], uids[3], uids[0], uids[2]))

	for _, step := range []struct{ who, cmd, want string }{
		{"c", "STORE 1,2 +FLAGS (\\Seen)", "ADDTO (1 1:2)"},            // 1 2
		{"c", "STORE 3 +FLAGS (\\Seen)", "ADDTO (1 3)"},                // 3 1 2
		{"o", "STORE 5 +FLAGS (\\Seen)", "ADDTO (4 5)"},                // 3 1 2 5
		{"o", "STORE 4 +FLAGS (\\Seen)", "ADDTO (3 4)"},                // 3 1 4 2 5
		{"c", "STORE 1,2 -FLAGS (\\Seen)", "REMOVEFROM (2 1 3 2)"},     // 3 4 5
		{"o", "STORE 1,2 +FLAGS (\\Seen)", "ADDTO (2 1 4 2)"},          // 3 1 4 2 5
		{"o", "STORE 3,1,5 -FLAGS (\\Seen)", "REMOVEFROM (1 3,1 3 5)"}, // 4 2
		{"c", "STORE 1:5 +FLAGS (\\Seen)", "ADDTO (1 3,1 5 5)"},        // 3 1 4 2 5
		{"o", "STORE 4,2 -FLAGS (\\Seen)", "REMOVEFROM (3 4,2)"},       // 3 1 5
		{"c", "STORE 2 +FLAGS (\\Seen)", "ADDTO (3 2)"},                // 3 1 2 5
		{"c", "STORE 4 +FLAGS (\\Seen)", "ADDTO (3 4)"},                // 3 1 4 2 5
	} {
		sess := c
		if step.who == "o" {
			sess = o
		}
		r = sess.ok("%s", step.cmd)
		if step.who == "o" {
			r = c.ok("NOOP")
		}
		wantESEARCH(t, r, "D", `* ESEARCH (TAG "D") `+step.want)
		wantESEARCH(t, r, "R")
	}

	// Message 4 (third by date) expunged elsewhere: REMOVEFROM (3 4)
	// before its EXPUNGE, for R by UID at position 3 (5 2 4 1 3).
	o.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
	o.ok("EXPUNGE")
	r = c.ok("NOOP")
	wantESEARCH(t, r, "D", `* ESEARCH (TAG "D") REMOVEFROM (3 4)`)
	wantESEARCH(t, r, "R", fmt.Sprintf(`* ESEARCH (TAG "R") UID REMOVEFROM (3 %d)`, uids[3]))
	for _, tag := range []string{"D", "R"} {
		if i, j := index(r, `ESEARCH (TAG "`+tag+`")`), index(r, "4 EXPUNGE"); i < 0 || j < 0 || i > j {
			t.Errorf("%s: REMOVEFROM not before the EXPUNGE:\n%s", tag, r)
		}
	}
	// Now 3 1 2 5 of the corpus are 3 1 2 4 (D holds them by date).

	// New mail: first in REVERSE DATE (R, by UID, after EXISTS);
	// its Date is the latest, so last in D once \Seen.
	s.mustDeliver(alice, crlf("From: <z@x.kz>\nTo: "+alice+"\nSubject: late\nDate: Wed, 07 Jan 2026 10:00:00 +0000\n\nlate\n"))
	r = c.ok("NOOP")
	newUID := uids[4] + 1
	wantESEARCH(t, r, "R", fmt.Sprintf(`* ESEARCH (TAG "R") UID ADDTO (1 %d)`, newUID))
	wantESEARCH(t, r, "D")
	if i, j := index(r, "5 EXISTS"), index(r, `ESEARCH (TAG "R")`); i < 0 || j < 0 || i > j {
		t.Errorf("ADDTO not after the EXISTS:\n%s", r)
	}
	r = c.ok("STORE 5 +FLAGS (\\Seen)")
	wantESEARCH(t, r, "D", `* ESEARCH (TAG "D") ADDTO (5 5)`)
	if r := c.tagged("D2", "SORT RETURN (ALL) (DATE) UTF-8 SEEN"); !r.has(`ESEARCH (TAG "D2") ALL 3,1:2,4:5`) {
		t.Errorf("the result D was told is not the SORT now:\n%s", r)
	}
}

// TestContextUpdateQresync: once QRESYNC is on, expunges are told by
// VANISHED, and the REMOVEFROM of a context by sequence number comes
// before it, by the numbers the messages had until then.
func TestContextUpdateQresync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	c := dialIMAPS(t, s.imaps, "qresync")
	c.login(alice)
	c.ok("ENABLE QRESYNC")
	c.selectBox("SELECT", "INBOX")
	o := inInbox(t, s.imaps, "other", alice)
	uids := c.uids()
	c.tagged("N", "SEARCH RETURN (UPDATE) 2,4:5")
	c.tagged("D", "SORT RETURN (UPDATE) (DATE) UTF-8 ALL") // 3 1 4 2 5
	o.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
	o.ok("EXPUNGE")
	r := c.ok("NOOP")
	wantESEARCH(t, r, "N", `* ESEARCH (TAG "N") REMOVEFROM (0 2,4)`)
	wantESEARCH(t, r, "D", `* ESEARCH (TAG "D") REMOVEFROM (3 4,2)`)
	v := index(r, "VANISHED ")
	if v < 0 || r.untagged[v] != fmt.Sprintf("* VANISHED %d,%d", uids[1], uids[3]) {
		t.Fatalf("NOOP after another session's EXPUNGE: no VANISHED:\n%s", r)
	}
	for _, tag := range []string{"N", "D"} {
		if i := index(r, `ESEARCH (TAG "`+tag+`")`); i > v {
			t.Errorf("%s: REMOVEFROM after the VANISHED:\n%s", tag, r)
		}
	}
}
