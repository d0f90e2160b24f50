package smtpd_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestLoggingUnderAttack (issue 13: a 60 s brute force wrote 265 MB of
// log, a refusal was logged about 78 times per session, a 700 KB user
// name was logged verbatim, a password typed as the user name reached
// the IMAP log): 1,000 identical refusals write a bounded number of
// lines, in one session and over a hundred; no logged line grows with
// what a client sends; a password given as the user name is never
// logged, on any listener.
func TestLoggingUnderAttack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Config = filepath.Join(t.TempDir(), "abox.toml")
	if err := os.WriteFile(e.Config, []byte("trusted-networks = []\nlog-repeat-limit = 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.addSender("egov", "official", "notices@egov.kz")
	s := e.start()

	// 1,000 relay attempts in one session, pipelined.
	c := dial(t, s.smtp)
	c.ehlo()
	c.expect("MAIL FROM:<spammer@remote.test>", 250, "2.1.0")
	c.send(strings.Repeat("RCPT TO:<victim@elsewhere.test>\r\n", 1000))
	for range 1000 {
		c.want("relay attempt", 554, "5.7.1")
	}
	c.expect("QUIT", 221, "")
	// 1,000 more over 100 sessions.
	for range 100 {
		c := dial(t, s.smtp)
		c.ehlo()
		c.expect("MAIL FROM:<spammer@remote.test>", 250, "2.1.0")
		c.send(strings.Repeat("RCPT TO:<victim@elsewhere.test>\r\n", 10))
		for range 10 {
			c.want("relay attempt", 554, "5.7.1")
		}
		c.expect("QUIT", 221, "")
	}

	// A password typed as the user name, everywhere.
	const secret = "Glacier-Otter-Pelican-9182"
	a := dialTLS(t, s.subs)
	a.ehlo()
	if r := a.authPlain(secret, secret); r.code/100 != 4 && r.code/100 != 5 {
		t.Fatalf("AUTH PLAIN with a password as the name: %q", r)
	}
	a.send("AUTH LOGIN " + b64(secret) + "\r\n")
	a.want("AUTH LOGIN user name", 334, "")
	a.send(b64(secret) + "\r\n")
	if r := a.read(); r.code/100 != 4 && r.code/100 != 5 {
		t.Fatalf("AUTH LOGIN with a password as the name: %q", r)
	}
	if ic, err := imapclient.DialTLS(s.imaps, &imapclient.Options{TLSConfig: clientTLS()}); err != nil {
		t.Fatal(err)
	} else {
		if ic.Login(secret, secret).Wait() == nil {
			t.Fatal("IMAP login with a password as the name succeeded")
		}
		ic.Close()
	}
	for _, name := range []string{secret, strings.Repeat("n", 40<<10)} {
		req, _ := http.NewRequest("GET", "http://"+s.http+"/v1/notices/x", nil)
		req.SetBasicAuth(name, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("notice API with a password as the name: %s", resp.Status)
		}
	}
	s.Stop()

	refused, longest := 0, 0
	for _, l := range strings.Split(s.Log.String(), "\n") {
		longest = max(longest, len(l))
		if strings.Contains(l, secret) || strings.Contains(l, b64(secret)) {
			t.Errorf("PRODUCT BUG: a password given as the user name is in the log: %.300s", l)
		}
	}
	for _, r := range s.Log.Records() {
		if r["msg"] == "refused" && r["reason"] != nil && strings.Contains(r["reason"].(string), "elsewhere.test") {
			refused++
		}
	}
	if refused > 20 {
		t.Errorf("PRODUCT BUG: 2,000 identical relay refusals from one client (1,000 in one session, 1,000 over 100 sessions) wrote %d \"refused\" lines, want at most 20 (log-repeat-limit)", refused)
	}
	if longest > 4096 {
		t.Errorf("PRODUCT BUG: the longest log line is %d bytes after a 40 KB user name, want it capped", longest)
	}
}
