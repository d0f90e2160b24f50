package outbound

import (
	"testing"
)

// TestRequireTLS: RFC 8689 §4.2.1: a REQUIRETLS message goes only over
// TLS with a verified certificate to a server advertising REQUIRETLS,
// and carries the parameter; otherwise it fails with 5.7.30 before MAIL.
func TestRequireTLS(t *testing.T) {
	refused := func(text string) want {
		return want{status: Failed, code: 550, enhanced: "5.7.30", text: "REQUIRETLS support required: " + text}
	}
	for _, tc := range []struct {
		name       string
		cert       string // "ca", "self", "" (no STARTTLS)
		requireTLS bool   // server advertises REQUIRETLS
		want       want
		txns       int
	}{
		{"verified and advertised", "ca", true, delivered, 1},
		{"not advertised", "ca", false, refused("mx.example.test"), 0},
		{"certificate not verified", "self", true, refused("certificate of mx.example.test"), 0},
		{"no STARTTLS", "", true, refused("STARTTLS not offered"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			opts := mxOpts{requireTLS: tc.requireTLS}
			switch tc.cert {
			case "ca":
				cert := w.ca.issue(t, "mx.example.test")
				opts.cert = &cert
			case "self":
				cert := selfSigned(t, "mx.example.test")
				opts.cert = &cert
			}
			m := w.mxServer("example.test", "mx.example.test", opts)
			msg := message("b@example.test", "c@example.test")
			msg.RequireTLS = true
			res := w.deliver(w.client(), "example.test", msg)
			checkAll(t, res, 2, tc.want)
			got := m.transactions()
			if len(got) != tc.txns {
				t.Fatalf("%d transactions, want %d", len(got), tc.txns)
			}
			if tc.txns == 1 && (!got[0].mail.RequireTLS || !got[0].tls) {
				t.Errorf("server received %+v", got[0])
			}
		})
	}
}
