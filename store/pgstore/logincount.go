package pgstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"time"

	"abox/store"
)

// Failed-login counters shared by every node (issue 18: a guesser who
// spreads its tries over N nodes behind a balancer gets the attempts of
// one). policy/logins_shared.go decides which counters an attempt
// touches and what their state means; this keeps them in the
// login_counters table (migrations/0009_login_failures.sql).
//
// A failure is counted on all its counters in one statement, which
// computes each new state from the row as it is, under its row lock:
// two nodes counting at once both count, in either order. Rows are
// locked in key order (the statements sort their keys), so concurrent
// attempts on the same counters wait for each other rather than
// deadlock; a deadlock that still happens (a success's reset and a
// failure meeting in the other order) is retried.

// loginKey is the row key of policy's counter name.
func loginKey(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

// loginKeys are the sorted, distinct row keys of names.
func loginKeys(names []string) [][]byte {
	keys := make([][]byte, 0, len(names))
	for _, n := range names {
		keys = append(keys, loginKey(n))
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

// loginTime is a time as login_counters keeps it (Unix ns, 0: none).
func loginTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// execLoginCount runs one statement outside a transaction, again when
// PostgreSQL resolved a deadlock or conflict by aborting it.
func (s *Store) execLoginCount(ctx context.Context, sql string, args ...any) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		_, err = s.pool.Exec(ctx, sql, args...)
		if err == nil || !retryable(err) {
			break
		}
	}
	return storageErr(err)
}

// LoginCounters returns the counters named by names that exist, in no
// particular order.
func (s *Store) LoginCounters(ctx context.Context, names []string) ([]store.LoginCounter, error) {
	byKey := make(map[string]string, len(names))
	for _, n := range names {
		byKey[string(loginKey(n))] = n
	}
	rows, err := s.pool.Query(ctx, `SELECT key, streak, last_failure, locked_until, last_success
		FROM login_counters WHERE key = ANY($1)`, loginKeys(names))
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []store.LoginCounter
	for rows.Next() {
		var key []byte
		var c store.LoginCounter
		var failure, until, success int64
		if err := rows.Scan(&key, &c.Streak, &failure, &until, &success); err != nil {
			return nil, storageErr(err)
		}
		c.Key = byKey[string(key)]
		c.LastFailure, c.LockedUntil, c.LastSuccess = loginTime(failure), loginTime(until), loginTime(success)
		out = append(out, c)
	}
	return out, storageErr(rows.Err())
}

// countFailure is one failed login on every counter in $1 at $2 (Unix
// ns), with r.PerMinute $3, r.Lock $4 and r.Forget $5 (ns), as
// golang.org/x/time/rate's limiter and policy's streak count it in one
// node's memory:
//   - a row whose last failure is older than Forget and whose lockout
//     is over counts as new (a full bucket, no streak), as policy's
//     memory forgets such a counter;
//   - the bucket is refilled at PerMinute a minute since refilled_at, up
//     to PerMinute; a failure takes one failure from it when there is
//     one (the limiter allows it), else leaves it as it is;
//   - the streak grows by one; when the bucket had none to take, or the
//     streak passes PerMinute, the counter is locked for Lock from now.
const countFailure = `
INSERT INTO login_counters AS c (key, tokens, refilled_at, streak, last_failure, locked_until, last_success, keep_until)
SELECT k, $3::float8 - 1, $2::bigint, 1, $2::bigint,
	CASE WHEN $3::float8 < 1 THEN $2::bigint + $4::bigint ELSE 0 END, 0, $2::bigint + greatest($4::bigint, $5::bigint)
FROM unnest($1::bytea[]) AS k ORDER BY k
ON CONFLICT (key) DO UPDATE SET (tokens, refilled_at, streak, last_failure, locked_until, keep_until) = (
	SELECT CASE WHEN b.ok THEN b.adv - 1 ELSE c.tokens END,
		CASE WHEN b.ok THEN $2::bigint ELSE c.refilled_at END,
		b.streak, $2::bigint, b.until,
		greatest(c.keep_until, $2::bigint + $5::bigint, b.until)
	FROM (SELECT a.adv >= 1 AS ok, a.adv, a.streak,
			CASE WHEN a.adv < 1 OR a.streak > $3::float8 THEN $2::bigint + $4::bigint ELSE a.until0 END AS until
		FROM (SELECT
				CASE WHEN s.stale THEN $3::float8
					ELSE least($3::float8, c.tokens + greatest($2::bigint - c.refilled_at, 0)::float8 * $3::float8 / 60e9) END AS adv,
				CASE WHEN s.stale THEN 1 ELSE c.streak + 1 END AS streak,
				CASE WHEN s.stale THEN 0 ELSE c.locked_until END AS until0
			FROM (SELECT c.last_failure = 0 OR ($2::bigint - c.last_failure > $5::bigint AND $2::bigint > c.locked_until) AS stale) AS s
		) AS a
	) AS b)`

// CountLoginFailure counts a failed login at now on the counters named
// by names, under policy's rules r.
func (s *Store) CountLoginFailure(ctx context.Context, names []string, now time.Time, r store.LoginRules) error {
	if len(names) == 0 {
		return nil
	}
	return s.execLoginCount(ctx, countFailure, loginKeys(names), now.UnixNano(),
		float64(r.PerMinute), int64(r.Lock), int64(r.Forget))
}

// countSuccess marks the pair $1 known at $4 (kept until $4 + $5, the
// known-login TTL) and clears its failures, and resets the streak of
// the counters in $2 (the account's and the client address's): $3 is a
// full bucket.
const countSuccess = `
WITH reset AS (
	UPDATE login_counters SET streak = 0 WHERE key = ANY($2::bytea[]) AND streak <> 0
)
INSERT INTO login_counters AS c (key, tokens, refilled_at, streak, last_failure, locked_until, last_success, keep_until)
VALUES ($1, $3::float8, 0, 0, 0, 0, $4::bigint, $4::bigint + $5::bigint)
ON CONFLICT (key) DO UPDATE SET tokens = EXCLUDED.tokens, refilled_at = 0, streak = 0, last_failure = 0,
	locked_until = 0, last_success = greatest(c.last_success, EXCLUDED.last_success),
	keep_until = greatest(c.keep_until, EXCLUDED.keep_until)`

// CountLoginSuccess records a successful login at now: the pair named
// pair is known (for r.KnownTTL) and its failures are cleared, and the
// streaks of the counters named by reset end.
func (s *Store) CountLoginSuccess(ctx context.Context, pair string, reset []string, now time.Time, r store.LoginRules) error {
	return s.execLoginCount(ctx, countSuccess, loginKey(pair), loginKeys(reset),
		float64(r.PerMinute), now.UnixNano(), int64(r.KnownTTL))
}

// PruneLoginCounters removes the counters that stopped mattering before
// before (their failures forgotten, lockouts over, pairs no longer
// known), at most batch per statement on login_counters_keep, and
// returns how many it removed.
func (s *Store) PruneLoginCounters(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		return 0, nil
	}
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM login_counters WHERE key IN
			(SELECT key FROM login_counters WHERE keep_until < $1 ORDER BY keep_until LIMIT $2)`, before.UnixNano(), batch)
		if err != nil {
			return total, storageErr(err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < batch {
			return total, nil
		}
	}
}
