package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedImports is CONVENTIONS.md's table: the abox packages each
// package may import directly. smtpd no longer imports store: policy
// owns accepting a message (policy/accept.go).
var allowedImports = map[string][]string{
	"abox/accounts": {},
	"abox/store":    {"abox/accounts", "abox/store/msginfo", "abox/evidence"},
	"abox/evidence": {},
	"abox/consent":  {"abox/accounts"},
	// Builds test PKIs and signatures; only tests import it.
	"abox/consent/consenttest": {"abox/consent"},
	"abox/store/msginfo":       {},
	// The distributed backend (issue 18): PostgreSQL and an object
	// store behind the same interfaces as the embedded store.
	"abox/store/pgstore": {"abox/accounts", "abox/store", "abox/store/msginfo", "abox/evidence"},
	// Starts real PostgreSQL and SeaweedFS servers for tests; only
	// tests import it.
	"abox/store/pgstore/pgtest": {},
	// The store conformance suite, written against the interfaces
	// policy and imapd ask; only backends' tests import it.
	"abox/store/storetest": {"abox/accounts", "abox/store", "abox/policy", "abox/imapd"},
	"abox/policy":          {"abox/accounts", "abox/store", "abox/store/msginfo"},
	"abox/smtpd":           {"abox/accounts", "abox/policy"},
	"abox/imapd":           {"abox/accounts", "abox/policy", "abox/store", "abox/store/msginfo", "abox/imapd/wire"},
	"abox/imapd/wire":      {},
	// The SMTP client of outbound mail: a leaf, so the queue, DSNs
	// and DKIM signing can sit above it.
	"abox/outbound":       {},
	"abox/cmd/abox":       {"*"},
	"abox/cmd/abox-bench": {"*"},
	// A sender runs it without abox: standard library only.
	"abox/cmd/abox-verify-receipt": {},
	// The test harness of the binary drives it from outside; only tests
	// import it (testHarness). Its cluster mode starts the private
	// PostgreSQL and SeaweedFS of pgtest.
	"abox/cmd/abox/aboxtest": {"abox/store/pgstore/pgtest"},
}

// testHarness is the one package under cmd that tests of other packages
// may import, and nothing else may.
const testHarness = "abox/cmd/abox/aboxtest"

// TestPackageBoundaries keeps the arrows of CONVENTIONS.md true: which
// abox package may import which, only store imports bbolt, nothing
// imports cmd (but tests import its test harness), and the protocol
// packages never import each other.
func TestPackageBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`, "abox/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	usedByTests := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("go list: unexpected line %q", line)
		}
		pkg, imports, testImports := f[0], strings.Fields(f[1]), strings.Fields(f[2])
		seen[pkg] = true
		for _, imp := range testImports {
			switch {
			case imp == testHarness:
				usedByTests = true
			case strings.HasPrefix(imp, "abox/cmd"):
				t.Errorf("tests of %s import %s: of cmd, tests import only %s", pkg, imp, testHarness)
			}
		}
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("%s is not in the boundaries table (CONVENTIONS.md): add it with what it may import", pkg)
			continue
		}
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(imp, "go.etcd.io/bbolt") && pkg != "abox/store":
				t.Errorf("%s imports %s: only store may", pkg, imp)
			case imp == testHarness:
				t.Errorf("%s imports %s: only tests may", pkg, imp)
			case strings.HasPrefix(imp, "abox/cmd"):
				t.Errorf("%s imports %s: nothing imports cmd", pkg, imp)
			case strings.HasPrefix(imp, "abox/") && !slices.Contains(allowed, "*") && !slices.Contains(allowed, imp):
				t.Errorf("%s imports %s, which CONVENTIONS.md does not allow", pkg, imp)
			}
		}
	}
	if !usedByTests {
		t.Errorf("no test imports %s: is the harness still where this test looks?", testHarness)
	}
	for pkg := range allowedImports {
		if !seen[pkg] {
			t.Errorf("the boundaries table names %s, which no longer exists", pkg)
		}
	}
}
