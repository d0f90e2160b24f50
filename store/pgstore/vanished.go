package pgstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Expunged UIDs are remembered per mailbox for QRESYNC's VANISHED
// (EARLIER) (RFC 7162 §3.2.5, store/vanished.go): one vanished row per
// expunge, at the MODSEQ it took; vanished_floor says below which MODSEQ
// the records were pruned. "Which UIDs went since M" is a range of the
// (account, mailbox, modseq) index.

// recordVanished remembers expunged uids, each at its modseq.
func recordVanished(ctx context.Context, tx pgx.Tx, acct uint64, mbox uint32, uids, modseqs []int64, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO vanished (account, mailbox, uid, modseq, at)
		SELECT $1, $2, x.uid, x.modseq, $5 FROM unnest($3::bigint[], $4::bigint[]) x(uid, modseq)
		ON CONFLICT (account, mailbox, uid) DO UPDATE SET modseq = EXCLUDED.modseq, at = EXCLUDED.at`,
		acct, int32(mbox), uids, modseqs, time.Unix(now.Unix(), 0).UTC())
	return err
}

// Vanished returns the UIDs expunged from a mailbox after modseq since,
// ascending. complete is false when since is older than what is still
// remembered (the records were pruned): then uids is nil and the caller
// falls back (VanishedFallback).
func (s *Store) Vanished(acct uint64, mbox uint32, since uint64) ([]uint32, bool, error) {
	ctx := context.Background()
	var floor int64
	err := s.pool.QueryRow(ctx, `SELECT floor FROM vanished_floor WHERE account = $1 AND mailbox = $2`, acct, int32(mbox)).Scan(&floor)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, storageErr(err)
	}
	if since < uint64(floor) {
		return nil, false, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT uid FROM vanished WHERE account = $1 AND mailbox = $2 AND modseq > $3`,
		acct, int32(mbox), int64(since))
	if err != nil {
		return nil, false, storageErr(err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, false, storageErr(err)
	}
	var uids []uint32
	for _, u := range list {
		uids = append(uids, uint32(u))
	}
	slices.Sort(uids)
	return uids, true, nil
}

// PruneVanished forgets the expunges recorded before cutoff, in bounded
// transactions, raising each mailbox's floor past them. It returns how
// many it forgot.
func (s *Store) PruneVanished(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.tx(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `WITH doomed AS (
					SELECT account, mailbox, uid FROM vanished WHERE at < $1 ORDER BY at LIMIT $2),
				gone AS (
					DELETE FROM vanished v USING doomed d
					WHERE v.account = d.account AND v.mailbox = d.mailbox AND v.uid = d.uid
					RETURNING v.account, v.mailbox, v.modseq)
				SELECT account, mailbox, max(modseq), count(*) FROM gone GROUP BY account, mailbox ORDER BY account, mailbox`,
				cutoff, store.DeleteBatch)
			if err != nil {
				return err
			}
			var accts, floors []int64
			var mboxes []int32
			n = 0
			for rows.Next() {
				var a, f, c int64
				var m int32
				if err := rows.Scan(&a, &m, &f, &c); err != nil {
					rows.Close()
					return err
				}
				accts, mboxes, floors = append(accts, a), append(mboxes, m), append(floors, f)
				n += int(c)
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(accts) == 0 {
				return err
			}
			// The mailboxes still there get their floor (a record of a
			// mailbox deleted meanwhile has no floor to raise).
			_, err = tx.Exec(ctx, `INSERT INTO vanished_floor (account, mailbox, floor)
				SELECT x.a, x.m, x.f FROM unnest($1::bigint[], $2::integer[], $3::bigint[]) x(a, m, f)
				JOIN mailboxes mb ON mb.account = x.a AND mb.id = x.m
				ON CONFLICT (account, mailbox) DO UPDATE SET floor = greatest(vanished_floor.floor, EXCLUDED.floor)`,
				accts, mboxes, floors)
			return err
		})
		total += n
		if err != nil || n < store.DeleteBatch {
			return total, err
		}
	}
}

// UIDsChangedSince returns every UID of a mailbox and the messages
// whose modseq is above since, in UID order, in one walk of the
// mailbox's index: what a SELECT (QRESYNC ...) needs (RFC 7162
// §3.2.5). Only the changed messages' columns are sent.
func (s *Store) UIDsChangedSince(acct uint64, mbox uint32, since uint64) ([]uint32, []store.Message, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT uid, modseq > $3,
			CASE WHEN modseq > $3 THEN modseq END, CASE WHEN modseq > $3 THEN flags END,
			CASE WHEN modseq > $3 THEN internal_date END, CASE WHEN modseq > $3 THEN internal_zone END,
			CASE WHEN modseq > $3 THEN added_at END, CASE WHEN modseq > $3 THEN size END, CASE WHEN modseq > $3 THEN blob END
		FROM messages WHERE account = $1 AND mailbox = $2 ORDER BY uid`, acct, int32(mbox), int64(since))
	if err != nil {
		return nil, nil, storageErr(err)
	}
	defer rows.Close()
	var uids []uint32
	var changed []store.Message
	for rows.Next() {
		var uid int64
		var ch bool
		var modseq, size, blob *int64
		var flags []string
		var internal, added *time.Time
		var zone *int16
		if err := rows.Scan(&uid, &ch, &modseq, &flags, &internal, &zone, &added, &size, &blob); err != nil {
			return nil, nil, storageErr(err)
		}
		uids = append(uids, uint32(uid))
		if !ch {
			continue
		}
		m := store.Message{UID: uint32(uid), ModSeq: uint64(*modseq), Flags: flags, Size: *size, Blob: uint64(*blob),
			InternalDate: internal.In(fixedZone(int(*zone))), AddedAt: added.UTC()}
		if len(m.Flags) == 0 {
			m.Flags = nil
		}
		changed = append(changed, m)
	}
	return uids, changed, storageErr(rows.Err())
}
