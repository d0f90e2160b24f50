package pgstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// A broadcast (store/broadcast.go says what it is) delivers one body to
// every active account, or one class's, in bounded steps: each step is
// one transaction that locks the broadcast's row, then the batch's
// account rows in id order, then each account's mailbox row, and
// advances the cursor with its deliveries, so an interrupted broadcast
// resumes with neither duplicates nor gaps, on whichever node runs it
// next. The body is stored once; the unfinished broadcast holds one
// reference to it, each stored copy another.

// StartBroadcast stores the body (once) and creates the broadcast, or
// returns the unfinished one with the same source, sender and class so
// it resumes (resumed is then true) with the body stored the first
// time. A finished broadcast of the same message is not repeated unless
// again is set.
func (s *Store) StartBroadcast(ctx context.Context, b store.Broadcast, body, structure []byte, again bool) (store.Broadcast, bool, error) {
	nb, err := s.prepareBody(ctx, body, structure, true)
	if err != nil {
		return store.Broadcast{}, false, err
	}
	b.Hash = hex.EncodeToString(nb.sha)
	var out store.Broadcast
	resumed, trashed := false, false
	err = s.tx(ctx, func(tx pgx.Tx) error {
		resumed, trashed = false, false
		now := s.clock()
		// Two nodes starting the same file at once: one creates it, the
		// other resumes it.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 18))`,
			b.Source+"\n"+b.Sender+"\n"+b.Class); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, data FROM broadcasts WHERE source = $1 AND sender = $2 AND class = $3 ORDER BY id`,
			b.Source, b.Sender, b.Class)
		if err != nil {
			return err
		}
		olds, err := collectBroadcasts(rows)
		if err != nil {
			return err
		}
		for _, old := range olds {
			if !old.Done {
				out, resumed = old, true
				if nb.object != "" {
					// The body stored the first time serves; this upload does not.
					if _, err := tx.Exec(ctx, `INSERT INTO blob_trash (object) VALUES ($1) ON CONFLICT DO NOTHING`, nb.object); err != nil {
						return err
					}
					trashed = true
				}
				return nil
			}
			if !again {
				return fmt.Errorf("%w (broadcast %d, finished %s, %d delivered); use --again to send it again",
					store.ErrAlreadyBroadcast, old.ID, old.DoneAt.Format(time.RFC3339), old.Delivered)
			}
		}
		if err := tx.QueryRow(ctx, `SELECT nextval('broadcast_ids')`).Scan(&b.ID); err != nil {
			return err
		}
		// The broadcast's own reference keeps the body while it runs.
		if b.Blob, err = nb.insert(ctx, tx, 1); err != nil {
			return err
		}
		b.StartedAt = now.UTC()
		raw, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO broadcasts (id, source, sender, class, blob, data) VALUES ($1, $2, $3, $4, $5, $6)`,
			b.ID, b.Source, b.Sender, b.Class, b.Blob, raw); err != nil {
			return err
		}
		out = b
		return audit(ctx, tx, now, store.Audit{Actor: store.ActorOperator, Reason: fmt.Sprintf("broadcast %d from %s, class %q", b.ID, b.Sender, b.Class)},
			"broadcast.start", "")
	})
	if errors.Is(err, store.ErrAlreadyBroadcast) && nb.object != "" {
		// Rolled back: nothing names the object uploaded for it.
		if _, terr := s.pool.Exec(ctx, `INSERT INTO blob_trash (object) VALUES ($1) ON CONFLICT DO NOTHING`, nb.object); terr == nil {
			trashed = true
		}
	}
	if trashed {
		s.emptyTrashSoon()
	}
	return out, resumed, err
}

