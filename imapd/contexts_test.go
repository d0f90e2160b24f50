package imapd_test

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4) with raw commands over
// real sockets: PARTIAL results.

import (
	"fmt"
	"testing"
)

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
