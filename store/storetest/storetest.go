// Package storetest is the store conformance suite (issue 18): the
// behaviour every store backend must show, written against the
// interfaces its callers use (policy.Store, imapd.Store) and nothing of
// a backend's insides, so the same tests run unchanged against the
// embedded bbolt store and any other. A backend's tests call Run with a
// function that opens an empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"abox/accounts"
	"abox/imapd"
	"abox/policy"
	"abox/store"
)

// Backend is what the suite drives: everything policy and the IMAP
// layer ask of a store, and the directory calls that set up a test.
type Backend interface {
	policy.Store
	imapd.Store
	AddDomain(ctx context.Context, name string, a store.Audit) error
	QueueStats() (store.QueueStats, error)
	QueueList(f store.QueueFilter) ([]store.QueueEntry, error)
}

// Open returns a new, empty store for one test; the test's cleanup
// closes it.
type Open func(t *testing.T) Backend

var (
	ctx = context.Background()
	op  = store.Audit{Actor: store.ActorOperator}
)

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Backend)
	}{
		{"DeliveryIsAllOrNothing", deliveryIsAllOrNothing},
		{"UIDsWithoutGapsUnderConcurrency", uidsWithoutGaps},
		{"ModSeqAscends", modSeqAscends},
		{"CountersFollowChanges", countersFollowChanges},
		{"QuotaUnderConcurrency", quotaUnderConcurrency},
		{"MoveAndExpunge", moveAndExpunge},
		{"SharedBodyStoredOnce", sharedBodyStoredOnce},
		{"QueueLeaseAndFinish", queueLeaseAndFinish},
		{"AccountsByAddressAndID", accountsByAddressAndID},
		{"AccountVersionChecked", accountVersionChecked},
		{"MailboxFolders", mailboxFolders},
		{"MailboxKeywords", mailboxKeywords},
		{"AccountUpdatesAndLists", accountUpdatesAndLists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func account(t *testing.T, s Backend, addr string) accounts.Account {
	t.Helper()
	login, domain, _ := accounts.SplitAddress(addr)
	if err := s.AddDomain(ctx, domain, op); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, accounts.Account{Login: login, Domain: domain, Phone: "+77010000000", PasswordHash: "x"}, op)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func msg(i int) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: b@example.kz\r\nSubject: test %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
}

func inbox(t *testing.T, s Backend, acct uint64) store.Mailbox {
	t.Helper()
	mb, err := s.MailboxByName(acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func deliver(t *testing.T, s Backend, body []byte, rcpts ...store.Recipient) []store.Delivered {
	t.Helper()
	res, err := s.Deliver(ctx, &store.Delivery{Body: body, Recipients: rcpts, AllOrNothing: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// deliveryIsAllOrNothing: a delivery to two accounts that one of them
// cannot take stores nothing for either, and counts nothing.
func deliveryIsAllOrNothing(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	b := account(t, s, "bob@example.kz")
	deliver(t, s, msg(0), store.Recipient{Account: b.ID})
	_, err := s.Deliver(ctx, &store.Delivery{Body: msg(1), AllOrNothing: true,
		Recipients: []store.Recipient{{Account: a.ID}, {Account: b.ID, MaxMessages: 1}}})
	if !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("delivery past bob's quota: %v, want ErrOverQuota", err)
	}
	if mb := inbox(t, s, a.ID); mb.Messages != 0 {
		t.Fatalf("alice got %d messages of a failed delivery", mb.Messages)
	}
	if u, _ := s.Usage(a.ID); u.Messages != 0 || u.Bytes != 0 {
		t.Fatalf("alice's usage counts a failed delivery: %+v", u)
	}
}

// uidsWithoutGaps: concurrent deliveries to one mailbox get UIDs 1..n,
// each once, and UIDNEXT is n+1.
func uidsWithoutGaps(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	const n = 64
	var wg sync.WaitGroup
	uids := make([]uint32, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Deliver(ctx, &store.Delivery{Body: msg(i), AllOrNothing: true, Recipients: []store.Recipient{{Account: a.ID}}})
			if err != nil {
				t.Error(err)
				return
			}
			uids[i] = res[0].UID
		}()
	}
	wg.Wait()
	slices.Sort(uids)
	for i, u := range uids {
		if u != uint32(i+1) {
			t.Fatalf("UIDs %v: want 1..%d without gaps or repeats", uids, n)
		}
	}
	if mb := inbox(t, s, a.ID); mb.UIDNext != n+1 || mb.Messages != n {
		t.Fatalf("INBOX: UIDNEXT %d, %d messages; want %d, %d", mb.UIDNext, mb.Messages, n+1, n)
	}
}

// modSeqAscends: every change gets a MODSEQ above the mailbox's highest
// before it, and UIDsChangedSince returns exactly what changed after.
func modSeqAscends(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	for i := range 5 {
		deliver(t, s, msg(i), store.Recipient{Account: a.ID})
	}
	mb := inbox(t, s, a.ID)
	before := mb.HighestModSeq
	up, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{2, 4}, store.FlagsAdd, []string{store.FlagSeen})
	if err != nil || len(up) != 2 {
		t.Fatalf("STORE: %+v %v", up, err)
	}
	for _, u := range up {
		if u.ModSeq <= before {
			t.Fatalf("a flag change got MODSEQ %d, not above %d", u.ModSeq, before)
		}
	}
	uids, changed, err := s.UIDsChangedSince(a.ID, mb.ID, before)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, m := range changed {
		got = append(got, m.UID)
	}
	if !slices.Equal(got, []uint32{2, 4}) || len(uids) != 5 {
		t.Fatalf("changed since %d: %v (all %v)", before, got, uids)
	}
	if after := inbox(t, s, a.ID); after.HighestModSeq < up[1].ModSeq {
		t.Fatalf("HIGHESTMODSEQ %d below a change's %d", after.HighestModSeq, up[1].ModSeq)
	}
}

// countersFollowChanges: usage and mailbox counters follow deliveries,
// flag changes and expunges.
func countersFollowChanges(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	var size int64
	for i := range 4 {
		deliver(t, s, msg(i), store.Recipient{Account: a.ID})
		size += int64(len(msg(i)))
	}
	mb := inbox(t, s, a.ID)
	if u, _ := s.Usage(a.ID); u.Messages != 4 || u.Bytes != size || mb.Unseen != 4 || mb.Size != size {
		t.Fatalf("after 4 deliveries: usage %+v, INBOX %+v", u, mb)
	}
	if _, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{1}, store.FlagsAdd, []string{store.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	left := int64(len(msg(2)) + len(msg(3)))
	mb = inbox(t, s, a.ID)
	if u, _ := s.Usage(a.ID); u.Messages != 2 || u.Bytes != left || mb.Messages != 2 || mb.Unseen != 2 {
		t.Fatalf("after expunging 2: usage %+v, INBOX %+v", u, mb)
	}
}

// quotaUnderConcurrency: with a limit of 10 messages, 40 deliveries at
// once store exactly 10.
func quotaUnderConcurrency(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, over := 0, 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Deliver(ctx, &store.Delivery{Body: msg(i), AllOrNothing: true, Recipients: []store.Recipient{{Account: a.ID, MaxMessages: 10}}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrOverQuota):
				over++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 10 || over != 30 {
		t.Fatalf("%d stored, %d over quota; want 10 and 30", ok, over)
	}
	if u, _ := s.Usage(a.ID); u.Messages != 10 {
		t.Fatalf("usage counts %d messages", u.Messages)
	}
}

// moveAndExpunge: MOVE gives new UIDs in the destination and removes the
// source's, which an expunge query since the move reports.
func moveAndExpunge(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	for i := range 5 {
		deliver(t, s, msg(i), store.Recipient{Account: a.ID})
	}
	src := inbox(t, s, a.ID)
	dst, err := s.MailboxByName(a.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Move(ctx, a.ID, src.ID, []uint32{2, 3, 5}, dst.ID)
	if err != nil || !slices.Equal(res.Source, []uint32{2, 3, 5}) || !slices.Equal(res.Dest, []uint32{1, 2, 3}) {
		t.Fatalf("MOVE: %+v %v", res, err)
	}
	uids, err := s.UIDs(a.ID, src.ID)
	if err != nil || !slices.Equal(uids, []uint32{1, 4}) {
		t.Fatalf("source after MOVE: %v %v", uids, err)
	}
	gone, complete, err := s.Vanished(a.ID, src.ID, src.HighestModSeq)
	if err != nil || !complete || !slices.Equal(gone, []uint32{2, 3, 5}) {
		t.Fatalf("vanished since the move: %v %v %v", gone, complete, err)
	}
	moved, err := s.Messages(a.ID, dst.ID, 0, 0)
	if err != nil || len(moved) != 3 {
		t.Fatalf("destination: %d messages, %v", len(moved), err)
	}
	body, _, err := s.Body(moved[0].Blob)
	if err != nil || string(body) != string(msg(1)) {
		t.Fatalf("moved message 1 reads %q, %v", body, err)
	}
}

// sharedBodyStoredOnce: a shareable body delivered twice is one body.
func sharedBodyStoredOnce(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	b := account(t, s, "bob@example.kz")
	var blobs []uint64
	for _, acct := range []uint64{a.ID, b.ID} {
		res, err := s.Deliver(ctx, &store.Delivery{Body: msg(7), Shareable: true, AllOrNothing: true, Recipients: []store.Recipient{{Account: acct}}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.MessagesByUID(acct, res[0].Mailbox, []uint32{res[0].UID})
		if err != nil || len(m) != 1 {
			t.Fatalf("message: %v %v", m, err)
		}
		blobs = append(blobs, m[0].Blob)
	}
	if blobs[0] != blobs[1] {
		t.Fatalf("the same shareable body stored twice: %v", blobs)
	}
}

// queueLeaseAndFinish: entries written with a delivery are leased once,
// and an entry whose recipients are done leaves the queue.
func queueLeaseAndFinish(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	d := &store.Delivery{Body: msg(1), AllOrNothing: true, Sender: &store.SenderCount{Account: a.ID},
		Queue: []*store.QueueEntry{{Domain: "far.test", From: "alice@example.kz", Recipients: []store.QueueRecipient{{Address: "x@far.test"}}}}}
	if _, err := s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.QueueLease(ctx, 10, 60e9, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("lease: %d %v", len(got), err)
	}
	if again, _ := s.QueueLease(ctx, 10, 60e9, nil); len(again) != 0 {
		t.Fatal("a leased entry was leased again")
	}
	body, err := s.QueueBody(&got[0])
	if err != nil || string(body) != string(msg(1)) {
		t.Fatalf("queued body %q %v", body, err)
	}
	got[0].Recipients[0].Status = store.QueueDelivered
	if err := s.QueueUpdate(ctx, &got[0]); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.QueueStats(); st.Entries != 0 {
		t.Fatalf("%d entries after the only one finished", st.Entries)
	}
	if u, _ := s.Usage(a.ID); u.Sent != 1 {
		t.Fatalf("sent counter %d, want 1", u.Sent)
	}
}

// accountsByAddressAndID: an account is found by address and id, and a
// second one with the same address is refused.
func accountsByAddressAndID(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	byAddr, err := s.Account("alice@example.kz")
	if err != nil || byAddr.ID != a.ID {
		t.Fatalf("by address: %+v %v", byAddr, err)
	}
	byID, err := s.AccountByID(a.ID)
	if err != nil || byID.Address() != "alice@example.kz" {
		t.Fatalf("by id: %+v %v", byID, err)
	}
	if _, err := s.CreateAccount(ctx, accounts.Account{Login: "alice", Domain: "example.kz"}, op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second alice: %v, want ErrExists", err)
	}
	if _, err := s.Account("nobody@example.kz"); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("unknown address: %v, want ErrNoAccount", err)
	}
}

// accountVersionChecked: a delivery checked against an account's
// version (policy's RCPT-time read) fails with ErrAccountChanged and
// stores nothing once the account was changed since, and goes through
// with the version read again. A backend whose reads carry no version
// (the embedded store: policy reads the account again before each
// delivery instead) skips it.
func accountVersionChecked(t *testing.T, s Backend) {
	a := account(t, s, "alice@example.kz")
	b := account(t, s, "bob@example.kz")
	read, _, err := s.AccountWithUsage("bob@example.kz")
	if err != nil {
		t.Fatal(err)
	}
	if read.Version == 0 {
		t.Skip("this backend's account reads carry no version")
	}
	if byID, err := s.AccountByID(b.ID); err != nil || byID.Version != read.Version {
		t.Fatalf("AccountByID: version %d (%v), AccountWithUsage %d: want one version for one record", byID.Version, err, read.Version)
	}
	deliver(t, s, msg(0), store.Recipient{Account: a.ID}, store.Recipient{Account: b.ID, AccountVersion: read.Version})
	if _, err := s.UpdateAccount(ctx, "bob@example.kz", "user.set", func(x *accounts.Account) error {
		x.QuotaMessages = new(int64(1))
		return nil
	}, op); err != nil {
		t.Fatal(err)
	}
	_, err = s.Deliver(ctx, &store.Delivery{Body: msg(1), AllOrNothing: true,
		Recipients: []store.Recipient{{Account: a.ID}, {Account: b.ID, AccountVersion: read.Version}}})
	if !errors.Is(err, store.ErrAccountChanged) {
		t.Fatalf("delivery checked against bob's version before his quota changed: %v, want ErrAccountChanged", err)
	}
	if mb := inbox(t, s, a.ID); mb.Messages != 1 {
		t.Fatalf("alice has %d messages, want 1: the refused delivery stored something", mb.Messages)
	}
	now, err := s.AccountByID(b.ID)
	if err != nil || now.Version == read.Version || now.QuotaMessages == nil {
		t.Fatalf("bob read again: version %d (was %d), quota %v, %v", now.Version, read.Version, now.QuotaMessages, err)
	}
	deliver(t, s, msg(2), store.Recipient{Account: a.ID}, store.Recipient{Account: b.ID, AccountVersion: now.Version})
	if mb := inbox(t, s, b.ID); mb.Messages != 2 {
		t.Fatalf("bob has %d messages, want 2", mb.Messages)
	}
}
