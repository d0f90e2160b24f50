package smtpd_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// dialTLSFrom connects with implicit TLS from a given loopback address
// (every 127.0.0.0/8 address is this machine's), so a test can play
// clients at several addresses.
func dialTLSFrom(t *testing.T, addr, local string) *rawClient {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}, Config: clientTLS()}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial TLS %s from %s: %v", addr, local, err)
	}
	return newRaw(t, nc)
}

// imapLoginFrom logs in over imaps from a given loopback address and
// returns the tagged NO's response code, "" for OK.
func imapLoginFrom(t *testing.T, addr, local, user, pass string) (imap.ResponseCode, error) {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{
		TLSConfig: clientTLS(),
		Dialer:    &net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}},
	})
	if err != nil {
		t.Fatalf("imaps dial %s from %s: %v", addr, local, err)
	}
	defer c.Close()
	err = c.Login(user, pass).Wait()
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code, err
	}
	return "", err
}

// TestLockoutSparesKnownAddress: twenty wrong passwords from one address
// throttle that address, and the account for addresses that never logged
// into it, but not the subscriber at an address that did (issue 13: about
// 14 wrong passwords from anywhere locked the real user out of SMTP and
// IMAP).
func TestLockoutSparesKnownAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	untrustedConfig(t, e)
	victim := e.addUser("vera")
	other := e.addUser("walt")
	s := e.start()
	const home, attacker, stranger = "127.0.1.1", "127.0.0.1", "127.0.2.1"

	c := dialTLSFrom(t, s.subs, home)
	c.ehlo()
	if r := c.authPlain(victim, password); r.code != 235 {
		t.Fatalf("AUTH from home: %q", r)
	}
	c.expect("QUIT", 221, "")

	var a *rawClient
	throttled := 0
	for i := range 20 {
		if a == nil {
			a = dialTLSFrom(t, s.subs, attacker)
			a.ehlo()
		}
		switch r := a.authPlain(victim, "not the password at all"); {
		case r.code == 535 && r.enh() == "5.7.8":
		case r.code == 450 && r.enh() == "4.7.1":
			throttled++
		default:
			t.Fatalf("wrong password %d: %q", i+1, r)
		}
		if i%5 == 4 {
			a.expect("QUIT", 221, "")
			a = nil
		}
	}
	if throttled == 0 {
		t.Fatal("twenty wrong passwords from one address were never throttled")
	}

	c = dialTLSFrom(t, s.subs, home)
	c.ehlo()
	if r := c.authPlain(victim, password); r.code != 235 || r.enh() != "2.7.0" {
		t.Errorf("PRODUCT BUG: AUTH with the right password from an address that logged in before, after another address's 20 failures: %q, want 235 2.7.0", r)
	}
	if code, err := imapLoginFrom(t, s.imaps, home, victim, password); err != nil {
		t.Errorf("PRODUCT BUG: IMAP login from an address that logged in before, after another address's failures: %v (code %s), want OK", err, code)
	}

	// An address with no history with the account is still throttled for
	// it, and the attacking address for every account.
	c = dialTLSFrom(t, s.subs, stranger)
	c.ehlo()
	c.send("AUTH PLAIN " + plain(victim, password) + "\r\n")
	c.want("AUTH from an address new to the attacked account", 450, "4.7.1")
	c.send("AUTH PLAIN " + plain(other, password) + "\r\n")
	c.want("AUTH of another account from the new address", 235, "2.7.0")
	a = dialTLSFrom(t, s.subs, attacker)
	a.ehlo()
	a.send("AUTH PLAIN " + plain(other, password) + "\r\n")
	if r := a.read(); r.code != 450 || r.enh() != "4.7.1" || !strings.Contains(r.text(), "failed logins") {
		t.Errorf("AUTH of another account from the attacking address: %q, want 450 4.7.1 (too many failed logins)", r)
	}
}
