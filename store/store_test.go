package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"abox/accounts"
)

var ctx = context.Background()

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTest(t testing.TB) (*Store, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)}
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

var op = Audit{Actor: ActorOperator}

func addAccount(t testing.TB, s *Store, addr string) accounts.Account {
	t.Helper()
	login, domain, _ := accounts.SplitAddress(addr)
	if ok, _ := s.HasDomain(domain); !ok {
		if err := s.AddDomain(ctx, domain, op); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.CreateAccount(ctx, accounts.Account{Login: login, Domain: domain, Phone: "+77010000000", PasswordHash: "x"}, op)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustCheck(t testing.TB, s *Store) CheckReport {
	t.Helper()
	rep, err := s.Check()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("check found problems: %q", rep.Problems)
	}
	return rep
}

func msg(i int) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: b@example.kz\r\nSubject: test %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
}

func TestCreateAccountHasDefaultMailboxes(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	seen := map[uint32]bool{}
	for _, acct := range []accounts.Account{a, b} {
		mbs, err := s.Mailboxes(acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(mbs) != len(DefaultMailboxes) {
			t.Fatalf("%d mailboxes, want %d", len(mbs), len(DefaultMailboxes))
		}
		for i, mb := range mbs {
			if mb.Name != DefaultMailboxes[i].Name || mb.SpecialUse != DefaultMailboxes[i].SpecialUse {
				t.Errorf("mailbox %d = %s %s", i, mb.Name, mb.SpecialUse)
			}
			if seen[mb.UIDValidity] {
				t.Errorf("UIDVALIDITY %d used twice", mb.UIDValidity)
			}
			seen[mb.UIDValidity] = true
		}
	}
	if _, err := s.CreateAccount(ctx, accounts.Account{Login: "alice", Domain: "example.kz"}, op); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate account: %v", err)
	}
	if _, err := s.CreateAccount(ctx, accounts.Account{Login: "carol", Domain: "other.kz"}, op); !errors.Is(err, ErrNoDomain) {
		t.Fatalf("unhosted domain: %v", err)
	}
	if _, err := s.CreateAccount(ctx, accounts.Account{Login: "carol", Domain: "example.kz", Class: "gold"}, op); !errors.Is(err, ErrNoClass) {
		t.Fatalf("unknown class: %v", err)
	}
	mustCheck(t, s)
}

func TestDeliverStoresBodyOnce(t *testing.T) {
	s, _ := openTest(t)
	var rcpts []Recipient
	for i := range 5 {
		a := addAccount(t, s, fmt.Sprintf("user%d@example.kz", i))
		rcpts = append(rcpts, Recipient{Account: a.ID})
	}
	body := msg(1)
	res, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: rcpts, Structure: []byte("S"), Shareable: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.UID != 1 {
			t.Fatalf("result %+v", r)
		}
	}
	rep := mustCheck(t, s)
	if rep.Bodies != 1 || rep.Messages != 5 {
		t.Fatalf("bodies %d messages %d", rep.Bodies, rep.Messages)
	}
	blob, err := s.BodyByHash(sha256.Sum256(body))
	if err != nil {
		t.Fatal(err)
	}
	got, structure, err := s.Body(blob)
	if err != nil || !bytes.Equal(got, body) || string(structure) != "S" {
		t.Fatalf("body %q %q %v", got, structure, err)
	}
	u, _ := s.Usage(rcpts[0].Account)
	if u.Bytes != int64(len(body)) || u.Messages != 1 || u.Received != 1 {
		t.Fatalf("usage %+v", u)
	}
	// A second, separate delivery of the same shareable bytes shares the
	// body; an SMTP-style (not shareable) delivery of new bytes is not
	// indexed.
	if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: rcpts[:1], Shareable: true}); err != nil {
		t.Fatal(err)
	}
	if rep := mustCheck(t, s); rep.Bodies != 1 || rep.Messages != 6 {
		t.Fatalf("after second delivery: bodies %d messages %d", rep.Bodies, rep.Messages)
	}
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(2), Recipients: rcpts[:1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BodyByHash(sha256.Sum256(msg(2))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unshareable body indexed: %v", err)
	}
	mb, _ := s.MailboxByName(rcpts[0].Account, "INBOX")
	if _, err := s.Expunge(ctx, rcpts[0].Account, mb.ID, []uint32{2, 3}); err != nil {
		t.Fatal(err)
	}
	// Expunging every copy frees the body.
	for _, r := range res {
		if got, err := s.Expunge(ctx, r.Account, r.Mailbox, []uint32{r.UID}); err != nil || len(got) != 1 {
			t.Fatalf("expunge %v %v", got, err)
		}
	}
	rep = mustCheck(t, s)
	if rep.Bodies != 0 || rep.Messages != 0 {
		t.Fatalf("after expunge: bodies %d messages %d", rep.Bodies, rep.Messages)
	}
}

