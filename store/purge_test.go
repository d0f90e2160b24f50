package store

import (
	"errors"
	"testing"
	"time"

	"abox/accounts"
)

// TestPurgeDestroysNothingItCannotPurge: a purge refused (the grace is
// not over) leaves the content and the account as they were; only a
// purge that happens destroys the content, and it leaves no seal behind.
func TestPurgeDestroysNothingItCannotPurge(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "a@example.kz")
	deliverTo(t, s, a.ID, []byte("Subject: kept\r\n\r\nbody\r\n"))
	inbox, err := s.MailboxByName(a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAccount(ctx, a.Address(), "user.delete", func(x *accounts.Account) error { return x.StartDeletion("test", clk.Now()) }, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeAccount(ctx, a.Address(), clk.Now(), 0, op); !errors.Is(err, accounts.ErrTransition) {
		t.Fatalf("purge before the grace ends: %v, want ErrTransition", err)
	}
	if uids, err := s.UIDs(a.ID, inbox.ID); err != nil || len(uids) != 1 {
		t.Fatalf("after a refused purge the inbox holds %v (%v), want its message", uids, err)
	}
	if got, _ := s.Account(a.Address()); got.State != accounts.PendingDeletion {
		t.Fatalf("after a refused purge the account is %s", got.State)
	}

	got, err := s.PurgeAccount(ctx, a.Address(), clk.Now().Add(40*24*time.Hour), 0, op)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != accounts.Purged || !got.SealedUntil.IsZero() || got.Consent != nil {
		t.Fatalf("purged account: state %s, sealed until %v, consent %v", got.State, got.SealedUntil, got.Consent)
	}
	if mbs, err := s.Mailboxes(a.ID); err != nil || len(mbs) != 0 {
		t.Fatalf("after the purge: mailboxes %v (%v)", mbs, err)
	}
	if rep, _ := s.Check(); len(rep.Problems) > 0 {
		t.Fatal(rep.Problems)
	}
}
