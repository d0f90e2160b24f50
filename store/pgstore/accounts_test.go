package pgstore

import (
	"errors"
	"testing"

	"abox/accounts"
	"abox/store"
)

// TestCreateAccount: an account gets its id, the default mailboxes and
// a usage row; the address cannot be taken twice; the default classes
// are there from the start.
func TestCreateAccount(t *testing.T) {
	s := openTest(t, false)
	op := store.Audit{Actor: store.ActorOperator}
	if err := s.AddDomain(bg, "example.kz", op); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDomain(bg, "example.kz", op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second AddDomain: %v", err)
	}
	in := accounts.Account{Login: "alice", Domain: "example.kz", Phone: "+77010000000", PasswordHash: "x"}
	a, err := s.CreateAccount(bg, in, op)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.State != accounts.Active || a.Class != accounts.DefaultClassName {
		t.Fatalf("created %+v", a)
	}
	if _, err := s.CreateAccount(bg, in, op); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateAccount: %v", err)
	}
	got, u, err := s.AccountWithUsage("Alice@Example.kz")
	if err != nil || got.ID != a.ID || u != (store.Usage{}) {
		t.Fatalf("AccountWithUsage: %+v %+v %v", got, u, err)
	}
	var n int
	s.pool.QueryRow(bg, `SELECT count(*) FROM mailboxes WHERE account = $1`, a.ID).Scan(&n)
	if n != len(store.DefaultMailboxes) {
		t.Fatalf("%d mailboxes, want %d", n, len(store.DefaultMailboxes))
	}
	if _, err := s.CreateAccount(bg, accounts.Account{Login: "bob", Domain: "nowhere.kz"}, op); !errors.Is(err, store.ErrNoDomain) {
		t.Fatalf("account on an unhosted domain: %v", err)
	}
	s.pool.QueryRow(bg, `SELECT count(*) FROM classes`).Scan(&n)
	if n != len(accounts.DefaultClasses()) {
		t.Fatalf("%d classes seeded, want %d", n, len(accounts.DefaultClasses()))
	}
}
