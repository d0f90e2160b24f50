package store

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestAPITokens: a token is found by its secret's hash only, names are
// unique, revoking removes it and its idempotency records, and old
// records are pruned in bounded steps.
func TestAPITokens(t *testing.T) {
	s, clk := openTest(t)
	h1, h2 := TokenHash("abox_one"), TokenHash("abox_two")
	if err := s.AddAPIToken(ctx, APIToken{Name: "portal", Role: "portal"}, h1, op); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAPIToken(ctx, APIToken{Name: "portal", Role: "auditor"}, h2, op); !errors.Is(err, ErrExists) {
		t.Fatalf("second token named portal: %v", err)
	}
	if err := s.AddAPIToken(ctx, APIToken{Name: "ops", Role: "operator"}, h2, op); err != nil {
		t.Fatal(err)
	}
	if tok, ok, err := s.APITokenByHash(h1); err != nil || !ok || tok.Name != "portal" || tok.Role != "portal" || tok.CreatedAt.IsZero() {
		t.Fatalf("lookup: %+v %v %v", tok, ok, err)
	}
	if _, ok, _ := s.APITokenByHash(TokenHash("abox_three")); ok {
		t.Fatal("an unknown secret was found")
	}
	list, _ := s.APITokens()
	if len(list) != 2 || list[0].Name != "ops" || list[1].Name != "portal" {
		t.Fatalf("list: %+v", list)
	}
	// The secret itself is nowhere in the file.
	_ = s.viewNow(func(tx *bolt.Tx) error {
		for k, v := range dumpAll(tx) {
			if contains(k+v, "abox_one") || contains(k+v, hexOf("abox_one")) {
				t.Errorf("the secret is stored: %s", k)
			}
		}
		return nil
	})

	r := IdempotentResult{RequestHash: "h", Status: 201, ContentType: "application/json", Body: []byte(`{"x":1}`)}
	if err := s.RecordIdempotent(ctx, "portal", "k1", r); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.Idempotent("portal", "k1", clk.Now().Add(-time.Hour)); !ok || got.Status != 201 || string(got.Body) != `{"x":1}` {
		t.Fatalf("idempotent: %+v %v", got, ok)
	}
	if _, ok, _ := s.Idempotent("ops", "k1", clk.Now().Add(-time.Hour)); ok {
		t.Fatal("another token's key answered")
	}
	clk.Add(25 * time.Hour)
	if _, ok, _ := s.Idempotent("portal", "k1", clk.Now().Add(-24*time.Hour)); ok {
		t.Fatal("an expired key answered")
	}
	s.RecordIdempotent(ctx, "portal", "k2", r)
	if n, err := s.PruneIdempotent(ctx, clk.Now().Add(-24*time.Hour), 100); err != nil || n != 1 {
		t.Fatalf("prune: %d %v, want the one old record", n, err)
	}
	if err := s.RevokeAPIToken(ctx, "portal", op); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.APITokenByHash(h1); ok {
		t.Fatal("revoked token still found")
	}
	if _, ok, _ := s.Idempotent("portal", "k2", time.Time{}); ok {
		t.Fatal("a revoked token's idempotency record stayed")
	}
	if err := s.RevokeAPIToken(ctx, "portal", op); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	es, _ := s.ListAudit(AuditFilter{})
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action+" "+e.Account)
	}
	want := []string{"token.add token:portal", "token.add token:ops", "token.revoke token:portal"}
	for _, w := range want {
		found := false
		for _, a := range actions {
			found = found || a == w
		}
		if !found {
			t.Errorf("audit lacks %q: %v", w, actions)
		}
	}
	mustCheck(t, s)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// hexOf is how dumpAll renders bytes.
func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }
