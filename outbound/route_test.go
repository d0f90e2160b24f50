package outbound

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMXOrder: the lower preference is tried first, whatever order the
// records come in, and a working first host is the only one contacted.
func TestMXOrder(t *testing.T) {
	w := newWorld(t)
	second, first := newMX(t, mxOpts{}), newMX(t, mxOpts{})
	w.host("mx2.example.test", second.addr)
	w.host("mx1.example.test", first.addr)
	w.mx("example.test", 20, "mx2.example.test")
	w.mx("example.test", 10, "mx1.example.test")
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Host != "mx1.example.test" || res.Addr != first.addr.String()+":25" {
		t.Errorf("delivered via %s %s, want mx1.example.test %s:25", res.Host, res.Addr, first.addr)
	}
	if res.Recipients[0].RemoteMTA != "mx1.example.test" {
		t.Errorf("RemoteMTA %q", res.Recipients[0].RemoteMTA)
	}
	if got := first.transactions(); len(got) != 1 || got[0].from != "a@sender.test" || !slices.Equal(got[0].rcpts, []string{"b@example.test"}) || string(got[0].data) != testBody {
		t.Errorf("first MX received %+v", got)
	}
	if n := second.connections(); n != 0 {
		t.Errorf("second MX got %d connections, want 0", n)
	}
}

// TestMXFallback: a refused connection and a 421 greeting both move on to
// the next MX (RFC 5321 §5.1, §3.8).
func TestMXFallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(t *testing.T) string // the first MX's address
	}{
		{"connection refused", func(t *testing.T) string { return unusedLoopback(t).String() }},
		{"421 greeting", func(t *testing.T) string {
			return rawServer(t, 25, func(c net.Conn) { io.WriteString(c, "421 4.3.2 busy, try later\r\n") }).String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			second := newMX(t, mxOpts{})
			w.dns.add(t, "mx1.example.test. A "+tc.first(t))
			w.host("mx2.example.test", second.addr)
			w.mx("example.test", 10, "mx1.example.test")
			w.mx("example.test", 20, "mx2.example.test")
			res := w.deliver(w.client(), "example.test", message("b@example.test"))
			checkAll(t, res, 1, delivered)
			if res.Host != "mx2.example.test" || len(second.transactions()) != 1 {
				t.Errorf("host %s, second MX transactions %d", res.Host, len(second.transactions()))
			}
		})
	}
}

// TestMXAllFail: no host answers: deferred, with the last reason.
func TestMXAllFail(t *testing.T) {
	w := newWorld(t)
	busy := rawServer(t, 25, func(c net.Conn) { io.WriteString(c, "421 4.3.2 busy, try later\r\n") })
	w.host("mx1.example.test", unusedLoopback(t))
	w.host("mx2.example.test", busy)
	w.mx("example.test", 10, "mx1.example.test")
	w.mx("example.test", 20, "mx2.example.test")
	res := w.deliver(w.client(), "example.test", message("b@example.test", "c@example.test"))
	checkAll(t, res, 2, want{status: Deferred, code: 421, enhanced: "4.3.2", text: "busy", remote: true})

	w.dns.remove("mx2.example.test", dns.TypeA)
	w.host("mx2.example.test", unusedLoopback(t))
	res = w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, want{status: Deferred, code: 451, enhanced: "4.4.1", text: "connect to mx2.example.test"})
}

// TestImplicitMX: no MX records, the domain's own address (RFC 5321 §5.1).
func TestImplicitMX(t *testing.T) {
	w := newWorld(t)
	m := newMX(t, mxOpts{})
	w.host("example.test", m.addr)
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Host != "example.test" || len(m.transactions()) != 1 {
		t.Errorf("host %q, transactions %d", res.Host, len(m.transactions()))
	}
	if w.dns.asked("example.test", dns.TypeMX) != 1 {
		t.Error("no MX query")
	}
}

