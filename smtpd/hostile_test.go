package smtpd_test

// Hostile input (issue 13): what a client without a login can make the
// server hold. Every assertion is a count or a ratio of bytes, never a
// duration.

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric reads one unlabelled sample from the server's /metrics.
func metric(t *testing.T, s *server, name string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestBDATSizeOverflow: a chunk size that makes the running total
// overflow int64 (BDAT 10, then BDAT 9223372036854775807 LAST) must not
// slip past the size check: the server discards the chunk instead of
// buffering whatever arrives. Measured as the growth of the server's
// heap in use while 96 MiB of the chunk arrive: buffered, it grows by
// about that much; discarded, by a small fraction of it.
func TestBDATSizeOverflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	to := e.addUser("bdat")
	s := e.start()
	c := dial(t, s.smtp)
	c.ehlo()
	c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+to+">", 250, "2.1.5")
	c.send("BDAT 10\r\n0123456789")
	c.want("BDAT 10", 250, "2.0.0")
	before := metric(t, s, "go_memstats_heap_inuse_bytes")

	const sent = 96 << 20
	c.send("BDAT 9223372036854775807 LAST\r\n")
	chunk := []byte(strings.Repeat("x", 1<<20))
	for range sent >> 20 {
		c.send(string(chunk))
	}
	after := metric(t, s, "go_memstats_heap_inuse_bytes")
	if growth := after - before; growth > sent/4 {
		t.Errorf("PRODUCT BUG: after %d MiB of a BDAT chunk whose size overflows the total, the server's heap in use grew by %.0f MiB (from %.0f to %.0f MiB): it buffers the chunk",
			sent>>20, growth/(1<<20), before/(1<<20), after/(1<<20))
	}
	c.nc.Close()
	// The server goes on serving.
	dial(t, s.smtp).expect("QUIT", 221, "")
}

// TestDeclaredSizeOverflow: with no message size limit, a declared
// SIZE near 2^63 added to a mailbox's usage overflows; the quota check
// at RCPT must still see a message that does not fit (452 4.2.2).
func TestDeclaredSizeOverflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	to := e.addUser("sizer")
	e.OK("class", "set", "standard", "--max-message-size", "0")
	e.OK("class", "set", "organization", "--max-message-size", "0")
	s := e.start()
	c := dial(t, s.smtp)
	c.ehlo()
	c.deliver("sender@remote.test", []string{to}, message("sender@remote.test", to, "first", "some usage"))
	e.wantMessages(to, 1) // a read of the account's mail checkpoints its usage
	c.expect("MAIL FROM:<sender@remote.test> SIZE=9223372036854775807", 250, "2.1.0")
	if r := c.cmd("RCPT TO:<" + to + ">"); r.code != 452 || r.enh() != "4.2.2" {
		t.Errorf("PRODUCT BUG: RCPT for a declared SIZE of 2^63-1 into a mailbox with usage and a 1 GiB quota: %q, want 452 4.2.2 (usage + SIZE overflows)", r)
	}
}

// dialFrom connects from a given loopback address and returns the client
// and its first reply (the banner, or the refusal).
func dialFrom(t *testing.T, addr, local string) (*rawClient, reply) {
	t.Helper()
	d := &net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc, r: newReader(nc)}
	return c, c.read()
}

// TestConnectionShares: one network (/24) cannot hold more than its
// share of the listener's connections, and a client that has not said
// EHLO within the short hello timeout is let go (issue 13: 21 addresses
// holding idle connections filled the MX cap for 5 minutes). Sessions
// past EHLO keep the RFC 5321 command timeout.
func TestConnectionShares(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Config = filepath.Join(t.TempDir(), "abox.toml")
	cfg := "trusted-networks = []\nsmtp-max-connections = 6\nsmtp-connections-per-network = 3\nsmtp-hello-timeout = \"2s\"\n"
	if err := os.WriteFile(e.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.start()
	var held []*rawClient
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		c, banner := dialFrom(t, s.smtp, ip)
		if banner.code != 220 {
			t.Fatalf("connection from %s: %q", ip, banner)
		}
		c.ehlo()
		held = append(held, c)
	}
	c, r := dialFrom(t, s.smtp, "127.0.0.4")
	if r.code != 421 || r.enh() != "4.7.0" {
		t.Errorf("PRODUCT BUG: a 4th connection from a /24 holding 3 (smtp-connections-per-network = 3): %q, want 421 4.7.0", r)
	} else {
		c.expectClosed()
	}
	idle, r := dialFrom(t, s.smtp, "127.0.1.1")
	if r.code != 220 {
		t.Fatalf("a connection from another /24: %q, want 220", r)
	}
	idle.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	if r, err := idle.readErr(); err != nil || r.code != 421 || r.enh() != "4.4.2" {
		t.Errorf("PRODUCT BUG: a client silent past smtp-hello-timeout (2s) without EHLO: %q, %v; want 421 4.4.2 and close", r, err)
	}
	// The held sessions, idle since their EHLO for longer than the hello
	// timeout, are still there.
	for _, c := range held {
		c.expect("NOOP", 250, "2.0.0")
	}
}
