package imapd_test

import (
	"fmt"
	"strings"
	"testing"
)

// sortCorpus is five messages whose sort keys all differ in order.
// Delivered in this order, they are sequence numbers 1-5.
func sortCorpus() []string {
	msg := func(from, rcpt, cc, subject, date, id, refs, body string) string {
		h := fmt.Sprintf("From: %s\nTo: %s\n", from, rcpt)
		if cc != "" {
			h += "Cc: " + cc + "\n"
		}
		h += fmt.Sprintf("Subject: %s\nDate: %s\nMessage-ID: <%s>\n", subject, date, id)
		if refs != "" {
			h += "References: " + refs + "\n"
		}
		return crlf(h + "\n" + body + "\n")
	}
	return []string{
		msg(`"Carol" <carol@x.kz>`, `"Dan" <dan@x.kz>`, "<zoe@x.kz>", "Budget", "Sat, 03 Jan 2026 10:00:00 +0000", "m1@x.kz", "", "one"),
		msg(`"alice" <alice@x.kz>`, `"Bob" <bob@x.kz>`, "", "Re: Budget", "Mon, 05 Jan 2026 10:00:00 +0000", "m2@x.kz", "<m1@x.kz>", "two"),
		msg(`=?UTF-8?B?0JHQvtGA0LjRgQ==?= <boris@x.kz>`, `"Anna" <anna@x.kz>`, "", "=?UTF-8?B?0J7RgtGH0ZHRgg==?=", "Thu, 01 Jan 2026 10:00:00 +0000", "m3@x.kz", "", "three"),
		msg(`<bob@x.kz>`, `<carl@x.kz>`, "", "[list] Fwd: budget", "Sun, 04 Jan 2026 12:00:00 +0200", "m4@x.kz", "", "four"),
		msg(`"Yuri" <yuri@x.kz>`, `<eve@x.kz>`, "", "Re: Re: Budget", "Tue, 06 Jan 2026 10:00:00 +0000", "m5@x.kz", "<m1@x.kz>\n <m2@x.kz>", strings.Repeat("five ", 2000)),
	}
}

