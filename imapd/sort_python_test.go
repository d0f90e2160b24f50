package imapd_test

import (
	"strings"
	"testing"
)

// python3's imaplib has sort() and thread(): they run against the
// sort corpus over implicit TLS.
const sortScript = `
import imaplib, os, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["ABOX_IMAPS"].rsplit(":", 1)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login(os.environ["ABOX_USER"], os.environ["ABOX_PASS"])
m.select("INBOX")
print("sort", m.sort("(REVERSE DATE)", "UTF-8", "ALL")[1][0].decode())
print("uidsort", m.uid("SORT", "(DISPLAYFROM)", "UTF-8", "ALL")[1][0].decode())
print("thread", m.thread("REFERENCES", "UTF-8", "ALL")[1][0].decode())
print("ordered", m.thread("ORDEREDSUBJECT", "UTF-8", "SUBJECT", "budget")[1][0].decode())
typ, data = m.sort("(DATE)", "KOI8-R", "ALL")
print("badcharset", typ, b"BADCHARSET" in data[0])
m.logout()
`

func TestPythonImaplibSortThread(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3")
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	out, code := runTool(t, []string{"ABOX_IMAPS=" + s.imaps, "ABOX_USER=" + alice, "ABOX_PASS=" + password,
		"PYTHONDONTWRITEBYTECODE=1"}, python, "-c", sortScript)
	if code != 0 {
		t.Fatalf("python exit %d:\n%s", code, out)
	}
	// UIDs are 1-5 in a new mailbox.
	for _, want := range []string{"sort 5 2 4 1 3", "uidsort 2 4 1 5 3", "thread (3)(1 (4)(2 5))", "ordered (1 (4)(2)(5))", "badcharset NO True"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in the output:\n%s", want, out)
		}
	}
	e.Check()
}
