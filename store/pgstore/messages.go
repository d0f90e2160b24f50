package pgstore

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Copy, move and expunge: each one transaction that locks the
// account's usage row, then the mailbox rows it changes in id order,
// and changes the message rows set-wise (a statement per step, not per
// message). Each expunge takes a MODSEQ of its own and is remembered in
// vanished (QRESYNC), unless its mailbox is being deleted.

// usageRow is the part of an account's usage copy and expunge change.
type usageRow struct{ bytes, messages int64 }

// lockUsageRow locks an account's usage row and reads its counters.
func lockUsageRow(ctx context.Context, tx pgx.Tx, acct uint64) (usageRow, error) {
	var u usageRow
	err := tx.QueryRow(ctx, `SELECT bytes, messages FROM usage WHERE account = $1 FOR UPDATE`, acct).Scan(&u.bytes, &u.messages)
	if err == pgx.ErrNoRows {
		return u, errNoUsage(acct)
	}
	return u, err
}

// lockMailboxes locks mailbox rows of an account in id order and
// returns them by id.
func lockMailboxes(ctx context.Context, tx pgx.Tx, acct uint64, ids ...uint32) (map[uint32]*store.Mailbox, error) {
	ids32 := make([]int32, len(ids))
	for i, id := range ids {
		ids32[i] = int32(id)
	}
	rows, err := tx.Query(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE account = $1 AND id = ANY ($2) ORDER BY id FOR UPDATE`, acct, ids32)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uint32]*store.Mailbox{}
	for rows.Next() {
		mb, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		out[mb.ID] = &mb
	}
	return out, rows.Err()
}

// putCounters writes a mailbox's counters back.
func putCounters(ctx context.Context, tx pgx.Tx, acct uint64, mb *store.Mailbox) error {
	_, err := tx.Exec(ctx, `UPDATE mailboxes SET uid_next = $3, messages = $4, size = $5, unseen = $6, highest_modseq = $7
		WHERE account = $1 AND id = $2`, acct, mb.ID, int64(mb.UIDNext), int32(mb.Messages), mb.Size, int32(mb.Unseen), mb.HighestModSeq)
	return err
}

// addUsage changes an account's usage by bytes and messages.
func addUsage(ctx context.Context, tx pgx.Tx, acct uint64, bytes, messages int64) error {
	if bytes == 0 && messages == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE usage SET bytes = bytes + $2, messages = messages + $3 WHERE account = $1`, acct, bytes, messages)
	return err
}

// sortedUIDs is uids ascending, without repeats and without the UIDs
// no message can have.
func sortedUIDs(uids []uint32) []int64 {
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	out := make([]int64, 0, len(sorted))
	for _, u := range slices.Compact(sorted) {
		if u != 0 && u < store.MailboxFullUID {
			out = append(out, int64(u))
		}
	}
	return out
}

// addRefsMany takes references to bodies (id → count), in id order.
func addRefsMany(ctx context.Context, tx pgx.Tx, refs map[uint64]int) error {
	if len(refs) == 0 {
		return nil
	}
	ids, ns := refArrays(refs)
	if err := lockBlobs(ctx, tx, ids); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE blobs b SET refs = b.refs + x.n FROM unnest($1::bigint[], $2::integer[]) x(id, n) WHERE b.id = x.id`, ids, ns)
	return err
}

// dropRefsMany is dropRefs (blobs.go) in three statements whatever the
// number of bodies: an expunge or a mailbox deletion of thousands of
// messages releases their bodies without a round trip each. It reports
// whether an object went to the trash.
func dropRefsMany(ctx context.Context, tx pgx.Tx, refs map[uint64]int) (bool, error) {
	if len(refs) == 0 {
		return false, nil
	}
	ids, ns := refArrays(refs)
	if err := lockBlobs(ctx, tx, ids); err != nil {
		return false, err
	}
	rows, err := tx.Query(ctx, `UPDATE blobs b SET refs = b.refs - x.n FROM unnest($1::bigint[], $2::integer[]) x(id, n)
		WHERE b.id = x.id AND b.refs <= x.n RETURNING b.id, b.object`, ids, ns)
	if err != nil {
		return false, err
	}
	gone := []int64{} // not nil: <> ALL (NULL) matches nothing
	var objects []string
	for rows.Next() {
		var id int64
		var object *string
		if err := rows.Scan(&id, &object); err != nil {
			rows.Close()
			return false, err
		}
		gone = append(gone, id)
		if object != nil {
			objects = append(objects, *object)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	// The bodies that keep references lose them here.
	if _, err := tx.Exec(ctx, `UPDATE blobs b SET refs = b.refs - x.n FROM unnest($1::bigint[], $2::integer[]) x(id, n)
		WHERE b.id = x.id AND b.id <> ALL ($3)`, ids, ns, gone); err != nil {
		return false, err
	}
	if len(gone) == 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM blobs WHERE id = ANY ($1)`, gone); err != nil {
		return false, err
	}
	if len(objects) == 0 {
		return false, nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO blob_trash (object) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, objects)
	return err == nil, err
}

