package pgstore

import (
	"errors"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

var op = store.Audit{Actor: store.ActorOperator, Staff: "tester"}

// testClock is a clock a test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// withClock gives s a clock the test moves, starting at a fixed date.
func withClock(s *Store) *testClock {
	c := &testClock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	s.clock = c.now
	return c
}

// newAccount creates an account (and its domain if need be).
func newAccount(t *testing.T, s *Store, addr string) accounts.Account {
	t.Helper()
	login, domain, _ := accounts.SplitAddress(addr)
	if err := s.AddDomain(bg, domain, op); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(bg, accounts.Account{Login: login, Domain: domain, Phone: "+77010000000", PasswordHash: "x"}, op)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// lastAudit returns the newest audit entry.
func lastAudit(t *testing.T, s *Store) store.AuditEntry {
	t.Helper()
	var all []store.AuditEntry
	for after := uint64(0); ; {
		page, err := s.ListAudit(store.AuditFilter{After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) == 0 {
		t.Fatal("no audit entry")
	}
	return all[len(all)-1]
}

// TestDomains: domains are listed in name order; one still used by an
// account, or by a purged tombstone, cannot be removed; removing one
// takes its DKIM keys, is audited and moves the directory generation.
func TestDomains(t *testing.T) {
	s := openTest(t, false)
	for _, d := range []string{"b.kz", "a.kz", "c.kz"} {
		if err := s.AddDomain(bg, d, op); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Domains()
	if err != nil || len(ds) != 3 || ds[0].Name != "a.kz" || ds[2].Name != "c.kz" || ds[0].CreatedAt.IsZero() {
		t.Fatalf("Domains: %+v %v", ds, err)
	}
	if ok, err := s.HasDomain("a.kz"); !ok || err != nil {
		t.Fatalf("HasDomain(a.kz): %v %v", ok, err)
	}
	if ok, err := s.HasDomain("nowhere.kz"); ok || err != nil {
		t.Fatalf("HasDomain(nowhere.kz): %v %v", ok, err)
	}
	if err := s.RemoveDomain(bg, "nowhere.kz", op); !errors.Is(err, store.ErrNoDomain) {
		t.Fatalf("removing an unhosted domain: %v, want ErrNoDomain", err)
	}

	a := newAccount(t, s, "alice@b.kz")
	if err := s.RemoveDomain(bg, "b.kz", op); !errors.Is(err, store.ErrDomainInUse) {
		t.Fatalf("removing a domain with an account: %v, want ErrDomainInUse", err)
	}
	// A purged tombstone keeps its domain too.
	clk := withClock(s)
	if _, err := s.UpdateAccount(bg, a.Address(), "user.delete", func(x *accounts.Account) error { return x.StartDeletion("test", clk.now()) }, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeAccount(bg, a.Address(), clk.now().Add(60*24*time.Hour), 0, op); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDomain(bg, "b.kz", op); !errors.Is(err, store.ErrDomainInUse) {
		t.Fatalf("removing a domain with a purged tombstone: %v, want ErrDomainInUse", err)
	}
	// A tombstone that lost its address to a new account (a sealed
	// one) still holds it: the foreign key says so.
	if _, err := s.pool.Exec(bg, `UPDATE accounts SET address_held = false WHERE id = $1`, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDomain(bg, "b.kz", op); !errors.Is(err, store.ErrDomainInUse) {
		t.Fatalf("removing a domain with a tombstone without its address: %v, want ErrDomainInUse", err)
	}

	if err := s.AddDKIMKey(bg, store.DKIMKey{Domain: "c.kz", Selector: "s1", Algorithm: "rsa", PrivatePEM: "pem"}, op); err != nil {
		t.Fatal(err)
	}
	gen := s.DirectoryGeneration()
	if err := s.RemoveDomain(bg, "c.kz", op); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.HasDomain("c.kz"); ok {
		t.Fatal("c.kz is still hosted after its removal")
	}
	if keys, err := s.DKIMKeys("c.kz"); err != nil || len(keys) != 0 {
		t.Fatalf("DKIM keys of a removed domain: %+v %v", keys, err)
	}
	if e := lastAudit(t, s); e.Action != "domain.remove" || e.Reason != "c.kz" || e.Actor != store.ActorOperator {
		t.Fatalf("audit of the removal: %+v", e)
	}
	s.SyncFeed(bg)
	if s.DirectoryGeneration() == gen {
		t.Fatal("removing a domain did not move the directory generation")
	}
	// Hosting it again works, without its old keys.
	if err := s.AddDomain(bg, "c.kz", op); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.DKIMKeys("c.kz"); len(keys) != 0 {
		t.Fatalf("a domain hosted again got its old keys back: %+v", keys)
	}
}

// TestDomainRemovalRacesCreation: an account created on one node while
// another removes its domain either is refused or keeps the domain,
// never ends up on an unhosted one.
func TestDomainRemovalRacesCreation(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	for i := range 5 {
		d := string(rune('a'+i)) + "-race.kz"
		if err := s.AddDomain(bg, d, op); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var createErr, removeErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, createErr = s.CreateAccount(bg, accounts.Account{Login: "x", Domain: d}, op)
		}()
		go func() {
			defer wg.Done()
			removeErr = s2.RemoveDomain(bg, d, op)
		}()
		wg.Wait()
		t.Logf("round %d: create %v, remove %v", i, createErr, removeErr)
		hosted, _ := s.HasDomain(d)
		var n int
		s.pool.QueryRow(bg, `SELECT count(*) FROM accounts WHERE domain = $1`, d).Scan(&n)
		switch {
		case createErr == nil:
			if !errors.Is(removeErr, store.ErrDomainInUse) || !hosted || n != 1 {
				t.Fatalf("round %d: account created, removal %v, hosted %v, %d accounts", i, removeErr, hosted, n)
			}
		case removeErr == nil:
			// The creation saw no domain, or lost on the foreign key.
			if hosted || n != 0 {
				t.Fatalf("round %d: domain removed, creation %v, hosted %v, %d accounts", i, createErr, hosted, n)
			}
		default:
			t.Fatalf("round %d: both failed: %v, %v", i, createErr, removeErr)
		}
		if !hosted && n != 0 {
			t.Fatalf("round %d: %d accounts on an unhosted domain", i, n)
		}
	}
}

// TestClasses: classes in name order; a class set for the first time
// starts from the default one's limits; fn's error changes nothing;
// the change is audited and reaches another node's directory
// generation.
func TestClasses(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	cs, err := s.Classes()
	if err != nil || len(cs) != len(accounts.DefaultClasses()) {
		t.Fatalf("Classes: %d %v", len(cs), err)
	}
	for i := 1; i < len(cs); i++ {
		if cs[i-1].Name >= cs[i].Name {
			t.Fatalf("classes out of order: %s before %s", cs[i-1].Name, cs[i].Name)
		}
	}
	def, err := s.Class(accounts.DefaultClassName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Class("gold"); !errors.Is(err, store.ErrNoClass) {
		t.Fatalf("unknown class: %v, want ErrNoClass", err)
	}
	boom := errors.New("boom")
	if _, err := s.SetClass(bg, "gold", func(c *accounts.Class) error { return boom }, op); !errors.Is(err, boom) {
		t.Fatalf("SetClass with a failing fn: %v", err)
	}
	if _, err := s.Class("gold"); !errors.Is(err, store.ErrNoClass) {
		t.Fatalf("a failed SetClass created the class: %v", err)
	}

	gen2 := s2.DirectoryGeneration()
	gold, err := s.SetClass(bg, "gold", func(c *accounts.Class) error { c.StorageBytes = 5 << 30; return nil }, op)
	if err != nil {
		t.Fatal(err)
	}
	if gold.Name != "gold" || gold.StorageBytes != 5<<30 || gold.Messages != def.Messages || gold.MaxMessageSize != def.MaxMessageSize {
		t.Fatalf("new class %+v, from default %+v", gold, def)
	}
	if e := lastAudit(t, s); e.Action != "class.set" || e.Staff != "tester" {
		t.Fatalf("audit of SetClass: %+v", e)
	}
	// The other node learns of it after a SyncFeed, and reads it.
	if err := s2.SyncFeed(bg); err != nil {
		t.Fatal(err)
	}
	if s2.DirectoryGeneration() == gen2 {
		t.Fatal("a class changed on one node did not move the other's directory generation")
	}
	if c, err := s2.Class("gold"); err != nil || c.StorageBytes != 5<<30 {
		t.Fatalf("the other node reads %+v %v", c, err)
	}
	// Changing it again keeps what was set.
	gold, err = s2.SetClass(bg, "gold", func(c *accounts.Class) error { c.Messages = 7; return nil }, op)
	if err != nil || gold.StorageBytes != 5<<30 || gold.Messages != 7 {
		t.Fatalf("second SetClass: %+v %v", gold, err)
	}
	// Concurrent changes of one new class on two nodes both land.
	var wg sync.WaitGroup
	for i, n := range []*Store{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.SetClass(bg, "silver", func(c *accounts.Class) error {
				if i == 0 {
					c.SentPerDay = 11
				} else {
					c.ReceivedPerDay = 22
				}
				return nil
			}, op); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c, _ := s.Class("silver"); c.SentPerDay != 11 || c.ReceivedPerDay != 22 {
		t.Fatalf("concurrent SetClass lost a change: %+v", c)
	}
}

// TestSenders: add (a second time refused), read, list in name order,
// set receipts (lower-cased, audited with its reason), remove; each
// change moves the directory generation.
func TestSenders(t *testing.T) {
	s := openTest(t, false)
	clk := withClock(s)
	gen := s.DirectoryGeneration()
	for _, n := range []string{"tax", "bank"} {
		if err := s.AddSender(bg, accounts.Sender{Name: n, From: []string{"noreply@" + n + ".kz"}}, op); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddSender(bg, accounts.Sender{Name: "tax"}, op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second tax: %v, want ErrExists", err)
	}
	if e := lastAudit(t, s); e.Action != "sender.add" {
		t.Fatalf("audit: %+v", e)
	}
	snd, err := s.Sender("tax")
	if err != nil || snd.From[0] != "noreply@tax.kz" || !snd.CreatedAt.Equal(clk.now()) {
		t.Fatalf("Sender: %+v %v", snd, err)
	}
	if _, err := s.Sender("nobody"); !errors.Is(err, store.ErrNoSender) {
		t.Fatalf("unknown sender: %v, want ErrNoSender", err)
	}
	list, err := s.Senders()
	if err != nil || len(list) != 2 || list[0].Name != "bank" || list[1].Name != "tax" {
		t.Fatalf("Senders: %+v %v", list, err)
	}
	if err := s.SetSenderReceipts(bg, "tax", "Receipts@Tax.KZ", op); err != nil {
		t.Fatal(err)
	}
	if snd, _ := s.Sender("tax"); snd.ReceiptsTo != "receipts@tax.kz" || snd.From[0] != "noreply@tax.kz" {
		t.Fatalf("after SetSenderReceipts: %+v", snd)
	}
	if e := lastAudit(t, s); e.Action != "sender.set" || e.Reason != "receipts to Receipts@Tax.KZ" {
		t.Fatalf("audit: %+v", e)
	}
	if err := s.SetSenderReceipts(bg, "tax", "", op); err != nil {
		t.Fatal(err)
	}
	if e := lastAudit(t, s); e.Reason != "no receipts by mail" {
		t.Fatalf("audit: %+v", e)
	}
	if err := s.SetSenderReceipts(bg, "nobody", "x@y.kz", op); !errors.Is(err, store.ErrNoSender) {
		t.Fatalf("receipts of an unknown sender: %v, want ErrNoSender", err)
	}
	if err := s.RemoveSender(bg, "tax", op); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSender(bg, "tax", op); !errors.Is(err, store.ErrNoSender) {
		t.Fatalf("second removal: %v, want ErrNoSender", err)
	}
	if e := lastAudit(t, s); e.Action != "sender.remove" {
		t.Fatalf("audit: %+v", e)
	}
	s.SyncFeed(bg)
	if s.DirectoryGeneration() == gen {
		t.Fatal("sender changes did not move the directory generation")
	}
}

// TestDKIMKeys: a key needs a hosted domain and a new selector; keys
// come oldest first (the last signs), whatever their selectors' order.
func TestDKIMKeys(t *testing.T) {
	s := openTest(t, false)
	clk := withClock(s)
	if err := s.AddDKIMKey(bg, store.DKIMKey{Domain: "nowhere.kz", Selector: "s"}, op); !errors.Is(err, store.ErrNoDomain) {
		t.Fatalf("key of an unhosted domain: %v, want ErrNoDomain", err)
	}
	if err := s.AddDomain(bg, "example.kz", op); err != nil {
		t.Fatal(err)
	}
	gen := s.DirectoryGeneration()
	for _, sel := range []string{"zz2025", "aa2026"} {
		if err := s.AddDKIMKey(bg, store.DKIMKey{Domain: "example.kz", Selector: sel, Algorithm: "rsa", PrivatePEM: "pem-" + sel}, op); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Hour)
	}
	if err := s.AddDKIMKey(bg, store.DKIMKey{Domain: "example.kz", Selector: "aa2026"}, op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second aa2026: %v, want ErrExists", err)
	}
	if e := lastAudit(t, s); e.Action != "domain.dkim" || e.Reason != "selector aa2026" {
		t.Fatalf("audit: %+v", e)
	}
	keys, err := s.DKIMKeys("example.kz")
	if err != nil || len(keys) != 2 || keys[0].Selector != "zz2025" || keys[1].Selector != "aa2026" || keys[1].PrivatePEM != "pem-aa2026" {
		t.Fatalf("DKIMKeys: %+v %v", keys, err)
	}
	if keys[0].CreatedAt.IsZero() || !keys[0].CreatedAt.Before(keys[1].CreatedAt) {
		t.Fatalf("creation times %v %v", keys[0].CreatedAt, keys[1].CreatedAt)
	}
	s.SyncFeed(bg)
	if s.DirectoryGeneration() == gen {
		t.Fatal("a new DKIM key did not move the directory generation")
	}
}
