package outbound

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoAboxImports: outbound is a leaf of abox (doc.go); the queue, DSN
// and DKIM code sit above it.
func TestNoAboxImports(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "abox/outbound").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if (pkg == "abox" || strings.HasPrefix(pkg, "abox/")) && pkg != "abox/outbound" {
			t.Errorf("outbound depends on %s", pkg)
		}
	}
}
