package main

import (
	"crypto/tls"
	"net"
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestAppPasswords: app passwords from the real binary, used by real
// clients: one scoped to IMAP logs in to IMAP and is refused by
// submission; one scoped to submission sends; the login history names
// the app password; revoking one ends the sessions that logged in with
// it and no other; a new main password revokes them all; the API makes,
// lists and revokes them with the same rules.
func TestAppPasswords(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.OK("domain", "add", testDomain)
	a.addUser("alice")
	alice := "alice@" + testDomain
	a.srv = a.Start()

	var phone, laptop appPasswordView
	a.JSON(&phone, "user", "app-password", "add", alice, "Phone", "--scope", "imap")
	a.JSON(&laptop, "user", "app-password", "add", alice, "Laptop", "--scope", "submission")
	if phone.Scope != "imap" || len(phone.Password) != 19 || laptop.Password == phone.Password {
		t.Fatalf("made: %+v %+v", phone, laptop)
	}
	a.Fail(1, "user", "app-password", "add", alice, "phone")                // the name is taken (any case)
	a.Fail(1, "user", "app-password", "add", alice, "x", "--scope", "pop3") // no such scope
	if out := a.OK("user", "app-password", "list", alice); !strings.Contains(out, "Phone") || strings.Contains(out, phone.Password) {
		t.Fatalf("list shows no name or a secret:\n%s", out)
	}

	// IMAP with the phone's password, typed as a phone keyboard might.
	im := imapLogin(t, a.srv.Addr("imaps"), alice, strings.ToUpper(phone.Password))
	if _, err := im.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// The main password logs in too, in a session of its own.
	main := imapLogin(t, a.srv.Addr("imaps"), alice, goodPassword)
	// The IMAP-only password is refused by submission; the laptop's works.
	if code, _ := submitCode(t, a.srv.Addr("submission"), alice, phone.Password); code != 535 {
		t.Fatalf("submission with the IMAP-only app password: %d, want 535", code)
	}
	c := submitter(t, a.srv.Addr("submission"), alice, laptop.Password)
	if err := c.Mail(alice); err != nil {
		t.Fatalf("MAIL after AUTH with the laptop's app password: %v", err)
	}
	c.Quit()

	var logins []struct {
		Service     string `json:"service"`
		Outcome     string `json:"outcome"`
		AppPassword string `json:"app_password"`
		Reason      string `json:"reason"`
	}
	a.JSON(&logins, "user", "logins", alice)
	seen := map[string]bool{}
	for _, l := range logins {
		seen[l.Service+"/"+l.Outcome+"/"+l.AppPassword] = true
	}
	for _, want := range []string{"imap/ok/Phone", "imap/ok/", "submission/refused/Phone", "submission/ok/Laptop"} {
		if !seen[want] {
			t.Errorf("login history lacks %s: %+v", want, logins)
		}
	}

	// Revoking the phone's password ends its session, not the other.
	a.OK("user", "app-password", "revoke", alice, "Phone")
	waitSessionEnds(t, im)
	if err := main.Noop().Wait(); err != nil {
		t.Fatalf("the main password's session ended with the app password: %v", err)
	}
	if _, err := tryIMAPLogin(a.srv.Addr("imaps"), alice, phone.Password); err == nil {
		t.Fatal("a revoked app password still logs in")
	}
	a.Fail(1, "user", "app-password", "revoke", alice, "Phone")

	// Through the API, and a new main password revokes them all.
	tok := a.makeToken("portal-web", rolePortal)
	api := newAPIClient(t, a)
	path := "/v1/accounts/" + url.PathEscape(alice) + "/app-passwords"
	var tablet appPasswordView
	api.want(api.do("POST", path, tok, map[string]string{"name": "Tablet", "scope": "all"}), 201, &tablet)
	if tablet.Password == "" {
		t.Fatalf("API made no secret: %+v", tablet)
	}
	var list []appPasswordView
	api.want(api.do("GET", path, tok, nil), 200, &list)
	if len(list) != 2 || list[0].Password != "" || list[1].Password != "" {
		t.Fatalf("API list: %+v", list)
	}
	if r := api.do("DELETE", path+"/Nothing", tok, nil); r.status != 404 || r.problem(t).Type != "urn:abox:problem:not-found" {
		t.Fatalf("revoking an unknown name: %d %s", r.status, r.body)
	}
	tablets := imapLogin(t, a.srv.Addr("imaps"), alice, tablet.Password)
	a.OKIn(otherPassword+"\n", "user", "passwd", alice, "--password-stdin")
	waitSessionEnds(t, tablets)
	api.want(api.do("GET", path, tok, nil), 200, &list)
	if len(list) != 0 {
		t.Fatalf("app passwords after a new main password: %+v", list)
	}
	if _, err := tryIMAPLogin(a.srv.Addr("imaps"), alice, laptop.Password); err == nil {
		t.Fatal("an app password outlived a new main password")
	}
}

// submitCode is the reply code of AUTH PLAIN on submission.
func submitCode(t *testing.T, addr, user, password string) (int, string) {
	t.Helper()
	c, err := dialSubmission(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host, _, _ := strings.Cut(addr, ":")
	err = c.Auth(plainAuth(user, password, host))
	if err == nil {
		return 235, ""
	}
	return smtpCode(err)
}

// waitSessionEnds waits for the server to end an IMAP session (it may
// take a moment to notice the change).
func waitSessionEnds(t *testing.T, c *imapclient.Client) {
	t.Helper()
	deadline := time.Now().Add(netTimeout)
	for time.Now().Before(deadline) {
		if err := c.Noop().Wait(); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the session did not end")
}

// dialSubmission is a submission session after EHLO and STARTTLS.
func dialSubmission(addr string) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, netTimeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(netTimeout))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.StartTLS(&tls.Config{ServerName: "test.local", InsecureSkipVerify: true}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func plainAuth(user, password, host string) smtp.Auth {
	return smtp.PlainAuth("", user, password, host)
}

// tryIMAPLogin logs in over IMAPS and returns the error of LOGIN.
func tryIMAPLogin(addr, user, password string) (*imapclient.Client, error) {
	c, err := imapclient.DialTLS(addr, &imapclient.Options{
		TLSConfig: &tls.Config{ServerName: "test.local", InsecureSkipVerify: true},
		Dialer:    &net.Dialer{Timeout: netTimeout},
	})
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