func TestDeliverQuotaAndState(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	body := msg(1)
	size := int64(len(body))
	tests := []struct {
		name    string
		rcpt    Recipient
		wantErr error
	}{
		{"fits exactly", Recipient{Account: a.ID, MaxBytes: size}, nil},
		{"bytes over", Recipient{Account: a.ID, MaxBytes: size}, ErrOverQuota},
		{"messages over", Recipient{Account: b.ID, MaxMessages: 1}, nil},
		{"messages over again", Recipient{Account: b.ID, MaxMessages: 1}, ErrOverQuota},
		{"daily limit", Recipient{Account: b.ID, MaxReceivedPerDay: 1}, ErrDailyLimit},
		{"to Junk by special use", Recipient{Account: b.ID, SpecialUse: `\Junk`, Flags: []string{"$Junk"}}, nil},
		{"unknown mailbox", Recipient{Account: b.ID, Mailbox: "Nope"}, ErrNoMailbox},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{tc.rcpt}})
			if !errors.Is(err, tc.wantErr) || !errors.Is(res[0].Err, tc.wantErr) {
				t.Fatalf("err %v / %v, want %v", err, res[0].Err, tc.wantErr)
			}
		})
	}
	junk, _ := s.MailboxByName(b.ID, "Junk")
	if junk.Messages != 1 {
		t.Fatalf("Junk has %d", junk.Messages)
	}
	ms, _ := s.Messages(b.ID, junk.ID, 0, 0)
	if len(ms) != 1 || !hasFlag(ms[0].Flags, "$Junk") {
		t.Fatalf("junk messages %+v", ms)
	}
	// A blocked account refuses delivery.
	if _, err := s.UpdateAccount(ctx, "alice@example.kz", "user.block", func(x *accounts.Account) error {
		x.State = accounts.Blocked
		return nil
	}, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: a.ID}}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("blocked: %v", err)
	}
	mustCheck(t, s)
}

func TestDeliverAllOrNothing(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	d := &Delivery{Body: msg(1), AllOrNothing: true, Recipients: []Recipient{{Account: a.ID}, {Account: b.ID, MaxMessages: -1 + 1, MaxBytes: 1}}}
	if _, err := s.Deliver(ctx, d); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("want over quota, got %v", err)
	}
	rep := mustCheck(t, s)
	if rep.Messages != 0 || rep.Bodies != 0 {
		t.Fatalf("partial delivery stored: %+v", rep)
	}
	// Without AllOrNothing the other recipient gets it.
	d.AllOrNothing = false
	res, err := s.Deliver(ctx, d)
	if err != nil || res[0].Err != nil || !errors.Is(res[1].Err, ErrOverQuota) {
		t.Fatalf("%v %+v", err, res)
	}
	if rep := mustCheck(t, s); rep.Messages != 1 {
		t.Fatalf("messages %d", rep.Messages)
	}
}

func TestConcurrentDeliveriesKeepCountersExact(t *testing.T) {
	s, _ := openTest(t)
	var ids []uint64
	for i := range 8 {
		ids = append(ids, addAccount(t, s, fmt.Sprintf("u%d@example.kz", i)).ID)
	}
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := w*each + i
				// Every third message is a duplicate body of another.
				body := msg(n - n%3)
				_, err := s.Deliver(ctx, &Delivery{Body: body, Shareable: true, Recipients: []Recipient{
					{Account: ids[n%len(ids)]}, {Account: ids[(n+1)%len(ids)]},
				}})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	rep := mustCheck(t, s)
	if rep.Messages != writers*each*2 {
		t.Fatalf("messages %d", rep.Messages)
	}
	var total int64
	for _, id := range ids {
		u, _ := s.Usage(id)
		total += u.Messages
		mb, _ := s.MailboxByName(id, "INBOX")
		ms, _ := s.Messages(id, mb.ID, 0, 0)
		for i, m := range ms {
			if m.UID != uint32(i+1) {
				t.Fatalf("UIDs not dense: %d at %d", m.UID, i)
			}
		}
	}
	if total != writers*each*2 {
		t.Fatalf("usage total %d", total)
	}
}

