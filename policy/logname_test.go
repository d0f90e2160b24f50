package policy

import (
	"net/netip"
	"strings"
	"testing"
)

// TestLoginOf: a refused login carries its user name as logs may show
// it: an account's address as is, anything else as a keyed hash that
// is the same for the same name.
func TestLoginOf(t *testing.T) {
	e := hashEnv(t, HashLimits{})
	ip := netip.MustParseAddr("192.0.2.1")
	login := func(user string) string {
		_, _, err := e.Authenticate(ctx, "imap", user, "wrong password", ip)
		if err == nil {
			t.Fatalf("login as %q succeeded", user)
		}
		return LoginOf(err)
	}
	if got := login(" Sam@Example.kz "); got != "sam@example.kz" {
		t.Errorf("an account's address logs as %q, want sam@example.kz", got)
	}
	secret := "Glacier-Otter-Pelican-9182"
	a, b := login(secret), login(secret)
	if !strings.HasPrefix(a, "unknown:") || len(a) != len("unknown:")+8 || strings.Contains(a, strings.ToLower(secret)) {
		t.Errorf("a name that is no account logs as %q, want unknown: and 8 hex digits", a)
	}
	if a != b || a == login("another-guess@example.kz") {
		t.Errorf("hashes %q, %q: want the same for the same name and another for another", a, b)
	}
	if got := login(""); got != "" {
		t.Errorf("an empty name logs as %q", got)
	}
}
