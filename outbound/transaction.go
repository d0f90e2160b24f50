package outbound

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
)

// requireTLSCheck is RFC 8689 §4.2.1 for one open session: the message
// goes on only over TLS with an authenticated server that advertises
// REQUIRETLS. A failure is a host failure: another MX may do better.
func (s *session) requireTLSCheck() *hostFailure {
	t := s.t
	var why string
	switch {
	case s.tlsConn == nil:
		// A plaintext smarthost ("none"); an MX host always has
		// requireTLS with REQUIRETLS and never gets here without TLS.
		why = "no TLS with " + t.String()
	case !s.v.authenticated():
		why = "certificate of " + t.String() + " not verified"
	case !s.has("REQUIRETLS"):
		why = t.String() + " does not advertise REQUIRETLS"
	default:
		return nil
	}
	o := local(550, "5.7.30", "REQUIRETLS support required: "+why)
	o.RemoteMTA = t.host
	return fail(o)
}

// refusal checks what the server advertised against what the message
// needs, before MAIL: a message it would refuse, or could only take
// altered, is not sent. The outcome is final for every recipient.
func (s *session) refusal(env *envelope) *Outcome {
	var o Outcome
	switch {
	case s.tooBig(env):
		// RFC 1870 §6.1: a client SHOULD NOT send a message larger than
		// the server's SIZE; 552 5.3.4 is what the server would say.
		n, _ := s.sc.MaxMessageSize()
		o = local(552, "5.3.4", "message of "+strconv.Itoa(len(env.body))+" octets exceeds the SIZE "+strconv.Itoa(n)+" of "+s.t.String())
	case env.needUTF8 && !s.has("SMTPUTF8"):
		// RFC 6531 §3.2: a message that needs SMTPUTF8 goes only to a
		// server advertising it; 553 5.6.7 is RFC 6531's refusal of a
		// non-ASCII address.
		o = local(553, "5.6.7", s.t.String()+" does not support SMTPUTF8")
	case env.mail.Body == smtp.Body8BitMIME && !s.has("8BITMIME"):
		// RFC 6152 §3: 8-bit data only to a server advertising 8BITMIME.
		// No downgrade: the body is DKIM-signed and converting it to
		// quoted-printable would break the signature. 554 5.6.3
		// (RFC 3463: conversion required but not supported).
		o = local(554, "5.6.3", s.t.String()+" does not support 8BITMIME and the message is 8-bit")
	default:
		return nil
	}
	o.RemoteMTA = s.t.host
	return &o
}

func (s *session) tooBig(env *envelope) bool {
	n, ok := s.sc.MaxMessageSize()
	return ok && n > 0 && len(env.body) > n
}

func (s *session) has(ext string) bool {
	ok, _ := s.sc.Extension(ext)
	return ok
}

// txnEnd is the state a transaction leaves its session in.
type txnEnd int

const (
	// txnDone: every reply was read, none was 421; the session may
	// carry another message after RSET.
	txnDone txnEnd = iota
	// txnBroken: the connection failed or the server said 421 (RFC 5321
	// §3.8) once MAIL was accepted.
	txnBroken
	// txnMailLost: the same, at MAIL itself: nothing was accepted, so
	// the message could go on another connection (reuse.go).
	txnMailLost
)

// transaction runs MAIL, RCPT and DATA (RFC 5321 §3.3) and writes each
// recipient's outcome into out. Once MAIL is accepted it is the end of
// the attempt whatever happens: no other host or connection is tried,
// so the message can never go out twice from one call.
//
// go-smtp's client reports each RCPT's refusal as an *smtp.SMTPError
// from Rcpt and does not pipeline (RFC 2920), so RCPTs go one by one.
func (s *session) transaction(ctx context.Context, env *envelope, out []Outcome) txnEnd {
	host := s.t.host
	if o := s.refusal(env); o != nil {
		setAll(out, env.rcpts, *o)
		return txnDone
	}
	// go-smtp adds SIZE when the server has SIZE, REQUIRETLS and SMTPUTF8
	// as asked (checked above), RET and ENVID only when it has DSN. It
	// also adds BODY=8BITMIME whenever the server has 8BITMIME, whatever
	// MailOptions.Body says: harmless for a 7-bit body (RFC 6152 §2
	// lets 7-bit data travel as 8BITMIME).
	s.dirty = true
	if err := s.sc.Mail(env.from, &env.mail); err != nil {
		setAll(out, env.rcpts, s.errOutcome(ctx, err))
		if broken(err) {
			return txnMailLost
		}
		return txnDone
	}
	var took []rcpt
	for k, r := range env.rcpts {
		err := s.sc.Rcpt(r.addr, &r.opts)
		if err == nil {
			took = append(took, r)
			continue
		}
		o := s.errOutcome(ctx, err)
		if broken(err) {
			// The connection is gone (or going, 421): this and every
			// later recipient, and those already taken, share the
			// reason.
			setAll(out, env.rcpts[k:], o)
			setAll(out, took, o)
			return txnBroken
		}
		out[r.i] = o
	}
	if len(took) == 0 {
		return txnDone
	}
	w, err := s.sc.Data()
	if err != nil {
		setAll(out, took, s.errOutcome(ctx, err))
		if broken(err) {
			return txnBroken
		}
		return txnDone
	}
	// go-smtp sets no deadline while the body is written (only on the
	// replies), so the transfer gets one here; the reply to the final
	// dot then has SubmissionTimeout, which is DataTimeout too.
	s.raw.SetDeadline(time.Now().Add(s.c.cfg.DataTimeout))
	if _, err := w.Write(env.body); err != nil {
		setAll(out, took, s.errOutcome(ctx, err))
		return txnBroken
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		// A 4xx/5xx to the final dot applies to every recipient taken at
		// RCPT (RFC 5321 §4.2.5 / §3.3). A connection lost here leaves
		// the message possibly delivered (RFC 1047); deferring risks a
		// duplicate, which is better than a loss.
		setAll(out, took, s.errOutcome(ctx, err))
		if broken(err) {
			return txnBroken
		}
		return txnDone
	}
	for _, r := range took {
		out[r.i] = accepted(resp.StatusText, host)
	}
	return txnDone
}

// broken says err leaves the session unusable: anything but a reply
// (an I/O error, or one of go-smtp's own, after which its state is
// unknown), or a 421, which announces the server is closing (RFC 5321
// §3.8).
func broken(err error) bool {
	var se *smtp.SMTPError
	return !errors.As(err, &se) || se.Code == 421
}

// setAll gives every recipient in rs the outcome o.
func setAll(out []Outcome, rs []rcpt, o Outcome) {
	for _, r := range rs {
		out[r.i] = o
	}
}
