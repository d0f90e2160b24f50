package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// The outbound queue (store/queue.go says what it is for). Several
// nodes run a sender loop on the same queue: QueueLease takes due rows
// with FOR UPDATE SKIP LOCKED, so two nodes leasing at once pass over
// each other's rows and never lease the same entry, and a lease is a
// next_attempt in the future, so an entry whose node died is due again
// when its lease ends. An entry's body reference is dropped in the
// transaction that finishes it (there is no write-ahead log here whose
// records could not carry the deletion, unlike bbolt's queue_free).

// queueCountSlots is the number of rows queue_count spreads the entry
// count over (0004_queue.sql).
const queueCountSlots = 16

// queueLeasePassMax is how many due entries in a row QueueLease passes
// over (skip) before it stops, as bbolt's.
const queueLeasePassMax = 64

// queueBatch bounds QueueChangeAll's transactions and the release of
// expired leases.
const queueBatch = 1000

// queueCols are the columns scanQueueEntry reads, in its order.
const queueCols = `data, id, next_attempt, held, leased`

// scanQueueEntry reads one row of queueCols; the columns override what
// the JSON says of them.
func scanQueueEntry(row pgx.Row) (*store.QueueEntry, error) {
	var raw []byte
	var id uint64
	var next time.Time
	var held, leased bool
	if err := row.Scan(&raw, &id, &next, &held, &leased); err != nil {
		return nil, err
	}
	var e store.QueueEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("queue entry %d: %w", id, store.ErrCorrupt)
	}
	e.ID, e.NextAttempt, e.Held, e.Leased = id, next.UTC(), held, leased
	if !e.Held {
		e.HeldReason = ""
	}
	return &e, nil
}

