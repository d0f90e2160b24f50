package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/smtp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// countingSink is an SMTP server on loopback that takes every message
// and counts them by Message-ID. It waits delay before answering the
// end of DATA, so that a sender killed at a random moment is often in
// the middle of a delivery.
type countingSink struct {
	ln    net.Listener
	delay time.Duration

	busy atomic.Int32 // sessions inside a transaction (MAIL to the reply to DATA)

	mu  sync.Mutex
	got map[string][]time.Time // Message-ID -> when each copy taken had come in whole; guarded by mu
}

func newCountingSink(t *testing.T, delay time.Duration) *countingSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &countingSink{ln: ln, delay: delay, got: map[string][]time.Time{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.session(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return s
}

func (s *countingSink) port() string {
	_, p, _ := net.SplitHostPort(s.ln.Addr().String())
	return p
}

// session speaks just enough SMTP (RFC 5321) to take messages.
func (s *countingSink) session(c net.Conn) {
	defer c.Close()
	inTx := false
	defer func() {
		if inTx {
			s.busy.Add(-1)
		}
	}()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(line string) bool {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		w.WriteString(line + "\r\n")
		return w.Flush() == nil
	}
	if !reply("220 sink.recv.test ESMTP") {
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "HELO":
			reply("250-sink.recv.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES")
		case "MAIL":
			if !inTx {
				inTx = true
				s.busy.Add(1)
			}
			reply("250 2.1.0 ok")
		case "RCPT", "NOOP":
			reply("250 2.1.5 ok")
		case "RSET":
			if inTx {
				inTx = false
				s.busy.Add(-1)
			}
			reply("250 2.0.0 ok")
		case "DATA":
			if !reply("354 go on") {
				return
			}
			var msg bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return // cut off: nothing taken
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			arrived := time.Now()
			time.Sleep(s.delay)
			// Taken from here on, whether the sender lives to read the
			// 250 or not: a real server has it in its queue now.
			id := messageID(msg.String())
			s.mu.Lock()
			s.got[id] = append(s.got[id], arrived)
			s.mu.Unlock()
			inTx = false
			s.busy.Add(-1)
			if !reply("250 2.0.0 taken") {
				return
			}
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.1 no")
		}
	}
}

// messageID returns the Message-ID field's value of msg, "" if none.
func messageID(msg string) string {
	hdr, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, l := range strings.Split(hdr, "\r\n") {
		if name, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(name, "Message-ID") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// copies returns when each copy of each Message-ID came in.
func (s *countingSink) copies() map[string][]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]time.Time, len(s.got))
	for k, v := range s.got {
		out[k] = slices.Clone(v)
	}
	return out
}

