package aboxtest

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// prepareConfig writes the harness's keys first in the configuration
// every run and server reads, before each run, start and signal, and
// reports whether the cluster mode applies. The keys go first in the
// file (top-level keys must precede any table), whatever the test wrote
// there since: --config FILE when it exists (a missing one stays
// missing: the test expects the refusal), otherwise DIR/abox.toml.
//
// The keys are the cheap password hashing of hashLines (unless
// Env.ProductionHashing, or the configuration names an argon2 key of
// its own) and, in the cluster mode, the keys naming the cluster's
// store, with DIR/abox.toml copied into every node's data directory. A
// configuration naming a store of its own (a test that makes its own
// cluster, such as cmd/abox's postgres_test.go) keeps it, and runs one
// node.
func (e *Env) prepareConfig() bool {
	e.t.Helper()
	c := e.cluster
	e.configMu.Lock()
	defer e.configMu.Unlock()
	if fi, err := os.Stat(e.Dir); err != nil || !fi.IsDir() {
		return false // a test of a missing data directory
	}
	path := e.Config
	if path == "" {
		path = filepath.Join(e.Dir, "abox.toml")
	}
	b, err := os.ReadFile(path)
	if err != nil && (e.Config != "" || !os.IsNotExist(err)) {
		return false // a missing --config file: the test expects the refusal
	}
	var add []byte
	cluster := c != nil
	if cluster {
		if !storeKey.Match(b) {
			add = append(add, c.lines...)
		} else if !bytes.Contains(b, []byte(strconv.Quote(c.store.DSN))) {
			cluster = false
		}
	}
	if !e.ProductionHashing && !argon2Key.Match(b) {
		add = append(add, hashLines...)
	}
	if len(add) > 0 {
		b = append(add, b...)
		e.writeConfig(path, b)
	}
	if !cluster {
		return false
	}
	for i := 1; i < c.nodes; i++ {
		if err := os.MkdirAll(nodeDir(e.Dir, i), 0o700); err != nil {
			e.t.Fatal(err)
		}
		if e.Config != "" {
			continue
		}
		p := filepath.Join(nodeDir(e.Dir, i), "abox.toml")
		if old, err := os.ReadFile(p); err != nil || !bytes.Equal(old, b) {
			e.writeConfig(p, b)
		}
	}
	return true
}

// hashLines make argon2id cheap (64 KiB, one pass) for the passwords an
// Env sets: the code path is the same, and what costs 33 ms a login at
// the production cost takes 280 ms under the race detector, on
// thousands of logins and user adds in the suite. A test about the
// cost itself (the bound on concurrent checks) sets
// Env.ProductionHashing; the production default is accounts' own test.
const hashLines = "# aboxtest: cheap password hashing (Env.ProductionHashing keeps the default)\n" +
	"argon2-memory-kib = 64\nargon2-iterations = 1\n"

// argon2Key finds a configuration that sets the hashing cost itself.
var argon2Key = regexp.MustCompile(`(?m)^[ \t]*argon2-`)

func (e *Env) writeConfig(path string, b []byte) {
	e.t.Helper()
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		e.t.Fatal(err)
	}
}
