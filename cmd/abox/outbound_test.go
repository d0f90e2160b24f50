package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/miekg/dns"

	"abox/cmd/abox/aboxtest"
)

// serveZoneAt serves rrs from a DNS server on loopback (UDP) and returns
// its address; names it does not hold get an empty answer.
func serveZoneAt(t *testing.T, rrs []dns.RR) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			for _, rr := range rrs {
				h := rr.Header()
				if strings.EqualFold(h.Name, q.Question[0].Name) && h.Rrtype == q.Question[0].Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func mustRRs(t *testing.T, lines ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil || rr == nil {
			t.Fatalf("record %q: %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

// outboundPair is a sending abox (sender.test, alice) and a receiving
// abox (recv.test, bob) with a DNS zone on loopback naming the second
// as recv.test's MX and publishing the first's SPF, DKIM and DMARC.
type outboundPair struct {
	sender, recv       *abox
	sendSrv, recvSrv   *aboxtest.Server
	sendAddrs, rcvAddr map[string]string
}

func newOutboundPair(t *testing.T, senderFlags ...string) *outboundPair {
	t.Helper()
	p := &outboundPair{sender: newAbox(t), recv: newAbox(t)}
	p.sender.Hostname = "mx.sender.test"
	p.recv.Hostname = "mx.recv.test"
	p.sender.OK("domain", "add", "sender.test")
	p.sender.JSONIn(goodPassword+"\n", &userJSON{}, "user", "add", "alice@sender.test", "--phone", testPhone, "--password-stdin")
	var keys []dkimView
	p.sender.JSON(&keys, "domain", "dkim", "sender.test")
	p.recv.OK("domain", "add", "recv.test")
	p.recv.JSONIn(goodPassword+"\n", &userJSON{}, "user", "add", "bob@recv.test", "--phone", testPhone, "--password-stdin")
	zone := []string{
		"recv.test. 300 IN MX 10 mx.recv.test.",
		"mx.recv.test. 300 IN A 127.0.0.1",
		"sender.test. 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"",
		"_dmarc.sender.test. 300 IN TXT \"v=DMARC1; p=reject\"",
		"mx.sender.test. 300 IN A 127.0.0.1",
		// slow.test's MX answers nowhere (nothing listens on 127.0.0.2
		// at the receiver's port): every attempt is deferred.
		"slow.test. 300 IN MX 10 mx.slow.test.",
		"mx.slow.test. 300 IN A 127.0.0.2",
		// null.test accepts no mail at all (RFC 7505).
		"null.test. 300 IN MX 0 .",
	}
	for _, k := range keys {
		zone = append(zone, fmt.Sprintf("%s. 300 IN TXT %s", k.Name, txtQuoted(k.Record)))
	}
	resolver := serveZoneAt(t, mustRRs(t, zone...))
	// The receiver checks SPF, DKIM and DMARC of mail from 127.0.0.1:
	// loopback must not be a trusted network there.
	p.recv.ServeFlags = []string{"--dns-resolver", resolver, "--trusted-networks", "192.0.2.1/32"}
	p.recvSrv = p.recv.Start()
	p.rcvAddr = p.recvSrv.Addrs()
	_, port, _ := net.SplitHostPort(p.rcvAddr["smtp"])
	p.sender.ServeFlags = append([]string{"--dns-resolver", resolver, "--outbound-port", port}, senderFlags...)
	p.sendSrv = p.sender.Start()
	p.sendAddrs = p.sendSrv.Addrs()
	return p
}

// inboxBodies returns every message in a mailbox, read over IMAP.
func inboxBodies(t *testing.T, addr, user, mailbox string) []string {
	t.Helper()
	c := imapLogin(t, addr, user, goodPassword)
	defer c.Logout()
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.FindBodySection(section)))
	}
	return out
}

// waitMessages polls a mailbox until it holds n messages.
func waitMessages(t *testing.T, addr, user string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := inboxBodies(t, addr, user, "INBOX")
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages after %v, want %d:\n%s", user, len(got), within, n, strings.Join(got, "\n-----\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOutboundEndToEnd: a subscriber submits one letter (as Thunderbird
// does: STARTTLS, AUTH) to a recipient on another domain, an unknown one
// there, a domain that never answers and a domain with a null MX. The
// letter reaches the other abox, signed, and passes its SPF, DKIM and
// DMARC checks; the sender gets a bounce for the unknown recipient and
// the null MX at once, one delay warning and, at the end of the
// lifetime, a bounce for the unreachable domain; the queue is then
// empty and the figures are in /metrics.
func TestOutboundEndToEnd(t *testing.T) {
	t.Parallel()
	p := newOutboundPair(t, "--outbound-retry-min", "500ms", "--outbound-retry-max", "1s",
		"--outbound-lifetime", "6s", "--outbound-delay-warning", "2s")
	c := submitter(t, p.sendAddrs["submission"], "alice@sender.test", goodPassword)
	if ok, params := c.Extension("DSN"); !ok {
		t.Fatalf("submission does not offer DSN (%q)", params)
	}
	if err := c.Mail("alice@sender.test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"bob@recv.test", "nobody@recv.test", "carol@slow.test", "dave@null.test"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, crlf("From: Alice <alice@sender.test>\nTo: bob@recv.test, nobody@recv.test, carol@slow.test, dave@null.test\nSubject: outbound test\nMessage-ID: <out-1@sender.test>\n\nHello from another domain.\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()

	got := waitMessages(t, p.rcvAddr["imaps"], "bob@recv.test", 1, 30*time.Second)
	msg := got[0]
	for _, want := range []string{"DKIM-Signature: a=rsa-sha256;", "c=relaxed/relaxed; d=sender.test;", "spf=pass", "dkim=pass header.d=sender.test", "dmarc=pass",
		"Received: by mx.sender.test (abox) with ", "(authenticated sender: alice@sender.test)", "Hello from another domain."} {
		if !strings.Contains(msg, want) {
			t.Errorf("the delivered message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Count(msg, "Return-Path:") != 1 || strings.Contains(msg, "client.test") {
		t.Errorf("the delivered message has the sender's Return-Path or the subscriber's HELO:\n%s", msg)
	}

	// Bounces: nobody@recv.test (5.1.1 from the other server) and the
	// null MX (5.1.10) at once; the delay warning for slow.test after
	// 2 s; its bounce after 6 s.
	notes := waitMessages(t, p.sendAddrs["imaps"], "alice@sender.test", 4, 40*time.Second)
	findNotice(t, notes, "Final-Recipient: rfc822; nobody@recv.test", "Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx.recv.test", "Diagnostic-Code: smtp; 550 5.1.1")
	findNotice(t, notes, "Final-Recipient: rfc822; dave@null.test", "Action: failed", "Status: 5.1.10")
	findNotice(t, notes, "Final-Recipient: rfc822; carol@slow.test", "Action: delayed", "Will-Retry-Until:")
	bounce := findNotice(t, notes, "Final-Recipient: rfc822; carol@slow.test", "Action: failed", "gave up after")
	for _, n := range notes {
		if strings.Contains(n, "bob@recv.test") && strings.Contains(n, "Final-Recipient: rfc822; bob@recv.test") {
			t.Errorf("a notification names the delivered recipient:\n%s", n)
		}
		if !strings.Contains(n, "Return-Path: <>") || !strings.Contains(n, "From: Mail Delivery System <MAILER-DAEMON@mx.sender.test>") {
			t.Errorf("a notification does not come from the null sender and MAILER-DAEMON:\n%s", n)
		}
	}
	if !strings.Contains(bounce, "Content-Type: message/rfc822") || !strings.Contains(bounce, "Subject: outbound test") {
		t.Errorf("the bounce does not return the message:\n%s", bounce)
	}

	var queue []queueView
	p.sender.JSON(&queue, "queue", "list")
	if len(queue) != 0 {
		t.Fatalf("queue not empty at the end: %+v", queue)
	}
	// Each node counts what it did (in the harness's cluster mode the
	// attempts are spread over the nodes): the sums are the server's.
	var metrics []string
	for _, n := range p.sendSrv.Nodes() {
		metrics = append(metrics, httpGet(t, "http://"+n.Addr("http")+"/metrics"))
	}
	for _, want := range []string{`abox_outbound_notifications_total{action="failed"} 3`, `abox_outbound_notifications_total{action="delayed"} 1`,
		`abox_outbound_recipient_attempts_total{result="delivered"} 1`, `abox_outbound_failures_total{reason="5.1.1"} 1`, "abox_outbound_queue_entries 0"} {
		sample, value, _ := strings.Cut(want, " ")
		sum := 0.0
		for _, m := range metrics {
			if v := metricValue(m, sample); v > 0 { // -1: not on that node
				sum += v
			}
		}
		if strconv.FormatFloat(sum, 'f', -1, 64) != value {
			t.Errorf("/metrics: %s is %v over the nodes, want %s", sample, sum, value)
		}
	}
}

// TestOutboundQueueCommands: an account past outbound-hold-after has its
// letter held; the operator lists it (human and JSON), shows it, and
// releases it, after which it is delivered; another held letter is
// dropped without a notification. Each action is audited.
func TestOutboundQueueCommands(t *testing.T) {
	t.Parallel()
	p := newOutboundPair(t, "--outbound-hold-after", "1")
	send := func(subject string, rcpts ...string) {
		if err := submitAs(t, p.sendAddrs, "alice@sender.test", goodPassword, "alice@sender.test", rcpts,
			"From: alice@sender.test\nTo: bob@recv.test\nSubject: "+subject+"\n\nbody\n"); err != nil {
			t.Fatalf("submit %s: %v", subject, err)
		}
	}
	send("first", "bob@recv.test")
	waitMessages(t, p.rcvAddr["imaps"], "bob@recv.test", 1, 30*time.Second)
	send("second", "bob@recv.test")
	send("third", "bob@recv.test")
	var held []queueView
	p.sender.JSON(&held, "queue", "list", "--held")
	if len(held) != 2 || held[0].State != "held" || !strings.Contains(held[0].HeldReason, "within an hour") || held[0].Sender != "alice@sender.test" {
		t.Fatalf("held entries: %+v", held)
	}
	if out := p.sender.OK("queue", "list"); !strings.Contains(out, "held") || !strings.Contains(out, "recv.test") {
		t.Fatalf("queue list:\n%s", out)
	}
	if out := p.sender.OK("queue", "show", fmt.Sprint(held[0].ID)); !strings.Contains(out, "<bob@recv.test> pending") {
		t.Fatalf("queue show:\n%s", out)
	}
	p.sender.OK("queue", "release", fmt.Sprint(held[0].ID))
	waitMessages(t, p.rcvAddr["imaps"], "bob@recv.test", 2, 30*time.Second)
	p.sender.OK("queue", "drop", fmt.Sprint(held[1].ID), "--reason", "looks compromised")
	var left []queueView
	p.sender.JSON(&left, "queue", "list")
	if len(left) != 0 {
		t.Fatalf("queue after release and drop: %+v", left)
	}
	p.sender.Fail(1, "queue", "release", fmt.Sprint(held[1].ID))
	p.sender.Fail(2, "queue", "release", "x")
	p.sender.Fail(2, "queue", "release")
	p.sender.Fail(2, "queue", "release", "--all", "7")
	// Selections: everything alice sent, held or not.
	send("fourth", "bob@recv.test")
	var acted []queueActed
	p.sender.JSON(&acted, "queue", "release", "--account", "alice@sender.test")
	if len(acted) != 1 || acted[0].Count != 1 {
		t.Fatalf("release --account: %+v", acted)
	}
	waitMessages(t, p.rcvAddr["imaps"], "bob@recv.test", 3, 30*time.Second)
	if out := p.sender.OK("queue", "retry", "--all"); !strings.Contains(out, "0 queue entries: retry") {
		t.Fatalf("retry --all on an empty queue: %q", out)
	}
	if n := len(inboxBodies(t, p.sendAddrs["imaps"], "alice@sender.test", "INBOX")); n != 0 {
		t.Fatalf("the sender got %d notifications for a drop", n)
	}
	audit := p.sender.OK("audit", "--json")
	for _, want := range []string{`"queue.release"`, `"queue.drop"`, "looks compromised", `"queue.list"`, `"queue.show"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// findNotice returns the notification among notes holding every one of
// words, failing the test (and returning "") when none does.
func findNotice(t *testing.T, notes []string, words ...string) string {
	t.Helper()
	for _, n := range notes {
		all := true
		for _, w := range words {
			all = all && strings.Contains(n, w)
		}
		if all {
			return n
		}
	}
	t.Errorf("no notification with %q among:\n%s", words, strings.Join(notes, "\n=====\n"))
	return ""
}
