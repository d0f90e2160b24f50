// Package store owns the bbolt file and every transaction on it.
//
// It offers typed operations (create an account, deliver a message to
// several mailboxes, set flags, expunge, append to the audit log, back up,
// check) and a change feed that protocol sessions subscribe to. Callers
// never see a *bbolt.Tx.
//
// All writes go through one writer goroutine that drains every waiting
// request into one bbolt transaction (group commit): many deliveries share
// one fsync, and no caller is answered before the commit holding its write
// is durable. Each request is a function that may run more than once (when
// a request in the same batch fails, the batch is rolled back and run again
// without it), so request functions have no side effects outside the
// transaction, except appending large bodies to segment files, which
// nothing refers to until the transaction holding their location is
// durable (a run that is rolled back leaves unreferenced bytes); change
// notices are collected while they run and published only after the
// commit.
//
// Message bodies are reference-counted: one body delivered to a million
// mailboxes is stored once, and a body that may arrive again (APPEND,
// import, broadcast) is found by its SHA-256. They sit behind the small
// blobStore type: bodies under 16 KiB in a bbolt bucket, larger ones in
// append-only segment files beside the database (segments.go).
//
// The store must never: import policy, smtpd, imapd or cmd; decide a rule
// of the terms of service (it enforces limits it is given, atomically);
// read the wall clock directly (it takes a Clock); do network I/O; or hold
// a transaction open while waiting on a caller.
package store
