package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A COMMIT whose answer never arrives (the connection or the server
// died after the request left) is ambiguous: PostgreSQL may have made
// the transaction durable just before. Answering such a delivery with
// a temporary error makes the sender try again, and the second try
// stores the letter a second time. So a delivery's transaction learns
// its id first (pg_current_xact_id, in the same round trip as its first
// statement) and, when its COMMIT fails, asks PostgreSQL on another
// connection what became of it (pg_xact_status): committed, and the
// delivery succeeded with the results already read; aborted, and the
// error stands. While the database cannot be reached the question is
// asked again, for at most commitCheckBudget; after that the outcome
// stays unknown and the caller gets the storage error (a duplicate is
// then possible, a loss never).

// commitCheckBudget bounds how long an ambiguous COMMIT's outcome is
// sought: about a PostgreSQL restart, well inside an SMTP client's
// wait for the reply to its data (RFC 5321 4.5.3.2.6: 10 minutes).
const commitCheckBudget = 30 * time.Second

// xidSQL is the statement that gives a transaction its id.
const xidSQL = "SELECT pg_current_xact_id()::text"

// errCommitUnknown reports a COMMIT whose outcome could not be learnt.
var errCommitUnknown = errors.New("the outcome of COMMIT could not be learnt")

// resolveCommit is what a transaction's COMMIT, which failed with
// commitErr, amounts to: nil when transaction xid committed after all,
// commitErr when it did not, and commitErr with errCommitUnknown when
// PostgreSQL could not be asked within commitCheckBudget. A COMMIT
// that PostgreSQL answered ROLLBACK is not ambiguous.
func (s *Store) resolveCommit(ctx context.Context, xid string, commitErr error) error {
	if xid == "" || errors.Is(commitErr, pgx.ErrTxCommitRollback) || errors.Is(commitErr, errBatchAborted) {
		return commitErr
	}
	committed, err := s.commitOutcome(ctx, xid)
	switch {
	case err != nil:
		s.commitsUnknown.Add(1)
		return errors.Join(commitErr, fmt.Errorf("%w: %w", errCommitUnknown, err))
	case committed:
		s.commitsResolved.Add(1)
		if s.log != nil {
			s.log.Warn("pgstore: a COMMIT got no answer; the transaction did commit", "xid", xid, "err", commitErr)
		}
		return nil
	}
	return commitErr
}

// commitOutcome asks, on a connection of its own, whether transaction
// xid committed, until PostgreSQL answers committed or aborted. The
// caller's cancellation does not stop it (the answer decides what the
// caller is told), commitCheckBudget does.
func (s *Store) commitOutcome(ctx context.Context, xid string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitCheckBudget)
	defer cancel()
	wait := 20 * time.Millisecond
	for {
		var status *string
		err := s.pool.QueryRow(ctx, "SELECT pg_xact_status($1::xid8)", xid).Scan(&status)
		switch {
		case err == nil && status == nil:
			// Older than the status PostgreSQL keeps: cannot be the
			// transaction that just ended.
			return false, fmt.Errorf("transaction %s is unknown to the database", xid)
		case err == nil && *status == "committed":
			return true, nil
		case err == nil && *status == "aborted":
			return false, nil
		}
		// In progress (its backend is still ending it) or no answer
		// (the database restarting): ask again.
		if err == nil {
			err = fmt.Errorf("transaction %s is %s", xid, *status)
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// txKnown is tx for a delivery: fn runs in a transaction that knows
// its id, and a COMMIT without an answer is resolved (resolveCommit)
// instead of being reported as failed.
func (s *Store) txKnown(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.tryTxKnown(ctx, fn); err == nil || !retryable(err) {
			return storageErr(err)
		}
	}
	return storageErr(err)
}

func (s *Store) tryTxKnown(ctx context.Context, fn func(pgx.Tx) error) (err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	committing := false
	defer func() {
		if err != nil && !committing {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var xid string
	if err := tx.QueryRow(ctx, xidSQL).Scan(&xid); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	committing = true
	if err := tx.Commit(ctx); err != nil {
		return s.resolveCommit(ctx, xid, err)
	}
	return nil
}

// CommitsResolved counts the COMMITs that got no answer and were found
// committed, and those whose outcome stayed unknown (metrics and tests).
func (s *Store) CommitsResolved() (committed, unknown int64) {
	return s.commitsResolved.Load(), s.commitsUnknown.Load()
}