// TestNoRoute: the answers that end the attempt before any connection.
func TestNoRoute(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world)
		want  want
	}{
		{"null MX", func(w *world) {
			w.dns.add(w.t, "example.test. MX 0 .", "example.test. A 127.0.0.1")
		}, want{status: Failed, code: 556, enhanced: "5.1.10", text: "null MX"}},
		{"NXDOMAIN", func(w *world) {}, want{status: Failed, code: 550, enhanced: "5.1.2", text: "does not exist"}},
		{"SERVFAIL", func(w *world) {
			w.mx("example.test", 10, "mx.example.test")
			w.dns.setServfail("example.test", dns.TypeMX)
		}, want{status: Deferred, code: 451, enhanced: "4.4.3", text: "SERVFAIL"}},
		{"timeout", func(w *world) {
			w.mx("example.test", 10, "mx.example.test")
			w.dns.setDrop("example.test", dns.TypeMX)
		}, want{status: Deferred, code: 451, enhanced: "4.4.3", text: "MX example.test"}},
		{"MX host without address", func(w *world) {
			w.mx("example.test", 10, "mx.example.test")
		}, want{status: Deferred, code: 451, enhanced: "4.4.3", text: "mx.example.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			tc.setup(w)
			c := w.client(func(c *Config) { c.DNSTimeout = 300 * time.Millisecond })
			res := w.deliver(c, "example.test", message("b@example.test", "c@example.test"))
			checkAll(t, res, 2, tc.want)
			if res.Host != "" || res.Addr != "" {
				t.Errorf("connected to %s %s", res.Host, res.Addr)
			}
			if tc.name == "null MX" && w.dns.askedType(dns.TypeA)+w.dns.askedType(dns.TypeAAAA) != 0 {
				t.Error("null MX domain: addresses were looked up")
			}
		})
	}
}

// TestDNSOverTCP: a truncated UDP answer is asked again over TCP, and
// every query carries the DO bit.
func TestDNSOverTCP(t *testing.T) {
	w := newWorld(t)
	m := w.mxServer("example.test", "mx.example.test", mxOpts{})
	w.dns.setTCPOnly("example.test", dns.TypeMX)
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if len(m.transactions()) != 1 || w.dns.asked("example.test", dns.TypeMX) != 2 {
		t.Errorf("transactions %d, MX queries %d (want 1 over UDP, 1 over TCP)", len(m.transactions()), w.dns.asked("example.test", dns.TypeMX))
	}
	w.dns.mu.Lock()
	defer w.dns.mu.Unlock()
	for k, do := range w.dns.doBits {
		if !do {
			t.Errorf("query %s without the DO bit", k)
		}
	}
}

// TestMXEqualPreference: hosts of equal preference come in both orders
// (RFC 5321 §5.1), after the lower preference, and are bounded in number.
func TestMXEqualPreference(t *testing.T) {
	w := newWorld(t)
	w.mx("example.test", 5, "first.example.test")
	for _, h := range []string{"a", "b", "c", "d", "e", "f"} {
		w.mx("example.test", 10, h+".example.test")
	}
	c := w.client()
	seen := map[string]bool{}
	for range 40 {
		rt, o := c.route(context.Background(), "example.test")
		if o != nil {
			t.Fatal(o)
		}
		if len(rt.hosts) != maxMXHosts || rt.hosts[0] != "first.example.test" {
			t.Fatalf("hosts %v", rt.hosts)
		}
		seen[rt.hosts[1]] = true
	}
	if len(seen) < 3 {
		t.Errorf("second host was always one of %v: equal preferences not randomised", seen)
	}
}

// TestNormalizeDomain: IDNs go to DNS as A-labels.
func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{"Example.TEST.": "example.test", "bücher.test": "xn--bcher-kva.test"} {
		got, err := normalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("normalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "[127.0.0.1]", strings.Repeat("a", 70) + ".test"} {
		if _, err := normalizeDomain(bad); err == nil {
			t.Errorf("normalizeDomain(%q) accepted", bad)
		}
	}
}
