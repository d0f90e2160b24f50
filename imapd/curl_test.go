package imapd_test

// curl's IMAP client: imap:// with STARTTLS required, and imaps://.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCurl(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)

	// The stored bytes of UID 1, to compare with what curl fetches.
	c := dialIMAPS(t, s.imaps, "reference")
	c.login(alice)
	c.selectBox("EXAMINE", "INBOX")
	r := c.ok("UID FETCH 1 (BODY.PEEK[])")
	f := r.find("1 FETCH")
	if len(f) != 1 {
		t.Fatalf("UID FETCH 1:\n%s", r)
	}
	_, want, _ := strings.Cut(f[0], "}\r\n")
	want = strings.TrimSuffix(want, ")")
	c.ok("LOGOUT")

	user := alice + ":" + password
	base := []string{"--silent", "--show-error", "--insecure", "--max-time", "60", "--user", user}
	for _, u := range []string{
		"imap://" + s.imap + "/INBOX;UID=1",
		"imaps://" + s.imaps + "/INBOX;UID=1",
	} {
		args := append(append([]string{}, base...), "--ssl-reqd", u)
		out, code := runTool(t, nil, curl, args...)
		if code != 0 || out != want {
			t.Errorf("curl %s: exit %d\n%q\nwant the %d bytes of UID 1:\n%q", u, code, out, len(want), want)
		}
	}

	// A section of the multipart message.
	out, code := runTool(t, nil, curl, append(base, "imaps://"+s.imaps+"/INBOX;UID=2;SECTION=1")...)
	if code != 0 || strings.TrimSpace(out) != strings.TrimSpace(crlf(base64Lines([]byte(partText)))) {
		t.Errorf("curl ;SECTION=1: exit %d\n%q", code, out)
	}

	// The mailbox list.
	out, code = runTool(t, nil, curl, append(base, "imaps://"+s.imaps+"/")...)
	if code != 0 || !strings.Contains(out, `"Sent"`) || !strings.Contains(out, `\Sent`) || !strings.Contains(out, "INBOX") {
		t.Errorf("curl LIST: exit %d\n%s", code, out)
	}

	// A search (curl sends it as a custom request).
	out, code = runTool(t, nil, curl, append(base, "--request", "SEARCH FROM billing", "imaps://"+s.imaps+"/INBOX")...)
	if code != 0 || strings.TrimSpace(out) != "* SEARCH 2" {
		t.Errorf("curl SEARCH FROM billing: exit %d\n%q, want * SEARCH 2", code, out)
	}

	// An upload is an APPEND.
	draft := filepath.Join(t.TempDir(), "draft.eml")
	if err := os.WriteFile(draft, []byte(crlf("From: <"+alice+">\nSubject: uploaded by curl\n\nhello\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = runTool(t, nil, curl, append(base, "--upload-file", draft, "imaps://"+s.imaps+"/Drafts")...)
	if code != 0 {
		t.Errorf("curl upload to Drafts: exit %d\n%s", code, out)
	}
	c = dialIMAPS(t, s.imaps, "check")
	c.login(alice)
	if n := c.status("Drafts", "MESSAGES"); n != 1 {
		t.Errorf("Drafts holds %d after curl's upload, want 1", n)
	}
	c.ok("LOGOUT")

	// A wrong password: curl's "login denied" (67).
	out, code = runTool(t, nil, curl, "--silent", "--show-error", "--insecure", "--ssl-reqd", "--max-time", "60",
		"--user", alice+":not the password at all", "imap://"+s.imap+"/INBOX;UID=1")
	if code != 67 {
		t.Errorf("curl with a wrong password: exit %d, want 67 (login denied)\n%s", code, out)
	}
}