func TestSetFlagsAndFeed(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	sub := watch(t, s, a.ID)
	res, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID, Flags: []string{"$Official"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := sub.next(t)
	if c.Kind != MessageAdded || c.UID != res[0].UID || c.Mailbox != res[0].Mailbox {
		t.Fatalf("change %+v", c)
	}
	up, err := s.SetFlags(ctx, a.ID, res[0].Mailbox, []uint32{1, 99}, FlagsAdd, []string{`\seen`, `\Recent`})
	if err != nil || len(up) != 1 || !up[0].Changed || !hasFlag(up[0].Flags, FlagSeen) || !hasFlag(up[0].Flags, "$Official") || hasFlag(up[0].Flags, `\Recent`) {
		t.Fatalf("setflags %+v %v", up, err)
	}
	if c := sub.next(t); c.Kind != FlagsChanged || c.ModSeq <= 1 {
		t.Fatalf("change %+v", c)
	}
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	if mb.Unseen != 0 {
		t.Fatalf("unseen %d", mb.Unseen)
	}
	// Setting the same flags again changes nothing and publishes nothing.
	if up, _ := s.SetFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\Seen`}); len(up) != 1 || up[0].Changed {
		t.Fatalf("no-op store changed %+v", up)
	}
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if c := sub.next(t); c.Kind != MessageRemoved || c.UID != 1 {
		t.Fatalf("change %+v", c)
	}
	mustCheck(t, s)
}

func TestSubscriberThatFallsBehindIsMarkedLost(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	var wakes atomic.Int32
	sub := s.Subscribe(a.ID, func() { wakes.Add(1) })
	defer sub.Close()
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < subBuffer+5; i++ {
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		if _, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{1}, op, []string{`\Flagged`}); err != nil {
			t.Fatal(err)
		}
	}
	// One wake for the first change; the subscriber never took them, so
	// the held changes were dropped (bounded memory) and it is told so.
	if w := wakes.Load(); w != 1 {
		t.Fatalf("%d wakes, want 1", w)
	}
	if !sub.Pending() {
		t.Fatal("a lost subscription reports nothing pending")
	}
	if changes, lost := sub.Take(); !lost || len(changes) != 0 {
		t.Fatalf("took %d changes, lost %v; want none and lost", len(changes), lost)
	}
	// After the reload the subscriber starts afresh: the next change
	// wakes it and is held.
	if _, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	changes, lost := sub.Take()
	if lost || len(changes) != 1 || changes[0].Kind != FlagsChanged || wakes.Load() != 2 {
		t.Fatalf("after the reload: %+v lost %v, %d wakes", changes, lost, wakes.Load())
	}
	if changes, lost := sub.Take(); lost || len(changes) != 0 || sub.Pending() {
		t.Fatalf("taken twice: %+v %v", changes, lost)
	}
}

// TestSubscriberWokenOncePerTake: a subscriber is woken when a change
// arrives at an empty subscription, and not again until it has taken
// what it holds (so a burst costs one wake-up, and none is missed).
func TestSubscriberWokenOncePerTake(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	var wakes atomic.Int32
	sub := s.Subscribe(a.ID, func() { wakes.Add(1) })
	defer sub.Close()
	other := s.Subscribe(a.ID+1, func() { t.Error("another account's subscriber woken") })
	defer other.Close()
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	burst := func(n int) {
		var batch []Change
		for i := range n {
			batch = append(batch, Change{Kind: FlagsChanged, Account: a.ID, Mailbox: mb.ID, UID: uint32(i + 1)})
		}
		s.feed.publish(batch)
	}
	burst(5)
	burst(3)
	if w := wakes.Load(); w != 1 {
		t.Fatalf("%d wakes for two bursts before a Take, want 1", w)
	}
	changes, lost := sub.Take()
	if lost || len(changes) != 8 || changes[0].UID != 1 || changes[7].UID != 3 {
		t.Fatalf("took %+v lost %v", changes, lost)
	}
	burst(1)
	if w := wakes.Load(); w != 2 {
		t.Fatalf("%d wakes after a Take and one more change, want 2", w)
	}
	sub.Close()
	burst(1)
	if w := wakes.Load(); w != 2 || sub.Pending() {
		t.Fatalf("a closed subscription was woken (%d) or holds changes", w)
	}
}

func TestOpenRefusesNewerAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A second opener is told the file is in use.
	if _, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	if err := s.update(ctx, func(t *txn) error { return t.tx.Bucket(bMeta).Put([]byte("schema"), u64(SchemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("newer schema: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("opening a newer file changed it")
	}

	garbage := filepath.Join(dir, "garbage.db")
	junk := bytes.Repeat([]byte("not a database "), 2000)
	os.WriteFile(garbage, junk, 0o600)
	if _, err := Open(garbage, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: %v", err)
	}
	if got, _ := os.ReadFile(garbage); !bytes.Equal(got, junk) {
		t.Fatal("opening garbage changed it")
	}
}

func TestCheckFindsDamage(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	damage := []struct {
		name string
		fn   func(t *txn) error
	}{
		{"usage counter", func(t *txn) error {
			return t.putUsage(a.ID, &Usage{Bytes: 1, Messages: 7})
		}},
		{"body refcount", func(t *txn) error {
			return t.tx.Bucket(bBodies).Put(u64(1), encodeBody(&bodyRecord{Refs: 3, Size: int64(len(msg(1))), Hash: sha256.Sum256(msg(1))}))
		}},
		{"address index", func(t *txn) error {
			return t.tx.Bucket(bAcctAddr).Put(addrKey("ghost", "example.kz"), u64(999))
		}},
		{"mailbox counter", func(t *txn) error {
			mb, _ := t.getMailbox(a.ID, 1)
			mb.Unseen = 0
			return t.putMailbox(a.ID, mb)
		}},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			snapshot := filepath.Join(t.TempDir(), "copy.db")
			if _, err := s.BackupTo(snapshot, nil); err != nil {
				t.Fatal(err)
			}
			c, err := Open(snapshot, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			mustCheck(t, c)
			if err := c.update(ctx, d.fn); err != nil {
				t.Fatal(err)
			}
			rep, err := c.Check()
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Fatal("check found nothing")
			}
			t.Log(rep.Problems)
		})
	}
}

func TestListAccountsByStateAndAudit(t *testing.T) {
	s, clk := openTest(t)
	for i := range 5 {
		addAccount(t, s, fmt.Sprintf("user%d@example.kz", i))
	}
	clk.Add(time.Hour)
	for _, addr := range []string{"user1@example.kz", "user3@example.kz"} {
		if _, err := s.UpdateAccount(ctx, addr, "user.block", func(a *accounts.Account) error {
			return a.Block("spam complaints", clk.Now())
		}, Audit{Actor: ActorOperator, Reason: "spam complaints"}); err != nil {
			t.Fatal(err)
		}
	}
	blocked, err := s.ListAccounts(AccountFilter{State: accounts.Blocked})
	if err != nil || len(blocked) != 2 || blocked[0].Login != "user1" || blocked[1].Login != "user3" {
		t.Fatalf("blocked %v %v", blocked, err)
	}
	page, _ := s.ListAccounts(AccountFilter{Limit: 2})
	page2, _ := s.ListAccounts(AccountFilter{Limit: 10, After: page[1].ID})
	if len(page) != 2 || len(page2) != 3 {
		t.Fatalf("pages %d %d", len(page), len(page2))
	}
	entries, err := s.ListAudit(AuditFilter{Account: "user3@example.kz"})
	if err != nil || len(entries) != 2 || entries[0].Action != "user.add" || entries[1].Action != "user.block" || entries[1].Reason != "spam complaints" {
		t.Fatalf("audit %+v %v", entries, err)
	}
	since, _ := s.ListAudit(AuditFilter{Since: clk.Now()})
	if len(since) != 2 {
		t.Fatalf("since: %+v", since)
	}
	mustCheck(t, s)
}

// watcher collects a subscription's changes for a test.
type watcher struct {
	sub   *Subscription
	woken chan struct{}
	queue []Change
}

func watch(t *testing.T, s *Store, account uint64) *watcher {
	w := &watcher{woken: make(chan struct{}, 1)}
	w.sub = s.Subscribe(account, func() {
		select {
		case w.woken <- struct{}{}:
		default:
		}
	})
	t.Cleanup(w.sub.Close)
	return w
}

// next returns the next change, waiting up to 10 s for it.
func (w *watcher) next(t *testing.T) Change {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(w.queue) == 0 {
		changes, lost := w.sub.Take()
		if lost {
			t.Fatal("changes lost")
		}
		w.queue = append(w.queue, changes...)
		if len(w.queue) > 0 {
			break
		}
		select {
		case <-w.woken:
		case <-deadline:
			t.Fatal("no change published")
		}
	}
	c := w.queue[0]
	w.queue = w.queue[1:]
	return c
}

// TestCheckDuringDeliveries: the page check runs while deliveries
// commit. bbolt's check reads the free-page list a commit changes; run
// beside the writer it was a data race (the race detector caught it in
// the SMTP suite) and could report pages a commit had just taken.
func TestCheckDuringDeliveries(t *testing.T) {
	s, _ := openTest(t) // a commit per delivery batch: many commits
	a := addAccount(t, s, "alice@example.kz")
	done := make(chan error, 1)
	go func() {
		for i := range 400 {
			if _, err := s.Deliver(ctx, &Delivery{Body: msg(1000 + i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for checks := 0; ; checks++ {
		rep, err := s.Check()
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("check %d: %v %v", checks, rep.Problems, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}
