package outbound

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// world is one test's Internet: a resolver, a CA the client trusts, and
// whatever servers the test starts.
type world struct {
	t   *testing.T
	dns *testDNS
	ca  *testCA
}

func newWorld(t *testing.T) *world {
	t.Helper()
	t.Parallel()
	return &world{t: t, dns: newDNS(t), ca: newCA(t)}
}

// config is a Client configuration with short timeouts, pointed at the
// world's resolver and CA.
func (w *world) config() Config {
	return Config{
		Hostname:       "sender.test",
		Resolver:       w.dns.addr,
		RootCAs:        w.ca.pool,
		ConnectTimeout: 2 * time.Second,
		CommandTimeout: 5 * time.Second,
		DataTimeout:    5 * time.Second,
		DNSTimeout:     time.Second,
		Logger:         slog.New(slog.NewTextHandler(w.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func (w *world) client(mod ...func(*Config)) *Client {
	w.t.Helper()
	cfg := w.config()
	for _, f := range mod {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	// Registered after the servers, so run before they stop: the idle
	// sessions end with QUIT, and no janitor outlives the test.
	w.t.Cleanup(func() { c.Close() })
	return c
}

// host publishes name's A record.
func (w *world) host(name string, a netip.Addr) {
	w.dns.add(w.t, fmt.Sprintf("%s. 300 IN A %s", name, a))
}

// mx publishes an MX record of domain.
func (w *world) mx(domain string, pref int, host string) {
	w.dns.add(w.t, fmt.Sprintf("%s. 300 IN MX %d %s.", domain, pref, host))
}

// mxServer starts a server for name, the only MX of domain.
func (w *world) mxServer(domain, name string, opts mxOpts) *mxServer {
	m := newMX(w.t, opts)
	w.host(name, m.addr)
	w.mx(domain, 10, name)
	return m
}

func (w *world) deliver(c *Client, domain string, m *Message) Result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Deliver(ctx, domain, m)
}

const testBody = "From: a@sender.test\r\nTo: b@example.test\r\nSubject: test\r\n\r\nhello\r\n.leading dot\r\n"

func message(rcpts ...string) *Message {
	m := &Message{From: "a@sender.test", Body: []byte(testBody)}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, Recipient{Address: r})
	}
	return m
}

// want is an expected outcome; zero fields but Status are not checked.
type want struct {
	status   Status
	code     int
	enhanced string
	text     string // substring
	remote   bool
}

func checkOutcome(t *testing.T, label string, got Outcome, w want) {
	t.Helper()
	if got.Status != w.status || got.Code != w.code || got.Enhanced != w.enhanced || got.Remote != w.remote || !strings.Contains(got.Text, w.text) {
		t.Errorf("%s: got %+v, want status %v code %d enhanced %q remote %v text containing %q", label, got, w.status, w.code, w.enhanced, w.remote, w.text)
	}
}

func checkAll(t *testing.T, res Result, n int, w want) {
	t.Helper()
	if len(res.Recipients) != n {
		t.Fatalf("got %d outcomes, want %d: %+v", len(res.Recipients), n, res)
	}
	for i, o := range res.Recipients {
		checkOutcome(t, fmt.Sprintf("recipient %d", i), o, w)
	}
}

var delivered = want{status: Delivered, code: 250, enhanced: "2.0.0", remote: true}