func collectQueueEntries(rows pgx.Rows) ([]*store.QueueEntry, error) {
	defer rows.Close()
	var out []*store.QueueEntry
	for rows.Next() {
		e, err := scanQueueEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// getQueueEntry reads one entry in tx, locking its row.
func getQueueEntry(ctx context.Context, tx pgx.Tx, id uint64) (*store.QueueEntry, error) {
	e, err := scanQueueEntry(tx.QueryRow(ctx, `SELECT `+queueCols+` FROM queue WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("queue entry %d: %w", id, store.ErrNotFound)
	}
	return e, err
}

// queueTime is a time as a timestamptz column keeps it.
func queueTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// putQueueEntries writes entries already in the queue back, in one
// statement.
func putQueueEntries(ctx context.Context, tx pgx.Tx, es []*store.QueueEntry) error {
	if len(es) == 0 {
		return nil
	}
	ids := make([]int64, len(es))
	data := make([]string, len(es))
	held := make([]bool, len(es))
	leased := make([]bool, len(es))
	next := make([]time.Time, len(es))
	for i, e := range es {
		e.NextAttempt = queueTime(e.NextAttempt)
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		ids[i], data[i], held[i], leased[i], next[i] = int64(e.ID), string(raw), e.Held, e.Leased, e.NextAttempt
	}
	_, err := tx.Exec(ctx, `UPDATE queue q SET data = v.data::jsonb, held = v.held, leased = v.leased, next_attempt = v.next
		FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::bool[], $5::timestamptz[]) AS v(id, data, held, leased, next)
		WHERE q.id = v.id`, ids, data, held, leased, next)
	return err
}

// addQueueCount moves the entry count by n on the slot of id.
func addQueueCount(ctx context.Context, tx pgx.Tx, id uint64, n int) error {
	_, err := tx.Exec(ctx, `UPDATE queue_count SET n = n + $2 WHERE slot = $1`, int16(id%queueCountSlots), n)
	return err
}

// enqueueTx writes a delivery's outbound queue entries in its
// transaction, filling in their ids, body and times. Each entry holds a
// reference to the body blob, which the caller counts in the body's
// refs (nb.insert(ctx, tx, stored+len(q))), as bbolt's enqueue leaves
// addBodyRefs to Deliver.
func (s *Store) enqueueTx(ctx context.Context, tx pgx.Tx, q []*store.QueueEntry, blob uint64, size int64, now time.Time) error {
	if len(q) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT nextval('queue_ids') FROM generate_series(1, $1)`, len(q))
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	n := len(q)
	data := make([]string, n)
	domains := make([]string, n)
	accts := make([]int64, n)
	held := make([]bool, n)
	next := make([]time.Time, n)
	created := queueTime(now)
	for i, e := range q {
		e.ID, e.Blob, e.Size = uint64(ids[i]), blob, size
		e.CreatedAt = created
		if e.NextAttempt.IsZero() {
			e.NextAttempt = e.CreatedAt
		}
		e.NextAttempt = queueTime(e.NextAttempt)
		e.Leased = false
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		data[i], domains[i], accts[i], held[i], next[i] = string(raw), e.Domain, int64(e.Account), e.Held, e.NextAttempt
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO queue (id, domain, account, blob, created_at, next_attempt, held, data)
		SELECT v.id, v.domain, v.account, $6, $7, v.next, v.held, v.data::jsonb
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bool[], $5::timestamptz[], $8::text[]) AS v(id, domain, account, held, next, data)`,
		ids, domains, accts, held, next, int64(blob), created, data)
	b.Queue(`UPDATE queue_count SET n = n + $2 WHERE slot = $1`, int16(uint64(ids[0])%queueCountSlots), n)
	return tx.SendBatch(ctx, b).Close()
}

// finishQueueEntries removes entries whose recipients are all done and
// drops their body references; it reports whether an object went to
// the trash.
func finishQueueEntries(ctx context.Context, tx pgx.Tx, es []*store.QueueEntry) (bool, error) {
	if len(es) == 0 {
		return false, nil
	}
	ids := make([]int64, len(es))
	refs := map[uint64]int{}
	for i, e := range es {
		ids[i] = int64(e.ID)
		refs[e.Blob]++
	}
	if _, err := tx.Exec(ctx, `DELETE FROM queue WHERE id = ANY($1)`, ids); err != nil {
		return false, err
	}
	if err := addQueueCount(ctx, tx, es[0].ID, -len(es)); err != nil {
		return false, err
	}
	return dropRefs(ctx, tx, refs)
}

// QueueLease takes up to max entries that are due at the store's clock
// and not held, marks them leased until lease from now, and returns
// them oldest due first (store.Store.QueueLease says how skip is
// asked). Rows another node is leasing at the same moment are passed
// over, never waited for.
func (s *Store) QueueLease(ctx context.Context, max int, lease time.Duration, skip func(domain string, taken int) bool) ([]store.QueueEntry, error) {
	var out []store.QueueEntry
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		if max <= 0 {
			return nil
		}
		now := queueTime(s.clock())
		until := queueTime(now.Add(lease))
		taken := map[string]int{}
		var ids []int64
		passed := 0
		// Keyset pages over the due index; each row read is locked (or
		// skipped when another node holds it) so no one else takes it
		// before this transaction ends.
		var lastAt time.Time
		var lastID int64 = -1
		for len(ids) < max && passed < queueLeasePassMax {
			page := max - len(ids) + queueLeasePassMax
			rows, err := tx.Query(ctx, `SELECT id, domain, next_attempt FROM queue
				WHERE NOT held AND next_attempt <= $1 AND (next_attempt, id) > ($2, $3)
				ORDER BY next_attempt, id LIMIT $4 FOR UPDATE SKIP LOCKED`, now, lastAt, lastID, page)
			if err != nil {
				return err
			}
			got := 0
			var id int64
			var domain string
			var at time.Time
			_, err = pgx.ForEachRow(rows, []any{&id, &domain, &at}, func() error {
				got++
				lastAt, lastID = at, id
				if len(ids) >= max || passed >= queueLeasePassMax {
					return nil
				}
				if skip != nil && skip(domain, taken[domain]) {
					passed++
					return nil
				}
				passed = 0
				taken[domain]++
				ids = append(ids, id)
				return nil
			})
			if err != nil {
				return err
			}
			if got < page {
				break
			}
		}
		if len(ids) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `UPDATE queue SET leased = true, next_attempt = $2 WHERE id = ANY($1)
			RETURNING `+queueCols, ids, until)
		if err != nil {
			return err
		}
		es, err := collectQueueEntries(rows)
		if err != nil {
			return err
		}
		byID := make(map[uint64]*store.QueueEntry, len(es))
		for _, e := range es {
			byID[e.ID] = e
		}
		for _, id := range ids {
			if e := byID[uint64(id)]; e != nil {
				out = append(out, *e)
			}
		}
		return nil
	})
	return out, err
}

// QueueUpdate writes back the outcome of an attempt on a leased entry
// (store.Store.QueueUpdate): an entry with no pending recipient left is
// removed with its body reference; one dropped meanwhile stays dropped,
// one held meanwhile stays held.
func (s *Store) QueueUpdate(ctx context.Context, upd *store.QueueEntry) error {
	trashed := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		trashed = false
		e, err := getQueueEntry(ctx, tx, upd.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // dropped while it was being sent
		}
		if err != nil {
			return err
		}
		e.Recipients, e.Attempts, e.LastAttempt, e.LastError = upd.Recipients, upd.Attempts, upd.LastAttempt, upd.LastError
		e.DelayWarned = e.DelayWarned || upd.DelayWarned
		if e.Pending() == 0 {
			trashed, err = finishQueueEntries(ctx, tx, []*store.QueueEntry{e})
			return err
		}
		e.Leased, e.NextAttempt = false, upd.NextAttempt
		return putQueueEntries(ctx, tx, []*store.QueueEntry{e})
	})
	if err == nil && trashed {
		s.emptyTrashSoon()
	}
	return err
}

// QueueDueBefore reports whether an entry not held is due at t (an
// advisory read from the due index).
func (s *Store) QueueDueBefore(t time.Time) bool {
	due := false
	_ = s.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM queue WHERE NOT held AND next_attempt <= $1)`,
		queueTime(t)).Scan(&due)
	return due
}

// QueueReleaseLeases makes leased entries due now, as bbolt's does at
// start; but other nodes may be sending right now, so only leases that
// have run out are released (an entry whose lease ran out is already
// due: this clears its mark). The leases of a node that died are
// released when they run out, not at once. It returns how many.
func (s *Store) QueueReleaseLeases(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := s.tx(ctx, func(tx pgx.Tx) error {
			now := queueTime(s.clock())
			tag, err := tx.Exec(ctx, `UPDATE queue SET leased = false, next_attempt = $1 WHERE id IN (
				SELECT id FROM queue WHERE leased AND next_attempt <= $1 ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
				now, queueBatch)
			n = int(tag.RowsAffected())
			return err
		})
		total += n
		if err != nil || n < queueBatch {
			return total, err
		}
	}
}

// QueueReleaseBodies has nothing to do here: the transaction that
// finishes an entry drops its body reference. It returns 0.
func (s *Store) QueueReleaseBodies(ctx context.Context, max int) (int, error) {
	return 0, ctx.Err()
}

// QueueBody returns the message of an entry.
func (s *Store) QueueBody(e *store.QueueEntry) ([]byte, error) {
	body, _, err := s.loadBody(context.Background(), e.Blob, true)
	return body, err
}

// QueueGet returns one entry.
func (s *Store) QueueGet(id uint64) (store.QueueEntry, error) {
	e, err := scanQueueEntry(s.pool.QueryRow(context.Background(), `SELECT `+queueCols+` FROM queue WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.QueueEntry{}, fmt.Errorf("queue entry %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.QueueEntry{}, storageErr(err)
	}
	return *e, nil
}

// QueueList returns entries in id (arrival) order.
func (s *Store) QueueList(f store.QueueFilter) ([]store.QueueEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + queueCols + ` FROM queue WHERE id > $1`
	args := []any{int64(f.After)}
	if f.Held {
		q += ` AND held`
	}
	if f.Domain != "" {
		args = append(args, f.Domain)
		q += fmt.Sprintf(` AND domain = $%d`, len(args))
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(` ORDER BY id LIMIT $%d`, len(args))
	rows, err := s.pool.Query(context.Background(), q, args...)
	if err != nil {
		return nil, storageErr(err)
	}
	es, err := collectQueueEntries(rows)
	if err != nil {
		return nil, storageErr(err)
	}
	out := make([]store.QueueEntry, len(es))
	for i, e := range es {
		out[i] = *e
	}
	return out, nil
}

// QueueStats reads the queue's size from its counter and its oldest
// entry from the primary key, without a scan.
func (s *Store) QueueStats() (store.QueueStats, error) {
	var st store.QueueStats
	var oldest *time.Time
	err := s.pool.QueryRow(context.Background(), `SELECT (SELECT coalesce(sum(n), 0) FROM queue_count),
		(SELECT created_at FROM queue ORDER BY id LIMIT 1)`).Scan(&st.Entries, &oldest)
	if err != nil {
		return st, storageErr(err)
	}
	st.Entries = max(st.Entries, 0)
	if oldest != nil {
		st.Oldest = oldest.UTC()
	}
	return st, nil
}

// queueActionNames are the audit actions of the operator's actions.
var queueActionNames = map[store.QueueAction]string{store.QueueHold: "queue.hold", store.QueueRelease: "queue.release",
	store.QueueRetry: "queue.retry", store.QueueDrop: "queue.drop"}

// QueueChange applies an operator's action to an entry, audited, and
// returns the entry as it was before.
func (s *Store) QueueChange(ctx context.Context, id uint64, act store.QueueAction, reason string, a store.Audit) (store.QueueEntry, error) {
	var before store.QueueEntry
	trashed := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		trashed = false
		e, err := getQueueEntry(ctx, tx, id)
		if err != nil {
			return err
		}
		before = *e
		before.Recipients = append([]store.QueueRecipient(nil), e.Recipients...)
		now := s.clock()
		if trashed, err = queueApply(ctx, tx, now, []*store.QueueEntry{e}, act, reason); err != nil {
			return err
		}
		if a.Actor == "" {
			return nil
		}
		a.Reason = fmt.Sprintf("queue entry %d to %s", e.ID, e.Domain)
		if reason != "" {
			a.Reason += ": " + reason
		}
		return audit(ctx, tx, now, a, queueActionNames[act], "")
	})
	if err == nil && trashed {
		s.emptyTrashSoon()
	}
	return before, err
}

// QueueChangeAll applies an action to every entry it concerns (release:
// the held ones; hold and retry: the others; drop: all) that matches
// sel, in transactions of at most 1,000 entries in id order (one audit
// entry each), so that delivery is never stalled behind it. It returns
// how many.
func (s *Store) QueueChangeAll(ctx context.Context, sel store.QueueSelect, act store.QueueAction, reason string, a store.Audit, account string) (int, error) {
	if _, ok := queueActionNames[act]; !ok {
		return 0, fmt.Errorf("store: unknown queue action %d", act)
	}
	q := `SELECT ` + queueCols + ` FROM queue WHERE id > $1`
	args := []any{int64(0)}
	if sel.Account != 0 {
		args = append(args, int64(sel.Account))
		q += fmt.Sprintf(` AND account = $%d AND account <> 0`, len(args))
	}
	if sel.Domain != "" {
		args = append(args, sel.Domain)
		q += fmt.Sprintf(` AND domain = $%d`, len(args))
	}
	switch act {
	case store.QueueRelease:
		q += ` AND held`
	case store.QueueHold, store.QueueRetry:
		q += ` AND NOT held`
	}
	q += fmt.Sprintf(` ORDER BY id LIMIT %d FOR UPDATE`, queueBatch)
	total := 0
	after := uint64(0)
	for {
		var picked []*store.QueueEntry
		trashed := false
		err := s.tx(ctx, func(tx pgx.Tx) error {
			trashed = false
			args[0] = int64(after)
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			if picked, err = collectQueueEntries(rows); err != nil {
				return err
			}
			n := len(picked)
			if n == 0 {
				return nil
			}
			now := s.clock()
			if trashed, err = queueApply(ctx, tx, now, picked, act, reason); err != nil {
				return err
			}
			if a.Actor == "" {
				return nil
			}
			b := a
			b.Reason = fmt.Sprintf("%d queue entries, %d to %d", n, picked[0].ID, picked[n-1].ID)
			if reason != "" {
				b.Reason += ": " + reason
			}
			return audit(ctx, tx, now, b, queueActionNames[act], account)
		})
		if err != nil {
			return total, err
		}
		if trashed {
			s.emptyTrashSoon()
		}
		total += len(picked)
		if len(picked) < queueBatch {
			return total, nil
		}
		after = picked[len(picked)-1].ID
	}
}

// queueApply changes entries (read and locked in tx) as act says, as
// bbolt's queueApply does one; it reports whether a dropped entry's
// body went to the trash.
func queueApply(ctx context.Context, tx pgx.Tx, now time.Time, es []*store.QueueEntry, act store.QueueAction, reason string) (bool, error) {
	var put []*store.QueueEntry
	switch act {
	case store.QueueHold:
		for _, e := range es {
			if !e.Held {
				e.Held, e.HeldReason = true, reason
				put = append(put, e)
			}
		}
	case store.QueueRelease, store.QueueRetry:
		for _, e := range es {
			if act == store.QueueRelease {
				e.Held, e.HeldReason = false, ""
			}
			if !e.Leased {
				e.NextAttempt = now
			}
			put = append(put, e)
		}
	case store.QueueDrop:
		for _, e := range es {
			for i := range e.Recipients {
				if e.Recipients[i].Status == store.QueuePending {
					e.Recipients[i].Status = store.QueueFailed
				}
			}
		}
		return finishQueueEntries(ctx, tx, es)
	default:
		return false, fmt.Errorf("store: unknown queue action %d", act)
	}
	return false, putQueueEntries(ctx, tx, put)
}
