package outbound

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// stsServer serves https://mta-sts.DOMAIN/.well-known/mta-sts.txt on a
// random loopback address, port 443, with a certificate of the world's
// CA.
type stsServer struct {
	mu      sync.Mutex
	policy  string
	fetches int
}

func (w *world) stsServer(domain, policy string) *stsServer {
	w.t.Helper()
	s := &stsServer{policy: policy}
	ln := listenLoopback(w.t, 443)
	cert := w.ca.issue(w.t, "mta-sts."+domain)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts."+domain {
				http.NotFound(rw, r)
				return
			}
			s.mu.Lock()
			s.fetches++
			p := s.policy
			s.mu.Unlock()
			rw.Header().Set("Content-Type", "text/plain")
			io.WriteString(rw, p)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go srv.ServeTLS(ln, "", "")
	w.t.Cleanup(func() { srv.Close() })
	w.host("mta-sts."+domain, addrOf(ln))
	return s
}

func (s *stsServer) set(policy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = policy
}

func (s *stsServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func policy(mode, mx string) string {
	return fmt.Sprintf("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 3600\r\n", mode, mx)
}

func (w *world) stsRecord(domain, id string) {
	w.dns.remove("_mta-sts."+domain, dns.TypeTXT)
	w.dns.add(w.t, fmt.Sprintf(`_mta-sts.%s. TXT "v=STSv1; id=%s"`, domain, id))
}

// TestMTASTS: RFC 8461 §4 and §5 with the MX certificate and policy
// mode as they vary.
func TestMTASTS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   string // "" = TXT record but no policy server
		cert     string // "ca", "self" or "" (no STARTTLS)
		want     want
		security string
		txns     int
	}{
		{"enforce, valid certificate", policy("enforce", "mx.example.test"), "ca", delivered, SecurityMTASTS, 1},
		{"enforce, wildcard", policy("enforce", "*.example.test"), "ca", delivered, SecurityMTASTS, 1},
		{"enforce, MX not in policy", policy("enforce", "other.example.test"), "ca",
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "does not list MX host mx.example.test"}, SecurityNone, 0},
		{"enforce, wildcard is one label", policy("enforce", "*.test"), "ca",
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "does not list"}, SecurityNone, 0},
		{"enforce, bad certificate", policy("enforce", "mx.example.test"), "self",
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "MTA-STS policy: certificate"}, SecurityNone, 0},
		{"enforce, no STARTTLS", policy("enforce", "mx.example.test"), "",
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "STARTTLS not offered"}, SecurityNone, 0},
		{"testing, bad certificate", policy("testing", "mx.example.test"), "self", delivered, SecuritySTARTTLS, 1},
		{"testing, MX not in policy", policy("testing", "other.example.test"), "self", delivered, SecuritySTARTTLS, 1},
		{"none", "version: STSv1\nmode: none\nmax_age: 60\n", "self", delivered, SecuritySTARTTLS, 1},
		{"fetch fails", "", "self", delivered, SecuritySTARTTLS, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var opts mxOpts
			switch tc.cert {
			case "ca":
				cert := w.ca.issue(t, "mx.example.test")
				opts.cert = &cert
			case "self":
				cert := selfSigned(t, "mx.example.test")
				opts.cert = &cert
			}
			m := w.mxServer("example.test", "mx.example.test", opts)
			w.stsRecord("example.test", "20240101")
			var sts *stsServer
			if tc.policy != "" {
				sts = w.stsServer("example.test", tc.policy)
			}
			res := w.deliver(w.client(), "example.test", message("b@example.test"))
			checkAll(t, res, 1, tc.want)
			if res.Security != tc.security {
				t.Errorf("security %q, want %q", res.Security, tc.security)
			}
			if got := m.transactions(); len(got) != tc.txns {
				t.Errorf("%d transactions, want %d", len(got), tc.txns)
			}
			if sts != nil && sts.count() != 1 {
				t.Errorf("policy fetched %d times", sts.count())
			}
		})
	}
}

