package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestStaffInAudit: every operator action in the audit log names the OS
// user who ran the command, directly and through serve's control socket
// (where the kernel says who is at the other end); actor stays
// "operator".
func TestStaffInAudit(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		u := a.addUser("staffed")
		a.OK("user", "block", u.Address, "--reason", "audit test")
		var entries []map[string]any
		a.JSON(&entries, "audit", "--account", u.Address, "--staff")
		want := selfStaff()
		if !strings.Contains(want, "uid "+strconv.Itoa(os.Getuid())) {
			t.Fatalf("selfStaff() = %q", want)
		}
		var n int
		for _, e := range entries {
			if e["actor"] != "operator" {
				continue
			}
			n++
			if e["staff"] != want {
				t.Errorf("%v by %v: staff %v, want %q", e["action"], e["actor"], e["staff"], want)
			}
		}
		if n < 2 {
			t.Errorf("%d operator entries for %s, want user.add and user.block: %v", n, u.Address, entries)
		}
		if out := a.OK("audit", "--account", u.Address); !strings.Contains(out, "operator "+want) {
			t.Errorf("audit lacks the staff:\n%s", out)
		}
	})
}
