package store

import (
	"testing"
	"time"

	"abox/accounts"
)

func TestAccountMemoNeverStaleNorShared(t *testing.T) {
	s, _ := openTest(t)
	addAccount(t, s, "alice@example.kz")
	q := int64(1000)
	if _, err := s.UpdateAccount(ctx, "alice@example.kz", "user.set", func(a *accounts.Account) error {
		a.QuotaStorage = &q
		return nil
	}, op); err != nil {
		t.Fatal(err)
	}
	a1, err := s.Account("alice@example.kz")
	if err != nil {
		t.Fatal(err)
	}
	// A caller scribbling on its copy must not change what others read.
	*a1.QuotaStorage = 1
	a1.State = accounts.Blocked
	a2, err := s.AccountByID(a1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *a2.QuotaStorage != 1000 || a2.State != accounts.Active {
		t.Fatalf("memo shared a caller's changes: quota %d state %s", *a2.QuotaStorage, a2.State)
	}
	// A committed change is seen at once, in reads and in write transactions.
	if _, err := s.UpdateAccount(ctx, "alice@example.kz", "user.block", func(a *accounts.Account) error {
		a.State = accounts.Blocked
		return nil
	}, op); err != nil {
		t.Fatal(err)
	}
	a3, err := s.AccountByID(a1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a3.State != accounts.Blocked {
		t.Fatalf("memo served a stale account: %s", a3.State)
	}
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a1.ID}}}); err == nil {
		t.Fatal("delivery to a blocked account succeeded through the memo")
	}
}

func TestAccountMemoIsBounded(t *testing.T) {
	var m acctMemo
	a := &accounts.Account{Login: "x", Domain: "example.kz"}
	raw := func(i uint64) []byte { return []byte{byte(i >> 8), byte(i)} }
	for i := range uint64(acctMemoSize + 100) {
		m.put(i, raw(i), a)
	}
	if len(m.m) > acctMemoSize {
		t.Fatalf("memo holds %d entries, bound %d", len(m.m), acctMemoSize)
	}
	if _, ok := m.get(acctMemoSize+99, raw(acctMemoSize+99)); !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := m.get(acctMemoSize+99, []byte{0xff, 1}); ok {
		t.Fatal("an entry matched other bytes")
	}
}

// TestMessageRecordZones: a record keeps its date's zone offset, and
// records with the same offset share one memoised zone (FixedZone
// allocates per call).
func TestMessageRecordZones(t *testing.T) {
	for _, off := range []int{0, 5 * 3600, -(9*3600 + 30*60), 14 * 3600, -15 * 3600} {
		date := time.Date(2026, 11, 26, 7, 0, 0, 0, time.FixedZone("", off))
		rec := encodeMessage(&Message{UID: 7, InternalDate: date, Flags: []string{FlagSeen}})
		a, err := decodeMessage(7, rec)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := decodeMessage(7, rec)
		if _, got := a.InternalDate.Zone(); got != off || !a.InternalDate.Equal(date) {
			t.Errorf("offset %d: decoded %v (offset %d)", off, a.InternalDate, got)
		}
		if off >= -14*3600 && off <= 14*3600 && a.InternalDate.Location() != b.InternalDate.Location() {
			t.Errorf("offset %d: two decodes made two zones", off)
		}
	}
}
