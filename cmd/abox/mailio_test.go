package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// TestImportExport moves a sample mbox through the binary: mbox into one
// account, out as a Maildir, into a second account, out as mbox again;
// dates, flags, mboxrd quoting and bytes survive every step. Then the
// refusals.
func TestImportExport(t *testing.T) {
	sample, err := filepath.Abs("../../testdata/mail/sample.mbox")
	if err != nil {
		t.Fatal(err)
	}
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		a.addUser("carol")
		a.addUser("dave")
		out := t.TempDir()

		var r MailioResult
		a.JSON(&r, "import", "carol@example.kz", sample)
		if r.Messages != 3 || r.Mailboxes != 1 || r.Format != "mbox" {
			t.Fatalf("import of the sample: %+v", r)
		}
		md := filepath.Join(out, "carol")
		a.JSON(&r, "export", "carol@example.kz", md)
		if r.Messages != 3 || r.Format != "maildir" || r.Mailboxes < 6 {
			t.Fatalf("export to maildir: %+v", r)
		}
		// Flags become Maildir letters, the internal date the mtime.
		files, _ := filepath.Glob(filepath.Join(md, "cur", "*"))
		slices.Sort(files)
		wantInfo := []string{":2,RS", ":2,", ":2,FS"} // seen+answered; none; seen+flagged
		wantDate := []time.Time{
			time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 3, 11, 30, 0, 0, time.UTC),
			time.Date(2026, 11, 4, 9, 15, 0, 0, time.UTC),
		}
		if len(files) != 3 {
			t.Fatalf("maildir cur holds %v", files)
		}
		for i, f := range files {
			if !strings.HasSuffix(f, wantInfo[i]) {
				t.Errorf("message %d is %s, want flags %s", i+1, filepath.Base(f), wantInfo[i])
			}
			st, err := os.Stat(f)
			if err != nil || !st.ModTime().Equal(wantDate[i]) {
				t.Errorf("message %d mtime %v, want %v", i+1, st.ModTime(), wantDate[i])
			}
		}
		first, _ := os.ReadFile(files[0])
		if !strings.Contains(string(first), "\nFrom the archive: a quoted From line.\n") || strings.Contains(string(first), "\r") {
			t.Errorf("mboxrd quoting not undone, or CRLF in the Maildir file:\n%s", first)
		}

		a.JSON(&r, "import", "dave@example.kz", md)
		if r.Messages != 3 || r.Format != "maildir" {
			t.Fatalf("import of the maildir: %+v", r)
		}
		if u := a.showUser("dave@example.kz"); u.Usage == nil || u.Usage.Messages != 3 {
			t.Fatalf("dave after import: %+v", u.Usage)
		}
		mc, md2 := filepath.Join(out, "carol.mbox"), filepath.Join(out, "dave.mbox")
		a.OK("export", "carol@example.kz", mc)
		a.OK("export", "dave@example.kz", md2)
		c, _ := os.ReadFile(mc)
		d, _ := os.ReadFile(md2)
		if string(c) != string(d) {
			t.Errorf("carol's and dave's mbox exports differ:\n%s\n---\n%s", c, d)
		}
		if !strings.HasPrefix(string(c), "From alice@example.org Mon Nov  2 10:00:00 2026\n") ||
			!strings.Contains(string(c), "\n>From the archive") || !strings.Contains(string(c), "\n>From here on") {
			t.Errorf("mbox export lacks its From line or mboxrd quoting:\n%s", c)
		}

		// Refusals: one line on stderr and the right exit status.
		a.Fail(1, "export", "carol@example.kz", md)        // an existing Maildir
		a.Fail(1, "export", "carol@example.kz", mc)        // an existing file
		a.Fail(1, "import", "nobody@example.kz", sample)   // no such account
		a.Fail(1, "import", "carol@example.kz", first2(t)) // not an mbox
		a.Fail(2, "import", "carol@example.kz", sample, "--format", "tar")
		a.Fail(2, "import", "carol@example.kz")

		// Over quota, the import stops where the quota does.
		a.addUser("erin")
		a.OK("user", "set", "erin@example.kz", "--quota-messages", "2")
		res := a.Fail(1, "import", "erin@example.kz", sample)
		if !strings.Contains(res.Stderr, "after 2 messages") {
			t.Errorf("over-quota import said %q", res.Stderr)
		}
		if u := a.showUser("erin@example.kz"); u.Usage == nil || u.Usage.Messages != 2 {
			t.Errorf("erin after the refused import: %+v", u.Usage)
		}
	})
}

// first2 writes a file that is not an mbox.
func first2(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(p, []byte("just a note\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImportProgressBar: on a terminal, import draws a progress bar; on
// a pipe it writes nothing to stderr.
func TestImportProgressBar(t *testing.T) {
	a := newAbox(t)
	a.OK("domain", "add", testDomain)
	a.addUser("carol")
	var mbox strings.Builder
	const n = 3000
	for i := range n {
		fmt.Fprintf(&mbox, "From x@example.org Mon Nov  2 10:00:00 2026\nSubject: %d\nMessage-ID: <%d@example.org>\n\nbody %d\n\n", i, i, i)
	}
	file := filepath.Join(t.TempDir(), "big.mbox")
	if err := os.WriteFile(file, []byte(mbox.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := a.Run("import", "carol@example.kz", file); r.Code != 0 || r.Stderr != "" {
		t.Fatalf("import without a terminal: %v", r)
	}
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	cmd := exec.Command(aboxtest.Bin(t), "--data", a.Dir, "import", "carol@example.kz", file)
	cmd.Env = aboxtest.Environ()
	cmd.Stderr = slave
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&out, master) // ends with EIO once the child has gone
		close(done)
	}()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	if !strings.Contains(out.String(), "import") || !strings.Contains(out.String(), "%") {
		t.Errorf("no progress bar on the terminal: %q", out.String())
	}
	if u := a.showUser("carol@example.kz"); u.Usage == nil || u.Usage.Messages != 2*n {
		t.Errorf("carol after two imports: %+v", u.Usage)
	}
}
