package main

// Helpers for the integration tests in cli_test.go, on the harness of the
// abox binary (aboxtest): the real binary run as a subprocess against a
// temporary data directory, and `abox serve` on it.

import (
	"strings"
	"testing"

	"abox/cmd/abox/aboxtest"
)

func TestMain(m *testing.M) { aboxtest.Main(m) }

// abox runs the CLI against one data directory; when srv is set and
// running, a server runs on that directory and the CLI goes through its
// socket.
type abox struct {
	*aboxtest.Env
	t   *testing.T
	srv *aboxtest.Server
}

// newAbox makes an environment with an existing, empty data directory,
// as an operator's would be: read-only commands refuse a directory that
// does not exist.
func newAbox(t *testing.T) *abox {
	e := aboxtest.New(t)
	e.Hostname = "test.local"
	return &abox{Env: e, t: t}
}

// aboxAt is an environment on an existing data directory.
func aboxAt(t *testing.T, dir string) *abox {
	a := newAbox(t)
	a.Dir = dir
	return a
}

// bothModes runs fn once with no server ("direct") and once with a server
// running on the data directory ("served"), each in parallel with a fresh
// data directory.
func bothModes(t *testing.T, fn func(t *testing.T, a *abox)) {
	t.Helper()
	for _, mode := range []string{"direct", "served"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			a := newAbox(t)
			if mode == "served" {
				a.srv = a.Start()
			}
			fn(t, a)
			if a.srv != nil {
				// CONVENTIONS: never log passwords.
				for _, pw := range []string{goodPassword, otherPassword} {
					if strings.Contains(a.srv.Log.String(), pw) {
						t.Errorf("the server logged a password")
					}
				}
			}
		})
	}
}
