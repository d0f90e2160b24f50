package main

import (
	"errors"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// mountTmpfs mounts a tmpfs of size bytes at a new directory for the
// test. It needs root (CI runs as root); elsewhere the test is skipped,
// saying why.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("a full disk is simulated with a tmpfs, which needs root: mount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file until the file system under dir is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	for _, n := range []int{64 << 10, 4 << 10, 1} { // the last bytes
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// trySend sends one message over the MX listener and returns the reply
// to the end of DATA (or to the command that refused it).
func trySend(addr, to, subject, body string) (int, string) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0, err.Error()
	}
	defer c.Close()
	if err := c.Mail("sender@example.org"); err != nil {
		return smtpCode(err)
	}
	if err := c.Rcpt(to); err != nil {
		return smtpCode(err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpCode(err)
	}
	fmt.Fprintf(w, "From: <sender@example.org>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Mon, 05 Jan 2026 09:00:00 +0000\r\nMessage-ID: <%s@example.org>\r\n\r\n%s\r\n",
		to, subject, strings.ReplaceAll(subject, " ", "-"), body)
	if err := w.Close(); err != nil {
		return smtpCode(err)
	}
	c.Quit()
	return 250, "ok"
}

// TestDiskFull: the data directory's disk fills while mail arrives.
// Every message gets 250 (and is then readable over IMAP at once, while
// the disk is still full) or 452 4.3.1, never a 451 or a lost 250; a
// SIGTERM still stops the server; freed space brings 250s back. Before,
// deliveries got 250 or 451, thousands of acknowledged messages stayed
// invisible to IMAP (a failed checkpoint woke readers anyway) and
// SIGTERM hung closing the database.
func TestDiskFull(t *testing.T) {
	aboxtest.SkipInCluster(t, "a full disk under the bbolt file, its write-ahead log and reserve-space")
	t.Parallel()
	disk := mountTmpfs(t, 120<<20)
	a := aboxAt(t, filepath.Join(disk, "data"))
	os.MkdirAll(a.Dir, 0o700)
	// The disk is full on purpose: the store says so at level ERROR, and
	// writes that fail for want of space (a checkpoint, the last one at
	// SIGTERM, a segment's compaction, the outbound sender loop's lease
	// of due entries and release of finished bodies) are logged at ERROR
	// too. The replies and the store checked after it are what must stay
	// right.
	a.AllowError("store: the disk is full", "store: checkpoint failed", "store: the last checkpoint failed",
		"store: writing the write-ahead log", "store: compacting a body segment", "store: giving back the disk reserve",
		"outbound: reading the queue", "outbound: releasing finished bodies")
	cfg := "argon2-memory-kib = 64\nargon2-iterations = 1\nreserve-space = \"16MiB\"\n"
	if err := os.WriteFile(filepath.Join(a.Dir, ConfigFileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a.OK("domain", "add", testDomain)
	a.addUser("alice")
	alice := "alice@" + testDomain
	a.srv = a.Start()
	addrs := a.srv.Addrs()
	if code, text := trySend(addrs["smtp"], alice, "before", "fits"); code != 250 {
		t.Fatalf("before the disk fills: %d %s", code, text)
	}
	filler := fillDisk(t, disk)

	var accepted []string
	refused := 0
	big := strings.Repeat("a long line of a large letter that goes to a body segment\r\n", 600)
	for i := range 60 {
		body := "small"
		if i%3 == 0 {
			body = big
		}
		subject := fmt.Sprintf("full %d", i)
		code, text := trySend(addrs["smtp"], alice, subject, body)
		switch {
		case code == 250:
			accepted = append(accepted, subject)
		case code == 452 && strings.HasPrefix(text, "4.3.1"):
			refused++
		default:
			t.Fatalf("%s while the disk is full: %d %s (want 250 or 452 4.3.1)", subject, code, text)
		}
	}
	if refused == 0 {
		t.Fatalf("nothing was refused with the disk full (accepted %d)", len(accepted))
	}
	// Acknowledged mail is readable now, with the disk still full.
	got := inboxSubjects(t, addrs["imaps"], alice)
	have := map[string]bool{}
	for _, s := range got {
		have[s] = true
	}
	for _, s := range append([]string{"before"}, accepted...) {
		if !have[s] {
			t.Errorf("%q got 250 but IMAP does not show it (INBOX: %d messages)", s, len(got))
		}
	}
	t.Logf("with the disk full: %d accepted, %d refused 452 4.3.1", len(accepted), refused)

	// Space comes back: mail flows again (the server looks every few
	// seconds; this waits for it, bounded).
	os.Remove(filler)
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, text := trySend(addrs["smtp"], alice, "after", "fits again")
		if code == 250 {
			break
		}
		if code != 452 || time.Now().After(deadline) {
			t.Fatalf("after space was freed: %d %s", code, text)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Full again, then SIGTERM: the server must still stop (cleanup).
	fillDisk(t, disk)
	trySend(addrs["smtp"], alice, "last", "small")
	a.srv.Stop()
	os.Remove(filepath.Join(disk, "filler"))
	a.srv = a.Start()
	addrs = a.srv.Addrs()
	if out := a.OK("check"); !strings.Contains(out, "ok") {
		t.Errorf("check after the disk was full:\n%s", out)
	}
	if got := inboxSubjects(t, addrs["imaps"], alice); len(got) < len(accepted)+2 {
		t.Errorf("after a restart: %d messages, want at least %d", len(got), len(accepted)+2)
	}
}
