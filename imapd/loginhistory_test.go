package imapd_test

import (
	"strings"
	"testing"
	"time"
)

type loginRecord struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	Address string    `json:"address"`
	Client  string    `json:"client"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason"`
}

// TestLoginHistory: IMAP logins, failed ones and the client's ID (sent
// before or after the login) land in the account's login history, which
// `abox user logins` shows newest first; another account's logins are
// not in it.
func TestLoginHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	s := e.start()

	c := dialIMAPS(t, s.imaps, "wrong")
	c.no("AUTHENTICATIONFAILED", "LOGIN %s %s", quote(alice), quote("not her password at all"))
	c.ok(`ID ("name" "Thunderbird" "version" "115.3.1")`)
	c.login(alice)
	c.ok(`ID ("name" "K-9 Mail" "version" "6.7")`)
	c.ok("LOGOUT")
	b := dialIMAPS(t, s.imaps, "bob")
	b.login(bob)
	b.ok("LOGOUT")

	var recs []loginRecord
	e.JSON(&recs, "user", "logins", alice)
	var got []string
	for _, r := range recs {
		if r.Service != "imap" || r.Address != "127.0.0.1" {
			t.Errorf("record %+v: want service imap from 127.0.0.1", r)
		}
		got = append(got, r.Outcome+":"+r.Client)
	}
	want := "id:K-9 Mail 6.7 id:Thunderbird 115.3.1 ok: failed:"
	if strings.Join(got, " ") != want {
		t.Errorf("alice's history, newest first: %q, want %q", strings.Join(got, " "), want)
	}
	if out := e.OK("user", "logins", alice, "--limit", "1"); !strings.Contains(out, "K-9 Mail 6.7") || strings.Contains(out, "Thunderbird") {
		t.Errorf("user logins --limit 1:\n%s", out)
	}
	e.Fail(1, "user", "logins", "nobody@"+domain)
}
