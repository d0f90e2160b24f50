package smtpd_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestAuthenticationResults: an MX delivery from outside the trusted
// networks is checked with SPF, DKIM and DMARC against the configured
// resolver (an in-process DNS server here, never the internet), and the
// stored message carries the server's Authentication-Results after its
// Received field; a forged Authentication-Results naming this server is
// dropped, another server's kept. (Deliveries from the trusted networks,
// as in the other tests, get no such header: checkStored allows none.)
func TestAuthenticationResults(t *testing.T) {
	t.Parallel()
	resolver := serveDNS(t, map[string]string{
		"remote.test":        "v=spf1 ip4:127.0.0.1 -all",
		"_dmarc.remote.test": "v=DMARC1; p=reject",
	})
	e := newEnv(t)
	e.Config = filepath.Join(t.TempDir(), "abox.toml")
	conf := fmt.Sprintf("trusted-networks = []\ndns-resolver = %q\ndns-timeout = \"5s\"\n", resolver)
	if err := os.WriteFile(e.Config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	to := e.addUser("verified")
	s := e.start()

	msg := message("sender@remote.test", to, "checked", "hello")
	forged := "Authentication-Results: " + hostname + "; dkim=pass header.d=bank.test\r\n"
	other := "Authentication-Results: mx.other.test; spf=pass smtp.mailfrom=remote.test\r\n"
	c := dial(t, s.smtp)
	c.ehlo()
	c.deliver("sender@remote.test", []string{to}, forged+other+msg)

	body := string(e.onlyMessage(to).Body)
	ours := "Authentication-Results: " + hostname + ";\r\n" +
		"\tspf=pass smtp.mailfrom=remote.test;\r\n" +
		"\tdkim=none;\r\n" +
		"\tdmarc=pass header.from=remote.test\r\n"
	i := strings.Index(body, "Authentication-Results: "+hostname+";\r\n\t")
	if i < 0 {
		t.Fatalf("stored message lacks the server's Authentication-Results:\n%s", body)
	}
	trace, rest := body[:i], body[i:]
	if !strings.HasPrefix(trace, "Return-Path: <sender@remote.test>\r\n") || !strings.Contains(trace, "\r\nReceived: from client.test") ||
		strings.Count(trace, "\r\n") != strings.Count(trace, "\r\n\t")+2 {
		t.Errorf("before Authentication-Results: %q, want exactly Return-Path and Received", trace)
	}
	if rest != ours+other+msg {
		t.Errorf("stored after the trace fields:\n%q\nwant\n%q", rest, ours+other+msg)
	}
	if !s.Log.Contains(`"msg":"delivered"`, "SPF pass for remote.test from 127.0.0.1", "DMARC pass for remote.test") {
		t.Errorf("the log lacks the checks of the verdict:\n%s", s.Log)
	}
}

// serveDNS runs a DNS server on a free 127.0.0.1 UDP port answering TXT
// queries from txt (name without the trailing dot), NXDOMAIN for any
// other name, and returns its address.
func serveDNS(t *testing.T, txt map[string]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			q := r.Question[0]
			v, ok := txt[strings.ToLower(strings.TrimSuffix(q.Name, "."))]
			switch {
			case !ok:
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeTXT:
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}
