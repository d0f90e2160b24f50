package pgstore

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// SetFlags changes the flags of the given messages of one mailbox (UIDs
// that no longer exist are skipped) and returns the flags of every
// message it found, marking those it changed.
func (s *Store) SetFlags(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string) ([]store.FlagUpdate, error) {
	out, _, err := s.setFlags(ctx, acct, mbox, uids, op, flags, nil)
	return out, err
}

// SetFlagsUnchangedSince is SetFlags for STORE (UNCHANGEDSINCE n) (RFC
// 7162 §3.1.3): a message whose modseq is above unchangedSince is left
// alone and returned in modified; the test and the change are one
// transaction under the mailbox's row lock.
func (s *Store) SetFlagsUnchangedSince(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.FlagUpdate, []uint32, error) {
	return s.setFlags(ctx, acct, mbox, uids, op, flags, &unchangedSince)
}

// setFlags locks the mailbox row (every writer of its messages takes
// it), reads the messages, computes their flags as the embedded store
// does, in the order of uids, and writes the changed ones in one
// statement.
func (s *Store) setFlags(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string, unchangedSince *uint64) ([]store.FlagUpdate, []uint32, error) {
	flags = store.NormalizeFlags(flags)
	var out []store.FlagUpdate
	var modified []uint32
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out, modified = out[:0], modified[:0]
		mb, err := getMailbox(ctx, tx, acct, mbox, true)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE account = $1 AND mailbox = $2 AND uid = ANY ($3)`,
			acct, int32(mbox), sortedUIDs(uids))
		if err != nil {
			return err
		}
		msgs, err := collectMessages(rows)
		if err != nil {
			return err
		}
		byUID := make(map[uint32]*store.Message, len(msgs))
		for i := range msgs {
			byUID[msgs[i].UID] = &msgs[i]
		}
		var writes []any // [uid, modseq, flags] of each change, as JSON
		var changes []store.Change
		unseen := int64(mb.Unseen)
		for _, uid := range uids {
			m := byUID[uid]
			if m == nil {
				continue
			}
			if unchangedSince != nil && m.ModSeq > *unchangedSince {
				modified = append(modified, uid)
				continue
			}
			next := store.StoredFlags(store.ApplyFlags(m.Flags, op, flags))
			if store.SameFlags(m.Flags, next) {
				out = append(out, store.FlagUpdate{UID: uid, Flags: m.Flags, ModSeq: m.ModSeq, Blob: m.Blob})
				continue
			}
			if len(changes) == 0 && op != store.FlagsRemove {
				if err := addKeywords(ctx, tx, acct, mbox, flags); err != nil {
					return err
				}
			}
			wasSeen := m.Seen()
			m.Flags = next
			if len(m.Flags) == 0 {
				m.Flags = nil
			}
			mb.HighestModSeq++
			m.ModSeq = mb.HighestModSeq
			switch isSeen := m.Seen(); {
			case wasSeen && !isSeen:
				unseen++
			case !wasSeen && isSeen:
				unseen--
			}
			changes = append(changes, store.Change{Kind: store.FlagsChanged, Account: acct, Mailbox: mbox, UID: uid, Flags: m.Flags, ModSeq: m.ModSeq})
			out = append(out, store.FlagUpdate{UID: uid, Flags: m.Flags, ModSeq: m.ModSeq, Blob: m.Blob, Changed: true})
			writes = append(writes, []any{uid, m.ModSeq, m.Flags})
		}
		if len(changes) == 0 {
			return nil
		}
		// A message changed twice in one call (its UID given twice)
		// is written once, with its last flags and modseq.
		w, err := json.Marshal(writes)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE messages m SET flags = x.flags, seen = '\Seen' = ANY (x.flags), modseq = x.modseq
			FROM (SELECT DISTINCT ON (uid) uid, modseq, flags FROM (
				SELECT (e->>0)::bigint AS uid, (e->>1)::bigint AS modseq,
					ARRAY(SELECT jsonb_array_elements_text(coalesce(nullif(e->2, 'null'::jsonb), '[]'::jsonb))) AS flags
				FROM jsonb_array_elements($3::jsonb) e) z ORDER BY uid, modseq DESC) x
			WHERE m.account = $1 AND m.mailbox = $2 AND m.uid = x.uid`,
			acct, int32(mbox), string(w)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET highest_modseq = $3, unseen = $4 WHERE account = $1 AND id = $2`,
			acct, int32(mbox), mb.HighestModSeq, unseen); err != nil {
			return err
		}
		return notify(ctx, tx, changes)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, modified, nil
}
