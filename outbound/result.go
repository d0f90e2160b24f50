package outbound

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// Status is what became of one recipient in one attempt.
type Status int

const (
	// Deferred is a temporary failure: the caller may try again later.
	// It is the zero value so that an outcome nobody filled in reads as
	// "try again", never as "delivered".
	Deferred Status = iota
	// Delivered means the server answered 250 to the end of DATA with
	// this recipient accepted at RCPT.
	Delivered
	// Failed is a permanent failure: the caller bounces.
	Failed
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Deferred:
		return "deferred"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Outcome is the fate of one recipient: enough for a DSN (RFC 3464
// Status, Diagnostic-Code, Remote-MTA) and for the queue's decision.
type Outcome struct {
	Status Status
	// Code is the SMTP reply code: the server's when Remote, else the one
	// abox would have answered for the same reason.
	Code int
	// Enhanced is the RFC 3463 status code, "4.4.1"; "" when a remote
	// server gave none.
	Enhanced string
	// Text is the reply's text (one line), or why abox decided.
	Text string
	// Remote says the reply came from the remote server; otherwise the
	// client decided (no route, policy, size, a lost connection...).
	Remote bool
	// RemoteMTA is the host that answered or was being talked to, "" when
	// none was reached.
	RemoteMTA string
}

// Result is the report of one Deliver call.
type Result struct {
	// Recipients is parallel to Message.Recipients: one outcome each.
	Recipients []Outcome
	// Host and Addr are the MX host (or smarthost) and the "ip:port" of
	// the last connection, "" when none was made.
	Host, Addr string
	// TLS is "TLS1.3 TLS_AES_128_GCM_SHA256", or "none".
	TLS string
	// Security is how the last connection was protected: "dane",
	// "mta-sts", "starttls" (encrypted, not authenticated unless
	// REQUIRETLS asked for it), "none" or "smarthost".
	Security string
	// SupportsDSN says the server advertised DSN (RFC 3461), so the
	// NOTIFY/ORCPT/RET/ENVID parameters were passed on and the remote
	// side now owns the notifications they ask for (RFC 3461 §4.1).
	SupportsDSN bool
}

// Security values of Result.Security.
const (
	SecurityDANE      = "dane"
	SecurityMTASTS    = "mta-sts"
	SecuritySTARTTLS  = "starttls"
	SecurityNone      = "none"
	SecuritySmarthost = "smarthost"
)

// maxTextLen bounds the text kept from a reply: enough for any sane
// diagnostic, and a hostile server cannot make a result large.
const maxTextLen = 512

// local is an outcome decided by the client. The status follows the
// code's class (RFC 5321 §4.2.1): 4xx deferred, 5xx failed.
func local(code int, enhanced, text string) Outcome {
	return Outcome{Status: statusOf(code), Code: code, Enhanced: enhanced, Text: oneLine(text)}
}

// reply turns a server's refusal into an outcome.
func reply(e *smtp.SMTPError, host string) Outcome {
	o := Outcome{Status: statusOf(e.Code), Code: e.Code, Text: oneLine(e.Message), Remote: true, RemoteMTA: host}
	if ec := e.EnhancedCode; ec[0] >= 2 && ec[0] <= 5 {
		o.Enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	return o
}

// errOutcome is reply for an *smtp.SMTPError, and otherwise a lost or
// broken connection (RFC 3463 4.4.2), which is temporary: the server may
// never have seen the command.
func errOutcome(err error, host string) Outcome {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return reply(se, host)
	}
	o := local(451, "4.4.2", "connection with "+host+" broken: "+err.Error())
	o.RemoteMTA = host
	return o
}

// accepted is the outcome of a recipient the server took: the reply to
// the end of DATA, "250 2.0.0 Ok: queued as X" or the like.
func accepted(text, host string) Outcome {
	o := Outcome{Status: Delivered, Code: 250, Text: oneLine(text), Remote: true, RemoteMTA: host}
	if code, rest, ok := strings.Cut(o.Text, " "); ok && isEnhanced(code, '2') {
		o.Enhanced, o.Text = code, rest
	}
	return o
}

// statusOf maps a reply code to a status; anything that is not a clear
// 5xx refusal is temporary, because only the server may make a failure
// permanent.
func statusOf(code int) Status {
	if code >= 500 && code <= 599 {
		return Failed
	}
	return Deferred
}

func isEnhanced(s string, class byte) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != class {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxTextLen {
		s = strings.ToValidUTF8(s[:maxTextLen], "")
	}
	return s
}

// counts is for the attempt's log line.
func counts(outs []Outcome) (delivered, deferred, failed int) {
	for _, o := range outs {
		switch o.Status {
		case Delivered:
			delivered++
		case Failed:
			failed++
		default:
			deferred++
		}
	}
	return
}
