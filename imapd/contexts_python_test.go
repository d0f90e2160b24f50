package imapd_test

import (
	"strings"
	"testing"
)

// python3's imaplib has no RETURN options, ESEARCH or CANCELUPDATE of
// its own: the script sends them with _simple_command and reads the
// ESEARCH responses imaplib files away untagged, as a client library
// without the extension would have to.
const contextScript = `
import imaplib, os, re, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["ABOX_IMAPS"].rsplit(":", 1)
def session():
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    m.login(os.environ["ABOX_USER"], os.environ["ABOX_PASS"])
    m.select("INBOX")
    return m
imaplib.Commands["CANCELUPDATE"] = ("SELECTED",)
m, o = session(), session()
caps = m.capability()[1][0].decode().split()
print("caps", "CONTEXT=SEARCH" in caps, "CONTEXT=SORT" in caps)

def esearch(typ, dat):
    typ, dat = m._untagged_response(typ, dat, "ESEARCH")
    return [re.sub(rb'^\(TAG "[^"]*"\) ?', b"", d).decode() for d in dat if d]

print("partial", esearch(*m._simple_command("SEARCH", "RETURN", "(PARTIAL", "4:2)", "ALL")))
print("nil", esearch(*m._simple_command("UID", "SEARCH", "RETURN", "(PARTIAL", "6:9)", "ALL")))
print("sortpartial", esearch(*m._simple_command("SORT", "RETURN", "(PARTIAL", "1:3)", "(DATE)", "UTF-8", "ALL")))
try:
    m._simple_command("SEARCH", "RETURN", "(PARTIAL", "1:*)", "ALL")
    print("star accepted")
except imaplib.IMAP4.error as e:
    print("star refused")

typ, dat = m._simple_command("SEARCH", "RETURN", "(UPDATE)", "SEEN")
tag = re.match(rb'\(TAG "([^"]*)"\)', m._untagged_response(typ, dat, "ESEARCH")[1][0]).group(1).decode()
m.store("1,3", "+FLAGS", "\\Seen")
print("own", esearch("OK", [None]))
o.store("2", "+FLAGS", "\\Seen"); o.store("1", "-FLAGS", "\\Seen")
m.noop()
print("other", esearch("OK", [None]))
m.store("3", "+FLAGS.SILENT", "\\Deleted")
m.expunge()
print("expunge", esearch("OK", [None]))
print("cancel", m._simple_command("CANCELUPDATE", '"%s"' % tag)[0])
o.store("1:4", "+FLAGS", "\\Seen")
m.noop()
print("after cancel", esearch("OK", [None]))
print("cancel again", m._simple_command("CANCELUPDATE", '"%s"' % tag)[0])
for i in range(10):
    m._simple_command("SEARCH", "RETURN", "(UPDATE)", "FLAGGED")
esearch("OK", [None])
typ, dat = m._simple_command("SEARCH", "RETURN", "(UPDATE COUNT)", "FLAGGED")
print("limit", typ, m._untagged_response(typ, dat, "NO")[1][0][:9].decode(), esearch(typ, dat))
m.logout(); o.logout()
`

func TestPythonImaplibContexts(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3")
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for _, m := range sortCorpus() {
		s.mustDeliver(alice, m)
	}
	out, code := runTool(t, []string{"ABOX_IMAPS=" + s.imaps, "ABOX_USER=" + alice, "ABOX_PASS=" + password,
		"PYTHONDONTWRITEBYTECODE=1"}, python, "-c", contextScript)
	if code != 0 {
		t.Fatalf("python exit %d:\n%s", code, out)
	}
	// UIDs are 1-5 in a new mailbox; by DATE the corpus is 3 1 4 2 5.
	for _, want := range []string{
		"caps True True",
		"partial ['PARTIAL (2:4 2:4)']",
		"nil ['UID PARTIAL (6:9 NIL)']",
		"sortpartial ['PARTIAL (1:3 3,1,4)']",
		"star refused",
		"own ['ADDTO (0 1,3)']",
		"other ['REMOVEFROM (0 1)', 'ADDTO (0 2)']",
		"expunge ['REMOVEFROM (0 3)']",
		"cancel OK",
		"after cancel []",
		"cancel again NO",
		`limit OK [NOUPDATE ['COUNT 0']`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in the output:\n%s", want, out)
		}
	}
	e.Check()
}