func collectBroadcasts(rows pgx.Rows) ([]store.Broadcast, error) {
	defer rows.Close()
	var out []store.Broadcast
	for rows.Next() {
		var id uint64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		var b store.Broadcast
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("broadcast %d: %w", id, store.ErrCorrupt)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// broadcastTarget is one account of a step and what became of it.
type broadcastTarget struct {
	id      uint64
	acct    *accounts.Account
	usage   store.Usage
	r       store.Recipient
	err     error // why it was skipped or refused
	insert  bool  // a copy is being inserted
	mailbox string
	res     store.Delivered
	flags   []string
	modseq  uint64
}

// BroadcastStep delivers to the next batch of up to max active accounts
// after the cursor in one transaction and returns the updated record.
// When no account is left, it releases the broadcast's reference and
// marks it done.
func (s *Store) BroadcastStep(ctx context.Context, id uint64, max int, pick store.Pick) (store.Broadcast, error) {
	var out store.Broadcast
	trashed := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		trashed = false
		now := s.clock()
		var raw []byte
		var size *int64
		err := tx.QueryRow(ctx, `SELECT b.data, bl.size FROM broadcasts b LEFT JOIN blobs bl ON bl.id = b.blob
			WHERE b.id = $1 FOR UPDATE OF b`, id).Scan(&raw, &size)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("broadcast %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var b store.Broadcast
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("broadcast %d: %w", id, store.ErrCorrupt)
		}
		if b.Done {
			out = b
			return nil
		}
		bodySize := int64(0)
		if size != nil {
			bodySize = *size
		}
		rows, err := tx.Query(ctx, `SELECT id FROM accounts WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3`,
			string(accounts.Active), int64(b.Cursor), max)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		targets, err := lockBroadcastTargets(ctx, tx, ids)
		if err != nil {
			return err
		}
		today := store.DayNumber(now)
		var picked []*broadcastTarget
		for _, aid := range ids {
			b.Cursor = uint64(aid)
			b.Scanned++
			t := targets[uint64(aid)]
			if t == nil {
				continue // gone since the batch was chosen
			}
			if b.Class != "" && t.acct.Class != b.Class {
				continue
			}
			picked = append(picked, t)
			if t.r, t.err = pick(t.acct); t.err != nil {
				continue
			}
			t.r.Account = t.id
			t.err = t.check(today, bodySize)
			t.insert = t.err == nil
		}
		if err := s.insertBroadcastCopies(ctx, tx, picked, b.Blob, bodySize, now); err != nil {
			return err
		}
		var delivered []store.Delivered
		var addrs, refused, reasons []string
		var changes []store.Change
		for _, t := range picked {
			switch {
			case errors.Is(t.err, store.ErrSkipNoConsent):
				b.Refused++
				refused = append(refused, t.acct.Address())
				reasons = append(reasons, store.BroadcastSkipReason(t.err))
			case t.err != nil:
				b.Skipped++
				if len(b.Sample) < 1000 { // bbolt's maxSample
					b.Sample = append(b.Sample, t.err.Error())
				}
			default:
				delivered = append(delivered, t.res)
				addrs = append(addrs, t.acct.Address())
				changes = append(changes, store.Change{Kind: store.MessageAdded, Account: t.id, Mailbox: t.res.Mailbox,
					UID: t.res.UID, Flags: t.flags, ModSeq: t.modseq})
			}
		}
		if n := len(delivered); n > 0 {
			if err := addRefs(ctx, tx, b.Blob, n); err != nil {
				return err
			}
			b.Delivered += int64(n)
			if err := notify(ctx, tx, changes); err != nil {
				return err
			}
		}
		if b.Official {
			o := &store.OfficialLetter{MessageID: b.MessageID, Sender: b.Sender, Addresses: addrs, AcceptedAt: now,
				Refused: refused, Reason: "no-consent", RefusedReasons: reasons}
			if err := s.recordOfficialTx(ctx, tx, o, delivered, b.Blob, now); err != nil {
				return err
			}
		}
		if len(ids) < max {
			b.Done, b.DoneAt = true, now.UTC()
			if trashed, err = dropRefs(ctx, tx, map[uint64]int{b.Blob: 1}); err != nil {
				return err
			}
			if err := audit(ctx, tx, now, store.Audit{Actor: store.ActorOperator,
				Reason: fmt.Sprintf("broadcast %d: %d delivered, %d skipped, %d refused", b.ID, b.Delivered, b.Skipped, b.Refused)},
				"broadcast.done", ""); err != nil {
				return err
			}
		}
		if raw, err = json.Marshal(b); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE broadcasts SET data = $2, done = $3 WHERE id = $1`, b.ID, raw, b.Done); err != nil {
			return err
		}
		out = b
		return nil
	})
	if err == nil && trashed {
		s.emptyTrashSoon()
	}
	return out, err
}

// lockBroadcastTargets locks a batch's account and usage rows in id
// order, before any mailbox row (Deliver locks the usage rows of its
// recipients first too), and reads them. An account without a usage
// row (none is active) is left out with those gone since the batch was
// chosen.
func lockBroadcastTargets(ctx context.Context, tx pgx.Tx, ids []int64) (map[uint64]*broadcastTarget, error) {
	out := make(map[uint64]*broadcastTarget, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT a.id, a.data, u.bytes, u.messages, u.day, u.received, u.sent
		FROM accounts a JOIN usage u ON u.account = a.id
		WHERE a.id = ANY($1) ORDER BY a.id FOR UPDATE OF a, u`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		t := &broadcastTarget{acct: &accounts.Account{}}
		u := store.Usage{}
		if err := rows.Scan(&t.id, &raw, &u.Bytes, &u.Messages, &u.Day, &u.Received, &u.Sent); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, t.acct); err != nil {
			return nil, fmt.Errorf("account %d: %w", t.id, store.ErrCorrupt)
		}
		t.usage = u
		out[t.id] = t
	}
	return out, rows.Err()
}

