package pgstore

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"abox/store"
)

// retryable reports a conflict PostgreSQL resolved by aborting this
// transaction (serialization failure, deadlock): running it again is
// the documented answer.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// storageErr turns a failure of the database or object store itself
// (connection refused or lost, the server shutting down, out of disk)
// into store.ErrStorageFailing, which the protocol layers answer with a
// temporary error; the store's own errors and the caller's pass
// through.
func storageErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "53", "57", "58", "XX": // connection, resources, operator intervention, system, internal
			return errors.Join(store.ErrStorageFailing, err)
		}
		return err
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	// A connection that died under a statement (the server stopped or
	// crashed: "unexpected EOF"), or was found closed by then, is the
	// same outage.
	if errors.As(err, &ne) || errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, errObjects) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) {
		return errors.Join(store.ErrStorageFailing, err)
	}
	return err
}

// isUnique reports a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// errUnimplemented answers the methods still being written (issue 18,
// in progress; the unimpl_*.go files).
var errUnimplemented = errors.New("not yet implemented on the PostgreSQL backend")
