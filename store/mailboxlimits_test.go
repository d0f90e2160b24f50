package store

import (
	"errors"
	"strings"
	"testing"
)

// TestMailboxLimits: CREATE and RENAME keep within the class's mailbox
// limits, counting the superiors a CREATE makes, all or nothing.
func TestMailboxLimits(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	lim := MailboxLimits{Count: 10, Depth: 4, NameBytes: 20}
	count := func() int {
		mbs, err := s.Mailboxes(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(mbs)
	}
	base := count() // INBOX, Sent, Drafts, Trash, Junk, Archive
	for _, tc := range []struct {
		name string
		want error
	}{
		{"a/b/c/d", nil},               // 4 levels, 4 new mailboxes: 10 in all
		{"x", ErrMailboxLimit},         // an 11th
		{"a/b/c/d/e", ErrMailboxLimit}, // 5 levels (and an 11th)
		{strings.Repeat("n", 21), ErrMailboxLimit},
		{"a//b", ErrInvalidMailbox},
	} {
		_, err := s.CreateMailbox(ctx, a.ID, tc.name, "", lim)
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("CREATE %q: %v, want %v", tc.name, err, tc.want)
		}
	}
	if n := count(); n != base+4 {
		t.Errorf("%d mailboxes after the CREATEs, want %d", n, base+4)
	}
	// A CREATE whose superiors would pass the count makes nothing.
	if err := s.DeleteMailbox(ctx, a.ID, "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, a.ID, "p/q", "", lim); !errors.Is(err, ErrMailboxLimit) {
		t.Errorf("CREATE p/q with room for one mailbox: %v, want ErrMailboxLimit", err)
	}
	if _, err := s.MailboxByName(a.ID, "p"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("the refused CREATE p/q left p behind: %v", err)
	}
	// RENAME checks every new name, children included.
	if err := s.RenameMailbox(ctx, a.ID, "a/b", "a/b/c/d/e", lim); !errors.Is(err, ErrMailboxLimit) {
		t.Errorf("RENAME a/b a/b/c/d/e: %v, want ErrMailboxLimit", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "a", strings.Repeat("r", 18), lim); !errors.Is(err, ErrMailboxLimit) {
		t.Errorf("RENAME a to 18 bytes (a child would be 22): %v, want ErrMailboxLimit", err)
	}
	// RENAME obeys CREATE's name rules (it used to take "/" and "//",
	// which an export then wrote outside its directory).
	for _, bad := range []string{"/", "//", "x//y", "/x", "a\r\nb", "n\x00"} {
		if err := s.RenameMailbox(ctx, a.ID, "a", bad, MailboxLimits{}); !errors.Is(err, ErrInvalidMailbox) {
			t.Errorf("RENAME a %q: %v, want ErrInvalidMailbox", bad, err)
		}
	}
	if err := s.RenameMailbox(ctx, a.ID, "a", "z", lim); err != nil {
		t.Errorf("RENAME a z: %v", err)
	}
	// Renaming INBOX makes a mailbox, which counts.
	if _, err := s.CreateMailbox(ctx, a.ID, "last", "", lim); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "INBOX", "old-inbox", lim); !errors.Is(err, ErrMailboxLimit) {
		t.Errorf("RENAME INBOX with no room: %v, want ErrMailboxLimit", err)
	}
	// Zero limits are none.
	if _, err := s.CreateMailbox(ctx, a.ID, "m/"+strings.Repeat("n/", 30)+"o", "", MailboxLimits{}); err != nil {
		t.Errorf("CREATE without limits: %v", err)
	}
	mustCheck(t, s)
}
