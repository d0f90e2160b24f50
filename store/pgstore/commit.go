package pgstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A COMMIT whose answer never arrives (the connection or the server
// died after the request left) is ambiguous: PostgreSQL may have made
// the transaction durable just before. Answering such a delivery with
// a temporary error makes the sender try again, and the second try
// stores the letter a second time. So a delivery's transaction inserts
// a random token (migration 0010) and learns its id, in one statement
// sent with its first ones; when its COMMIT fails, the node asks on
// another connection, until it knows: while PostgreSQL reports the id
// in progress (its backend may still be committing) it waits; after
// that the token decides, present for committed (the delivery
// succeeded, with the results already read) and absent for not. The
// id's status alone is not trusted: after a crash PostgreSQL may give
// an id that never reached its WAL to a new transaction and report that
// one's outcome (with the id alone, TestPostgresOutage once answered
// 250 for a letter that was not stored). While the database cannot be
// reached the question is asked again, for at most commitCheckBudget;
// after that the outcome stays unknown and the caller gets the storage
// error (a duplicate is then possible, a loss never).

// commitCheckBudget bounds how long an ambiguous COMMIT's outcome is
// sought: about a PostgreSQL restart, well inside an SMTP client's
// wait for the reply to its data (RFC 5321 4.5.3.2.6: 10 minutes).
const commitCheckBudget = 30 * time.Second

// xidSQL is the statement that records a transaction's token ($1) and
// gives its id.
const xidSQL = "WITH t AS (INSERT INTO commit_tokens (token) VALUES ($1)) SELECT pg_current_xact_id()::text"

// newCommitToken is a transaction's token: 16 random bytes.
func newCommitToken() []byte {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// commitTokenKeep is how long tokens are kept; sweepCommitTokens runs
// every commitTokenSweep.
const (
	commitTokenKeep  = 10 * time.Minute
	commitTokenSweep = time.Minute
)

// sweepCommitTokens deletes old tokens until ctx ends (every node runs
// it; the deletes do not conflict). A failure (an outage) waits for the
// next tick.
func (s *Store) sweepCommitTokens(ctx context.Context) {
	t := time.NewTicker(commitTokenSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.pool.Exec(ctx, `DELETE FROM commit_tokens WHERE at < now() - make_interval(secs => $1)`, commitTokenKeep.Seconds())
		}
	}
}

// errCommitUnknown reports a COMMIT whose outcome could not be learnt.
var errCommitUnknown = errors.New("the outcome of COMMIT could not be learnt")

// resolveCommit is what a transaction's COMMIT, which failed with
// commitErr, amounts to: nil when the transaction (id xid, token)
// committed after all, commitErr when it did not, and commitErr with
// errCommitUnknown when PostgreSQL could not be asked within
// commitCheckBudget. A COMMIT that PostgreSQL answered ROLLBACK is not
// ambiguous.
func (s *Store) resolveCommit(ctx context.Context, xid string, token []byte, commitErr error) error {
	if xid == "" || errors.Is(commitErr, pgx.ErrTxCommitRollback) || errors.Is(commitErr, errBatchAborted) {
		return commitErr
	}
	committed, err := s.commitOutcome(ctx, xid, token)
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

// commitOutcome asks, on a connection of its own, whether the
// transaction with id xid and token committed: once PostgreSQL no
// longer reports xid in progress, by the token. The caller's
// cancellation does not stop it (the answer decides what the caller is
// told), commitCheckBudget does.
func (s *Store) commitOutcome(ctx context.Context, xid string, token []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitCheckBudget)
	defer cancel()
	wait := 20 * time.Millisecond
	for {
		var status *string
		var found bool
		err := s.pool.QueryRow(ctx, `SELECT pg_xact_status($1::xid8), EXISTS (SELECT 1 FROM commit_tokens WHERE token = $2)`,
			xid, token).Scan(&status, &found)
		switch {
		case err == nil && found:
			return true, nil
		case err == nil && (status == nil || *status != "in progress"):
			// Ended (or forgotten, or the id now another's) without
			// the token: not committed.
			return false, nil
		}
		// In progress (its backend may still be committing it) or no
		// answer (the database restarting): ask again.
		if err == nil {
			err = fmt.Errorf("transaction %s is still in progress", xid)
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
	token := newCommitToken()
	if err := tx.QueryRow(ctx, xidSQL, token).Scan(&xid); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	committing = true
	if err := tx.Commit(ctx); err != nil {
		return s.resolveCommit(ctx, xid, token, err)
	}
	return nil
}

// CommitsResolved counts the COMMITs that got no answer and were found
// committed, and those whose outcome stayed unknown (metrics and tests).
func (s *Store) CommitsResolved() (committed, unknown int64) {
	return s.commitsResolved.Load(), s.commitsUnknown.Load()
}
