package imapd_test

// python3 imaplib drives every IMAP command against a real server: the
// scenario is testdata/imap/scenario.py; it prints one line per check.

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestPythonImaplibScenario(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3")
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)

	script, err := filepath.Abs(filepath.Join("..", "testdata", "imap", "scenario.py"))
	if err != nil {
		t.Fatal(err)
	}
	out, code := runTool(t, []string{
		"ABOX_IMAP=" + s.imap, "ABOX_IMAPS=" + s.imaps, "ABOX_SMTP=" + s.smtp,
		"ABOX_USER=" + alice, "ABOX_PASS=" + password,
		"ABOX_UTF8_WORD=" + utf8Word, "ABOX_BASE64_WORD=" + base64Word,
		"PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1",
	}, python, script)
	var failed, notes []string
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "FAIL"):
			failed = append(failed, l)
		case strings.HasPrefix(l, "NOTE"):
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "     got:") {
				l += "\n" + lines[i+1]
			}
			notes = append(notes, l)
		}
	}
	for _, n := range notes {
		t.Log(n)
	}
	switch {
	case code != 0 || len(failed) > 0:
		t.Errorf("scenario.py exit %d; failed checks:\n%s\n\nfull output:\n%s", code, strings.Join(failed, "\n"), out)
	case !strings.Contains(out, "all checks passed"):
		t.Errorf("scenario.py did not finish:\n%s", out)
	default:
		t.Logf("scenario.py: %d checks passed", strings.Count(out, "\nok ")+1)
	}
	e.Check()
}
