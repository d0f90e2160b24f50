package main

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"abox/cmd/abox/aboxtest"
)

// TestEveryConfigKeyIsAFlag: the README promises that config keys are
// flag names; `abox serve --help` lists every key of Config as a flag
// (sweep-interval was an unknown flag), and a key given as a flag is
// validated like the file's.
func TestEveryConfigKeyIsAFlag(t *testing.T) {
	t.Parallel()
	help, err := exec.Command(aboxtest.Bin(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, help)
	}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		key := ct.Field(i).Tag.Get("toml")
		if key == "" || key == "data" {
			continue // --data is the global flag
		}
		if !strings.Contains(string(help), "--"+key+" ") {
			t.Errorf("serve --help lacks --%s", key)
		}
	}
	e := aboxtest.New(t)
	r := e.Fail(1, "serve", "--sweep-interval", "bogus")
	if !strings.Contains(r.Stderr, "sweep-interval") {
		t.Errorf("serve --sweep-interval bogus: %q, want the key named", r.Stderr)
	}
}

// TestVersion: abox --version names the build.
func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(aboxtest.Bin(t), "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "abox ") || !strings.Contains(string(out), "(go") {
		t.Errorf("abox --version: %q, %v", out, err)
	}
}
