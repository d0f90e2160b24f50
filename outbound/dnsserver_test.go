package outbound

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is a recursive resolver's stand-in on loopback: it answers from
// a list of records, sets AD for names in "signed" zones (only when the
// query has the DO bit, as a validating resolver does), and can answer
// SERVFAIL, drop a question (a timeout) or truncate over UDP.
type testDNS struct {
	addr string

	mu       sync.Mutex
	rrs      []dns.RR
	signed   []string        // zone suffixes, fqdn
	servfail map[string]bool // "name TYPE"
	drop     map[string]bool // "name TYPE"
	tcpOnly  map[string]bool // "name TYPE"
	queries  map[string]int  // "name TYPE" -> count
	doBits   map[string]bool // "name TYPE" -> the last query had DO
}

func newDNS(t *testing.T) *testDNS {
	t.Helper()
	d := &testDNS{servfail: map[string]bool{}, drop: map[string]bool{}, tcpOnly: map[string]bool{}, queries: map[string]int{}, doBits: map[string]bool{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no UDP and TCP port pair free on 127.0.0.1")
	}
	d.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return d
}

// add parses zone-file lines: "mx.example.test. A 127.1.2.3".
func (d *testDNS) add(t *testing.T, lines ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		d.rrs = append(d.rrs, rr)
	}
}

// remove deletes every record of name and type.
func (d *testDNS) remove(name string, qtype uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	kept := d.rrs[:0]
	for _, rr := range d.rrs {
		if !(strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) && rr.Header().Rrtype == qtype) {
			kept = append(kept, rr)
		}
	}
	d.rrs = kept
}

func (d *testDNS) sign(zone string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.signed = append(d.signed, strings.ToLower(dns.Fqdn(zone)))
}

func key(name string, qtype uint16) string {
	return strings.ToLower(dns.Fqdn(name)) + " " + dns.TypeToString[qtype]
}

func (d *testDNS) setServfail(name string, qtype uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.servfail[key(name, qtype)] = true
}

func (d *testDNS) setDrop(name string, qtype uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drop[key(name, qtype)] = true
}

func (d *testDNS) setTCPOnly(name string, qtype uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tcpOnly[key(name, qtype)] = true
}

// asked is how many times name/type was queried.
func (d *testDNS) asked(name string, qtype uint16) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[key(name, qtype)]
}

// askedType is how many queries of qtype came, any name.
func (d *testDNS) askedType(qtype uint16) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k, c := range d.queries {
		if strings.HasSuffix(k, " "+dns.TypeToString[qtype]) {
			n += c
		}
	}
	return n
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	k := key(q.Name, q.Qtype)
	name := strings.ToLower(q.Name)
	d.mu.Lock()
	d.queries[k]++
	do := r.IsEdns0() != nil && r.IsEdns0().Do()
	d.doBits[k] = do
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	exists := false
	for _, rr := range d.rrs {
		if strings.EqualFold(rr.Header().Name, q.Name) {
			exists = true
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	for _, z := range d.signed {
		if name == z || strings.HasSuffix(name, "."+z) {
			m.AuthenticatedData = do
		}
	}
	switch {
	case d.drop[k]:
		d.mu.Unlock()
		return
	case d.servfail[k]:
		m.Answer, m.AuthenticatedData = nil, false
		m.Rcode = dns.RcodeServerFailure
	case d.tcpOnly[k] && isUDP:
		m.Answer, m.Truncated = nil, true
	case !exists:
		m.Rcode = dns.RcodeNameError
	}
	d.mu.Unlock()
	if r.IsEdns0() != nil {
		m.SetEdns0(1232, do)
	}
	w.WriteMsg(m)
}
