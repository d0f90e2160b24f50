// Package smtpd is abox's SMTP server: inbound mail (MX, RFC 5321) and
// authenticated submission (RFC 6409, with STARTTLS RFC 3207 or implicit
// TLS RFC 8314), with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
// (RFC 6152), SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034/3463),
// CHUNKING/BDAT (RFC 3030) and AUTH PLAIN/LOGIN (RFC 4954).
//
// It owns the wire: reading commands, writing replies, and mapping
// policy's decisions to reply codes in one table (errors.go). It asks
// policy about every recipient and delivery and never opens a store
// transaction itself.
//
// Why not github.com/emersion/go-smtp: v0.25.1 answers commands out of
// sequence (MAIL before EHLO, RCPT before MAIL, DATA with no accepted
// recipient) with 502 5.5.1 where RFC 5321 §4.3.2 and SPEC require
// 503 5.5.1, and it gives a backend no hook for those replies, for
// connection limits or for counting bad commands. The protocol state
// machine is small; owning it keeps every reply in SPEC's table exact.
//
// smtpd must never: import imapd or cmd; decide a rule of the terms of
// service itself; acknowledge DATA before policy.Deliver has returned
// (which means the message is durably stored).
package smtpd
