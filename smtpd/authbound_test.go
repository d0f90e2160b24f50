package smtpd_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// concurrently runs fn(i) for i in [0, n) at once and returns the
// results.
func concurrently[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = fn(i) })
	}
	wg.Wait()
	return out
}

// smtpAuthOnce dials submissions, sends EHLO and AUTH PLAIN and returns
// the AUTH reply (safe to call from any goroutine).
func smtpAuthOnce(addr, user, pass string) (reply, error) {
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, clientTLS())
	if err != nil {
		return reply{}, err
	}
	defer nc.Close()
	c := &rawClient{nc: nc, r: bufio.NewReader(nc)}
	for _, line := range []string{"", "EHLO client.test\r\n", "AUTH PLAIN " + plain(user, pass) + "\r\n"} {
		if line != "" {
			nc.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := nc.Write([]byte(line)); err != nil {
				return reply{}, err
			}
		}
		r, err := c.readErr()
		if err != nil {
			return reply{}, err
		}
		if line != "" && r.code != 250 || line == "" && r.code != 220 {
			return r, nil
		}
	}
	return reply{}, errors.New("unreachable")
}

// TestPasswordChecksBounded: with auth-hash-concurrency = 1 and no wait,
// concurrent failed logins on every listener never run more than one
// password check at once (the server's own count on /metrics), and a
// login finding no free slot gets the exact temporary failure: SMTP
// 454 4.7.0 (RFC 4954), IMAP NO [UNAVAILABLE], HTTP 503 with Retry-After.
// Unknown users (the dummy hash) go through the same bound.
func TestPasswordChecksBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ProductionHashing = true // checks that last long enough to queue
	e.Config = filepath.Join(t.TempDir(), "abox.toml")
	if err := os.WriteFile(e.Config, []byte("auth-hash-concurrency = 1\nauth-hash-wait = \"0s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.addUser("hana")
	e.addSender("egov", "official", "notices@egov.kz")
	s := e.start()
	const rounds, n = 10, 12

	busy := 0
	for round := 0; round < rounds && busy == 0; round++ {
		for i, r := range concurrently(n, func(i int) any {
			r, err := smtpAuthOnce(s.subs, fmt.Sprintf("nobody%d-%d@%s", round, i, domain), "wrong password")
			if err != nil {
				return err
			}
			return r
		}) {
			switch r := r.(type) {
			case error:
				t.Fatalf("SMTP login %d: %v", i, r)
			case reply:
				switch {
				case r.code == 535 && r.enh() == "5.7.8":
				case r.code == 454 && r.enh() == "4.7.0":
					busy++
				default:
					t.Fatalf("SMTP login %d: %q, want 535 5.7.8 or 454 4.7.0", i, r)
				}
			}
		}
	}
	if busy == 0 {
		t.Errorf("PRODUCT BUG: %d rounds of %d concurrent SMTP logins with one password check allowed at once: never 454 4.7.0", rounds, n)
	}

	busy = 0
	for round := 0; round < rounds && busy == 0; round++ {
		for i, err := range concurrently(n, func(i int) error {
			c, err := imapclient.DialTLS(s.imaps, &imapclient.Options{TLSConfig: clientTLS(), Dialer: &net.Dialer{Timeout: ioTimeout}})
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Login(fmt.Sprintf("nobody%d-%d@%s", round, i, domain), "wrong password").Wait()
		}) {
			var ie *imap.Error
			switch {
			case errors.As(err, &ie) && ie.Code == imap.ResponseCodeAuthenticationFailed:
			case errors.As(err, &ie) && ie.Code == imap.ResponseCodeUnavailable && ie.Type == imap.StatusResponseTypeNo:
				busy++
			default:
				t.Fatalf("IMAP login %d: %v, want NO [AUTHENTICATIONFAILED] or NO [UNAVAILABLE]", i, err)
			}
		}
	}
	if busy == 0 {
		t.Errorf("PRODUCT BUG: %d rounds of %d concurrent IMAP logins with one password check allowed at once: never NO [UNAVAILABLE]", rounds, n)
	}

	busy = 0
	for round := 0; round < rounds && busy == 0; round++ {
		for i, r := range concurrently(n, func(i int) any {
			req, _ := http.NewRequest("GET", "http://"+s.http+"/v1/notices/x%40egov.kz", nil)
			req.SetBasicAuth("egov", "wrong password")
			resp, err := (&http.Client{Timeout: ioTimeout}).Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return resp
		}) {
			switch r := r.(type) {
			case error:
				t.Fatalf("HTTP request %d: %v", i, r)
			case *http.Response:
				switch r.StatusCode {
				case http.StatusUnauthorized:
				case http.StatusServiceUnavailable:
					busy++
					if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
						t.Errorf("503 with Retry-After %q, want a number of seconds", r.Header.Get("Retry-After"))
					}
				default:
					t.Fatalf("HTTP request %d: %s, want 401 or 503", i, r.Status)
				}
			}
		}
	}
	if busy == 0 {
		t.Errorf("PRODUCT BUG: %d rounds of %d concurrent notice API requests with one password check allowed at once: never 503", rounds, n)
	}

	if peak := metric(t, s, "abox_auth_hashes_running_peak"); peak != 1 {
		t.Errorf("at most %v password checks ran at once, want 1 (auth-hash-concurrency)", peak)
	}
	// The subscriber still gets in when nobody else is logging in.
	submissionSession(t, s, "hana@"+domain).expect("QUIT", 221, "")
}
