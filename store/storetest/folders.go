package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

func names(t *testing.T, s Backend, acct uint64) map[string]store.Mailbox {
	t.Helper()
	mbs, err := s.Mailboxes(acct)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Mailbox{}
	for _, mb := range mbs {
		out[mb.Name] = mb
	}
	return out
}

// mailboxFolders: CREATE makes missing parents within the limits and
// does not subscribe; DELETE keeps the subscription as a gone name,
// which a new CREATE of that name takes back; RENAME moves children and
// their subscriptions; RENAME INBOX moves its messages and leaves it.
func mailboxFolders(t *testing.T, s Backend) {
	a := account(t, s, "folders@example.kz")
	lim := store.MailboxLimits{Count: 11, Depth: 3, NameBytes: 20}
	if _, err := s.CreateMailbox(ctx, a.ID, "a/b/c/d", "", lim); !errors.Is(err, store.ErrMailboxLimit) {
		t.Fatalf("too deep: %v, want ErrMailboxLimit", err)
	}
	if _, err := s.CreateMailbox(ctx, a.ID, "a/b/c", "", store.MailboxLimits{Count: 8}); !errors.Is(err, store.ErrMailboxLimit) {
		t.Fatalf("6 + 3 > 8: %v, want ErrMailboxLimit", err)
	}
	if _, err := s.CreateMailbox(ctx, a.ID, "inbox", "", lim); !errors.Is(err, store.ErrMailboxExists) {
		t.Fatalf("INBOX: %v, want ErrMailboxExists", err)
	}
	if _, err := s.CreateMailbox(ctx, a.ID, "x", `\Junk`, lim); !errors.Is(err, store.ErrMailboxExists) {
		t.Fatalf("second \\Junk: %v, want ErrMailboxExists", err)
	}
	mb, err := s.CreateMailbox(ctx, a.ID, "a/b/", "", lim)
	if err != nil || mb.Name != "a/b" || mb.Subscribed {
		t.Fatalf("create a/b: %+v %v (want unsubscribed)", mb, err)
	}
	if _, err := s.CreateMailbox(ctx, a.ID, "a/b", "", lim); !errors.Is(err, store.ErrMailboxExists) {
		t.Fatalf("again: %v, want ErrMailboxExists", err)
	}
	got := names(t, s, a.ID)
	if _, ok := got["a"]; !ok || len(got) != 8 {
		t.Fatalf("mailboxes %v, want the 6 defaults, a and a/b", slices.Sorted(func(yield func(string) bool) {
			for k := range got {
				yield(k)
			}
		}))
	}
	if err := s.SetSubscribed(ctx, a.ID, "a/b", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, a.ID, "nope", true); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("SetSubscribed of no mailbox: %v", err)
	}
	deliver(t, s, msg(1), store.Recipient{Account: a.ID, Mailbox: "a/b"})
	if err := s.DeleteMailbox(ctx, a.ID, "INBOX"); !errors.Is(err, store.ErrInvalidMailbox) {
		t.Fatalf("delete INBOX: %v, want ErrInvalidMailbox", err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "a/b"); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("delete again: %v, want ErrNoMailbox", err)
	}
	if u, err := s.Usage(a.ID); err != nil || u.Messages != 0 || u.Bytes != 0 {
		t.Fatalf("usage after delete %+v %v, want 0", u, err)
	}
	if gone, err := s.GoneSubscriptions(a.ID); err != nil || !slices.Equal(gone, []string{"a/b"}) {
		t.Fatalf("gone subscriptions %v %v, want [a/b]", gone, err)
	}
	if mb, err = s.CreateMailbox(ctx, a.ID, "a/b", "", lim); err != nil || !mb.Subscribed {
		t.Fatalf("create a/b again: %+v %v, want subscribed", mb, err)
	}
	if gone, err := s.GoneSubscriptions(a.ID); err != nil || len(gone) != 0 {
		t.Fatalf("gone subscriptions %v %v, want none", gone, err)
	}
	// Unsubscribe a gone name, a mailbox, and nothing.
	if err := s.DeleteMailbox(ctx, a.ID, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, a.ID, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, a.ID, "a/b"); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("unsubscribe twice: %v, want ErrNoMailbox", err)
	}
	if err := s.Unsubscribe(ctx, a.ID, "Sent"); err != nil {
		t.Fatal(err)
	}
	if names(t, s, a.ID)["Sent"].Subscribed {
		t.Fatal("Sent still subscribed")
	}
	// RENAME takes the children along.
	for _, n := range []string{"p/q", "p/q/r"} {
		if _, err := s.CreateMailbox(ctx, a.ID, n, "", lim); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSubscribed(ctx, a.ID, "p/q", true); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "p", "Archive", lim); !errors.Is(err, store.ErrMailboxExists) {
		t.Fatalf("rename onto Archive: %v, want ErrMailboxExists", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "p", "z/y", lim); !errors.Is(err, store.ErrMailboxLimit) {
		t.Fatalf("rename making p/q/r 4 deep: %v, want ErrMailboxLimit", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "none", "z", lim); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("rename of none: %v, want ErrNoMailbox", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "p", "z", lim); err != nil {
		t.Fatal(err)
	}
	got = names(t, s, a.ID)
	for _, n := range []string{"z", "z/q", "z/q/r"} {
		if _, ok := got[n]; !ok {
			t.Fatalf("%s missing after rename", n)
		}
	}
	if _, ok := got["p/q"]; ok || !got["z/q"].Subscribed {
		t.Fatalf("after rename: p/q present %v, z/q subscribed %v", ok, got["z/q"].Subscribed)
	}
	// RENAME INBOX.
	in := inbox(t, s, a.ID)
	deliver(t, s, msg(2), store.Recipient{Account: a.ID})
	deliver(t, s, msg(3), store.Recipient{Account: a.ID})
	if err := s.RenameMailbox(ctx, a.ID, "INBOX", "old", lim); err != nil {
		t.Fatal(err)
	}
	got = names(t, s, a.ID)
	if got["INBOX"].Messages != 0 || got["INBOX"].UIDValidity != in.UIDValidity || got["old"].Messages != 2 {
		t.Fatalf("after RENAME INBOX: INBOX %+v, old %+v", got["INBOX"], got["old"])
	}
}

// mailboxKeywords: the keyword list of a mailbox grows with delivery,
// STORE and COPY, in the order first seen, and never shrinks.
func mailboxKeywords(t *testing.T, s Backend) {
	a := account(t, s, "keywords@example.kz")
	in := inbox(t, s, a.ID)
	if kws, err := s.Keywords(a.ID, in.ID); err != nil || len(kws) != 0 {
		t.Fatalf("new mailbox keywords %v %v", kws, err)
	}
	d := deliver(t, s, msg(1), store.Recipient{Account: a.ID, Flags: []string{`\Seen`, "$Junk"}})
	if _, err := s.SetFlags(ctx, a.ID, in.ID, []uint32{d[0].UID}, store.FlagsAdd, []string{"work", `\Flagged`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetFlags(ctx, a.ID, in.ID, []uint32{d[0].UID}, store.FlagsRemove, []string{"work"}); err != nil {
		t.Fatal(err)
	}
	kws, err := s.Keywords(a.ID, in.ID)
	if err != nil || !slices.Equal(kws, []string{"$Junk", "work"}) {
		t.Fatalf("INBOX keywords %v %v, want [$Junk work]", kws, err)
	}
	arch := names(t, s, a.ID)["Archive"]
	if _, err := s.Copy(ctx, a.ID, in.ID, []uint32{d[0].UID}, arch.ID, 0, 0); err != nil {
		t.Fatal(err)
	}
	if kws, err := s.Keywords(a.ID, arch.ID); err != nil || !slices.Equal(kws, []string{"$Junk"}) {
		t.Fatalf("Archive keywords after COPY %v %v, want [$Junk]", kws, err)
	}
	// Past the limit a new keyword is refused and nothing changes.
	var many []string
	for i := range store.MaxMailboxKeywords {
		many = append(many, "k"+string(rune('A'+i/26))+string(rune('a'+i%26)))
	}
	if _, err := s.SetFlags(ctx, a.ID, arch.ID, []uint32{1}, store.FlagsAdd, many); !errors.Is(err, store.ErrKeywordLimit) {
		t.Fatalf("%d more keywords: %v, want ErrKeywordLimit", len(many), err)
	}
	if kws, err := s.Keywords(a.ID, arch.ID); err != nil || len(kws) != 1 {
		t.Fatalf("Archive keywords after refusal %v %v", kws, err)
	}
}

// accountUpdatesAndLists: UpdateAccount(ByID) keeps id and address and
// checks the class; ListAccounts pages by id and state; CountState and
// AccountsUnusedSince follow the updates.
func accountUpdatesAndLists(t *testing.T, s Backend) {
	var ids []uint64
	for _, addr := range []string{"u1@example.kz", "u2@example.kz", "u3@example.kz"} {
		ids = append(ids, account(t, s, addr).ID)
	}
	if _, err := s.UpdateAccount(ctx, "nobody@example.kz", "user.block", func(*accounts.Account) error { return nil }, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("update of nobody: %v, want ErrNoAccount", err)
	}
	if _, err := s.UpdateAccountByID(ctx, ids[0], "user.class", func(a *accounts.Account) error { a.Class = "no-such"; return nil }, op); !errors.Is(err, store.ErrNoClass) {
		t.Fatalf("unknown class: %v, want ErrNoClass", err)
	}
	old := time.Unix(1_000_000_000, 0).UTC()
	a, err := s.UpdateAccount(ctx, "U2@example.kz", "user.block", func(a *accounts.Account) error {
		a.State, a.Login, a.ID, a.LastUseAt = accounts.Blocked, "hijack", 99, old
		return nil
	}, op)
	if err != nil || a.ID != ids[1] || a.Login != "u2" || a.State != accounts.Blocked {
		t.Fatalf("update: %+v %v", a, err)
	}
	if b, err := s.AccountByID(ids[1]); err != nil || b.State != accounts.Blocked || !b.LastUseAt.Equal(old) {
		t.Fatalf("stored: %+v %v", b, err)
	}
	if n, err := s.CountState(accounts.Blocked); err != nil || n != 1 {
		t.Fatalf("CountState(blocked) %d %v, want 1", n, err)
	}
	if n, err := s.CountState(accounts.Active); err != nil || n != 2 {
		t.Fatalf("CountState(active) %d %v, want 2", n, err)
	}
	list, err := s.ListAccounts(store.AccountFilter{Limit: 2})
	if err != nil || len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[1] {
		t.Fatalf("first page %+v %v", list, err)
	}
	if list, err = s.ListAccounts(store.AccountFilter{After: list[1].ID}); err != nil || len(list) != 1 || list[0].ID != ids[2] {
		t.Fatalf("second page %+v %v", list, err)
	}
	if list, err = s.ListAccounts(store.AccountFilter{State: accounts.Active, After: ids[0]}); err != nil || len(list) != 1 || list[0].ID != ids[2] {
		t.Fatalf("active after the first %+v %v", list, err)
	}
	// Unused: u2 since 2001; the others were used at registration.
	if list, err = s.AccountsUnusedSince(old.Add(time.Second), time.Time{}, 0, 10); err != nil || len(list) != 1 || list[0].ID != ids[1] {
		t.Fatalf("unused since just after u2's use: %+v %v", list, err)
	}
	if list, err = s.AccountsUnusedSince(old, time.Time{}, 0, 10); err != nil || len(list) != 0 {
		t.Fatalf("unused since u2's own use: %+v %v", list, err)
	}
	far := time.Now().Add(24 * time.Hour)
	if list, err = s.AccountsUnusedSince(far, time.Time{}, 0, 2); err != nil || len(list) != 2 || list[0].ID != ids[1] {
		t.Fatalf("unused, first page: %+v %v", list, err)
	}
	next, err := s.AccountsUnusedSince(far, list[1].LastUseAt, list[1].ID, 2)
	if err != nil || len(next) != 1 || next[0].ID == list[0].ID || next[0].ID == list[1].ID {
		t.Fatalf("unused, second page: %+v %v", next, err)
	}
}
