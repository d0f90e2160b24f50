package outbound

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// eventually waits up to 5s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scriptedMX starts a scripted server as the only MX of example.test.
func scriptedMX(w *world, s *scripted) {
	w.host("mx.example.test", rawServer(w.t, 25, s.handle("220 mx.test ESMTP", []string{"8BITMIME", "SIZE 1000000"})))
	w.mx("example.test", 10, "mx.example.test")
}

var scriptedOK = want{status: Delivered, code: 250, enhanced: "2.0.0", text: "ok", remote: true}

var (
	oneMessage = []string{"EHLO", "MAIL", "RCPT", "DATA"}
	reset      = []string{"RSET"}
	quit       = []string{"QUIT"}
)

func verbs(parts ...[]string) []string { return slices.Concat(parts...) }

func checkVerbs(t *testing.T, s *scripted, want ...[]string) {
	t.Helper()
	got := s.verbs()
	if len(got) != len(want) {
		t.Fatalf("%d connections %q, want %d %q", len(got), got, len(want), want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("connection %d: commands %q, want %q", i+1, got[i], want[i])
		}
	}
}

// TestReuseSequential: a second message to the same domain goes on the
// first one's connection, after RSET, with no DNS lookup and no second
// TLS handshake, and reports the same host and TLS.
func TestReuseSequential(t *testing.T) {
	t.Run("commands", func(t *testing.T) {
		w := newWorld(t)
		var s scripted
		scriptedMX(w, &s)
		c := w.client()
		for range 2 {
			checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
		}
		c.Close()
		checkVerbs(t, &s, verbs(oneMessage, reset, oneMessage[1:], reset, quit))
		if n := w.dns.asked("example.test", dns.TypeMX); n != 1 {
			t.Errorf("%d MX lookups, want 1", n)
		}
	})
	t.Run("STARTTLS", func(t *testing.T) {
		w := newWorld(t)
		cert := selfSigned(t, "mx.example.test")
		m := w.mxServer("example.test", "mx.example.test", mxOpts{cert: &cert, dsn: true})
		c := w.client()
		first := w.deliver(c, "example.test", message("b@example.test"))
		second := w.deliver(c, "example.test", message("c@example.test"))
		checkAll(t, first, 1, delivered)
		checkAll(t, second, 1, delivered)
		first.Recipients, second.Recipients = nil, nil
		if !reflect.DeepEqual(first, second) || second.Security != SecuritySTARTTLS || second.Host != "mx.example.test" || !second.SupportsDSN {
			t.Errorf("first %+v, second %+v", first, second)
		}
		got := m.transactions()
		if m.connections() != 1 || len(got) != 2 || got[0].conn != 1 || got[1].conn != 1 || !got[1].tls ||
			got[0].rcpts[0] != "b@example.test" || got[1].rcpts[0] != "c@example.test" || string(got[1].data) != testBody {
			t.Errorf("%d connections, transactions %+v", m.connections(), got)
		}
	})
}

// TestReuseConcurrent: concurrent messages to one domain share a few
// connections, each message arrives once, and the idle sessions left
// stay within MaxIdlePerDomain.
func TestReuseConcurrent(t *testing.T) {
	const workers, each = 8, 5
	for _, perDomain := range []int{16, 2} {
		t.Run(fmt.Sprint("MaxIdlePerDomain ", perDomain), func(t *testing.T) {
			w := newWorld(t)
			m := w.mxServer("example.test", "mx.example.test", mxOpts{})
			c := w.client(func(c *Config) { c.MaxIdlePerDomain = perDomain })
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					for i := range each {
						res := w.deliver(c, "example.test", message(fmt.Sprintf("g%dm%d@example.test", g, i)))
						checkAll(t, res, 1, delivered)
					}
				})
			}
			wg.Wait()
			seen := map[string]int{}
			for _, r := range m.transactions() {
				for _, a := range r.rcpts {
					seen[a]++
				}
			}
			for g := range workers {
				for i := range each {
					if a := fmt.Sprintf("g%dm%d@example.test", g, i); seen[a] != 1 {
						t.Errorf("%s arrived %d times", a, seen[a])
					}
				}
			}
			// A connection is opened only when no idle one is left, so
			// never more are open than Delivers run at once; with room
			// for them all to idle, none is closed, so none is opened
			// beyond that: tighter than MaxIdlePerDomain+workers. With
			// less room, sessions pushed out are replaced later, and
			// only the idle bound holds.
			n := m.connections()
			if perDomain >= workers && n > workers {
				t.Errorf("%d connections for %d concurrent Delivers", n, workers)
			}
			if idle := c.idle.count("example.test"); idle > perDomain || idle < 1 {
				t.Errorf("%d idle sessions, MaxIdlePerDomain %d", idle, perDomain)
			}
			eventually(t, fmt.Sprintf("at most %d connections open", perDomain), func() bool { return m.openConnections() <= perDomain })
			t.Logf("%d connections for %d messages", n, workers*each)
		})
	}
}

