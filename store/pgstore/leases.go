package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Leases keep a job (the sweeps, the evidence tree heads) on one node at
// a time: a row of the leases table names the job, the node holding it
// and until when. The holder renews it well before it expires (every
// third of its time to live); a node that dies stops renewing, and once
// the lease has expired the next node to ask takes it over. So a dead
// node's job moves within one time to live plus one renewal interval.
//
// Why a table and not PostgreSQL's session advisory locks: an advisory
// lock lives as long as its connection, and a connection's death is seen
// by the server only when TCP says so: a node that froze, or whose
// network went away, keeps its lock for as long as the kernel's
// keepalive takes (two hours by default), and a pool that quietly
// replaces a connection drops the lock without the job knowing. A lease
// with an expiry measured on the database's clock moves after a bounded
// time whatever the network does, needs no connection held for it, and
// can be read (SELECT * FROM leases) to see which node runs what. The
// price is that a node paused longer than the time to live (a stopped
// process, a long stall) may still run its job when it wakes while
// another has taken it: the holder stops its job when a renewal fails or
// when its time to live has run out on its own clock, and the jobs are
// written in transactions that each check what they change, so an
// overlap of one batch does no harm beyond doing it twice.
//
// Expiry is compared with the database's clock (now()), never the
// nodes': nodes whose clocks disagree still agree on who holds a lease.

// TryLease takes the lease name for holder for ttl, or renews it when
// holder has it already. It reports whether holder has it now: false
// means another holder's lease has not expired.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, errors.New("lease: a name, a holder and a positive time to live are needed")
	}
	var got string
	err := s.pool.QueryRow(ctx, `
		INSERT INTO leases (name, holder, acquired_at, expires_at)
		VALUES ($1, $2, clock_timestamp(), clock_timestamp() + $3::interval)
		ON CONFLICT (name) DO UPDATE
		SET holder = EXCLUDED.holder,
		    acquired_at = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.acquired_at ELSE EXCLUDED.acquired_at END,
		    expires_at = EXCLUDED.expires_at
		WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp()
		RETURNING holder`, name, holder, ttl).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, storageErr(err)
	}
	return got == holder, nil
}

// ReleaseLease gives the lease up, when holder has it, so another node
// takes it at once rather than after it expires (a clean stop).
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
	return storageErr(err)
}

// Lease is who holds a lease and until when (by the database's clock).
type Lease struct {
	Name       string
	Holder     string
	AcquiredAt time.Time
	ExpiresAt  time.Time
	// Expired says the lease has run out: the next node to ask takes it.
	Expired bool
}

// Leases lists the leases, for an operator's look and for tests.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, holder, acquired_at, expires_at, expires_at < clock_timestamp() FROM leases ORDER BY name`)
	if err != nil {
		return nil, storageErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Lease, error) {
		var l Lease
		err := r.Scan(&l.Name, &l.Holder, &l.AcquiredAt, &l.ExpiresAt, &l.Expired)
		return l, err
	})
	return out, storageErr(err)
}
