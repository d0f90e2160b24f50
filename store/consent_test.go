package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

func verifiedConsent(iin string, at time.Time) *accounts.Consent {
	return &accounts.Consent{Subject: "CN=T", SHA256: "ab", Verified: true, IIN: iin, RecordedAt: at}
}

// TestConsentIINBinding: one IIN, one account not purged, unless the
// operator shares it; withdrawal and purge release it; a purge without
// a legal hold takes the signed objects and the certificate's name and
// IIN with it, the others' stay (a real bbolt file, reopened).
func TestConsentIINBinding(t *testing.T) {
	s, clk := openTest(t)
	alice := addAccount(t, s, "alice@post.kz")
	bob := addAccount(t, s, "bob@post.kz")
	carol := addAccount(t, s, "carol@post.kz")
	now := clk.Now()
	if _, err := s.RecordConsent(ctx, "alice@post.kz", alice.ID, verifiedConsent("900101300016", now), []byte("cms-a"), false, op); err != nil {
		t.Fatal(err)
	}
	// Again for alice (a new certificate): same account, allowed.
	if _, err := s.RecordConsent(ctx, "alice@post.kz", alice.ID, verifiedConsent("900101300016", now.Add(time.Second)), []byte("cms-a2"), false, op); err != nil {
		t.Fatal(err)
	}
	_, err := s.RecordConsent(ctx, "bob@post.kz", bob.ID, verifiedConsent("900101300016", now), []byte("cms-b"), false, op)
	if !errors.Is(err, ErrIINBound) {
		t.Fatalf("second account with the same IIN: %v, want ErrIINBound", err)
	}
	if got, _ := s.Account("bob@post.kz"); got.Consent != nil {
		t.Error("the refused consent was recorded for bob")
	}
	if _, err := s.RecordConsent(ctx, "carol@post.kz", bob.ID, verifiedConsent("900101300024", now), []byte("cms-c"), false, op); !errors.Is(err, ErrNoAccount) {
		t.Errorf("statement naming another account id: %v", err)
	}
	if _, err := s.RecordConsent(ctx, "carol@post.kz", carol.ID, verifiedConsent("900101300016", now), []byte("cms-c"), true, op); err != nil {
		t.Fatalf("shared on the operator's word: %v", err)
	}
	if ids, _ := s.IINAccounts("900101300016"); !slices.Equal(ids, []uint64{alice.ID, carol.ID}) {
		t.Errorf("bound to %v, want alice and carol", ids)
	}
	// Carol withdraws; alice is deleted and purged: both bindings go.
	if _, err := s.UpdateAccount(ctx, "carol@post.kz", "user.consent.revoke", func(a *accounts.Account) error { a.Consent = nil; return nil }, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAccount(ctx, "alice@post.kz", "user.delete", func(a *accounts.Account) error { return a.StartDeletion("test", clk.Now()) }, op); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.IINAccounts("900101300016"); !slices.Equal(ids, []uint64{alice.ID}) {
		t.Errorf("after carol's withdrawal and alice's deletion request: %v, want alice only (not purged yet)", ids)
	}
	clk.Add(32 * 24 * time.Hour)
	if _, err := s.PurgeAccount(ctx, "alice@post.kz", clk.Now(), 0, op); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.IINAccounts("900101300016"); len(ids) != 0 {
		t.Errorf("after alice's purge: %v, want none", ids)
	}
	if _, err := s.RecordConsent(ctx, "bob@post.kz", bob.ID, verifiedConsent("900101300016", clk.Now()), []byte("cms-b"), false, op); err != nil {
		t.Fatalf("bob after alice's purge: %v", err)
	}
	// The purged account's signed objects and certificate details are
	// gone; the others' stay.
	path := s.path
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, at := range []time.Time{now, now.Add(time.Second)} {
		if cms, err := s2.ConsentCMS(alice.ID, at.UnixNano()); !errors.Is(err, ErrNotFound) {
			t.Errorf("alice's CMS after purge and reopen: %q, %v; want it gone", cms, err)
		}
	}
	if a, _ := s2.AccountByID(alice.ID); a.Consent != nil || a.State != accounts.Purged {
		t.Errorf("alice after purge: %+v", a)
	}
	if cms, err := s2.ConsentCMS(carol.ID, now.UnixNano()); err != nil || string(cms) != "cms-c" {
		t.Errorf("carol's withdrawn consent: %q, %v; want it kept", cms, err)
	}
	if ids, _ := s2.IINAccounts("900101300016"); !slices.Equal(ids, []uint64{bob.ID}) {
		t.Errorf("after reopen: %v, want bob", ids)
	}
	mustCheck(t, s2)
	// abox check notices a binding lost or left behind.
	if err := s2.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bConsentIIN)
		if err := b.Delete(iinKey("900101300016", bob.ID)); err != nil {
			return err
		}
		return b.Put(iinKey("900101300024", carol.ID), nil)
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := s2.Check()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 {
		t.Errorf("check after damaging the IIN index: %q, want the missing and the stale entry", rep.Problems)
	}
}

// TestPurgeUnderLegalHoldKeepsConsent: with a legal hold the purged
// account's consent (name, IIN, signed object) stays sealed with the
// content until the hold ends, then goes with it.
func TestPurgeUnderLegalHoldKeepsConsent(t *testing.T) {
	s, clk := openTest(t)
	alice := addAccount(t, s, "alice@post.kz")
	now := clk.Now()
	if _, err := s.RecordConsent(ctx, "alice@post.kz", alice.ID, verifiedConsent("900101300016", now), []byte("cms-a"), false, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAccount(ctx, "alice@post.kz", "user.delete", func(a *accounts.Account) error { return a.StartDeletion("test", clk.Now()) }, op); err != nil {
		t.Fatal(err)
	}
	clk.Add(32 * 24 * time.Hour)
	if _, err := s.PurgeAccount(ctx, "alice@post.kz", clk.Now(), 90*24*time.Hour, op); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountByID(alice.ID); a.Consent == nil || a.Consent.IIN != "900101300016" {
		t.Fatalf("consent under the hold: %+v", a.Consent)
	}
	if cms, err := s.ConsentCMS(alice.ID, now.UnixNano()); err != nil || string(cms) != "cms-a" {
		t.Fatalf("CMS under the hold: %q %v", cms, err)
	}
	if ids, _ := s.IINAccounts("900101300016"); len(ids) != 0 {
		t.Errorf("a purged account still binds its IIN: %v", ids)
	}
	clk.Add(91 * 24 * time.Hour)
	if done, err := s.DestroySealed(ctx, clk.Now(), op); err != nil || len(done) != 1 {
		t.Fatalf("destroy sealed: %v %v", done, err)
	}
	if a, _ := s.AccountByID(alice.ID); a.Consent != nil {
		t.Errorf("consent after the hold: %+v", a.Consent)
	}
	if _, err := s.ConsentCMS(alice.ID, now.UnixNano()); !errors.Is(err, ErrNotFound) {
		t.Errorf("CMS after the hold: %v", err)
	}
	mustCheck(t, s)
}
