package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedImports is CONVENTIONS.md's table: the abox packages each
// package may import directly. smtpd still imports store; the outbound
// issue's first step (one acceptance path owned by policy) removes it.
var allowedImports = map[string][]string{
	"abox/accounts":       {},
	"abox/store":          {"abox/accounts", "abox/store/msginfo"},
	"abox/store/msginfo":  {},
	"abox/policy":         {"abox/accounts", "abox/store", "abox/store/msginfo"},
	"abox/smtpd":          {"abox/accounts", "abox/policy", "abox/store"},
	"abox/imapd":          {"abox/accounts", "abox/policy", "abox/store", "abox/store/msginfo", "abox/imapd/wire"},
	"abox/imapd/wire":     {},
	"abox/cmd/abox":       {"*"},
	"abox/cmd/abox-bench": {"*"},
}

// TestPackageBoundaries keeps the arrows of CONVENTIONS.md true: which
// abox package may import which, only store imports bbolt, nothing
// imports cmd, and the protocol packages never import each other.
func TestPackageBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "abox/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		seen[pkg] = true
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("%s is not in the boundaries table (CONVENTIONS.md): add it with what it may import", pkg)
			continue
		}
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(imp, "go.etcd.io/bbolt") && pkg != "abox/store":
				t.Errorf("%s imports %s: only store may", pkg, imp)
			case strings.HasPrefix(imp, "abox/cmd"):
				t.Errorf("%s imports %s: nothing imports cmd", pkg, imp)
			case strings.HasPrefix(imp, "abox/") && !slices.Contains(allowed, "*") && !slices.Contains(allowed, imp):
				t.Errorf("%s imports %s, which CONVENTIONS.md does not allow", pkg, imp)
			}
		}
	}
	for pkg := range allowedImports {
		if !seen[pkg] {
			t.Errorf("the boundaries table names %s, which no longer exists", pkg)
		}
	}
}
