package outbound

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestRecipientOutcomes: each RCPT reply is that recipient's outcome; the
// accepted one alone is delivered.
func TestRecipientOutcomes(t *testing.T) {
	w := newWorld(t)
	m := w.mxServer("example.test", "mx.example.test", mxOpts{})
	m.rcptErr["full@example.test"] = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
	m.rcptErr["gone@example.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	res := w.deliver(w.client(), "example.test", message("ok@example.test", "full@example.test", "gone@example.test"))
	if len(res.Recipients) != 3 {
		t.Fatalf("outcomes %+v", res.Recipients)
	}
	checkOutcome(t, "ok", res.Recipients[0], delivered)
	checkOutcome(t, "full", res.Recipients[1], want{status: Deferred, code: 450, enhanced: "4.2.1", text: "mailbox busy", remote: true})
	checkOutcome(t, "gone", res.Recipients[2], want{status: Failed, code: 550, enhanced: "5.1.1", text: "no such user", remote: true})
	got := m.transactions()
	if len(got) != 1 || !slices.Equal(got[0].rcpts, []string{"ok@example.test"}) || string(got[0].data) != testBody {
		t.Errorf("server received %+v", got)
	}
}

// TestDataReply: a 4xx/5xx to the final dot applies to every recipient
// accepted at RCPT; one refused at RCPT keeps its own reply.
func TestDataReply(t *testing.T) {
	for _, tc := range []struct {
		err  *smtp.SMTPError
		want want
	}{
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}, want{status: Deferred, code: 451, enhanced: "4.3.0", text: "try later", remote: true}},
		{&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}, want{status: Failed, code: 554, enhanced: "5.7.1", text: "spam", remote: true}},
	} {
		t.Run(tc.want.enhanced, func(t *testing.T) {
			w := newWorld(t)
			m := w.mxServer("example.test", "mx.example.test", mxOpts{})
			m.dataErr = tc.err
			m.rcptErr["gone@example.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			res := w.deliver(w.client(), "example.test", message("a@example.test", "gone@example.test", "b@example.test"))
			checkOutcome(t, "a", res.Recipients[0], tc.want)
			checkOutcome(t, "gone", res.Recipients[1], want{status: Failed, code: 550, enhanced: "5.1.1", text: "no such user", remote: true})
			checkOutcome(t, "b", res.Recipients[2], tc.want)
			if got := m.transactions(); len(got) != 1 || string(got[0].data) != testBody {
				t.Errorf("server received %+v", got)
			}
		})
	}
}

// TestMessageRefusedBeforeMAIL: what the server's EHLO says it cannot
// take is not sent: SIZE (RFC 1870), SMTPUTF8 (RFC 6531).
func TestMessageRefusedBeforeMAIL(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts mxOpts
		msg  func() *Message
		want want
	}{
		{"size", mxOpts{maxSize: 50}, func() *Message { return message("b@example.test") },
			want{status: Failed, code: 552, enhanced: "5.3.4", text: "exceeds the SIZE 50"}},
		{"smtputf8 flag", mxOpts{}, func() *Message { m := message("b@example.test"); m.SMTPUTF8 = true; return m },
			want{status: Failed, code: 553, enhanced: "5.6.7", text: "SMTPUTF8"}},
		{"utf-8 address", mxOpts{}, func() *Message { return message("jürgen@example.test") },
			want{status: Failed, code: 553, enhanced: "5.6.7", text: "SMTPUTF8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			m := w.mxServer("example.test", "mx.example.test", tc.opts)
			res := w.deliver(w.client(), "example.test", tc.msg())
			checkAll(t, res, 1, tc.want)
			if res.Recipients[0].RemoteMTA != "mx.example.test" {
				t.Errorf("RemoteMTA %q", res.Recipients[0].RemoteMTA)
			}
			if got := m.transactions(); len(got) != 0 {
				t.Errorf("server received a transaction: %+v", got)
			}
			if m.connections() != 1 {
				t.Errorf("%d connections", m.connections())
			}
		})
	}
}