// TestMTASTSCache: a policy is fetched once per TXT id, fetched again
// when the id changes, kept while the TXT record is gone, and dropped
// after max_age (RFC 8461 §3.3, §5.1).
func TestMTASTSCache(t *testing.T) {
	w := newWorld(t)
	cert := w.ca.issue(t, "mx.example.test")
	w.mxServer("example.test", "mx.example.test", mxOpts{cert: &cert})
	w.stsRecord("example.test", "1")
	sts := w.stsServer("example.test", policy("enforce", "mx.example.test"))
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	// No reuse: each step must look at the policy, which a parked
	// session, keeping the decision of its connection, would skip.
	c := w.client(func(c *Config) {
		c.Now = func() time.Time { return time.Unix(0, now.Load()) }
		c.DisableReuse = true
	})
	deferred := want{status: Deferred, code: 451, enhanced: "4.7.5", text: "does not list"}
	step := func(name string, wantOutcome want, fetches int) {
		t.Helper()
		res := w.deliver(c, "example.test", message("b@example.test"))
		checkAll(t, res, 1, wantOutcome)
		if sts.count() != fetches {
			t.Errorf("%s: %d fetches, want %d", name, sts.count(), fetches)
		}
	}
	step("first", delivered, 1)
	step("same id", delivered, 1)
	sts.set(policy("enforce", "other.example.test"))
	step("same id, new policy not seen", delivered, 1)
	w.stsRecord("example.test", "2")
	step("new id", deferred, 2)
	w.dns.remove("_mta-sts.example.test", dns.TypeTXT)
	step("TXT gone, cached policy applies", deferred, 2)
	now.Add(int64(2 * time.Hour))
	step("past max_age, no policy", delivered, 2)
}

func TestParsePolicy(t *testing.T) {
	good := "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.example.test\r\nmax_age: 86400\r\nextension: ignored\r\n"
	p, err := parsePolicy(good)
	if err != nil || p.mode != stsEnforce || len(p.mx) != 2 || p.mx[1] != "*.example.test" || p.maxAge != 86400*time.Second {
		t.Errorf("parsePolicy(good) = %+v, %v", p, err)
	}
	if p, err := parsePolicy("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 99999999999\n"); err == nil || p != nil {
		// eleven digits: refused rather than clamped
		t.Errorf("huge max_age: %+v", p)
	}
	if p, err := parsePolicy("version: STSv1\nmode: none\nmax_age: 40000000\n"); err != nil || p.maxAge != maxPolicyAge {
		t.Errorf("max_age over a year not clamped: %+v %v", p, err)
	}
	for name, bad := range map[string]string{
		"no version":   "mode: enforce\nmx: a.test\nmax_age: 1\n",
		"bad version":  "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
		"bad mode":     "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
		"no mx":        "version: STSv1\nmode: enforce\nmax_age: 1\n",
		"no max_age":   "version: STSv1\nmode: enforce\nmx: a.test\n",
		"bad max_age":  "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
		"no colon":     "version: STSv1\nmode enforce\n",
		"html instead": "<html>hello</html>",
	} {
		if p, err := parsePolicy(bad); err == nil {
			t.Errorf("%s: parsed as %+v", name, p)
		}
	}
}

func TestPolicyMatches(t *testing.T) {
	p := &stsPolicy{mx: []string{"mx.example.test", "*.mail.example.test."}}
	for host, want := range map[string]bool{
		"mx.example.test":          true,
		"MX.Example.Test.":         true,
		"a.mail.example.test":      true,
		"mail.example.test":        false,
		"a.b.mail.example.test":    false,
		"other.example.test":       false,
		"xmx.example.test":         false,
		"evilmail.example.test":    false,
		"a.mail.example.test.evil": false,
	} {
		if got := p.matches(host); got != want {
			t.Errorf("matches(%q) = %v, want %v", host, got, want)
		}
	}
}
