package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
	"abox/store/pgstore/pgtest"
)

// Mail tests beyond the conformance suite (store/storetest): quotas on
// COPY, RENAME INBOX, deleting a mailbox larger than a batch, expunge
// records and their pruning, \Recent claims across nodes, bodies from
// the object store in order, delivery across nodes.

var mailOp = store.Audit{Actor: store.ActorOperator}

func mailAccount(t testing.TB, s *Store, addr string) accounts.Account {
	t.Helper()
	login, domain, _ := accounts.SplitAddress(addr)
	if err := s.AddDomain(bg, domain, mailOp); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(bg, accounts.Account{Login: login, Domain: domain, Phone: "+77010000000", PasswordHash: "x"}, mailOp)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// letter is a message of about size bytes (over 64: in the object
// store when the test has one).
func letter(i, size int) []byte {
	head := fmt.Sprintf("From: a@example.org\r\nSubject: %d\r\nMessage-ID: <%d@example.org>\r\n\r\n", i, i)
	return []byte(head + strings.Repeat("x", max(0, size-len(head))))
}

func mailbox(t testing.TB, s *Store, acct uint64, name string) store.Mailbox {
	t.Helper()
	mb, err := s.MailboxByName(acct, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func deliverTo(t testing.TB, s *Store, body []byte, r store.Recipient) store.Delivered {
	t.Helper()
	res, err := s.Deliver(bg, &store.Delivery{Body: body, Structure: []byte("S"), AllOrNothing: true, Recipients: []store.Recipient{r}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func mailBlobRefs(t testing.TB, s *Store, id uint64) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(bg, `SELECT coalesce((SELECT refs FROM blobs WHERE id = $1), 0)`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeliverPartial: without AllOrNothing a recipient that fails
// (over quota, no such mailbox, an invalid name) writes nothing and
// reports its error; the others are stored and the body holds one
// reference per stored copy. With AllOrNothing the same delivery
// stores nothing.
func TestDeliverPartial(t *testing.T) {
	s := openTest(t, true)
	a := mailAccount(t, s, "alice@example.kz")
	b := mailAccount(t, s, "bob@example.kz")
	rcpts := []store.Recipient{
		{Account: a.ID},
		{Account: b.ID, MaxBytes: 10},
		{Account: b.ID, Mailbox: "nope"},
		{Account: b.ID, Mailbox: "a//b"},
		{Account: b.ID, SpecialUse: `\Junk`, Flags: []string{"$Junk", `\seen`}},
	}
	res, err := s.Deliver(bg, &store.Delivery{Body: letter(1, 200), Recipients: rcpts})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, store.ErrOverQuota, store.ErrNoMailbox, store.ErrInvalidMailbox, nil} {
		if want == nil && res[i].Err != nil || want != nil && !errors.Is(res[i].Err, want) {
			t.Fatalf("recipient %d: %v, want %v", i, res[i].Err, want)
		}
	}
	junk := mailbox(t, s, b.ID, "Junk")
	if res[4].Mailbox != junk.ID || res[4].UID != 1 || junk.Unseen != 0 || junk.Messages != 1 {
		t.Fatalf("junk copy %+v, Junk %+v", res[4], junk)
	}
	msgs, err := s.MessagesByUID(b.ID, junk.ID, []uint32{1})
	if err != nil || len(msgs) != 1 || !slices.Equal(msgs[0].Flags, []string{`\Seen`, "$Junk"}) {
		t.Fatalf("junk message %+v %v", msgs, err)
	}
	if n := mailBlobRefs(t, s, msgs[0].Blob); n != 2 {
		t.Fatalf("body refs %d, want 2", n)
	}
	if u, _ := s.Usage(b.ID); u.Messages != 1 || u.Received != 1 {
		t.Fatalf("bob's usage %+v", u)
	}
	// All failing: nothing written, the first error returned.
	if _, err := s.Deliver(bg, &store.Delivery{Body: letter(2, 200), Recipients: rcpts[1:4]}); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("every recipient failing: %v", err)
	}
	_, err = s.Deliver(bg, &store.Delivery{Body: letter(3, 200), Recipients: rcpts, AllOrNothing: true})
	if !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("all or nothing: %v", err)
	}
	if mb := mailbox(t, s, a.ID, "INBOX"); mb.Messages != 1 {
		t.Fatalf("alice has %d messages after a failed all-or-nothing delivery", mb.Messages)
	}
	var blobs int
	s.pool.QueryRow(bg, `SELECT count(*) FROM blobs`).Scan(&blobs)
	if blobs != 1 {
		t.Fatalf("%d bodies stored, want 1", blobs)
	}
	// The daily receive limit and an account not active.
	deliverTo(t, s, letter(4, 10), store.Recipient{Account: a.ID, MaxReceivedPerDay: 2})
	if _, err := s.Deliver(bg, &store.Delivery{Body: letter(5, 10), Recipients: []store.Recipient{{Account: a.ID, MaxReceivedPerDay: 2}}}); !errors.Is(err, store.ErrDailyLimit) {
		t.Fatalf("third of 2 a day: %v", err)
	}
	s.pool.Exec(bg, `UPDATE accounts SET state = 'blocked' WHERE id = $1`, b.ID)
	if _, err := s.Deliver(bg, &store.Delivery{Body: letter(6, 10), Recipients: []store.Recipient{{Account: b.ID}}}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("blocked account: %v", err)
	}
}

// TestAppendMessages: consecutive UIDs, one body for identical ones,
// all or nothing past the quota.
func TestAppendMessages(t *testing.T) {
	s := openTest(t, true)
	a := mailAccount(t, s, "alice@example.kz")
	if _, err := s.AppendMessages(bg, a.ID, "Sent", nil, 0, 0); !errors.Is(err, store.ErrNothingToAppend) {
		t.Fatalf("nothing: %v", err)
	}
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.FixedZone("", 5*3600))
	msgs := []store.AppendMessage{{Body: letter(1, 300), Flags: []string{`\Seen`, "work"}, InternalDate: date}, {Body: letter(1, 300)}, {Body: letter(2, 30)}}
	res, err := s.AppendMessages(bg, a.ID, "Sent", msgs, 0, 0)
	if err != nil || len(res) != 3 || res[0].UID != 1 || res[2].UID != 3 {
		t.Fatalf("append: %+v %v", res, err)
	}
	sent := mailbox(t, s, a.ID, "Sent")
	got, err := s.Messages(a.ID, sent.ID, 0, 0)
	if err != nil || len(got) != 3 || got[0].Blob != got[1].Blob || mailBlobRefs(t, s, got[0].Blob) != 2 {
		t.Fatalf("messages %+v %v", got, err)
	}
	if !got[0].InternalDate.Equal(date) || got[0].InternalDate.Format("-0700") != "+0500" {
		t.Fatalf("INTERNALDATE %v, want %v", got[0].InternalDate, date)
	}
	if kws, _ := s.Keywords(a.ID, sent.ID); !slices.Equal(kws, []string{"work"}) {
		t.Fatalf("keywords %v", kws)
	}
	if _, err := s.AppendMessages(bg, a.ID, "Sent", msgs, 0, 5); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("past 5 messages: %v", err)
	}
	if mb := mailbox(t, s, a.ID, "Sent"); mb.Messages != 3 || mb.UIDNext != 4 {
		t.Fatalf("after a refused append: %+v", mb)
	}
	if _, err := s.AppendMessages(bg, a.ID, "none", msgs, 0, 0); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("no mailbox: %v", err)
	}
}

// TestCopyQuotaAndRefs: COPY past the quota is refused and changes
// nothing; a copy shares the body, whose last reference's expunge
// deletes it (and its object).
func TestCopyQuotaAndRefs(t *testing.T) {
	s := openTest(t, true)
	a := mailAccount(t, s, "alice@example.kz")
	in := mailbox(t, s, a.ID, "INBOX")
	arch := mailbox(t, s, a.ID, "Archive")
	for i := range 3 {
		deliverTo(t, s, letter(i, 500), store.Recipient{Account: a.ID, Flags: []string{"k" + fmt.Sprint(i)}})
	}
	if _, err := s.Copy(bg, a.ID, in.ID, []uint32{1, 2, 3}, arch.ID, 0, 5); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("6 messages with a quota of 5: %v", err)
	}
	if mb := mailbox(t, s, a.ID, "Archive"); mb.Messages != 0 || mb.UIDNext != 1 {
		t.Fatalf("Archive after a refused copy: %+v", mb)
	}
	res, err := s.Copy(bg, a.ID, in.ID, []uint32{3, 1, 1, 99}, arch.ID, 0, 6)
	if err != nil || !slices.Equal(res.Source, []uint32{1, 3}) || !slices.Equal(res.Dest, []uint32{1, 2}) || res.UIDValidity != arch.UIDValidity {
		t.Fatalf("copy: %+v %v", res, err)
	}
	if kws, _ := s.Keywords(a.ID, arch.ID); !slices.Equal(kws, []string{"k0", "k2"}) {
		t.Fatalf("Archive keywords %v", kws)
	}
	if u, _ := s.Usage(a.ID); u.Messages != 5 {
		t.Fatalf("usage %+v", u)
	}
	m, _ := s.MessagesByUID(a.ID, in.ID, []uint32{1})
	blob := m[0].Blob
	var object string
	s.pool.QueryRow(bg, `SELECT object FROM blobs WHERE id = $1`, blob).Scan(&object)
	if mailBlobRefs(t, s, blob) != 2 || object == "" {
		t.Fatalf("refs %d, object %q", mailBlobRefs(t, s, blob), object)
	}
	if gone, err := s.Expunge(bg, a.ID, in.ID, []uint32{1}); err != nil || !slices.Equal(gone, []uint32{1}) {
		t.Fatalf("expunge: %v %v", gone, err)
	}
	if mailBlobRefs(t, s, blob) != 1 {
		t.Fatal("expunging one of two copies did not drop a reference")
	}
	if _, err := s.Expunge(bg, a.ID, arch.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Body(blob); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("body after its last copy went: %v", err)
	}
	waitFor(t, "the body's object to leave the bucket", func() bool {
		_, err := s.objects.get(bg, object)
		return errors.Is(err, errGoneObject)
	})
	// A move keeps the references and records the source's expunge.
	before := mailbox(t, s, a.ID, "INBOX")
	mv, err := s.Move(bg, a.ID, in.ID, []uint32{2, 3}, in.ID)
	if err != nil || !slices.Equal(mv.Dest, []uint32{4, 5}) {
		t.Fatalf("move into itself: %+v %v", mv, err)
	}
	if v, ok, _ := s.Vanished(a.ID, in.ID, before.HighestModSeq); !ok || !slices.Equal(v, []uint32{2, 3}) {
		t.Fatalf("vanished after the move: %v", v)
	}
	after := mailbox(t, s, a.ID, "INBOX")
	if after.Messages != 2 || after.HighestModSeq != before.HighestModSeq+4 || after.Unseen != 2 {
		t.Fatalf("INBOX after moving 2 into itself: %+v (before %+v)", after, before)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited 10s for %s", what)
}

// TestFlags: STORE changes flags, unseen and MODSEQ; UNCHANGEDSINCE
// leaves newer messages alone; $Official cannot be set; the keyword
// limit refuses and writes nothing; EXPUNGE of \Deleted honours only.
func TestFlags(t *testing.T) {
	s := openTest(t, false)
	a := mailAccount(t, s, "alice@example.kz")
	for i := range 4 {
		deliverTo(t, s, letter(i, 10), store.Recipient{Account: a.ID})
	}
	in := mailbox(t, s, a.ID, "INBOX")
	up, err := s.SetFlags(bg, a.ID, in.ID, []uint32{1, 2, 9}, store.FlagsAdd, []string{`\seen`, `\Deleted`, "$Official", "x"})
	if err != nil || len(up) != 2 || !slices.Equal(up[0].Flags, []string{`\Seen`, `\Deleted`, "x"}) || !up[0].Changed {
		t.Fatalf("STORE: %+v %v", up, err)
	}
	if mb := mailbox(t, s, a.ID, "INBOX"); mb.Unseen != 2 || mb.HighestModSeq != in.HighestModSeq+2 {
		t.Fatalf("INBOX after STORE %+v", mb)
	}
	if fu, _ := s.FirstUnseen(a.ID, in.ID); fu != 3 {
		t.Fatalf("first unseen %d", fu)
	}
	up, mod, err := s.SetFlagsUnchangedSince(bg, a.ID, in.ID, []uint32{1, 3}, store.FlagsAdd, []string{`\Deleted`}, in.HighestModSeq)
	if err != nil || !slices.Equal(mod, []uint32{1}) || len(up) != 1 || up[0].UID != 3 {
		t.Fatalf("UNCHANGEDSINCE: %+v %v %v", up, mod, err)
	}
	var many []string
	for i := range store.MaxMailboxKeywords {
		many = append(many, fmt.Sprintf("kw%d", i))
	}
	if _, err := s.SetFlags(bg, a.ID, in.ID, []uint32{4}, store.FlagsReplace, many); !errors.Is(err, store.ErrKeywordLimit) {
		t.Fatalf("too many keywords: %v", err)
	}
	if m, _ := s.MessagesByUID(a.ID, in.ID, []uint32{4}); len(m[0].Flags) != 0 {
		t.Fatalf("a refused STORE changed flags: %v", m[0].Flags)
	}
	if _, err := s.Deliver(bg, &store.Delivery{Body: letter(9, 10), Recipients: []store.Recipient{{Account: a.ID, Flags: many}}}); !errors.Is(err, store.ErrKeywordLimit) {
		t.Fatalf("delivery with too many keywords: %v", err)
	}
	gone, err := s.ExpungeDeleted(bg, a.ID, in.ID, func(uid uint32) bool { return uid != 2 })
	if err != nil || !slices.Equal(gone, []uint32{1, 3}) {
		t.Fatalf("EXPUNGE of \\Deleted but 2: %v %v", gone, err)
	}
	if u, _ := s.Usage(a.ID); u.Messages != 2 {
		t.Fatalf("usage %+v", u)
	}
}

// TestRenameInbox: RENAME INBOX moves its messages (more than a batch
// would be slow here; a few) into a new mailbox, keeps INBOX with its
// UIDVALIDITY and records the expunges; the new mailbox counts against
// the limit.
func TestRenameInbox(t *testing.T) {
	s := openTest(t, false)
	a := mailAccount(t, s, "alice@example.kz")
	for i := range 3 {
		deliverTo(t, s, letter(i, 10), store.Recipient{Account: a.ID, Flags: []string{"tag"}})
	}
	in := mailbox(t, s, a.ID, "INBOX")
	if err := s.RenameMailbox(bg, a.ID, "inbox", "Old", store.MailboxLimits{Count: 6}); !errors.Is(err, store.ErrMailboxLimit) {
		t.Fatalf("rename INBOX past the limit: %v", err)
	}
	if err := s.RenameMailbox(bg, a.ID, "Inbox", "Old/2020", store.MailboxLimits{}); err != nil {
		t.Fatal(err)
	}
	old := mailbox(t, s, a.ID, "Old/2020")
	after := mailbox(t, s, a.ID, "INBOX")
	if old.Messages != 3 || old.UIDNext != 4 || after.Messages != 0 || after.UIDValidity != in.UIDValidity || after.UIDNext != 4 {
		t.Fatalf("after RENAME INBOX: INBOX %+v, Old/2020 %+v", after, old)
	}
	if _, err := s.MailboxByName(a.ID, "Old"); err != nil {
		t.Fatalf("parent Old: %v", err)
	}
	if v, ok, _ := s.Vanished(a.ID, in.ID, in.HighestModSeq); !ok || !slices.Equal(v, []uint32{1, 2, 3}) {
		t.Fatalf("INBOX vanished %v", v)
	}
	if kws, _ := s.Keywords(a.ID, old.ID); !slices.Equal(kws, []string{"tag"}) {
		t.Fatalf("keywords %v", kws)
	}
	if err := s.RenameMailbox(bg, a.ID, "Old", "Older", store.MailboxLimits{}); err != nil {
		t.Fatal(err)
	}
	if mb := mailbox(t, s, a.ID, "Older/2020"); mb.ID != old.ID || mb.Messages != 3 {
		t.Fatalf("child after renaming its parent: %+v", mb)
	}
	if err := s.RenameMailbox(bg, a.ID, "Older", "inbox", store.MailboxLimits{}); !errors.Is(err, store.ErrMailboxExists) {
		t.Fatalf("rename to INBOX: %v", err)
	}
}

// TestDeleteBigMailbox: a mailbox of more messages and expunge records
// than one batch goes in several transactions; its counters, bodies
// and records all go, and an interrupted deletion is finished by
// ResumeDeletes.
func TestDeleteBigMailbox(t *testing.T) {
	s := openTest(t, false)
	a := mailAccount(t, s, "alice@example.kz")
	n := store.DeleteBatch + 300
	for base := 0; base < n; base += 500 {
		var msgs []store.AppendMessage
		for i := base; i < min(base+500, n); i++ {
			msgs = append(msgs, store.AppendMessage{Body: letter(i, 40)})
		}
		if _, err := s.AppendMessages(bg, a.ID, "Archive", msgs, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	arch := mailbox(t, s, a.ID, "Archive")
	var uids []uint32
	for i := range store.DeleteBatch + 10 {
		uids = append(uids, uint32(i+1))
	}
	if _, err := s.Expunge(bg, a.ID, arch.ID, uids[:store.DeleteBatch+10]); err != nil {
		t.Fatal(err)
	}
	var vanished int
	s.pool.QueryRow(bg, `SELECT count(*) FROM vanished WHERE account = $1`, a.ID).Scan(&vanished)
	if vanished != store.DeleteBatch+10 {
		t.Fatalf("%d expunges recorded", vanished)
	}
	// Messages back up past a batch.
	for base := 0; base < store.DeleteBatch+10; base += 500 {
		var msgs []store.AppendMessage
		for i := base; i < min(base+500, store.DeleteBatch+10); i++ {
			msgs = append(msgs, store.AppendMessage{Body: letter(i, 40)})
		}
		if _, err := s.AppendMessages(bg, a.ID, "Archive", msgs, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMailbox(bg, a.ID, "Archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MailboxByName(a.ID, "Archive"); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("deleted Archive: %v", err)
	}
	var rows, blobs int
	s.pool.QueryRow(bg, `SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM vanished) + (SELECT count(*) FROM mailboxes WHERE id = $1)`, arch.ID).Scan(&rows)
	s.pool.QueryRow(bg, `SELECT count(*) FROM blobs`).Scan(&blobs)
	if u, _ := s.Usage(a.ID); rows != 0 || blobs != 0 || u.Messages != 0 || u.Bytes != 0 {
		t.Fatalf("after delete: %d rows, %d bodies, usage %+v", rows, blobs, u)
	}
	if gone, _ := s.GoneSubscriptions(a.ID); !slices.Equal(gone, []string{"Archive"}) {
		t.Fatalf("gone subscriptions %v", gone)
	}
	// An interrupted deletion: hidden, messages still there.
	deliverTo(t, s, letter(1, 10), store.Recipient{Account: a.ID, Mailbox: "Sent"})
	sent := mailbox(t, s, a.ID, "Sent")
	s.pool.Exec(bg, `UPDATE mailboxes SET deleting = true WHERE account = $1 AND id = $2`, a.ID, sent.ID)
	if n, err := s.ResumeDeletes(bg); err != nil || n != 1 {
		t.Fatalf("resume: %d %v", n, err)
	}
	if u, _ := s.Usage(a.ID); u.Messages != 0 {
		t.Fatalf("usage after resumed deletion %+v", u)
	}
}

// TestVanishedAndChangedSince: expunges are remembered each at a MODSEQ
// of its own; pruning raises the floor, below which the answer is
// incomplete; UIDsChangedSince returns what changed after a MODSEQ.
func TestVanishedAndChangedSince(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	s := openTest(t, false)
	s.clock = func() time.Time { return *clock.Load() }
	a := mailAccount(t, s, "alice@example.kz")
	for i := range 6 {
		deliverTo(t, s, letter(i, 10), store.Recipient{Account: a.ID})
	}
	in := mailbox(t, s, a.ID, "INBOX")
	m0 := in.HighestModSeq
	if _, err := s.Expunge(bg, a.ID, in.ID, []uint32{5, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetFlags(bg, a.ID, in.ID, []uint32{4}, store.FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatal(err)
	}
	later := now.Add(100 * 24 * time.Hour)
	clock.Store(&later)
	if _, err := s.Expunge(bg, a.ID, in.ID, []uint32{6}); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := s.Vanished(a.ID, in.ID, m0); !ok || !slices.Equal(v, []uint32{2, 5, 6}) {
		t.Fatalf("vanished since %d: %v %v", m0, v, ok)
	}
	if v, ok, _ := s.Vanished(a.ID, in.ID, m0+1); !ok || !slices.Equal(v, []uint32{5, 6}) {
		t.Fatalf("vanished since %d: %v (2 went first, at %d)", m0+1, v, m0+1)
	}
	uids, changed, err := s.UIDsChangedSince(a.ID, in.ID, m0+2)
	if err != nil || !slices.Equal(uids, []uint32{1, 3, 4}) || len(changed) != 1 || changed[0].UID != 4 || changed[0].ModSeq != m0+3 {
		t.Fatalf("changed since %d: %v %+v %v", m0+2, uids, changed, err)
	}
	n, err := s.PruneVanished(bg, later.Add(-90*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d %v, want 2", n, err)
	}
	if v, ok, _ := s.Vanished(a.ID, in.ID, m0); ok || v != nil {
		t.Fatalf("below the floor: %v %v, want incomplete", v, ok)
	}
	if v, ok, _ := s.Vanished(a.ID, in.ID, m0+2); !ok || !slices.Equal(v, []uint32{6}) {
		t.Fatalf("above the floor: %v %v", v, ok)
	}
	if old, _ := s.OlderThan(a.ID, in.ID, later, 10); !slices.Equal(old, []uint32{1, 3, 4}) {
		t.Fatalf("older than now: %v", old)
	}
	if old, _ := s.OlderThan(a.ID, in.ID, now, 10); len(old) != 0 {
		t.Fatalf("older than their delivery: %v", old)
	}
}

// TestRecentAcrossNodes: sessions on two nodes claiming \Recent at once
// never both get a message; STATUS (RECENT) counts what is unclaimed.
func TestRecentAcrossNodes(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	a := mailAccount(t, s, "alice@example.kz")
	in := mailbox(t, s, a.ID, "INBOX")
	for round := range 5 {
		for i := range 3 {
			deliverTo(t, s2, letter(round*3+i, 10), store.Recipient{Account: a.ID})
		}
		if n, _ := s2.UnclaimedRecent(a.ID, in.ID); n != 3 {
			t.Fatalf("round %d: %d unclaimed, want 3", round, n)
		}
		var wg sync.WaitGroup
		var claimed atomic.Int64
		for _, node := range []*Store{s, s2, s, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				from, to, err := node.ClaimRecent(bg, a.ID, in.ID, 0)
				if err != nil {
					t.Error(err)
				}
				claimed.Add(int64(to - from))
			}()
		}
		wg.Wait()
		if claimed.Load() != 3 {
			t.Fatalf("round %d: %d claimed in all, want 3", round, claimed.Load())
		}
		if b, _ := s.RecentBoundary(a.ID, in.ID); b != uint32(round*3+3) {
			t.Fatalf("boundary %d", b)
		}
	}
	if _, err := s.UnclaimedRecent(a.ID, 999); !errors.Is(err, store.ErrNoMailbox) {
		t.Fatalf("no mailbox: %v", err)
	}
}

// TestDeliverAcrossNodes: deliveries through two nodes at once get UIDs
// without gaps, and a subscriber on either node sees every one after
// SyncFeed.
func TestDeliverAcrossNodes(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	a := mailAccount(t, s, "alice@example.kz")
	sub := s2.Subscribe(a.ID, nil)
	defer sub.Close()
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := []*Store{s, s2}[i%2]
			if _, err := node.Deliver(bg, &store.Delivery{Body: letter(i, 100), AllOrNothing: true, Recipients: []store.Recipient{{Account: a.ID}}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s2.SyncFeed(bg); err != nil {
		t.Fatal(err)
	}
	got, lost := sub.Take()
	var uids []uint32
	for _, c := range got {
		if c.Kind == store.MessageAdded {
			uids = append(uids, c.UID)
		}
	}
	slices.Sort(uids)
	if lost || len(uids) != n || uids[0] != 1 || uids[n-1] != n {
		t.Fatalf("node 2 saw %v (lost %v)", uids, lost)
	}
	if all, _ := s.UIDs(a.ID, mailbox(t, s, a.ID, "INBOX").ID); len(all) != n || all[n-1] != n {
		t.Fatalf("UIDs %v", all)
	}
}

// TestReadBodiesOrder: bodies inline and in the object store come in
// the caller's order across query batches, a missing id and a body
// whose object is gone are skipped.
func TestReadBodiesOrder(t *testing.T) {
	s := openTest(t, true)
	a := mailAccount(t, s, "alice@example.kz")
	var ids []uint64
	bodies := map[uint64][]byte{}
	for i := range 12 {
		size := 30
		if i%3 != 0 {
			size = 200 + i // over 64 bytes: the object store
		}
		d := deliverTo(t, s, letter(i, size), store.Recipient{Account: a.ID})
		m, _ := s.MessagesByUID(a.ID, d.Mailbox, []uint32{d.UID})
		ids = append(ids, m[0].Blob)
		bodies[m[0].Blob] = letter(i, size)
	}
	var object string
	s.pool.QueryRow(bg, `SELECT object FROM blobs WHERE id = $1`, ids[4]).Scan(&object)
	if err := s.objects.remove(bg, object); err != nil {
		t.Fatal(err)
	}
	// Longer than a query's batch: the ids again and again, one missing.
	var ask []uint64
	for len(ask) < readBatch+50 {
		ask = append(ask, ids...)
		ask = append(ask, 1<<40)
	}
	var seen []int
	err := s.ReadBodies(ask, func(i int, body, structure []byte) error {
		seen = append(seen, i)
		if string(body) != string(bodies[ask[i]]) || string(structure) != "S" {
			return fmt.Errorf("index %d: body %q, structure %q", i, body, structure)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i, id := range ask {
		if id != 1<<40 && id != ids[4] {
			want = append(want, i)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("ReadBodies called fn for %d indexes, want %d in order", len(seen), len(want))
	}
	n := 0
	if err := s.ReadStructures(ask, func(i int, body, structure []byte) error {
		if body != nil || string(structure) != "S" {
			return fmt.Errorf("structure %d: %q %q", i, body, structure)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sts, err := s.Structures(ask[:13])
	if err != nil || len(sts) != 13 || sts[12] != nil || string(sts[4]) != "S" {
		t.Fatalf("Structures %q %v", sts, err)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.ReadBodies(ids, func(int, []byte, []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls", err, calls)
	}
}

// TestMailboxesAcrossNodes: CREATE on two nodes at once within a count
// limit creates no more than the limit allows; SUBSCRIBE and
// UNSUBSCRIBE reach the other node's feed.
func TestMailboxesAcrossNodes(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	a := mailAccount(t, s, "alice@example.kz")
	lim := store.MailboxLimits{Count: 10}
	var wg sync.WaitGroup
	var made atomic.Int64
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := []*Store{s, s2}[i%2].CreateMailbox(bg, a.ID, fmt.Sprintf("f%d", i), "", lim)
			switch {
			case err == nil:
				made.Add(1)
			case !errors.Is(err, store.ErrMailboxLimit):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if mbs, _ := s.Mailboxes(a.ID); made.Load() != 4 || len(mbs) != 10 {
		t.Fatalf("made %d, %d mailboxes; want 4 and 10", made.Load(), len(mbs))
	}
	sub := s2.Subscribe(a.ID, nil)
	defer sub.Close()
	if err := s.SetSubscribed(bg, a.ID, "Sent", false); err != nil {
		t.Fatal(err)
	}
	s2.SyncFeed(context.Background())
	if got, _ := sub.Take(); len(got) != 1 || got[0].Kind != store.SubscriptionChanged {
		t.Fatalf("node 2 saw %+v", got)
	}
}

// BenchmarkDeliver: 1 KiB deliveries from 16 goroutines per node,
// bodies inline (issue 18's SMTP figure is 2,000 msgs/s through two
// nodes), one transaction per delivery ("single") and in group commits
// with one or two flushers per node (deliver_batch.go). Besides msgs/s
// (and deliveries per batch) it reports the CPU spent per delivery by PostgreSQL (every process
// of the test's server) and by this process (both nodes and the
// goroutines). ABOX_BENCH_PG adds PostgreSQL settings to the nodes'
// sessions (as DSN parameters: "commit_delay=100&commit_siblings=2").
// Run:
// ABOX_REQUIRE_POSTGRES=1 go test -run '^$' -bench Deliver -benchtime 4000x ./store/pgstore
func BenchmarkDeliver(b *testing.B) {
	dsn := pgtest.Database(b)
	if extra := os.Getenv("ABOX_BENCH_PG"); extra != "" {
		dsn += "&" + extra
	}
	o := Options{DSN: dsn, MaxConns: 16}
	s := openAgain(b, nil, o)
	s2 := openAgain(b, s, o)
	var accts []uint64
	for i := range 64 {
		accts = append(accts, mailAccount(b, s, fmt.Sprintf("u%d@example.kz", i)).ID)
	}
	body := letter(0, 1024)
	pgDir := pgtest.Server(b).Dir
	for _, nodes := range []int{1, 2} {
		for _, mode := range []struct {
			name     string
			flushers int
		}{{"single", -1}, {"batch1", 1}, {"batch2", 2}} {
			b.Run(fmt.Sprintf("nodes=%d/%s", nodes, mode.name), func(b *testing.B) {
				s.deliveries.flushers, s2.deliveries.flushers = mode.flushers, mode.flushers
				var next atomic.Int64
				b.SetParallelism(8 * nodes) // 16 goroutines per node on 2 cores
				_, b0 := s.deliveries.state()
				_, b20 := s2.deliveries.state()
				pg0, self0 := postgresCPU(b, pgDir), selfCPU()
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						node := []*Store{s, s2}[i%int64(nodes)]
						if _, err := node.Deliver(bg, &store.Delivery{Body: body, AllOrNothing: true,
							Recipients: []store.Recipient{{Account: accts[i%int64(len(accts))]}}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				n := float64(b.N)
				b.ReportMetric(n/elapsed.Seconds(), "msgs/s")
				b.ReportMetric(float64((postgresCPU(b, pgDir)-pg0).Microseconds())/n, "pg-cpu-µs/msg")
				b.ReportMetric(float64((selfCPU()-self0).Microseconds())/n, "go-cpu-µs/msg")
				if _, b1 := s.deliveries.state(); mode.flushers > 0 {
					_, b21 := s2.deliveries.state()
					b.ReportMetric(n/float64(b1-b0+b21-b20), "msgs/batch")
				}
			})
		}
	}
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the CPU time of the PostgreSQL server in dir so far:
// its postmaster's (with its exited children's) and its live
// children's, from /proc.
func postgresCPU(tb testing.TB, dir string) time.Duration {
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		tb.Fatal(err)
	}
	master, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	const hz = 100 // USER_HZ on Linux
	var ticks int64
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state, ppid, ...;
		// utime, stime, cutime, cstime are fields 14 to 17.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
		ppid, _ := strconv.Atoi(f[1])
		if pid != master && ppid != master {
			continue
		}
		end := 13 // utime, stime
		if pid == master {
			end = 15 // and its children's
		}
		for _, v := range f[11:end] {
			t, _ := strconv.ParseInt(v, 10, 64)
			ticks += t
		}
	}
	return time.Duration(ticks) * time.Second / hz
}
