package accounts

import (
	"strings"
	"testing"
	"time"
)

func TestAppPasswords(t *testing.T) {
	a := &Account{Login: "aigul", Domain: "example.kz"}
	p, secret, err := NewAppPassword("Phone", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Scope != ScopeAll || len(secret) != 19 || strings.Count(secret, "-") != 3 || strings.Contains(p.SHA256, secret) {
		t.Fatalf("new: %+v %q", p, secret)
	}
	if err := a.AddAppPassword(p); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAppPassword(p); err == nil {
		t.Fatal("the same name twice")
	}
	for _, typed := range []string{secret, strings.ToUpper(secret), strings.ReplaceAll(secret, "-", " "), strings.ReplaceAll(secret, "-", "")} {
		if got := a.MatchAppPassword(typed); got == nil || got.Name != "Phone" {
			t.Errorf("typed as %q: not matched", typed)
		}
	}
	wrong := "b" + secret[1:]
	if secret[0] == 'b' {
		wrong = "a" + secret[1:]
	}
	if a.MatchAppPassword(wrong) != nil {
		t.Error("a wrong secret matched")
	}
	q, _, _ := NewAppPassword("Laptop", ScopeSubmission, time.Now())
	if !q.Allows(ScopeSubmission) || q.Allows(ScopeIMAP) || !p.Allows(ScopeIMAP) {
		t.Error("scopes")
	}
	if _, _, err := NewAppPassword("x", "pop3", time.Now()); err == nil {
		t.Error("unknown scope accepted")
	}
	if !a.HasAppPassword(&p) {
		t.Error("HasAppPassword")
	}
	if err := a.RevokeAppPassword("phone"); err != nil || a.HasAppPassword(&p) || a.MatchAppPassword(secret) != nil {
		t.Fatalf("revoke: %v", err)
	}
	for i := range MaxAppPasswords {
		x, _, _ := NewAppPassword(strings.Repeat("d", i+1), "", time.Now())
		if err := a.AddAppPassword(x); err != nil {
			t.Fatal(err)
		}
	}
	y, _, _ := NewAppPassword("one too many", "", time.Now())
	if err := a.AddAppPassword(y); err == nil {
		t.Fatal("more than the limit")
	}
}
