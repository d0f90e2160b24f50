package imapd_test

// mbsync (Debian's isync) syncs the server's mailboxes with a local
// Maildir both ways: download, upload of a new message, a flag set
// locally, and a local deletion expunged on the server.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mbsyncVersion returns isync's major and minor version.
func mbsyncVersion(t *testing.T, mbsync string) (int, int, string) {
	t.Helper()
	out, code := runTool(t, nil, mbsync, "--version")
	m := regexp.MustCompile(`(\d+)\.(\d+)(\.\d+)?`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Skipf("mbsync --version: exit %d, %q", code, out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major, minor, strings.TrimSpace(out)
}

// mbsyncRun writes an mbsync configuration that syncs every mailbox of
// user on s with a new local Maildir tree (isync's defaults otherwise)
// and returns the tree and a function that runs one sync, which fails
// the test unless mbsync exits 0.
func mbsyncRun(t *testing.T, e *env, s *server, user string) (local string, sync func(what string) string) {
	t.Helper()
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync not installed (Debian: apt-get install isync); .ci/run installs it")
	}
	major, minor, version := mbsyncVersion(t, mbsync)
	t.Logf("using %s", version)
	atLeast := func(ma, mi int) bool { return major > ma || major == ma && minor >= mi }

	dir := t.TempDir()
	local = filepath.Join(dir, "Mail")
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.imaps)
	// isync 1.4 renamed Master/Slave to Far/Near; 1.5 renamed SSLType to
	// TLSType.
	tlsType, far, near := "SSLType", "Master", "Slave"
	if atLeast(1, 4) {
		far, near = "Far", "Near"
	}
	if atLeast(1, 5) {
		tlsType = "TLSType"
	}
	rc := filepath.Join(dir, "mbsyncrc")
	config := fmt.Sprintf(`IMAPAccount abox
Host %s
Port %s
User %s
Pass "%s"
%s IMAPS
CertificateFile %s
AuthMechs LOGIN
Timeout 60

IMAPStore remote
Account abox

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel abox
%s :remote:
%s :local:
Patterns *
Create Both
Expunge Both
SyncState *
`, host, port, user, password, tlsType, filepath.Join(s.NodeOf(s.imaps).Dir(), "tls-cert.pem"), local, local, far, near)
	if err := os.WriteFile(rc, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return local, func(what string) string {
		t.Helper()
		// A first sync of 20,000 messages, one UID FETCH each, under the
		// race detector on a loaded two-core machine took over two
		// minutes: the bound only catches a hang.
		out, code := runToolFor(t, 8*time.Minute, []string{"HOME=" + dir}, mbsync, "-Dn", "--config", rc, "--all")
		if code != 0 {
			t.Fatalf("mbsync (%s): exit %d\n%s\nconfig:\n%s\nserver log:\n%s", what, code, trimLog(out), config, trimLog(s.Log.String()))
		}
		// mbsync turns COMPRESS=DEFLATE on when offered and flushes
		// with Z_PARTIAL_FLUSH (-Dn shows its commands).
		if !regexp.MustCompile(`(?m)^>+ \d+ COMPRESS DEFLATE`).MatchString(out) {
			t.Errorf("mbsync (%s) did not use COMPRESS DEFLATE:\n%s", what, trimLog(out))
		}
		return out
	}
}

// trimLog keeps the end of a long output.
func trimLog(s string) string {
	if len(s) > 8000 {
		return "...\n" + s[len(s)-8000:]
	}
	return s
}

func TestMbsync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)
	local, sync := mbsyncRun(t, e, s, alice)

	// 1. Down: the three messages and every mailbox.
	sync("first")
	inbox := filepath.Join(local, "INBOX")
	files := maildirFiles(t, inbox)
	if len(files) != 3 {
		t.Fatalf("local INBOX after the first sync: %v, want 3 messages", files)
	}
	for _, mb := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if _, err := os.Stat(filepath.Join(local, mb, "cur")); err != nil {
			t.Errorf("mailbox %s not created locally: %v", mb, err)
		}
	}
	plain := fileWith(t, files, "Subject: "+plainSubject)
	big := fileWith(t, files, "Subject: "+bigSubject)

	// 2. Up: a new local message, and \Seen set on one.
	newMsg := crlf("From: <" + alice + ">\nTo: <" + alice + ">\nSubject: written offline\nMessage-ID: <offline-1@example.kz>\nDate: Thu, 01 Jan 2026 08:00:00 +0000\n\nwritten in the local Maildir\n")
	if err := os.WriteFile(filepath.Join(inbox, "new", "1767254400.abox_test_1.localhost"), []byte(newMsg), 0o600); err != nil {
		t.Fatal(err)
	}
	setMaildirFlag(t, plain, 'S')
	sync("upload")

	c := dialIMAPS(t, s.imaps, "check")
	c.login(alice)
	c.selectBox("EXAMINE", "INBOX")
	r := c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if n := len(r.find("")); n != 4 {
		t.Errorf("server INBOX after the upload sync: %d messages, want 4:\n%s", n, r)
	}
	var sawNew bool
	for _, l := range r.untagged {
		if strings.Contains(l, "Subject: "+plainSubject) && !strings.Contains(l, `\Seen`) {
			t.Errorf("the message flagged S locally has no \\Seen on the server: %q", l)
		}
		if strings.Contains(l, "Subject: written offline") {
			sawNew = true
		}
	}
	if !sawNew {
		t.Errorf("the message written locally is not on the server:\n%s", r)
	}
	c.ok("LOGOUT")

	// 3. A local deletion is expunged on the server.
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	sync("delete")
	c = dialIMAPS(t, s.imaps, "check-2")
	c.login(alice)
	c.selectBox("EXAMINE", "INBOX")
	r = c.ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	if n := len(r.find("")); n != 3 {
		t.Errorf("server INBOX after the delete sync: %d messages, want 3:\n%s", n, r)
	}
	for _, l := range r.untagged {
		if strings.Contains(l, bigSubject) || strings.Contains(l, "UID 3 ") {
			t.Errorf("the message deleted locally is still on the server: %q", l)
		}
	}
	c.ok("LOGOUT")

	// 4. A last sync changes nothing and leaves both sides equal.
	sync("steady")
	if files := maildirFiles(t, inbox); len(files) != 3 {
		t.Errorf("local INBOX after the last sync: %v, want 3", files)
	}
	e.Check()
}

// maildirFiles lists the messages in a Maildir folder (new and cur).
func maildirFiles(t *testing.T, folder string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatalf("reading %s: %v", folder, err)
		}
		for _, e := range ents {
			if !e.IsDir() {
				out = append(out, filepath.Join(folder, sub, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out
}

// fileWith returns the one file that contains s.
func fileWith(t *testing.T, files []string, s string) string {
	t.Helper()
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d local files contain %q: %v", len(found), s, found)
	}
	return found[0]
}

// setMaildirFlag adds a flag to a Maildir message by renaming it into
// cur/ with the flag in its ":2," info.
func setMaildirFlag(t *testing.T, path string, flag byte) {
	t.Helper()
	name := filepath.Base(path)
	base, info, _ := strings.Cut(name, ":2,")
	flags := []byte(info)
	if !strings.ContainsRune(info, rune(flag)) {
		flags = append(flags, flag)
	}
	sort.Slice(flags, func(i, j int) bool { return flags[i] < flags[j] })
	dst := filepath.Join(filepath.Dir(filepath.Dir(path)), "cur", base+":2,"+string(flags))
	if err := os.Rename(path, dst); err != nil {
		t.Fatal(err)
	}
}