// TestReuseLimits: a session that has carried ReuseLimit messages, or
// lived ReuseTime, ends with QUIT and the next message gets a new one.
func TestReuseLimits(t *testing.T) {
	t.Run("ReuseLimit", func(t *testing.T) {
		w := newWorld(t)
		var s scripted
		scriptedMX(w, &s)
		c := w.client(func(c *Config) { c.ReuseLimit = 2 })
		for range 3 {
			checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
		}
		checkVerbs(t, &s, verbs(oneMessage, reset, oneMessage[1:], quit), verbs(oneMessage, reset))
	})
	t.Run("ReuseTime", func(t *testing.T) {
		w := newWorld(t)
		var s scripted
		scriptedMX(w, &s)
		c := w.client(func(c *Config) { c.ReuseTime = 200 * time.Millisecond; c.IdleTimeout = time.Minute })
		checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
		time.Sleep(300 * time.Millisecond)
		checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
		eventually(t, "the old connection closed", func() bool { return s.closedConnections() == 1 })
		checkVerbs(t, &s, verbs(oneMessage, reset, quit), verbs(oneMessage, reset))
	})
}

// TestIdleTimeout: an idle session is closed, with QUIT, after
// IdleTimeout, and the next message opens a new one.
func TestIdleTimeout(t *testing.T) {
	w := newWorld(t)
	var s scripted
	scriptedMX(w, &s)
	c := w.client(func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
	start := time.Now()
	eventually(t, "the idle connection closed", func() bool { return s.closedConnections() == 1 })
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed after %v", d)
	}
	if n := c.idle.count(""); n != 0 {
		t.Errorf("%d idle sessions", n)
	}
	checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
	checkVerbs(t, &s, verbs(oneMessage, reset, quit), verbs(oneMessage, reset))
}

// TestReuseAfterServerClosed: a server that drops an idle connection,
// with a 421 or without a word, costs the next message nothing: it goes
// on a new connection, is delivered once and reports the new one.
func TestReuseAfterServerClosed(t *testing.T) {
	for _, reply := range []string{"421 4.4.2 mx.test idle timeout", ""} {
		t.Run(fmt.Sprintf("%q", reply), func(t *testing.T) {
			w := newWorld(t)
			s := scripted{idleClose: 50 * time.Millisecond, idleReply: reply}
			scriptedMX(w, &s)
			c := w.client()
			checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
			eventually(t, "closed by the server", func() bool { return s.closedConnections() == 1 })
			if c.idle.count("example.test") != 1 {
				t.Fatal("the session was not parked")
			}
			res := w.deliver(c, "example.test", message("c@example.test"))
			checkAll(t, res, 1, scriptedOK)
			if res.Host != "mx.example.test" || res.Security != SecurityNone {
				t.Errorf("result %+v", res)
			}
			got := s.verbs()
			if len(got) != 2 || !slices.Equal(got[1], verbs(oneMessage, reset)) {
				t.Fatalf("commands %q", got)
			}
			// The first connection may have read the MAIL that found it
			// closed, never more.
			if c := got[0]; !slices.Equal(c, verbs(oneMessage, reset)) && !slices.Equal(c, verbs(oneMessage, reset, []string{"MAIL"})) {
				t.Errorf("first connection: %q", c)
			}
			data := 0
			for _, cmd := range s.commands() {
				if cmd == "DATA" {
					data++
				}
			}
			if data != 2 {
				t.Errorf("%d DATA for 2 messages", data)
			}
		})
	}
}

