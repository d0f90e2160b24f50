package outbound

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// silent accepts connections and never says a word.
func silent(c net.Conn) { io.Copy(io.Discard, c) }

// TestContextCancel: the caller's context ends the attempt at once, even
// in the middle of waiting for a greeting with a long CommandTimeout.
func TestContextCancel(t *testing.T) {
	w := newWorld(t)
	w.host("mx.example.test", rawServer(t, 25, silent))
	w.mx("example.test", 10, "mx.example.test")
	c := w.client(func(c *Config) { c.CommandTimeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := c.Deliver(ctx, "example.test", message("b@example.test"))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Deliver took %v after a 300ms context", d)
	}
	checkAll(t, res, 1, want{status: Deferred, code: 451, enhanced: "4.4.1", text: "context deadline exceeded"})
}

// TestCommandTimeout: a server that never answers costs CommandTimeout,
// then the next host is tried.
func TestCommandTimeout(t *testing.T) {
	w := newWorld(t)
	m := newMX(t, mxOpts{})
	w.host("mx1.example.test", rawServer(t, 25, silent))
	w.host("mx2.example.test", m.addr)
	w.mx("example.test", 10, "mx1.example.test")
	w.mx("example.test", 20, "mx2.example.test")
	c := w.client(func(c *Config) { c.CommandTimeout = 300 * time.Millisecond })
	start := time.Now()
	res := w.deliver(c, "example.test", message("b@example.test"))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Deliver took %v", d)
	}
	checkAll(t, res, 1, delivered)
	if res.Host != "mx2.example.test" || len(m.transactions()) != 1 {
		t.Errorf("host %q", res.Host)
	}
}

// TestReplyTooLong: a greeting of more than maxReplySize is refused
// (though every line is short) and the next host is tried.
func TestReplyTooLong(t *testing.T) {
	w := newWorld(t)
	m := newMX(t, mxOpts{})
	var s scripted
	line := "220-" + strings.Repeat("x", 500) + "\r\n"
	greeting := strings.Repeat(line, 2*maxReplySize/len(line)) + "220 finally"
	w.host("mx1.example.test", rawServer(t, 25, s.handle(greeting, []string{"8BITMIME"})))
	w.host("mx2.example.test", m.addr)
	w.mx("example.test", 10, "mx1.example.test")
	w.mx("example.test", 20, "mx2.example.test")
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Host != "mx2.example.test" {
		t.Errorf("host %q: the endless greeting was accepted", res.Host)
	}
}