func TestSortAndThreadRaw(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	c := inInbox(t, s.imaps, "sorter", alice)
	caps := c.caps()
	for _, cp := range []string{"SORT", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "WITHIN"} {
		if !caps[cp] {
			t.Errorf("capability %s not advertised", cp)
		}
	}
	uids := c.uids()
	if len(uids) != 5 {
		t.Fatalf("want 5 messages, got UIDs %v", uids)
	}
	uidOf := func(seqs ...int) string {
		var out []string
		for _, s := range seqs {
			out = append(out, fmt.Sprint(uids[s-1]))
		}
		return strings.Join(out, " ")
	}
	only := func(r resp, prefix string) string {
		t.Helper()
		l := r.find(prefix)
		if len(l) != 1 {
			t.Fatalf("%s: want one %s response, got\n%s", r.cmd, prefix, r)
		}
		return l[0]
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 1 2 3 4 5"},
		{"SORT (ARRIVAL) US-ASCII ALL", "* SORT 1 2 3 4 5"},
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 1 2 4 5 3"},
		{"SORT (DATE) UTF-8 ALL", "* SORT 3 1 4 2 5"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 5 2 4 1 3"},
		{"SORT (FROM) UTF-8 ALL", "* SORT 2 4 3 1 5"},
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 4 1 5 3"},
		{"SORT (TO) UTF-8 ALL", "* SORT 3 2 4 1 5"},
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 3 2 4 1 5"},
		{"SORT (CC) UTF-8 ALL", "* SORT 2 3 4 5 1"},
		{"SORT (REVERSE SIZE) UTF-8 ALL", "* SORT 5"},
		{"SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 5 2 4 1 3"},
		{"SORT (DATE) UTF-8 SUBJECT budget", "* SORT 1 4 2 5"},
		{"SORT (DATE) UTF-8 SUBJECT nothing-like-this", "* SORT"},
		{"SORT (DATE) UTF-8 YOUNGER 86400", "* SORT 3 1 4 2 5"},
		{"SORT (DATE) UTF-8 OLDER 86400", "* SORT"},
		{"UID SORT (DATE) UTF-8 ALL", "* SORT " + uidOf(3, 1, 4, 2, 5)},
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (3)(1 (4)(2 5))"},
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (3)(1 (4)(2)(5))"},
		{"UID THREAD ORDEREDSUBJECT UTF-8 ALL", fmt.Sprintf("* THREAD (%d)(%d (%d)(%d)(%d))", uids[2], uids[0], uids[3], uids[1], uids[4])},
		{"THREAD REFERENCES UTF-8 NOT ALL", "* THREAD"},
		{"SEARCH YOUNGER 86400", "* SEARCH 1 2 3 4 5"},
		{"SEARCH OLDER 86400", "* SEARCH"},
		{"SEARCH OR OLDER 86400 SUBJECT Budget", "* SEARCH 1 2 4 5"},
	} {
		r := c.ok("%s", tc.cmd)
		prefix := strings.Fields(tc.want)[1]
		got := only(r, prefix)
		// Only the largest message is known under SIZE: the others are
		// close in size.
		sizeOnly := strings.Contains(tc.cmd, "SIZE") && strings.HasPrefix(got, tc.want+" ")
		if got != tc.want && !sizeOnly {
			t.Errorf("%s: got %q, want %q", tc.cmd, got, tc.want)
		}
	}
	// ESORT (RFC 5267 §3): MIN and MAX in sort order, ALL in sort order.
	for _, tc := range []struct{ cmd, want string }{
		{"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", " MIN 3 MAX 5 COUNT 5"},
		{"SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL", " ALL 5,2,4,1,3"},
		{"SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL", " ALL 1:5"},
		{"SORT RETURN () (DATE) UTF-8 ALL", " ALL 3,1,4,2,5"},
		{"SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing-like-this", " COUNT 0"},
		{"UID SORT RETURN (MIN) (DATE) UTF-8 ALL", fmt.Sprintf(" UID MIN %d", uids[2])},
	} {
		r := c.ok("%s", tc.cmd)
		got := only(r, "ESEARCH")
		if i := strings.Index(got, `")`); !strings.HasPrefix(got, `* ESEARCH (TAG "`) || i < 0 || got[i+2:] != tc.want {
			t.Errorf("%s: got %q, want %q after the tag", tc.cmd, got, tc.want)
		}
	}
	// SAVE keeps the result for $ (RFC 5182).
	c.ok("SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT budget")
	if got := only(c.ok("SEARCH $"), "SEARCH"); got != "* SEARCH 1 2 4 5" {
		t.Errorf("SEARCH $ after SORT RETURN (SAVE): got %q", got)
	}
	c.no("BADCHARSET", "SORT (DATE) KOI8-R ALL")
	c.no("BADCHARSET", "THREAD REFERENCES KOI8-R ALL")
	for _, bad := range []string{"SORT (FOO) UTF-8 ALL", "SORT () UTF-8 ALL", "SORT (DATE) UTF-8", "SORT DATE UTF-8 ALL",
		"THREAD JWZ UTF-8 ALL", "THREAD REFERENCES UTF-8", "SEARCH OLDER 0", "SEARCH YOUNGER x", "SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL"} {
		if r := c.do("%s", bad); r.status != "BAD" {
			t.Errorf("%s: got\n%s\nwant BAD", bad, r)
		}
	}
	e.Check()
}

// TestSortAddressGroupsAndBrokenAddresses: CC sorts a group by the
// group's name, the first element of the ENVELOPE's list (RFC 5256 §3),
// and DISPLAYFROM sorts an address without a domain by what the
// ENVELOPE shows instead of as empty (RFC 5957 §3); ties keep mailbox
// order. The decoded address lists drop both, which sorted them first.
func TestSortAddressGroupsAndBrokenAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "sorter", alice)
	for _, hdr := range []string{
		"From: zed@example.org\nCc: team@example.org\n",
		"From: local-only\nCc: team: amy@example.org;\n",
		"From: \"Beth\" <beth@example.org>\nCc: abe@example.org\n",
	} {
		c.ok("APPEND INBOX %s", literal(crlf(hdr+"Subject: s\n\nbody\n")))
	}
	if r := c.ok("SORT (CC) US-ASCII ALL"); !r.has("SORT 3 1 2") {
		t.Errorf("SORT (CC): %s, want 3 1 2 (abe, then team and the group team: in mailbox order)", r)
	}
	if r := c.ok("SORT (DISPLAYFROM) US-ASCII ALL"); !r.has("SORT 3 2 1") {
		t.Errorf("SORT (DISPLAYFROM): %s, want 3 2 1 (Beth, local-only, zed@example.org)", r)
	}
}