// TestReuseRequireTLS: a REQUIRETLS message does not take a session
// whose certificate was never checked (opportunistic STARTTLS), even
// one advertising REQUIRETLS; it opens one that checks it, which a
// later REQUIRETLS message may then take.
func TestReuseRequireTLS(t *testing.T) {
	w := newWorld(t)
	cert := w.ca.issue(t, "mx.example.test")
	m := w.mxServer("example.test", "mx.example.test", mxOpts{cert: &cert, requireTLS: true})
	c := w.client()
	requireTLS := func(rcpt string) *Message {
		msg := message(rcpt)
		msg.RequireTLS = true
		return msg
	}
	checkAll(t, w.deliver(c, "example.test", message("plain@example.test")), 1, delivered)
	checkAll(t, w.deliver(c, "example.test", requireTLS("r1@example.test")), 1, delivered)
	if n := m.connections(); n != 2 {
		t.Fatalf("%d connections: the unverified session was reused for REQUIRETLS", n)
	}
	if n := c.idle.count("example.test"); n != 2 {
		t.Errorf("%d idle sessions, want both", n)
	}
	checkAll(t, w.deliver(c, "example.test", requireTLS("r2@example.test")), 1, delivered)
	got := m.transactions()
	if m.connections() != 2 || len(got) != 3 || got[2].conn != got[1].conn || !got[2].mail.RequireTLS || got[0].mail.RequireTLS {
		t.Errorf("%d connections, transactions %+v", m.connections(), got)
	}
}

// TestCloseClosesIdle: Close ends every idle session (the server sees
// each connection go), and a Deliver after Close still works, on a
// connection of its own that it closes.
func TestCloseClosesIdle(t *testing.T) {
	w := newWorld(t)
	m := newMX(t, mxOpts{})
	w.host("mx.example.test", m.addr)
	w.mx("a.test", 10, "mx.example.test")
	w.mx("b.test", 10, "mx.example.test")
	c := w.client()
	checkAll(t, w.deliver(c, "a.test", message("x@a.test")), 1, delivered)
	checkAll(t, w.deliver(c, "b.test", message("x@b.test")), 1, delivered)
	if n := m.openConnections(); n != 2 {
		t.Fatalf("%d connections open, want one idle per domain", n)
	}
	c.Close()
	eventually(t, "every connection closed", func() bool { return m.openConnections() == 0 })
	checkAll(t, w.deliver(c, "a.test", message("y@a.test")), 1, delivered)
	eventually(t, "the connection after Close closed", func() bool { return m.openConnections() == 0 })
	if m.connections() != 3 || len(m.transactions()) != 3 {
		t.Errorf("%d connections, %d transactions", m.connections(), len(m.transactions()))
	}
	c.Close()
}

// TestDisableReuse: every message on its own connection, ended by QUIT.
func TestDisableReuse(t *testing.T) {
	w := newWorld(t)
	var s scripted
	scriptedMX(w, &s)
	c := w.client(func(c *Config) { c.DisableReuse = true })
	for range 2 {
		checkAll(t, w.deliver(c, "example.test", message("b@example.test")), 1, scriptedOK)
	}
	eventually(t, "both connections closed", func() bool { return s.closedConnections() == 2 })
	checkVerbs(t, &s, verbs(oneMessage, quit), verbs(oneMessage, quit))
}

// TestSmarthostReuse: every domain's mail shares the smarthost's idle
// sessions, logged in once.
func TestSmarthostReuse(t *testing.T) {
	w, relay, c := smarthostWorld(t, SmarthostSTARTTLS, mxOpts{auth: true}, "abox")
	checkAll(t, w.deliver(c, "a.test", message("x@a.test")), 1, delivered)
	res := w.deliver(c, "b.test", message("x@b.test"))
	checkAll(t, res, 1, delivered)
	got := relay.transactions()
	if relay.connections() != 1 || len(got) != 2 || !got[1].authed || res.Security != SecuritySmarthost || res.Host != "relay.test" {
		t.Errorf("%d connections, transactions %+v, result %+v", relay.connections(), got, res)
	}
}