// submission is a submission session that returns its errors instead
// of failing the test: the server under it may be killed at any time.
func openSubmission(addr, user, password string) (*smtp.Client, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err == nil {
		err = c.Hello("client.test")
	}
	if err == nil {
		err = c.StartTLS(&tls.Config{InsecureSkipVerify: true})
	}
	if err == nil {
		err = c.Auth(smtp.PlainAuth("", user, password, host))
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return c, conn, nil
}

// TestOutboundSurvivesKill: a subscriber submits letters to another
// domain while the sending abox is killed (SIGKILL) at random moments
// and started again on the same data directory, several times, both
// during submission and during delivery to a slow receiving server.
// Every letter that got its 250 reaches the receiver (at least once);
// a copy is only duplicated when it was in flight at a kill (RFC 5321
// §6.1's window: the receiver had taken it, the sender had not yet
// recorded that), so there are at most kills × outbound-concurrency
// duplicates; nothing arrives that was never submitted; the queue
// drains to empty, no notification is sent (nothing failed), and the
// store checks clean (the harness's check at cleanup).
func TestOutboundSurvivesKill(t *testing.T) {
	aboxtest.SkipInCluster(t, "kill -9 of the only process: bbolt's next start releases its attempts at once; on PostgreSQL a killed node's attempts wait for their leases to expire (another node may still run them)")
	t.Parallel()
	const (
		letters     = 60
		kills       = 5
		concurrency = 4
	)
	sink := newCountingSink(t, 50*time.Millisecond)
	a := newAbox(t)
	a.Hostname = "mx.sender.test"
	fastHashing(t, a.Dir)
	a.OK("domain", "add", "sender.test")
	a.JSONIn(goodPassword+"\n", &userJSON{}, "user", "add", "alice@sender.test", "--phone", testPhone, "--password-stdin")
	resolver := serveZoneAt(t, mustRRs(t,
		"recv.test. 300 IN MX 10 mx.recv.test.",
		"mx.recv.test. 300 IN A 127.0.0.1"))
	a.ServeFlags = []string{"--dns-resolver", resolver, "--outbound-port", sink.port(),
		"--outbound-concurrency", strconv.Itoa(concurrency), "--outbound-retry-min", "200ms", "--outbound-retry-max", "1s"}

	// The submitter runs until letters have been acknowledged, on
	// whatever server is up; acked and unsure are its results.
	var (
		mu       sync.Mutex
		addr     string // the running server's submission address; "" while none; guarded by mu
		ackedN   atomic.Int32
		acked    = map[string]bool{} // Message-IDs that got 250; written by the submitter only
		unsure   = map[string]bool{} // the end of DATA got no answer (a kill); written by the submitter only
		finished = make(chan struct{})
	)
	currentAddr := func() string { mu.Lock(); defer mu.Unlock(); return addr }
	setAddr := func(s string) { mu.Lock(); addr = s; mu.Unlock() }
	go func() {
		defer close(finished)
		next := 0
		for int(ackedN.Load()) < letters {
			sub := currentAddr()
			if sub == "" {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			c, conn, err := openSubmission(sub, "alice@sender.test", goodPassword)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for int(ackedN.Load()) < letters {
				next++
				id := fmt.Sprintf("<kill-%d@sender.test>", next)
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				if err := c.Mail("alice@sender.test"); err != nil {
					break
				}
				if err := c.Rcpt("bob@recv.test"); err != nil {
					break
				}
				w, err := c.Data()
				if err != nil {
					break
				}
				unsure[id] = true
				fmt.Fprintf(w, "From: alice@sender.test\r\nTo: bob@recv.test\r\nSubject: letter %d\r\nMessage-ID: %s\r\n\r\nletter %d\r\n", next, id, next)
				if err := w.Close(); err != nil {
					break
				}
				delete(unsure, id)
				acked[id] = true
				ackedN.Add(1)
			}
			c.Close()
		}
	}()

	srv := a.Start()
	setAddr(srv.Addr("submission"))
	// Each kill at a random moment within its share of the submissions,
	// while earlier letters are being delivered.
	var killedAt []time.Time
	killTimes := func() string {
		var s []string
		for _, at := range killedAt {
			s = append(s, at.Format("15:04:05.000"))
		}
		return strings.Join(s, " ")
	}
	var inFlight []int32
	for k := range kills {
		target := int32(letters * (k + 1) / (kills + 2))
		for ackedN.Load() < target {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(mrand.IntN(80)) * time.Millisecond)
		inFlight = append(inFlight, sink.busy.Load())
		setAddr("")
		srv.Kill()
		killedAt = append(killedAt, time.Now())
		srv = a.Start()
		setAddr(srv.Addr("submission"))
	}
	a.srv = srv
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatalf("the submitter has %d of %d letters acknowledged after 60 s", ackedN.Load(), letters)
	}

	// Every acknowledged letter arrives, and the queue drains.
	deadline := time.Now().Add(40 * time.Second)
	for {
		got := sink.copies()
		var missing []string
		for id := range acked {
			if len(got[id]) == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			slices.Sort(missing)
			t.Fatalf("%d acknowledged letters never arrived: %v", len(missing), missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitQueue(t, a, 30*time.Second, "empty", func(q []queueView) bool { return len(q) == 0 })

	// A second copy must have a kill between it and the copy before:
	// only a letter in flight at a kill is sent again, so each kill
	// accounts for at most outbound-concurrency of them.
	dups, unsureArrived := 0, 0
	perKill := make([]int, kills)
	for id, times := range sink.copies() {
		switch {
		case acked[id]:
		case unsure[id]:
			unsureArrived++
		default:
			t.Errorf("the receiver got %q (%d copies), which was never submitted", id, len(times))
		}
		for j := 1; j < len(times); j++ {
			dups++
			k := slices.IndexFunc(killedAt, func(at time.Time) bool { return at.After(times[j-1]) && at.Before(times[j]) })
			if k < 0 {
				t.Errorf("%s came in again at %s with no kill since its copy at %s (kills at %s)", id,
					times[j].Format("15:04:05.000"), times[j-1].Format("15:04:05.000"), killTimes())
				continue
			}
			perKill[k]++
		}
	}
	t.Logf("%d letters acknowledged, %d cut off by a kill at the end of DATA (%d of them arrived); %d kills with %v transactions open at the receiver; %d duplicate copies, %v per kill",
		len(acked), len(unsure), unsureArrived, kills, inFlight, dups, perKill)
	for k, n := range perKill {
		if n > concurrency {
			t.Errorf("kill %d was followed by %d duplicates; at most outbound-concurrency (%d) letters can be in flight", k+1, n, concurrency)
		}
	}
	if dups > kills*concurrency {
		t.Errorf("%d duplicates after %d kills with outbound-concurrency %d", dups, kills, concurrency)
	}
	if n := len(inboxBodies(t, srv.Addr("imaps"), "alice@sender.test", "INBOX")); n != 0 {
		t.Errorf("the sender got %d notifications; nothing failed", n)
	}
}
