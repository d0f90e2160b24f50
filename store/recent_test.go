package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

func deliverN(t *testing.T, s *Store, acct uint64, n int, flags ...string) {
	t.Helper()
	for i := range n {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: acct, Flags: flags}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClaimRecent checks on a real bbolt file, reopened in between, that
// each message is claimed as \Recent once: by the first claim that
// covers it, never by a second, and that a bounded claim leaves what is
// above its bound to the next.
func TestClaimRecent(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "alice@example.kz")
	inbox, _ := s.MailboxByName(a.ID, "INBOX")
	deliverN(t, s, a.ID, 3)
	if n, err := s.UnclaimedRecent(a.ID, inbox.ID); err != nil || n != 3 {
		t.Fatalf("UnclaimedRecent = %d, %v; want 3", n, err)
	}
	steps := []struct {
		upTo, from, to uint32
	}{
		{0, 0, 3}, // SELECT: all of them
		{0, 3, 3}, // a second SELECT: none
		{2, 3, 3}, // a bound below the claimed: none
	}
	for i, st := range steps {
		from, to, err := s.ClaimRecent(ctx, a.ID, inbox.ID, st.upTo)
		if err != nil || from != st.from || to != st.to {
			t.Fatalf("step %d: ClaimRecent(%d) = (%d, %d], %v; want (%d, %d]", i, st.upTo, from, to, err, st.from, st.to)
		}
	}
	deliverN(t, s, a.ID, 3) // UIDs 4..6
	s.Close()
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.UnclaimedRecent(a.ID, inbox.ID); n != 3 {
		t.Fatalf("after reopening: %d unclaimed, want 3", n)
	}
	if from, to, _ := s.ClaimRecent(ctx, a.ID, inbox.ID, 5); from != 3 || to != 5 {
		t.Fatalf("claim up to 5 = (%d, %d], want (3, 5]", from, to)
	}
	if _, err := s.Expunge(ctx, a.ID, inbox.ID, []uint32{6}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.UnclaimedRecent(a.ID, inbox.ID); n != 0 {
		t.Fatalf("the only unclaimed message was expunged, yet %d unclaimed", n)
	}
	mustCheck(t, s)
}

// TestRecentOldRecord: a mailbox record from before RecentUID existed
// reads as "everything there is old", and the next delivery is recent.
func TestRecentOldRecord(t *testing.T) {
	mb := &Mailbox{ID: 1, Name: "INBOX", UIDValidity: 7, UIDNext: 42, HighestModSeq: 50, RecentUID: 40}
	raw := encodeMailbox(mb)
	got, err := decodeMailbox(1, raw)
	if err != nil || got.RecentUID != 40 {
		t.Fatalf("round trip: RecentUID %d, %v", got.RecentUID, err)
	}
	old, err := decodeMailbox(1, raw[:len(raw)-4])
	if err != nil || old.RecentUID != 41 || old.Name != "INBOX" {
		t.Fatalf("old record: %+v, %v; want RecentUID 41", old, err)
	}
}

// TestMailboxKeywords checks that every way a keyword enters a mailbox
// (delivery, STORE, COPY) records it once, in the order first seen,
// case-insensitively; that the list survives reopening; that past
// MaxMailboxKeywords a new keyword is refused with nothing changed,
// while abox's own delivery keywords still pass; and that the list goes
// with its mailbox.
func TestMailboxKeywords(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "alice@example.kz")
	inbox, _ := s.MailboxByName(a.ID, "INBOX")
	archive, _ := s.MailboxByName(a.ID, "Archive")
	if kws, err := s.Keywords(a.ID, inbox.ID); err != nil || len(kws) != 0 {
		t.Fatalf("a new mailbox has keywords %v, %v", kws, err)
	}
	deliverN(t, s, a.ID, 2, "$Label0", `\Seen`)
	if _, err := s.SetFlags(ctx, a.ID, inbox.ID, []uint32{1}, FlagsAdd, []string{"$Label1", "$label0", `\Flagged`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetFlags(ctx, a.ID, inbox.ID, []uint32{1}, FlagsRemove, []string{"$Label1"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"$Label0", "$Label1"}
	if kws, _ := s.Keywords(a.ID, inbox.ID); !slices.Equal(kws, want) {
		t.Fatalf("INBOX keywords %v, want %v (removing a keyword keeps it known)", kws, want)
	}
	if _, err := s.SetFlags(ctx, a.ID, inbox.ID, []uint32{2}, FlagsAdd, []string{"Work"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, a.ID, inbox.ID, []uint32{1, 2}, archive.ID, 0, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if kws, _ := s.Keywords(a.ID, archive.ID); !slices.Equal(kws, []string{"$Label0", "Work"}) {
		t.Fatalf("Archive keywords after COPY %v, want [$Label0 Work]", kws)
	}

	// Fill INBOX's list ($Label0 $Label1 Work so far) to the limit, one
	// keyword per STORE.
	for i := 4; i <= MaxMailboxKeywords; i++ {
		if _, err := s.SetFlags(ctx, a.ID, inbox.ID, []uint32{2}, FlagsAdd, []string{fmt.Sprintf("k%d", i)}); err != nil {
			t.Fatalf("keyword %d: %v", i, err)
		}
	}
	before, _ := s.MessagesByUID(a.ID, inbox.ID, []uint32{1})
	_, err = s.SetFlags(ctx, a.ID, inbox.ID, []uint32{1}, FlagsAdd, []string{`\Answered`, "one-too-many"})
	if !errors.Is(err, ErrKeywordLimit) {
		t.Fatalf("keyword %d: %v, want ErrKeywordLimit", MaxMailboxKeywords+1, err)
	}
	after, _ := s.MessagesByUID(a.ID, inbox.ID, []uint32{1})
	if !slices.Equal(before[0].Flags, after[0].Flags) || before[0].ModSeq != after[0].ModSeq {
		t.Fatalf("a refused STORE changed the message: %v -> %v", before[0].Flags, after[0].Flags)
	}
	// Keywords already known still go on; delivery's own always do.
	if _, err := s.SetFlags(ctx, a.ID, inbox.ID, []uint32{1}, FlagsAdd, []string{"K5"}); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, a.ID, 1, "$Junk")
	kws, _ := s.Keywords(a.ID, inbox.ID)
	if len(kws) != MaxMailboxKeywords+1 || kws[len(kws)-1] != "$Junk" {
		t.Fatalf("after an official letter at the limit: %d keywords, last %q", len(kws), kws[len(kws)-1])
	}
	if _, err := s.Copy(ctx, a.ID, archive.ID, []uint32{2}, inbox.ID, 0, 0); err != nil {
		t.Fatalf("COPY of known keywords into a full list: %v", err)
	}
	if _, err := s.SetFlags(ctx, a.ID, archive.ID, []uint32{1}, FlagsAdd, []string{"fresh"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, a.ID, archive.ID, []uint32{1}, inbox.ID, 0, 0); !errors.Is(err, ErrKeywordLimit) {
		t.Fatalf("COPY bringing a new keyword into a full list: %v, want ErrKeywordLimit", err)
	}

	if err := s.DeleteMailbox(ctx, a.ID, "Archive"); err != nil {
		t.Fatal(err)
	}
	if kws, _ := s.Keywords(a.ID, archive.ID); len(kws) != 0 {
		t.Fatalf("a deleted mailbox keeps keywords %v", kws)
	}
	mustCheck(t, s)
}