// TestSMTPUTF8: with the extension, SMTPUTF8 goes on MAIL.
func TestSMTPUTF8(t *testing.T) {
	w := newWorld(t)
	m := w.mxServer("example.test", "mx.example.test", mxOpts{utf8: true})
	res := w.deliver(w.client(), "example.test", message("jürgen@example.test"))
	checkAll(t, res, 1, delivered)
	if got := m.transactions(); len(got) != 1 || !got[0].mail.UTF8 || got[0].rcpts[0] != "jürgen@example.test" {
		t.Errorf("server received %+v", got)
	}
}

// TestEightBitWithout8BITMIME: no downgrade: an 8-bit message fails on a
// server without 8BITMIME (RFC 6152 §3), before MAIL; a 7-bit one goes.
func TestEightBitWithout8BITMIME(t *testing.T) {
	w := newWorld(t)
	var s scripted
	w.host("mx.example.test", rawServer(t, 25, s.handle("220 old.test ESMTP", []string{"SIZE 1000000"})))
	w.mx("example.test", 10, "mx.example.test")
	m := message("b@example.test")
	m.EightBit = true
	res := w.deliver(w.client(), "example.test", m)
	checkAll(t, res, 1, want{status: Failed, code: 554, enhanced: "5.6.3", text: "8BITMIME"})
	for _, cmd := range s.commands() {
		if strings.HasPrefix(cmd, "MAIL") {
			t.Errorf("sent %q", cmd)
		}
	}
	res = w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, want{status: Delivered, code: 250, enhanced: "2.0.0", text: "ok", remote: true})
	if mail := fmt.Sprintf("MAIL FROM:<a@sender.test> SIZE=%d", len(testBody)); !slices.Contains(s.commands(), mail) {
		t.Errorf("commands %q", s.commands())
	}
}

// TestDSNParameters: NOTIFY, ORCPT, RET and ENVID go out only to a server
// that advertises DSN (RFC 3461 §4), and Result.SupportsDSN says so.
func TestDSNParameters(t *testing.T) {
	for _, dsn := range []bool{true, false} {
		t.Run(map[bool]string{true: "advertised", false: "not advertised"}[dsn], func(t *testing.T) {
			w := newWorld(t)
			m := w.mxServer("example.test", "mx.example.test", mxOpts{dsn: dsn})
			msg := message()
			msg.Ret, msg.EnvID = "hdrs", "QQ314159"
			msg.Recipients = []Recipient{
				{Address: "b@example.test", Notify: []string{"failure", "DELAY"}, ORcpt: "rfc822;orig@example.test"},
				{Address: "c@example.test", Notify: []string{"NEVER"}},
			}
			res := w.deliver(w.client(), "example.test", msg)
			checkAll(t, res, 2, delivered)
			if res.SupportsDSN != dsn {
				t.Errorf("SupportsDSN %v", res.SupportsDSN)
			}
			got := m.transactions()
			if len(got) != 1 {
				t.Fatalf("transactions %+v", got)
			}
			r := got[0]
			if dsn {
				if r.mail.Return != smtp.DSNReturnHeaders || r.mail.EnvelopeID != "QQ314159" {
					t.Errorf("MAIL options %+v", r.mail)
				}
				if !slices.Equal(r.rcptOpts[0].Notify, []smtp.DSNNotify{"FAILURE", "DELAY"}) || r.rcptOpts[0].OriginalRecipient != "orig@example.test" || r.rcptOpts[0].OriginalRecipientType != smtp.DSNAddressTypeRFC822 {
					t.Errorf("RCPT options %+v", r.rcptOpts[0])
				}
				if !slices.Equal(r.rcptOpts[1].Notify, []smtp.DSNNotify{"NEVER"}) || r.rcptOpts[1].OriginalRecipient != "" {
					t.Errorf("RCPT options %+v", r.rcptOpts[1])
				}
			} else {
				if r.mail.Return != "" || r.mail.EnvelopeID != "" {
					t.Errorf("MAIL options %+v", r.mail)
				}
				for i, o := range r.rcptOpts {
					if o.Notify != nil || o.OriginalRecipient != "" {
						t.Errorf("RCPT %d options %+v", i, o)
					}
				}
			}
		})
	}
}

