package pgstore

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

// TestUpdateAccount: an update keeps the account's identity, checks a
// new class, writes its audit entry (none for an empty action), keeps
// the consent's IIN column in step, and reaches another node's
// subscribers as AccountChanged; fn may run again.
func TestUpdateAccount(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	a := newAccount(t, s, "alice@example.kz")
	sub := s2.Subscribe(a.ID, func() {})
	defer sub.Close()
	s2.SyncFeed(bg) // the creation's own changes
	sub.Take()

	if _, err := s.UpdateAccount(bg, "nobody@example.kz", "user.block", func(*accounts.Account) error { return nil }, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("update of nobody: %v, want ErrNoAccount", err)
	}
	if _, err := s.UpdateAccountByID(bg, 9999, "user.block", func(*accounts.Account) error { return nil }, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("update of id 9999: %v, want ErrNoAccount", err)
	}
	if _, err := s.UpdateAccount(bg, a.Address(), "user.class", func(x *accounts.Account) error { x.Class = "no-such"; return nil }, op); !errors.Is(err, store.ErrNoClass) {
		t.Fatalf("unknown class: %v, want ErrNoClass", err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateAccount(bg, a.Address(), "user.block", func(*accounts.Account) error { return boom }, op); !errors.Is(err, boom) {
		t.Fatalf("fn's error: %v", err)
	}
	if _, err := s.SetClass(bg, "gold", func(*accounts.Class) error { return nil }, op); err != nil {
		t.Fatal(err)
	}
	got, err := s.UpdateAccount(bg, "Alice@Example.KZ", "user.class", func(x *accounts.Account) error {
		x.Class, x.Login, x.ID = "gold", "mallory", 42
		x.Consent = &accounts.Consent{IIN: "IIN900101300123", Verified: true}
		return nil
	}, store.Audit{Actor: store.ActorOperator, Reason: "upgrade", Staff: "tester"})
	if err != nil || got.ID != a.ID || got.Login != "alice" || got.Class != "gold" {
		t.Fatalf("update: %+v %v", got, err)
	}
	if e := lastAudit(t, s); e.Action != "user.class" || e.Account != "alice@example.kz" || e.AccountID != a.ID || e.Reason != "upgrade" || e.Staff != "tester" {
		t.Fatalf("audit: %+v", e)
	}
	var iin *string
	var class string
	s.pool.QueryRow(bg, `SELECT iin, class FROM accounts WHERE id = $1`, a.ID).Scan(&iin, &class)
	if iin == nil || *iin != "IIN900101300123" || class != "gold" {
		t.Fatalf("indexed columns: iin %v, class %s", iin, class)
	}
	if err := s2.SyncFeed(bg); err != nil {
		t.Fatal(err)
	}
	changes, _ := sub.Take()
	if len(changes) != 1 || changes[0].Kind != store.AccountChanged || changes[0].Account != a.ID {
		t.Fatalf("the other node saw %+v, want AccountChanged", changes)
	}
	// No action: no audit entry; by id works too.
	before := lastAudit(t, s).Seq
	if _, err := s2.UpdateAccountByID(bg, a.ID, "", func(x *accounts.Account) error { x.Consent = nil; return nil }, op); err != nil {
		t.Fatal(err)
	}
	if e := lastAudit(t, s); e.Seq != before {
		t.Fatalf("an update without action wrote %+v", e)
	}
	s.pool.QueryRow(bg, `SELECT iin FROM accounts WHERE id = $1`, a.ID).Scan(&iin)
	if iin != nil {
		t.Fatalf("the IIN column kept %s after the consent went", *iin)
	}
	// Concurrent updates on two nodes: each fn sees the other's
	// result (it runs on the locked row), so none is lost.
	var runs atomic.Int32
	done := make(chan error, 20)
	for i := range 20 {
		n := []*Store{s, s2}[i%2]
		go func() {
			_, err := n.UpdateAccount(bg, a.Address(), "", func(x *accounts.Account) error {
				runs.Add(1)
				x.Phone = fmt.Sprintf("%s+", x.Phone)
				return nil
			}, op)
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := s.AccountByID(a.ID); len(b.Phone) != len(a.Phone)+20 {
		t.Fatalf("after 20 concurrent updates the phone is %q", b.Phone)
	}
}

// TestAccountLists: ListAccounts pages by id, with or without a state;
// CountState counts from the state index; AccountsUnusedSince pages by
// last use, leaving purged accounts out.
func TestAccountLists(t *testing.T) {
	s := openTest(t, false)
	var ids []uint64
	for i := range 5 {
		ids = append(ids, newAccount(t, s, fmt.Sprintf("u%d@example.kz", i)).ID)
	}
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// u3, u1, u4 unused since 2020 (u1 and u4 in the same second,
	// fractions apart), u0 and u2 blocked and purged.
	uses := map[int]time.Time{3: base, 1: base.Add(time.Hour + 300*time.Millisecond), 4: base.Add(time.Hour + 700*time.Millisecond)}
	for i, at := range uses {
		if _, err := s.UpdateAccountByID(bg, ids[i], "", func(x *accounts.Account) error { x.LastUseAt = at; return nil }, op); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateAccountByID(bg, ids[0], "user.block", func(x *accounts.Account) error { return x.Block("spam", base) }, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAccountByID(bg, ids[2], "", func(x *accounts.Account) error {
		x.State, x.LastUseAt = accounts.Purged, base
		return nil
	}, op); err != nil {
		t.Fatal(err)
	}
	for st, want := range map[accounts.State]int64{accounts.Active: 3, accounts.Blocked: 1, accounts.Purged: 1, accounts.PendingDeletion: 0} {
		if n, err := s.CountState(st); err != nil || n != want {
			t.Fatalf("CountState(%s) = %d %v, want %d", st, n, err, want)
		}
	}
	var all []uint64
	for after := uint64(0); ; {
		page, err := s.ListAccounts(store.AccountFilter{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, a := range page {
			all = append(all, a.ID)
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(all) != fmt.Sprint(ids) {
		t.Fatalf("ListAccounts pages: %v, want %v", all, ids)
	}
	active, err := s.ListAccounts(store.AccountFilter{State: accounts.Active, After: ids[1]})
	if err != nil || len(active) != 2 || active[0].ID != ids[3] || active[1].ID != ids[4] {
		t.Fatalf("active after u1: %+v %v", active, err)
	}
	if l, _ := s.ListAccounts(store.AccountFilter{State: accounts.Blocked}); len(l) != 1 || l[0].ID != ids[0] {
		t.Fatalf("blocked: %+v", l)
	}

	// Unused before 2021: u3, then u1 and u4 (same second, id order),
	// and u0 (blocked, last used at registration: no); u2 is purged.
	var unused []uint64
	var afterUse time.Time
	var afterID uint64
	for {
		page, err := s.AccountsUnusedSince(base.AddDate(1, 0, 0), afterUse, afterID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		unused = append(unused, page[0].ID)
		afterUse, afterID = page[0].LastUseAt, page[0].ID
	}
	if want := []uint64{ids[3], ids[1], ids[4]}; fmt.Sprint(unused) != fmt.Sprint(want) {
		t.Fatalf("unused pages: %v, want %v", unused, want)
	}
	// The bound is a whole second, as the embedded store's index: a
	// use in the bound's second is not before it.
	if l, _ := s.AccountsUnusedSince(base.Add(time.Hour+900*time.Millisecond), time.Time{}, 0, 10); len(l) != 1 || l[0].ID != ids[3] {
		t.Fatalf("unused before 01:00:00.9: %+v", l)
	}
	if l, _ := s.AccountsUnusedSince(base, time.Time{}, 0, 10); len(l) != 0 {
		t.Fatalf("unused before u3's own use: %+v", l)
	}
}

// TestAPITokens: a token is found by its secret's hash; a name or a
// secret cannot be used twice; revoking takes its idempotent answers
// with it; answers are replayed only while recent, and pruned a
// bounded number at a time.
func TestAPITokens(t *testing.T) {
	s := openTest(t, false)
	clk := withClock(s)
	h1, h2 := store.TokenHash("secret-1"), store.TokenHash("secret-2")
	if err := s.AddAPIToken(bg, store.APIToken{Name: "portal", Role: "provision", CreatedBy: "tester"}, h1, op); err != nil {
		t.Fatal(err)
	}
	if e := lastAudit(t, s); e.Action != "token.add" || e.Account != "token:portal" || e.Reason != "provision" {
		t.Fatalf("audit: %+v", e)
	}
	if err := s.AddAPIToken(bg, store.APIToken{Name: "portal", Role: "audit"}, h2, op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second portal: %v, want ErrExists", err)
	}
	if err := s.AddAPIToken(bg, store.APIToken{Name: "other", Role: "audit"}, h1, op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a secret used twice: %v, want ErrExists", err)
	}
	if err := s.AddAPIToken(bg, store.APIToken{Name: "auditor", Role: "audit"}, h2, op); err != nil {
		t.Fatal(err)
	}
	tok, ok, err := s.APITokenByHash(h1)
	if err != nil || !ok || tok.Name != "portal" || tok.Role != "provision" || !tok.CreatedAt.Equal(clk.now()) {
		t.Fatalf("APITokenByHash: %+v %v %v", tok, ok, err)
	}
	if _, ok, err := s.APITokenByHash(store.TokenHash("nope")); ok || err != nil {
		t.Fatalf("unknown secret: %v %v", ok, err)
	}
	list, err := s.APITokens()
	if err != nil || len(list) != 2 || list[0].Name != "auditor" || list[1].Name != "portal" {
		t.Fatalf("APITokens: %+v %v", list, err)
	}

	r := store.IdempotentResult{RequestHash: "h", Status: 201, Account: 7}
	if err := s.RecordIdempotent(bg, "portal", "k1", r); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if err := s.RecordIdempotent(bg, "portal", "k2", store.IdempotentResult{Status: 409, ContentType: "application/problem+json", Body: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Idempotent("portal", "k1", clk.now().Add(-2*time.Hour))
	if err != nil || !ok || got.Status != 201 || got.Account != 7 || got.RequestHash != "h" {
		t.Fatalf("Idempotent(k1): %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.Idempotent("portal", "k1", clk.now().Add(-time.Minute)); ok {
		t.Fatal("an answer older than notBefore was replayed")
	}
	if got, ok, _ := s.Idempotent("portal", "k2", clk.now().Add(-time.Minute)); !ok || !bytes.Equal(got.Body, []byte(`{"x":1}`)) {
		t.Fatalf("Idempotent(k2): %+v %v", got, ok)
	}
	if _, ok, _ := s.Idempotent("auditor", "k1", time.Time{}); ok {
		t.Fatal("another token's answer was replayed")
	}
	if n, err := s.PruneIdempotent(bg, clk.now().Add(-time.Minute), 10); err != nil || n != 1 {
		t.Fatalf("PruneIdempotent: %d %v, want 1", n, err)
	}
	if _, ok, _ := s.Idempotent("portal", "k1", time.Time{}); ok {
		t.Fatal("a pruned answer is still there")
	}
	for i := range 5 {
		s.RecordIdempotent(bg, "auditor", fmt.Sprint(i), r)
	}
	clk.add(time.Hour)
	if n, _ := s.PruneIdempotent(bg, clk.now(), 3); n != 3 {
		t.Fatalf("PruneIdempotent with limit 3 removed %d", n)
	}

	if err := s.RevokeAPIToken(bg, "portal", op); err != nil {
		t.Fatal(err)
	}
	if e := lastAudit(t, s); e.Action != "token.revoke" || e.Account != "token:portal" {
		t.Fatalf("audit: %+v", e)
	}
	if err := s.RevokeAPIToken(bg, "portal", op); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second revoke: %v, want ErrNotFound", err)
	}
	if _, ok, _ := s.APITokenByHash(h1); ok {
		t.Fatal("a revoked token is still found")
	}
	if _, ok, _ := s.Idempotent("portal", "k2", time.Time{}); ok {
		t.Fatal("a revoked token's answer survived it")
	}
	// A new token of the old name and secret is a new token.
	if err := s.AddAPIToken(bg, store.APIToken{Name: "portal", Role: "provision"}, h1, op); err != nil {
		t.Fatal(err)
	}
}

// TestAuditList: ListAudit pages in order, filters by account, by the
// account's id (leaving out the address's other holder) and by time;
// PruneAudit removes old entries from the old end in batches and stops
// at the first recent one.
func TestAuditList(t *testing.T) {
	s := openTest(t, false)
	clk := withClock(s)
	start := clk.now()
	for i := range 5 {
		if err := s.AppendAudit(bg, store.AuditEntry{Actor: store.ActorPolicy, Action: "test", Account: "x@example.kz", AccountID: 1, Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Minute)
	}
	s.AppendAudit(bg, store.AuditEntry{Actor: store.ActorPolicy, Action: "test", Account: "x@example.kz", AccountID: 2, Reason: "other holder"})
	s.AppendAudit(bg, store.AuditEntry{Actor: store.ActorPolicy, Action: "test", Account: "x@example.kz", Reason: "before ids"})
	s.AppendAudit(bg, store.AuditEntry{Actor: store.ActorSystem, Action: "test", Reason: "no account"})

	var all []store.AuditEntry
	for after := uint64(0); ; {
		page, err := s.ListAudit(store.AuditFilter{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) != 8 || all[0].Reason != "0" || all[7].Reason != "no account" || all[0].Seq >= all[1].Seq {
		t.Fatalf("all entries: %+v", all)
	}
	if !all[1].At.Equal(start.Add(time.Minute)) {
		t.Fatalf("entry time %v", all[1].At)
	}
	byAcct, _ := s.ListAudit(store.AuditFilter{Account: "x@example.kz"})
	if len(byAcct) != 7 {
		t.Fatalf("by account: %d entries, want 7", len(byAcct))
	}
	byID, _ := s.ListAudit(store.AuditFilter{Account: "x@example.kz", AccountID: 1})
	if len(byID) != 6 || byID[5].Reason != "before ids" {
		t.Fatalf("by account id: %+v", byID)
	}
	page, _ := s.ListAudit(store.AuditFilter{Account: "x@example.kz", After: byAcct[1].Seq, Limit: 2})
	if len(page) != 2 || page[0].Reason != "2" || page[1].Reason != "3" {
		t.Fatalf("by account, second page: %+v", page)
	}
	since, _ := s.ListAudit(store.AuditFilter{Since: start.Add(3 * time.Minute)})
	if len(since) != 5 || since[0].Reason != "3" {
		t.Fatalf("since 3 minutes in: %+v", since)
	}
	if l, _ := s.ListAudit(store.AuditFilter{Account: "nobody@example.kz"}); len(l) != 0 {
		t.Fatalf("nobody's entries: %+v", l)
	}

	n, err := s.PruneAudit(bg, start.Add(3*time.Minute), 2)
	if err != nil || n != 3 {
		t.Fatalf("PruneAudit: %d %v, want 3", n, err)
	}
	rest, _ := s.ListAudit(store.AuditFilter{})
	if len(rest) != 5 || rest[0].Reason != "3" {
		t.Fatalf("after pruning: %+v", rest)
	}
	if n, _ := s.PruneAudit(bg, start, 10); n != 0 {
		t.Fatalf("pruning nothing removed %d", n)
	}
}

// TestLogins: records come newest first, two at the same nanosecond
// both kept; a limit bounds them; pruning goes by time across accounts
// in batches.
func TestLogins(t *testing.T) {
	s := openTest(t, false)
	at := time.Date(2025, 1, 1, 0, 0, 0, 5, time.UTC)
	for i, svc := range []string{"imap", "imap", "submission"} {
		r := store.LoginRecord{At: at.Add(time.Duration(i/2) * time.Hour), Service: svc, Address: "192.0.2.1", Outcome: "ok"}
		if err := s.RecordLogin(bg, 1, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordLogin(bg, 2, store.LoginRecord{At: at, Service: "imap", Outcome: "failed"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Logins(1, 0)
	if err != nil || len(got) != 3 || got[0].Service != "submission" || !got[2].At.Equal(at) || !got[1].At.Equal(at) {
		t.Fatalf("Logins(1): %+v %v", got, err)
	}
	if got, _ := s.Logins(1, 1); len(got) != 1 || got[0].Service != "submission" {
		t.Fatalf("Logins(1, 1): %+v", got)
	}
	if got, _ := s.Logins(3, 0); len(got) != 0 {
		t.Fatalf("Logins of nobody: %+v", got)
	}
	n, err := s.PruneLogins(bg, at.Add(time.Minute), 1)
	if err != nil || n != 3 {
		t.Fatalf("PruneLogins: %d %v, want 3", n, err)
	}
	if got, _ := s.Logins(1, 0); len(got) != 1 || got[0].Service != "submission" {
		t.Fatalf("after pruning: %+v", got)
	}
	if got, _ := s.Logins(2, 0); len(got) != 0 {
		t.Fatalf("account 2 after pruning: %+v", got)
	}
}

// TestConsent: a consent is recorded with its CMS object for the
// account the statement names; an IIN bound to one account is refused
// for another, on any node, unless sharing is allowed; a purge (sealed
// or not) releases the binding.
func TestConsent(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	clk := withClock(s)
	a := newAccount(t, s, "alice@example.kz")
	b := newAccount(t, s, "bob@example.kz")
	c := newAccount(t, s, "carol@example.kz")
	consent := func(iin string) *accounts.Consent {
		return &accounts.Consent{Subject: "ALICE", IIN: iin, Verified: true, RecordedAt: clk.now().Add(123 * time.Nanosecond)}
	}
	ca := consent("IIN900101300123")
	got, err := s.RecordConsent(bg, "Alice@example.kz", a.ID, ca, []byte("cms-a"), false, op)
	if err != nil || got.Consent == nil || got.Consent.IIN != ca.IIN {
		t.Fatalf("RecordConsent: %+v %v", got, err)
	}
	if e := lastAudit(t, s); e.Action != "user.consent" || e.Account != "alice@example.kz" {
		t.Fatalf("audit: %+v", e)
	}
	if cms, err := s2.ConsentCMS(a.ID, ca.RecordedAt.UnixNano()); err != nil || string(cms) != "cms-a" {
		t.Fatalf("ConsentCMS: %q %v", cms, err)
	}
	if _, err := s.ConsentCMS(a.ID, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConsentCMS of no consent: %v, want ErrNotFound", err)
	}
	// Alice again with the same IIN: her own binding is no obstacle.
	if _, err := s.RecordConsent(bg, "alice@example.kz", a.ID, consent(ca.IIN), []byte("cms-a2"), false, op); err != nil {
		t.Fatal(err)
	}
	// Bob, through the other node: refused.
	_, err = s2.RecordConsent(bg, "bob@example.kz", b.ID, consent(ca.IIN), []byte("cms-b"), false, op)
	if !errors.Is(err, store.ErrIINBound) {
		t.Fatalf("an IIN bound on one node, recorded on the other: %v, want ErrIINBound", err)
	}
	if want := "IIN900101300123 is bound to alice@example.kz"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if acct, _ := s.AccountByID(b.ID); acct.Consent != nil {
		t.Fatal("a refused consent was stored")
	}
	// Allowed to share, it is recorded.
	if _, err := s2.RecordConsent(bg, "bob@example.kz", b.ID, consent(ca.IIN), []byte("cms-b"), true, op); err != nil {
		t.Fatal(err)
	}
	// A vouched (unverified) consent binds nothing.
	vouched := consent("IIN800101300999")
	vouched.Verified, vouched.Vouched = false, true
	if _, err := s.RecordConsent(bg, "carol@example.kz", c.ID, vouched, nil, false, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(bg, "bob@example.kz", b.ID, consent(vouched.IIN), nil, false, op); err != nil {
		t.Fatalf("an IIN only vouched for is refused: %v", err)
	}

	// The statement named another account, or the account is gone.
	if _, err := s.RecordConsent(bg, "alice@example.kz", b.ID, consent("IIN1"), nil, false, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("statement naming another account: %v, want ErrNoAccount", err)
	}
	if _, err := s.RecordConsent(bg, "nobody@example.kz", a.ID, consent("IIN1"), nil, false, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("unknown address: %v, want ErrNoAccount", err)
	}

	// Alice and Bob purged, Alice's content sealed: the IIN is free
	// for Carol.
	for _, x := range []accounts.Account{a, b} {
		if _, err := s.UpdateAccount(bg, x.Address(), "user.delete", func(y *accounts.Account) error { return y.StartDeletion("test", clk.now()) }, op); err != nil {
			t.Fatal(err)
		}
	}
	seal := map[uint64]time.Duration{a.ID: 365 * 24 * time.Hour, b.ID: 0}
	for _, x := range []accounts.Account{a, b} {
		if _, err := s.PurgeAccount(bg, x.Address(), clk.now().Add(60*24*time.Hour), seal[x.ID], op); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RecordConsent(bg, "alice@example.kz", a.ID, consent("IIN1"), nil, false, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("consent of a purged account: %v, want ErrNoAccount", err)
	}
	if _, err := s2.RecordConsent(bg, "carol@example.kz", c.ID, consent(ca.IIN), []byte("cms-c"), false, op); err != nil {
		t.Fatalf("an IIN of purged accounts only: %v", err)
	}
	// The sealed tombstone keeps its consent and CMS object; the other
	// lost both.
	if acct, _ := s.AccountByID(a.ID); acct.Consent == nil {
		t.Fatal("a sealed tombstone lost its consent")
	}
	if _, err := s.ConsentCMS(a.ID, ca.RecordedAt.UnixNano()); err != nil {
		t.Fatalf("a sealed tombstone's CMS object: %v", err)
	}
	if acct, _ := s.AccountByID(b.ID); acct.Consent != nil {
		t.Fatal("a purged account kept its consent")
	}
	var n int
	s.pool.QueryRow(bg, `SELECT count(*) FROM consent_cms WHERE account = $1`, b.ID).Scan(&n)
	if n != 0 {
		t.Fatalf("a purged account kept %d CMS objects", n)
	}
}

// TestConsentRace: two nodes binding one IIN to two accounts at once:
// exactly one wins.
func TestConsentRace(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	for round := range 5 {
		a := newAccount(t, s, fmt.Sprintf("a%d@example.kz", round))
		b := newAccount(t, s, fmt.Sprintf("b%d@example.kz", round))
		iin := fmt.Sprintf("IIN%012d", round)
		errs := make(chan error, 2)
		for i, x := range []accounts.Account{a, b} {
			n := []*Store{s, s2}[i]
			go func() {
				_, err := n.RecordConsent(bg, x.Address(), x.ID, &accounts.Consent{IIN: iin, Verified: true, RecordedAt: time.Now()}, []byte("cms"), false, op)
				errs <- err
			}()
		}
		e1, e2 := <-errs, <-errs
		if (e1 == nil) == (e2 == nil) || !(errors.Is(e1, store.ErrIINBound) || errors.Is(e2, store.ErrIINBound)) {
			t.Fatalf("round %d: %v and %v, want one success and one ErrIINBound", round, e1, e2)
		}
	}
}
