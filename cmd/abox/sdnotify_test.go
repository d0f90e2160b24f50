package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// TestSystemdNotify: under systemd (NOTIFY_SOCKET), serve says READY=1
// once its listeners are up, pings the watchdog (WATCHDOG_USEC) while
// its store answers, and says STOPPING=1 when it shuts down.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := pc.ReadFromUnix(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	e := aboxtest.New(t)
	e.ServeEnv = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}
	s := e.Start()
	want := func(msg string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-got:
				if !ok {
					t.Fatalf("notify socket closed before %q", msg)
				}
				if strings.Contains(m, msg) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from serve:\n%s", msg, s.Log)
			}
		}
	}
	want("READY=1")
	want("WATCHDOG=1")
	want("WATCHDOG=1")
	s.Stop()
	want("STOPPING=1")
}

// TestSystemdUnit: the shipped unit passes systemd-analyze verify (with
// its ExecStart pointed at a real binary, as an installation has it).
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian: systemd); .ci/run installs it")
	}
	unit, err := os.ReadFile("../../docs/abox.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := aboxtest.Bin(t)
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/abox", bin)
	path := filepath.Join(dir, "abox.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "abox.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}