// TestInvalidInput: a caller's mistake is refused before any
// connection, for the message or for one recipient.
func TestInvalidInput(t *testing.T) {
	w := newWorld(t)
	m := w.mxServer("example.test", "mx.example.test", mxOpts{})
	c := w.client()

	bad := message("b@example.test", "c@example.test")
	bad.Ret = "EVERYTHING"
	checkAll(t, w.deliver(c, "example.test", bad), 2, want{status: Failed, code: 501, enhanced: "5.5.4", text: "RET"})
	bad = message("b@example.test")
	bad.From = "a@sender.test> NOTIFY=SUCCESS"
	checkAll(t, w.deliver(c, "example.test", bad), 1, want{status: Failed, code: 501, enhanced: "5.1.7"})
	if m.connections() != 0 {
		t.Fatalf("%d connections for invalid messages", m.connections())
	}

	mixed := message("b@example.test", "bad\r\nRCPT TO:<x@example.test>", "c@example.test")
	mixed.Recipients[2].Notify = []string{"NEVER", "SUCCESS"}
	res := w.deliver(c, "example.test", mixed)
	checkOutcome(t, "good", res.Recipients[0], delivered)
	checkOutcome(t, "bad address", res.Recipients[1], want{status: Failed, code: 501, enhanced: "5.1.3"})
	checkOutcome(t, "bad notify", res.Recipients[2], want{status: Failed, code: 501, enhanced: "5.5.4"})
	if got := m.transactions(); len(got) != 1 || !slices.Equal(got[0].rcpts, []string{"b@example.test"}) {
		t.Errorf("server received %+v", got)
	}

	if res := w.deliver(c, "example.test", &Message{From: "a@sender.test"}); len(res.Recipients) != 0 {
		t.Errorf("no recipients: %+v", res)
	}
	if res := w.deliver(c, "example.test", nil); len(res.Recipients) != 0 {
		t.Errorf("nil message: %+v", res)
	}
}

// TestNullReversePath: a bounce goes out with MAIL FROM:<>.
func TestNullReversePath(t *testing.T) {
	w := newWorld(t)
	m := w.mxServer("example.test", "mx.example.test", mxOpts{})
	msg := message("b@example.test")
	msg.From = ""
	checkAll(t, w.deliver(w.client(), "example.test", msg), 1, delivered)
	if got := m.transactions(); len(got) != 1 || got[0].from != "<>" {
		t.Errorf("server received %+v", got)
	}
}

// TestConnectionLost: a 421 at RCPT ends the session for every
// recipient, those already accepted included (RFC 5321 §3.8); a
// connection lost during DATA defers the accepted recipients (4.4.2),
// and neither is ever reported delivered.
func TestConnectionLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script *scripted
		want   [3]want
	}{
		{"421 at RCPT", &scripted{replies: map[string]string{"RCPT TO:<c@example.test>": "421 4.3.2 shutting down"}}, [3]want{
			{status: Deferred, code: 421, enhanced: "4.3.2", text: "shutting down", remote: true},
			{status: Deferred, code: 421, enhanced: "4.3.2", text: "shutting down", remote: true},
			{status: Deferred, code: 421, enhanced: "4.3.2", text: "shutting down", remote: true},
		}},
		{"lost during DATA", &scripted{closeInData: true, replies: map[string]string{"RCPT TO:<c@example.test>": "550 5.1.1 unknown"}}, [3]want{
			{status: Deferred, code: 451, enhanced: "4.4.2", text: "connection with mx.example.test broken"},
			{status: Failed, code: 550, enhanced: "5.1.1", text: "unknown", remote: true},
			{status: Deferred, code: 451, enhanced: "4.4.2", text: "connection with mx.example.test broken"},
		}},
		{"lost after RCPT", &scripted{replies: map[string]string{"RCPT TO:<c@example.test>": "close"}}, [3]want{
			{status: Deferred, code: 451, enhanced: "4.4.2", text: "broken"},
			{status: Deferred, code: 451, enhanced: "4.4.2", text: "broken"},
			{status: Deferred, code: 451, enhanced: "4.4.2", text: "broken"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.host("mx.example.test", rawServer(t, 25, tc.script.handle("220 mx.test ESMTP", []string{"8BITMIME"})))
			w.mx("example.test", 10, "mx.example.test")
			res := w.deliver(w.client(), "example.test", message("b@example.test", "c@example.test", "d@example.test"))
			for i, o := range res.Recipients {
				checkOutcome(t, fmt.Sprint("recipient ", i), o, tc.want[i])
			}
		})
	}
}