// lockBlobs locks body rows in id order, as dropRefs does, so that two
// transactions changing the references of the same shared bodies never
// deadlock (an UPDATE ... FROM unnest locks in no promised order).
func lockBlobs(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) < 2 {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT 1 FROM blobs WHERE id = ANY ($1) ORDER BY id FOR UPDATE`, ids)
	return err
}

func refArrays(refs map[uint64]int) ([]int64, []int32) {
	ids := make([]int64, 0, len(refs))
	for id := range refs {
		ids = append(ids, int64(id))
	}
	slices.Sort(ids)
	ns := make([]int32, len(ids))
	for i, id := range ids {
		ns[i] = int32(refs[uint64(id)])
	}
	return ids, ns
}

// removed is one message an expunge took away.
type removed struct {
	uid      uint32
	size     int64
	seen     bool
	blob     uint64
	official bool
}

// removeMessages deletes the messages among uids (sorted) of mb (whose
// row the caller locked after the usage row), only those flagged
// \Deleted when onlyDeleted, gives each expunge the mailbox's next
// MODSEQ, remembers it (unless mb is being deleted), releases the
// bodies and the counters, and queues MessageRemoved for each. It
// returns the UIDs removed, ascending, and whether an object went to
// the trash.
func (s *Store) removeMessages(ctx context.Context, tx pgx.Tx, acct uint64, mb *store.Mailbox, uids []int64, onlyDeleted bool) ([]uint32, bool, error) {
	if len(uids) == 0 {
		return nil, false, nil
	}
	sql := `DELETE FROM messages WHERE account = $1 AND mailbox = $2 AND uid = ANY ($3)`
	if onlyDeleted {
		sql += ` AND flags @> ARRAY['\Deleted']::text[]`
	}
	rows, err := tx.Query(ctx, sql+` RETURNING uid, size, seen, blob, '$Official' = ANY (flags)`, acct, mb.ID, uids)
	if err != nil {
		return nil, false, err
	}
	var gone []removed
	for rows.Next() {
		var r removed
		var uid int64
		if err := rows.Scan(&uid, &r.size, &r.seen, &r.blob, &r.official); err != nil {
			rows.Close()
			return nil, false, err
		}
		r.uid = uint32(uid)
		gone = append(gone, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(gone) == 0 {
		return nil, false, err
	}
	slices.SortFunc(gone, func(a, b removed) int { return int(a.uid) - int(b.uid) })
	out := make([]uint32, len(gone))
	vuids := make([]int64, len(gone))
	vmodseqs := make([]int64, len(gone))
	refs := map[uint64]int{}
	changes := make([]store.Change, len(gone))
	var bytes int64
	for i, r := range gone {
		mb.HighestModSeq++
		mb.Messages--
		mb.Size -= r.size
		if !r.seen {
			mb.Unseen--
		}
		bytes += r.size
		refs[r.blob]++
		out[i], vuids[i], vmodseqs[i] = r.uid, int64(r.uid), int64(mb.HighestModSeq)
		changes[i] = store.Change{Kind: store.MessageRemoved, Account: acct, Mailbox: mb.ID, UID: r.uid, ModSeq: mb.HighestModSeq}
		if r.official {
			if err := s.officialCopyDropped(ctx, tx, acct, r.blob); err != nil {
				return nil, false, err
			}
		}
	}
	if !mb.Deleting {
		if err := recordVanished(ctx, tx, acct, mb.ID, vuids, vmodseqs, s.clock()); err != nil {
			return nil, false, err
		}
	}
	if err := putCounters(ctx, tx, acct, mb); err != nil {
		return nil, false, err
	}
	if err := addUsage(ctx, tx, acct, -bytes, -int64(len(gone))); err != nil {
		return nil, false, err
	}
	trashed, err := dropRefsMany(ctx, tx, refs)
	if err != nil {
		return nil, false, err
	}
	return out, trashed, notify(ctx, tx, changes)
}

// Expunge removes the given messages of one mailbox (UIDs that no
// longer exist are skipped), releases their bodies and quota, and
// returns the UIDs it removed in ascending order. Callers pass bounded
// batches.
func (s *Store) Expunge(ctx context.Context, acct uint64, mbox uint32, uids []uint32) ([]uint32, error) {
	return s.expungeIf(ctx, acct, mbox, uids, false)
}

func (s *Store) expungeIf(ctx context.Context, acct uint64, mbox uint32, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var out []uint32
	var trashed bool
	sorted := sortedUIDs(uids)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockUsageRow(ctx, tx, acct); err != nil {
			return err
		}
		mb, err := getMailbox(ctx, tx, acct, mbox, true)
		if err != nil {
			return err
		}
		out, trashed, err = s.removeMessages(ctx, tx, acct, &mb, sorted, onlyDeleted)
		return err
	})
	if err != nil {
		return nil, err
	}
	if trashed {
		s.emptyTrashSoon()
	}
	if out == nil {
		out = []uint32{}
	}
	return out, nil
}

// ExpungeDeleted removes the messages flagged \Deleted (only those only
// accepts, when it is not nil), in bounded transactions, and returns
// the UIDs removed. The messages are found through an index of the
// flagged ones, a page at a time.
func (s *Store) ExpungeDeleted(ctx context.Context, acct uint64, mbox uint32, only func(uint32) bool) ([]uint32, error) {
	var all []uint32
	after := int64(0)
	for {
		rows, err := s.pool.Query(ctx, `SELECT uid FROM messages WHERE account = $1 AND mailbox = $2 AND uid > $3
			AND flags @> ARRAY['\Deleted']::text[] ORDER BY uid LIMIT $4`, acct, mbox, after, store.DeleteBatch)
		if err != nil {
			return all, storageErr(err)
		}
		page, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return all, storageErr(err)
		}
		var batch []uint32
		for _, uid := range page {
			if only == nil || only(uint32(uid)) {
				batch = append(batch, uint32(uid))
			}
		}
		if len(batch) > 0 {
			// expungeIf checks \Deleted again inside its transaction.
			removed, err := s.expungeIf(ctx, acct, mbox, batch, true)
			all = append(all, removed...)
			if err != nil {
				return all, err
			}
		}
		if len(page) < store.DeleteBatch {
			return all, nil
		}
		after = page[len(page)-1]
	}
}

// copyMessages copies (or moves) the existing messages among uids from
// src to dst in tx (store.Store.Copy and Move say what they promise).
// New copies get dst's next UIDs and a fresh AddedAt; a move's source
// messages vanish each at a MODSEQ of its own. src == dst with move
// gives each message a new UID above every one read.
func (s *Store) copyMessages(ctx context.Context, tx pgx.Tx, acct uint64, src uint32, uids []uint32, dst uint32, maxBytes, maxMessages int64, move bool) (store.CopyResult, error) {
	u, err := lockUsageRow(ctx, tx, acct)
	if err != nil {
		return store.CopyResult{}, err
	}
	mbs, err := lockMailboxes(ctx, tx, acct, src, dst)
	if err != nil {
		return store.CopyResult{}, err
	}
	from, to := mbs[src], mbs[dst]
	if from == nil {
		return store.CopyResult{}, errNoMailbox(src)
	}
	if to == nil {
		return store.CopyResult{}, errNoMailbox(dst)
	}
	out := store.CopyResult{UIDValidity: to.UIDValidity}
	rows, err := tx.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE account = $1 AND mailbox = $2 AND uid = ANY ($3) ORDER BY uid`,
		acct, src, sortedUIDs(uids))
	if err != nil {
		return out, err
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return out, err
	}
	if len(msgs) > 0 {
		if int64(to.UIDNext)+int64(len(msgs))-1 >= store.MailboxFullUID {
			return out, errMailboxFull(to.Name)
		}
		var kws []string
		for _, m := range msgs {
			kws = append(kws, m.Flags...)
		}
		if err := addKeywords(ctx, tx, acct, dst, kws); err != nil {
			return out, err
		}
	}
	now := time.Unix(s.clock().Unix(), 0).UTC()
	n := len(msgs)
	srcUIDs, newUIDs, modseqs, vmodseqs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	refs := map[uint64]int{}
	var changes []store.Change
	for i, m := range msgs {
		uid := to.UIDNext
		to.UIDNext++
		to.HighestModSeq++
		to.Messages++
		to.Size += m.Size
		if !m.Seen() {
			to.Unseen++
		}
		u.bytes += m.Size
		u.messages++
		srcUIDs[i], newUIDs[i], modseqs[i] = int64(m.UID), int64(uid), int64(to.HighestModSeq)
		changes = append(changes, store.Change{Kind: store.MessageAdded, Account: acct, Mailbox: dst, UID: uid, Flags: m.Flags, ModSeq: to.HighestModSeq})
		out.Source = append(out.Source, m.UID)
		out.Dest = append(out.Dest, uid)
		if move {
			// The copy holds the body before the move releases it: the
			// references do not change.
			from.HighestModSeq++
			from.Messages--
			from.Size -= m.Size
			if !m.Seen() {
				from.Unseen--
			}
			u.bytes -= m.Size
			u.messages--
			vmodseqs[i] = int64(from.HighestModSeq)
			changes = append(changes, store.Change{Kind: store.MessageRemoved, Account: acct, Mailbox: src, UID: m.UID, ModSeq: from.HighestModSeq})
			continue
		}
		refs[m.Blob]++
		if store.HasFlag(m.Flags, store.KeywordOfficial) {
			if err := s.officialCopyAdded(ctx, tx, acct, m.Blob); err != nil {
				return out, err
			}
		}
	}
	if maxBytes > 0 && u.bytes > maxBytes || maxMessages > 0 && u.messages > maxMessages {
		return store.CopyResult{}, store.ErrOverQuota
	}
	if n == 0 {
		return out, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO messages (account, mailbox, uid, modseq, flags, seen, internal_date, internal_zone, added_at, size, blob)
		SELECT m.account, $3, x.nu, x.ms, m.flags, m.seen, m.internal_date, m.internal_zone, $4, m.size, m.blob
		FROM unnest($5::bigint[], $6::bigint[], $7::bigint[]) x(su, nu, ms)
		JOIN messages m ON m.account = $1 AND m.mailbox = $2 AND m.uid = x.su`,
		acct, src, dst, now, srcUIDs, newUIDs, modseqs); err != nil {
		return out, err
	}
	if move {
		if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE account = $1 AND mailbox = $2 AND uid = ANY ($3)`, acct, src, srcUIDs); err != nil {
			return out, err
		}
		if !from.Deleting {
			if err := recordVanished(ctx, tx, acct, src, srcUIDs, vmodseqs, s.clock()); err != nil {
				return out, err
			}
		}
		if src != dst {
			if err := putCounters(ctx, tx, acct, from); err != nil {
				return out, err
			}
		}
	} else if err := addRefsMany(ctx, tx, refs); err != nil {
		return out, err
	}
	if err := putCounters(ctx, tx, acct, to); err != nil {
		return out, err
	}
	if _, err := tx.Exec(ctx, `UPDATE usage SET bytes = $2, messages = $3 WHERE account = $1`, acct, u.bytes, u.messages); err != nil {
		return out, err
	}
	return out, notify(ctx, tx, changes)
}

// Copy copies messages into another mailbox of the same account,
// sharing their bodies (RFC 9051 §6.4.7). The quota limits (0 = none)
// are checked against the account's usage after the copy, in the same
// transaction.
func (s *Store) Copy(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32, maxBytes, maxMessages int64) (store.CopyResult, error) {
	var out store.CopyResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = s.copyMessages(ctx, tx, acct, src, uids, dst, maxBytes, maxMessages, false)
		return err
	})
	if err != nil {
		return store.CopyResult{}, err
	}
	return out, nil
}

// Move moves messages to another mailbox (RFC 6851): copy and expunge
// in one transaction. It never raises usage, so no quota applies.
func (s *Store) Move(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32) (store.CopyResult, error) {
	var out store.CopyResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = s.copyMessages(ctx, tx, acct, src, uids, dst, 0, 0, true)
		return err
	})
	if err != nil {
		return store.CopyResult{}, err
	}
	return out, nil
}
