// Package accounts holds what a subscriber account is and the rules the
// user agreement sets for it, as plain values and pure functions.
//
// It owns:
//   - the types: Account, Domain, Class (per-category limits), Sender
//     (trusted submitting systems) and their defaults;
//   - the operator's rules for logins, phone numbers, passwords and domain
//     names (Rules, NormalizeDomain), with errors an operator can act on;
//   - the lifecycle states (active, blocked, pending-deletion, purged) and
//     the only transitions between them the agreement allows
//     (lifecycle.go), including the one-month deletion grace;
//   - password hashing: argon2id in PHC string format.
//
// It must never do I/O, touch storage, log, or read the clock: every
// time is passed in by the caller, so policy and store tests can move a
// year forward without waiting. Methods change an Account value in memory
// only; storing it (under the account lock) is the store's job. Every
// error wraps one of the package's sentinels (ErrInvalidLogin,
// ErrTransition, ...) so callers test with errors.Is, never by message,
// and no error ever contains a password.
package accounts
