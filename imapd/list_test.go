package imapd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"abox/accounts"
	"abox/store"
)

// maxedMailboxes are n mailboxes at the standard class's limits: every
// name as deep and as long as allowed.
func maxedMailboxes(n int) []store.Mailbox {
	std := accounts.DefaultClasses()[0]
	depth, length := int(std.MaxMailboxDepth), int(std.MaxMailboxNameBytes)
	var mbs []store.Mailbox
	for i := range n {
		levels := make([]string, depth)
		for l := range levels {
			levels[l] = fmt.Sprintf("%c%d", 'a'+l, i%(l+2))
		}
		name := strings.Join(levels, "/")
		name += strings.Repeat("z", length-len(name))
		mbs = append(mbs, store.Mailbox{ID: uint32(i + 1), Name: name, Subscribed: true})
	}
	return mbs
}

// TestListingWorkAtTheLimits: LIST over the standard class's maximum of
// mailboxes, each at the maximum depth and length, does work linear in
// the names' bytes (times the depth, for superiors, and the pattern's
// words, for matching), and twice the mailboxes take twice the work
// (hasChild used to compare every pair).
func TestListingWorkAtTheLimits(t *testing.T) {
	std := accounts.DefaultClasses()[0]
	n := int(std.MaxMailboxes)
	hostile := strings.Repeat("%z", int(std.MaxMailboxNameBytes)/2) + "%y"
	stars := strings.Repeat("*z", int(std.MaxMailboxNameBytes)/4) + "*y"
	for _, pattern := range []string{"*", "%", "a0/*", "*z", strings.Repeat("%", 20) + "y", hostile, hostile + "z", stars} {
		mbs := maxedMailboxes(n)
		bytes := 0
		for _, mb := range mbs {
			bytes += len(mb.Name)
		}
		work := 0
		got := listing(mbs, "", []string{pattern}, &imap.ListOptions{}, &work)
		words := compileListPattern("", pattern).words
		if bound := bytes * (int(std.MaxMailboxDepth) + words); work > bound {
			t.Errorf("pattern %q over %d names (%d bytes): %d steps, more than %d", trimName(pattern), n, bytes, work, bound)
		}
		work2 := 0
		listing(maxedMailboxes(2*n), "", []string{pattern}, &imap.ListOptions{}, &work2)
		if work2 > 2*work+2*bytes {
			t.Errorf("pattern %q: %d steps for %d mailboxes, %d for twice as many", trimName(pattern), work, n, work2)
		}
		t.Logf("pattern %q: %d entries, %d steps (%.1f per name byte)", trimName(pattern), len(got), work, float64(work)/float64(bytes))
	}
}

// TestListingEntries: superiors, virtual parents and attributes.
func TestListingEntries(t *testing.T) {
	mbs := []store.Mailbox{
		{ID: 1, Name: "INBOX", Subscribed: true}, {ID: 2, Name: "Sent", SpecialUse: `\Sent`, Subscribed: true},
		{ID: 3, Name: "Work/2026/Q1"}, {ID: 4, Name: "Work/2026"}, {ID: 5, Name: "Work x"},
	}
	var got []string
	for _, e := range listing(mbs, "", []string{"*"}, &imap.ListOptions{}, nil) {
		got = append(got, fmt.Sprintf("%s:%d:%v", e.mb.Name, e.mb.ID, e.hasChildren))
	}
	want := "[INBOX:1:false Sent:2:false Work:0:true Work x:5:false Work/2026:4:true Work/2026/Q1:3:false]"
	if fmt.Sprint(got) != want {
		t.Errorf("LIST * entries:\n got %v\nwant %s", got, want)
	}
	got = got[:0]
	for _, e := range listing(mbs, "", []string{"*"}, &imap.ListOptions{SelectSubscribed: true}, nil) {
		got = append(got, e.mb.Name)
	}
	if fmt.Sprint(got) != "[INBOX Sent]" {
		t.Errorf("LIST (SUBSCRIBED): %v", got)
	}
	got = got[:0]
	for _, e := range listing(mbs, "", []string{"%"}, &imap.ListOptions{SelectSpecialUse: true}, nil) {
		got = append(got, e.mb.Name)
	}
	if fmt.Sprint(got) != "[Sent]" {
		t.Errorf("LIST (SPECIAL-USE): %v", got)
	}
}
