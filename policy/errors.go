package policy

import (
	"errors"
	"fmt"

	"abox/store"
)

// The kinds of refusal policy gives. Protocol packages map each to one
// wire reply (smtpd/errors.go, imapd/errors.go); a Refusal carries the
// kind and the reason a person can read.
var (
	ErrUnknownUser  = errors.New("no such user")
	ErrRelayDenied  = errors.New("relay access denied")
	ErrNoRelay      = errors.New("outbound relay not enabled")
	ErrDisabled     = errors.New("mailbox unavailable")
	ErrOverQuota    = errors.New("mailbox is full")
	ErrTooBig       = errors.New("message too big")
	ErrRateLimited  = errors.New("rate limit reached")
	ErrSpam         = errors.New("message refused as spam")
	ErrForbidden    = errors.New("forbidden content")
	ErrNoConsent    = errors.New("recipient has not consented to official letters")
	ErrSenderDenied = errors.New("sender address not owned by the authenticated user")
	ErrAuthFailed   = errors.New("authentication failed")
	// ErrServiceDenied is the cause of an ErrAuthFailed refusal told
	// only to a caller who gave the right password: the account's class
	// or an operator ban does not allow the service.
	ErrServiceDenied = errors.New("service not allowed for this account")
	ErrAuthLocked    = errors.New("too many failed logins")
	ErrAuthBusy      = errors.New("authentication temporarily unavailable")
	ErrTooManyConns  = errors.New("too many connections")
	// ErrNoStorage: the server's disk is full; mail is refused for now
	// (SMTP 452 4.3.1), never accepted and lost.
	ErrNoStorage = errors.New("insufficient system storage")
)

// ErrStorageFailing is the store's error for a storage it cannot reach
// or write for now (on PostgreSQL: the database or the object store
// restarting, unreachable, out of resources). It is no decision and no
// bug: the protocol packages answer it as a temporary failure (SMTP 451
// 4.3.0, IMAP NO [UNAVAILABLE]) and log it as a warning, and a session
// that meets it stays open. Protocol packages test for it with
// errors.Is without importing store.
var ErrStorageFailing = store.ErrStorageFailing

// Refusal is a decision not to do something, with its kind (one of the
// Err values above, for errors.Is) and a reason for the person reading it.
type Refusal struct {
	Kind   error
	Reason string
	Cause  error // optional: the error behind the decision
	// Login is, for a refused login, the name as it may be logged
	// (LoginOf); never the name as typed, which may be a password.
	Login string
	// Code, for a consent refusal, is the evidence log's reason
	// (no-consent, consent-expired, consent-revoked, ...).
	Code string
}

func (r *Refusal) Error() string {
	if r.Reason == "" {
		return r.Kind.Error()
	}
	return r.Kind.Error() + ": " + r.Reason
}

func (r *Refusal) Unwrap() []error {
	if r.Cause != nil {
		return []error{r.Kind, r.Cause}
	}
	return []error{r.Kind}
}

func refuse(kind error, format string, args ...any) *Refusal {
	return &Refusal{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the human reason of a refusal, or "".
func ReasonOf(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// LoginOf returns the user name of a refused login as it may be logged:
// the name when it is an account's address or a trusted sender's name,
// otherwise a short keyed hash ("unknown:1a2b3c4d") that tells repeated
// attempts apart without revealing the name, which may be a password
// typed in the wrong field. "" for other errors.
func LoginOf(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Login
	}
	return ""
}
