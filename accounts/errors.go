package accounts

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is. Every error this package returns wraps exactly
// one of them; its message is a single line an operator can act on and
// never contains a password.
var (
	// ErrInvalidLogin: the login breaks the syntax rules.
	ErrInvalidLogin = errors.New("invalid login")
	// ErrReservedLogin: the login is well formed but on the reserved list.
	ErrReservedLogin = errors.New("reserved login")
	// ErrInvalidPhone: the phone number is not E.164.
	ErrInvalidPhone = errors.New("invalid phone number")
	// ErrPhonePrefix: a valid number whose country prefix is not allowed.
	ErrPhonePrefix = errors.New("phone country prefix not allowed")
	// ErrWeakPassword: the password breaks a password rule.
	ErrWeakPassword = errors.New("password refused")
	// ErrInvalidDomain: the domain name is malformed.
	ErrInvalidDomain = errors.New("invalid domain")
	// ErrNoAppPassword: the account has no app password of that name.
	ErrNoAppPassword = errors.New("no such app password")

	// ErrInvalidHash: a stored password hash cannot be parsed or carries
	// parameters outside the accepted bounds.
	ErrInvalidHash = errors.New("invalid password hash")
	// ErrInvalidHashParams: hashing parameters are outside the accepted
	// bounds.
	ErrInvalidHashParams = errors.New("invalid password hash parameters")

	// ErrTransition: the user agreement does not allow this lifecycle
	// transition from the account's current state (or at this time).
	ErrTransition = errors.New("lifecycle transition not allowed")
	// ErrBlocked: the account is blocked; it cannot log in.
	ErrBlocked = errors.New("account blocked")
	// ErrPendingDeletion: the account is in its deletion grace; it cannot
	// log in but can still be restored.
	ErrPendingDeletion = errors.New("account pending deletion")
	// ErrPurged: the account has been purged; only its address and dates
	// remain.
	ErrPurged = errors.New("account purged")
	// ErrUnknownState: the account record carries a state this version
	// does not know (a corrupt or newer record).
	ErrUnknownState = errors.New("unknown account state")
)

// ruleError carries an operator-facing message and the sentinel it
// belongs to, so the message is not prefixed by the sentinel's own text.
type ruleError struct {
	msg  string
	kind error
}

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return e.kind }

func newError(kind error, format string, args ...any) error {
	return &ruleError{msg: fmt.Sprintf(format, args...), kind: kind}
}
