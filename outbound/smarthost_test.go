package outbound

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// smarthostWorld starts a relay for relay.test (certificate from the
// world's CA unless cert says "self") and a client sending everything
// there.
func smarthostWorld(t *testing.T, mode string, opts mxOpts, user string) (*world, *mxServer, *Client) {
	w := newWorld(t)
	cert := w.ca.issue(t, "relay.test")
	if opts.cert == nil && mode != SmarthostNone {
		opts.cert = &cert
	}
	opts.implicit = mode == SmarthostTLS
	relay := newMX(t, opts)
	w.host("relay.test", relay.addr)
	c := w.client(func(c *Config) {
		c.Smarthost = "relay.test:25"
		if mode == SmarthostNone {
			// Plaintext is allowed only to loopback, named as such.
			c.Smarthost = relay.addr.String() + ":25"
		}
		c.SmarthostTLS = mode
		c.SmarthostUser, c.SmarthostPassword = user, "s3cret pass"
	})
	return w, relay, c
}

// TestSmarthost: STARTTLS or implicit TLS with a verified certificate,
// AUTH PLAIN over it, and no MX, MTA-STS or DANE lookups.
func TestSmarthost(t *testing.T) {
	for _, mode := range []string{SmarthostSTARTTLS, SmarthostTLS, SmarthostNone} {
		t.Run(mode, func(t *testing.T) {
			user := "abox@relay.test"
			if mode == SmarthostNone {
				user = ""
			}
			w, relay, c := smarthostWorld(t, mode, mxOpts{auth: true}, user)
			res := w.deliver(c, "example.test", message("b@example.test", "c@elsewhere.test"))
			checkAll(t, res, 2, delivered)
			if res.Security != SecuritySmarthost || !strings.HasPrefix(res.TLS, "TLS1.3") && mode != SmarthostNone {
				t.Errorf("result %+v", res)
			}
			got := relay.transactions()
			if len(got) != 1 || len(got[0].rcpts) != 2 {
				t.Fatalf("relay received %+v", got)
			}
			if mode == SmarthostNone {
				if got[0].tls || got[0].authed || res.TLS != "none" {
					t.Errorf("plaintext relay: %+v, TLS %q", got[0], res.TLS)
				}
			} else if res.Host != "relay.test" || !got[0].tls || !got[0].authed || got[0].user != "abox@relay.test" || got[0].pass != "s3cret pass" {
				t.Errorf("relay received %+v, host %q", got[0], res.Host)
			}
			for _, q := range []uint16{dns.TypeMX, dns.TypeTXT, dns.TypeTLSA} {
				if n := w.dns.askedType(q); n != 0 {
					t.Errorf("%d %s queries", n, dns.TypeToString[q])
				}
			}
		})
	}
}

// TestSmarthostRefusals: what makes the relay unusable defers the
// message: a refused login (the configuration's fault, not the
// recipient's), no AUTH offered, a certificate not from RootCAs.
func TestSmarthostRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*testing.T) mxOpts
		err  error
		want want
		txns int
	}{
		{"AUTH refused", func(*testing.T) mxOpts { return mxOpts{auth: true} }, smtp.ErrAuthFailed,
			want{status: Deferred, code: 535, enhanced: "5.7.8", text: "Authentication failed", remote: true}, 0},
		{"no AUTH", func(*testing.T) mxOpts { return mxOpts{} }, nil,
			want{status: Deferred, code: 451, enhanced: "4.7.0", text: "does not offer AUTH PLAIN"}, 0},
		{"certificate not trusted", func(t *testing.T) mxOpts { c := selfSigned(t, "relay.test"); return mxOpts{cert: &c, auth: true} }, nil,
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "smarthost: certificate"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, relay, c := smarthostWorld(t, SmarthostSTARTTLS, tc.opts(t), "abox")
			relay.authErr = tc.err
			res := w.deliver(c, "example.test", message("b@example.test"))
			checkAll(t, res, 1, tc.want)
			if got := relay.transactions(); len(got) != tc.txns {
				t.Errorf("relay received %+v", got)
			}
			for _, s := range relay.allSessions() {
				if s.user != "" && !s.tls {
					t.Error("credentials sent without TLS")
				}
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	base := Config{Hostname: "sender.test", Resolver: "127.0.0.1:53"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no hostname", func(c *Config) { c.Hostname = "" }, false},
		{"bad resolver", func(c *Config) { c.Resolver = "127.0.0.1" }, false},
		{"smarthost without port", func(c *Config) { c.Smarthost = "relay.test" }, false},
		{"smarthost bad mode", func(c *Config) { c.Smarthost, c.SmarthostTLS = "relay.test:587", "maybe" }, false},
		{"plaintext smarthost elsewhere", func(c *Config) { c.Smarthost, c.SmarthostTLS = "relay.test:25", SmarthostNone }, false},
		{"plaintext smarthost on loopback", func(c *Config) { c.Smarthost, c.SmarthostTLS = "127.0.0.1:10025", SmarthostNone }, true},
		{"negative MaxIdle", func(c *Config) { c.MaxIdle = -1 }, false},
		{"negative IdleTimeout", func(c *Config) { c.IdleTimeout = -time.Second }, false},
		{"AUTH without TLS", func(c *Config) {
			c.Smarthost, c.SmarthostTLS, c.SmarthostUser = "localhost:10025", SmarthostNone, "u"
		}, false},
	} {
		cfg := base
		tc.mod(&cfg)
		c, err := New(cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: New = %v", tc.name, err)
		}
		if tc.name == "defaults" && c != nil {
			if c.cfg.Port != 25 || c.cfg.CommandTimeout.Minutes() != 5 || c.cfg.DataTimeout.Minutes() != 10 || c.cfg.ConnectTimeout.Seconds() != 30 {
				t.Errorf("defaults %+v", c.cfg)
			}
			if c.cfg.MaxIdlePerDomain != 16 || c.cfg.MaxIdle != 256 || c.cfg.IdleTimeout != 5*time.Second || c.cfg.ReuseLimit != 100 || c.cfg.ReuseTime != 5*time.Minute {
				t.Errorf("reuse defaults %+v", c.cfg)
			}
		}
		if c != nil {
			c.Close()
		}
	}
}
