package policy

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"abox/store"
)

// The DNS-based checks are tested against an in-process DNS server on
// 127.0.0.1 (a free port): never the internet, never the system resolver.

// zone is what a test DNS server answers: names are lower case without
// the trailing dot; a name with none of them gets NXDOMAIN.
type zone struct {
	txt      map[string][]string
	a        map[string][]string
	servfail []string // names answered SERVFAIL
}

// testDNS is a running test DNS server.
type testDNS struct {
	addr string // 127.0.0.1:port
	z    zone

	mu      sync.Mutex
	queries []string // "TXT name", "A name", in order
}

func startDNS(t testing.TB, z zone) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{addr: pc.LocalAddr().String(), z: z}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	d.mu.Lock()
	d.queries = append(d.queries, dns.TypeToString[q.Qtype]+" "+name)
	d.mu.Unlock()
	txts, hasTXT := d.z.txt[name]
	as, hasA := d.z.a[name]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60, Rrtype: q.Qtype}
	switch {
	case slices.Contains(d.z.servfail, name):
		m.Rcode = dns.RcodeServerFailure
	case !hasTXT && !hasA:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT:
		for _, s := range txts {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: split255(s)})
		}
	case q.Qtype == dns.TypeA:
		for _, s := range as {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(s).To4()})
		}
	}
	w.WriteMsg(m)
}

// split255 cuts a TXT value into character-strings (RFC 1035 §3.3.14).
func split255(s string) []string {
	var out []string
	for len(s) > 255 {
		out, s = append(out, s[:255]), s[255:]
	}
	return append(out, s)
}

// asked returns the queries the server received.
func (d *testDNS) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.queries)
}

// silentDNS is a UDP socket that reads queries and never answers.
func silentDNS(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// closedPort is a 127.0.0.1 UDP port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// dnsEngine is an engine whose checks ask a test DNS server serving z.
func dnsEngine(t *testing.T, z zone, cfg Config) (*Engine, *testDNS) {
	t.Helper()
	d := startDNS(t, z)
	cfg.Spam.Resolver = d.addr
	return newTestEngine(t, cfg), d
}

// newTestEngine is an engine over a new store, named mx.abox.test. Its
// DNS checks ask cfg.Spam.Resolver, which a test must set.
func newTestEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.Spam.Resolver == "" {
		t.Fatal("a test engine needs a test resolver")
	}
	if cfg.Spam.Hostname == "" {
		cfg.Spam.Hostname = "mx.abox.test"
	}
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, cfg)
}

func TestParseResolver(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1", "127.0.0.1:53", true},
		{"127.0.0.1:5353", "127.0.0.1:5353", true},
		{"::1", "[::1]:53", true},
		{"[::1]:5353", "[::1]:5353", true},
		{"dns.example", "", false},
		{"127.0.0.1:0", "", false},
		{"127.0.0.1:x", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseResolver(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseResolver(%q) = %q, %v; want %q (ok %v)", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// TestResolverAsksConfiguredServer: names go to the configured server,
// absolute (no search list), and the answers come back.
func TestResolverAsksConfiguredServer(t *testing.T) {
	d := startDNS(t, zone{
		txt: map[string][]string{"long.test": {strings.Repeat("k", 600)}},
		a:   map[string][]string{"host.test": {"127.0.0.2"}},
	})
	r := newResolver(d.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	txt, err := r.LookupTXT(ctx, "long.test")
	if err != nil || len(txt) != 1 || txt[0] != strings.Repeat("k", 600) {
		t.Fatalf("TXT: %q, %v (a long record's strings must be joined)", txt, err)
	}
	as, err := r.lookupA(ctx, "host.test")
	if err != nil || len(as) != 1 || as[0].String() != "127.0.0.2" {
		t.Fatalf("A: %v, %v", as, err)
	}
	if _, err := r.LookupTXT(ctx, "missing.test"); !notFound(err) {
		t.Fatalf("NXDOMAIN: %v, want not found", err)
	}
	if got := d.asked(); !slices.Equal(got, []string{"TXT long.test", "A host.test", "TXT missing.test"}) {
		t.Fatalf("queries %q", got)
	}
}
