// Package policy decides every rule of the operator's terms of service:
// the limits of an account's class and its own overrides, and (as the
// SMTP, IMAP and sweep code arrives) recipient checks, rate limits,
// spam and malware scoring, retention and inactivity.
//
// Decisions are pure where they can be: inputs in, a verdict with named
// reasons out. policy reads and writes through store; it never speaks a
// wire protocol and never reads the wall clock (it takes a clock). The
// content checks alone wait on the network: DNS for SPF, DKIM, DMARC and
// DNSBL, and rspamd when configured, within a per-message budget, where
// a failure is neutral.
package policy