// check applies what bbolt's deliverOne checks before it writes: the
// account is active, within its quotas and its daily receive limit.
func (t *broadcastTarget) check(today int32, size int64) error {
	a, r := t.acct, &t.r
	if a.State != accounts.Active {
		return fmt.Errorf("%s is %s: %w", a.Address(), a.State, store.ErrUnavailable)
	}
	u := &t.usage
	if r.MaxBytes > 0 && u.Bytes+size > r.MaxBytes || r.MaxMessages > 0 && u.Messages+1 > r.MaxMessages {
		return fmt.Errorf("%s: %w", a.Address(), store.ErrOverQuota)
	}
	received := u.Received
	if u.Day != today {
		received = 0
	}
	if !r.NotReceived && r.MaxReceivedPerDay > 0 && received+1 > r.MaxReceivedPerDay {
		return fmt.Errorf("%s: %w", a.Address(), store.ErrDailyLimit)
	}
	if r.SpecialUse != "" {
		t.mailbox = r.SpecialUse
		return nil
	}
	name := r.Mailbox
	if name == "" {
		name = "INBOX"
	}
	name, err := store.CanonicalMailboxName(name)
	if err != nil {
		return err
	}
	t.mailbox = name
	return nil
}

// broadcastInsert stores one copy: the mailbox's next UID and MODSEQ
// under its row lock, the message row, the mailbox counters and the
// account's usage, or nothing when the mailbox is missing or full (its
// next UID at 0xffffffff, bbolt's mboxRecordUID).
const broadcastInsert = `WITH mb AS (
	UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1,
		messages = messages + 1, size = size + $4, unseen = unseen + $5
	WHERE account = $1 AND uid_next < 4294967295 AND id = (
		SELECT id FROM mailboxes WHERE account = $1 AND NOT deleting
			AND CASE WHEN $2::text <> '' THEN lower(special_use) = lower($2::text) ELSE name = $3::text END
		ORDER BY id LIMIT 1)
	RETURNING id, uid_next - 1 AS uid, highest_modseq, uid_validity
), msg AS (
	INSERT INTO messages (account, mailbox, uid, modseq, flags, seen, internal_date, added_at, size, blob)
	SELECT $1, id, uid, highest_modseq, $6, $7, $8, $8, $4, $9 FROM mb
), u AS (
	UPDATE usage SET bytes = bytes + $4, messages = messages + 1,
		received = CASE WHEN day = $10 THEN received ELSE 0 END + $11,
		sent = CASE WHEN day = $10 THEN sent ELSE 0 END, day = $10
	WHERE account = $1 AND EXISTS (SELECT 1 FROM mb)
)
SELECT id, uid, highest_modseq, uid_validity FROM mb`

// insertBroadcastCopies stores the copies of the targets that passed
// their checks, in one round trip; a target whose mailbox is missing or
// full gets its error instead.
func (s *Store) insertBroadcastCopies(ctx context.Context, tx pgx.Tx, ts []*broadcastTarget, blob uint64, size int64, now time.Time) error {
	batch := &pgx.Batch{}
	var ins []*broadcastTarget
	day := store.DayNumber(now)
	at := now.UTC()
	for _, t := range ts {
		if !t.insert {
			continue
		}
		t.flags = store.BroadcastFlags(t.r.Flags)
		seen := false
		for _, f := range t.flags {
			seen = seen || f == `\Seen`
		}
		unseen, received := 1, 1
		if seen {
			unseen = 0
		}
		if t.r.NotReceived {
			received = 0
		}
		special, name := t.r.SpecialUse, ""
		if special == "" {
			name = t.mailbox
		}
		batch.Queue(broadcastInsert, int64(t.id), special, name, size, unseen, t.flags, seen, at, int64(blob), day, received)
		ins = append(ins, t)
	}
	if len(ins) == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, batch)
	var missing []*broadcastTarget
	for _, t := range ins {
		var mbox, uid, modseq, uv int64
		err := br.QueryRow().Scan(&mbox, &uid, &modseq, &uv)
		if errors.Is(err, pgx.ErrNoRows) {
			missing = append(missing, t)
			continue
		}
		if err != nil {
			br.Close()
			return err
		}
		t.res = store.Delivered{Account: t.id, Mailbox: uint32(mbox), UIDValidity: uint32(uv), UID: uint32(uid)}
		t.modseq = uint64(modseq)
	}
	if err := br.Close(); err != nil {
		return err
	}
	for _, t := range missing {
		var name string
		err := tx.QueryRow(ctx, `SELECT name FROM mailboxes WHERE account = $1 AND NOT deleting
			AND CASE WHEN $2::text <> '' THEN lower(special_use) = lower($2::text) ELSE name = $3::text END
			ORDER BY id LIMIT 1`, int64(t.id), t.r.SpecialUse, t.mailbox).Scan(&name)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			t.err = fmt.Errorf("%s: %w", t.mailbox, store.ErrNoMailbox)
		case err != nil:
			return err
		default:
			t.err = fmt.Errorf("mailbox %s has used every UID: %w", name, store.ErrMailboxFull)
		}
	}
	return nil
}
