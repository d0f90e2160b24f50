package outbound

import (
	"strings"
	"testing"
)

// TestSTARTTLS: offered, it is used without verifying the certificate
// (RFC 7435), and the result says so; not offered, plaintext.
func TestSTARTTLS(t *testing.T) {
	w := newWorld(t)
	cert := selfSigned(t, "someone-else.test")
	m := w.mxServer("example.test", "mx.example.test", mxOpts{cert: &cert})
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Security != SecuritySTARTTLS || !strings.HasPrefix(res.TLS, "TLS1.3 TLS_") {
		t.Errorf("security %q, TLS %q", res.Security, res.TLS)
	}
	if got := m.transactions(); len(got) != 1 || !got[0].tls {
		t.Errorf("server received %+v", got)
	}
}

func TestNoSTARTTLS(t *testing.T) {
	w := newWorld(t)
	plain := w.mxServer("example.test", "mx.example.test", mxOpts{})
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Security != SecurityNone || res.TLS != "none" || len(plain.transactions()) != 1 {
		t.Errorf("security %q, TLS %q", res.Security, res.TLS)
	}
}

// TestSTARTTLSHandshakeFailure: a failed handshake is retried once in
// plaintext on the same host, as Postfix does.
func TestSTARTTLSHandshakeFailure(t *testing.T) {
	w := newWorld(t)
	m := w.mxServer("example.test", "mx.example.test", mxOpts{badTLS: true})
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Security != SecurityNone || res.TLS != "none" {
		t.Errorf("security %q, TLS %q", res.Security, res.TLS)
	}
	if got := m.transactions(); len(got) != 1 || got[0].tls {
		t.Errorf("server received %+v", got)
	}
	if n := m.connections(); n != 2 {
		t.Errorf("%d connections, want 2 (TLS, then plaintext)", n)
	}
}
