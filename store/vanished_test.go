package store

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestVanishedRecordsExpunges checks, on a real bbolt file reopened in
// between, that every way a message leaves a mailbox (EXPUNGE, MOVE)
// takes a modseq of its own and is found by Vanished, that pruning
// raises the floor, that a deleted mailbox's records go with it, and
// that check stays clean.
func TestVanishedRecordsExpunges(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "alice@example.kz")
	for i := range 6 {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.MailboxByName(a.ID, "INBOX")
	archive, _ := s.MailboxByName(a.ID, "Archive")
	before := inbox.HighestModSeq
	if _, err := s.Expunge(ctx, a.ID, inbox.ID, []uint32{2, 4}); err != nil {
		t.Fatal(err)
	}
	clk.Add(100 * 24 * time.Hour)
	mid, _ := s.MailboxByName(a.ID, "INBOX")
	if mid.HighestModSeq != before+2 {
		t.Fatalf("two expunges took HIGHESTMODSEQ from %d to %d", before, mid.HighestModSeq)
	}
	if _, err := s.Move(ctx, a.ID, inbox.ID, []uint32{5}, archive.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{Clock: clk.Now}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, _ := s.MailboxByName(a.ID, "INBOX")
	if after.HighestModSeq != mid.HighestModSeq+1 {
		t.Fatalf("MOVE out left HIGHESTMODSEQ at %d (was %d)", after.HighestModSeq, mid.HighestModSeq)
	}
	for _, tc := range []struct {
		since uint64
		want  []uint32
	}{
		{before, []uint32{2, 4, 5}},
		{before + 1, []uint32{4, 5}},
		{mid.HighestModSeq, []uint32{5}},
		{after.HighestModSeq, nil},
	} {
		got, complete, err := s.Vanished(a.ID, inbox.ID, tc.since)
		if err != nil || !complete || !slices.Equal(got, tc.want) {
			t.Fatalf("Vanished since %d = %v complete=%v err=%v, want %v", tc.since, got, complete, err, tc.want)
		}
	}
	mustCheck(t, s)

	// The first two are older than the retention window now; the move
	// is not.
	n, err := s.PruneVanished(ctx, clk.Now().Add(-VanishedRetention))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	if _, complete, _ := s.Vanished(a.ID, inbox.ID, before+1); complete {
		t.Fatal("a modseq below the pruned records was answered as complete")
	}
	if got, complete, _ := s.Vanished(a.ID, inbox.ID, mid.HighestModSeq); !complete || !slices.Equal(got, []uint32{5}) {
		t.Fatalf("after pruning: %v complete=%v", got, complete)
	}
	mustCheck(t, s)

	// A deleted mailbox leaves no records behind.
	if _, err := s.CreateMailbox(ctx, a.ID, "Old", "", MailboxLimits{}); err != nil {
		t.Fatal(err)
	}
	old, _ := s.MailboxByName(a.ID, "Old")
	if _, err := s.Move(ctx, a.ID, archive.ID, []uint32{1}, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, a.ID, old.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "Old"); err != nil {
		t.Fatal(err)
	}
	_ = s.viewNow(func(tx *bolt.Tx) error {
		c := tx.Bucket(bVanished).Cursor()
		prefix := vanishedKey(a.ID, old.ID, 0)[:12]
		if k, _ := c.Seek(prefix); k != nil && string(k[:12]) == string(prefix) {
			t.Errorf("records of a deleted mailbox remain: %x", k)
		}
		return nil
	})
	mustCheck(t, s)
}

// TestSchema1Upgrade opens a file as schema 1 left it (no vanished
// bucket): the upgrade sets every mailbox's floor at its HIGHESTMODSEQ,
// so expunges from before it are never claimed known.
func TestSchema1Upgrade(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "alice@example.kz")
	for i := range 3 {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.MailboxByName(a.ID, "INBOX")
	if _, err := s.Expunge(ctx, a.ID, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.update(ctx, func(t *txn) error {
		if err := t.tx.DeleteBucket(bVanished); err != nil {
			return err
		}
		return t.tx.Bucket(bMeta).Put([]byte("schema"), u64(1))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{Clock: clk.Now}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inbox, _ = s.MailboxByName(a.ID, "INBOX")
	if _, complete, _ := s.Vanished(a.ID, inbox.ID, inbox.HighestModSeq-1); complete {
		t.Fatal("an expunge from before the upgrade was claimed known")
	}
	if got, complete, _ := s.Vanished(a.ID, inbox.ID, inbox.HighestModSeq); !complete || len(got) != 0 {
		t.Fatalf("at the floor: %v complete=%v", got, complete)
	}
	_ = s.viewNow(func(tx *bolt.Tx) error {
		if v := decodeU64(tx.Bucket(bMeta).Get([]byte("schema"))); v != SchemaVersion {
			t.Errorf("schema %d after upgrade", v)
		}
		return nil
	})
	mustCheck(t, s)
}

// TestSetFlagsUnchangedSince: messages changed after the given modseq
// are reported and left alone, the others change.
func TestSetFlagsUnchangedSince(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	for i := range 3 {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.MailboxByName(a.ID, "INBOX")
	at := inbox.HighestModSeq
	if _, err := s.SetFlags(ctx, a.ID, inbox.ID, []uint32{2}, FlagsAdd, []string{"$x"}); err != nil {
		t.Fatal(err)
	}
	up, modified, err := s.SetFlagsUnchangedSince(ctx, a.ID, inbox.ID, []uint32{1, 2, 3}, FlagsAdd, []string{FlagSeen}, at)
	if err != nil || !slices.Equal(modified, []uint32{2}) || len(up) != 2 || up[0].UID != 1 || up[1].UID != 3 || !up[0].Changed {
		t.Fatalf("updates %+v modified %v err %v", up, modified, err)
	}
	msgs, _ := s.MessagesByUID(a.ID, inbox.ID, []uint32{2})
	if hasFlag(msgs[0].Flags, FlagSeen) {
		t.Fatal("a message modified since was changed")
	}
	uids, changed, err := s.UIDsChangedSince(a.ID, inbox.ID, up[0].ModSeq)
	if err != nil || !slices.Equal(uids, []uint32{1, 2, 3}) || len(changed) != 1 || changed[0].UID != 3 || changed[0].ModSeq != up[1].ModSeq {
		t.Fatalf("UIDsChangedSince(%d) = %v, %+v, %v; want UIDs 1:3, changed UID 3 only", up[0].ModSeq, uids, changed, err)
	}
	mustCheck(t, s)
}
