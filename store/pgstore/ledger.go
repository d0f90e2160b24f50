package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Official copies and first reads (store/ledger.go's): which accounts
// hold copies of an official letter, so that deleting the last one is
// logged, whether its first retrieval and first read are logged; and
// the notice ledger an older installation brings (read, never written).

// officialCopy is one account's copies of one official letter.
type officialCopy struct {
	Account   uint64
	MessageID string
	Sender    string
	Recipient string
	SHA256    string
}

// addOfficialCopies counts one more copy of the letter in blob for each
// of copies (a delivery), starting to track it.
func addOfficialCopies(ctx context.Context, tx pgx.Tx, blob uint64, copies []officialCopy) error {
	if len(copies) == 0 {
		return nil
	}
	n := len(copies)
	accts, msgIDs, senders, rcpts, shas := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, c := range copies {
		accts[i], msgIDs[i], senders[i], rcpts[i], shas[i] = int64(c.Account), c.MessageID, c.Sender, c.Recipient, c.SHA256
	}
	_, err := tx.Exec(ctx, `INSERT INTO official_copies AS oc (account, blob, count, message_id, sender, recipient, sha256)
		SELECT a, $1, count(*), (array_agg(m ORDER BY n))[1], (array_agg(s ORDER BY n))[1], (array_agg(r ORDER BY n))[1], (array_agg(h ORDER BY n))[1]
		FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(a, m, s, r, h, n) GROUP BY a
		ON CONFLICT (account, blob) DO UPDATE SET count = oc.count + EXCLUDED.count`,
		int64(blob), accts, msgIDs, senders, rcpts, shas)
	return err
}

// addOfficialCopyTx counts n more copies of an account's official
// letter (COPY, MOVE's target), in the operation's transaction: a blob
// that is no tracked letter of acct is left alone. The caller holds the
// account's row lock.
func addOfficialCopyTx(ctx context.Context, tx pgx.Tx, acct, blob uint64, n int) error {
	_, err := tx.Exec(ctx, `UPDATE official_copies SET count = count + $3 WHERE account = $1 AND blob = $2`, int64(acct), int64(blob), n)
	return err
}

// dropOfficialCopyTx counts n copies of an account's official letter
// less (EXPUNGE, MOVE's source, a sweep) and logs its deletion when none
// is left, in the operation's transaction. The caller holds the
// account's row lock.
func dropOfficialCopyTx(ctx context.Context, tx pgx.Tx, now time.Time, acct, blob uint64, n int) error {
	var (
		count                         int
		msgID, sender, recipient, sha string
	)
	err := tx.QueryRow(ctx, `UPDATE official_copies SET count = count - $3 WHERE account = $1 AND blob = $2
		RETURNING count, message_id, sender, recipient, sha256`, int64(acct), int64(blob), n).Scan(&count, &msgID, &sender, &recipient, &sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // not a tracked letter
	}
	if err != nil || count > 0 {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM official_copies WHERE account = $1 AND blob = $2`, int64(acct), int64(blob)); err != nil {
		return err
	}
	return appendEvents(ctx, tx, now, []store.EvidenceEvent{{Kind: store.EvidenceDeleted, MessageID: msgID, Sender: sender,
		Recipient: recipient, Account: acct, MessageSHA: sha, How: "expunged"}})
}

// RecordRetrieval records, in one transaction, the first retrieval of
// an official letter by its owner (any body FETCH, or a STORE adding
// \Seen: how says which) and, when how counts as reading (RetrievedBody
// or RetrievedSeenFlag), its first read. Later calls change nothing. It
// reports whether the first read was recorded by this call. It fails
// when the record cannot be written: the caller must not serve the body
// then.
func (s *Store) RecordRetrieval(ctx context.Context, acct, blob uint64, ip, how string) (bool, error) {
	first := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		first = false
		var (
			msgID, sender, recipient, sha string
			retrieved                     bool
		)
		// The copy's row lock orders concurrent retrievals of one letter.
		err := tx.QueryRow(ctx, `SELECT message_id, sender, recipient, sha256, retrieved FROM official_copies
			WHERE account = $1 AND blob = $2 FOR UPDATE`, int64(acct), int64(blob)).Scan(&msgID, &sender, &recipient, &sha, &retrieved)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		now := s.clock()
		ev := store.EvidenceEvent{MessageID: msgID, Sender: sender, Recipient: recipient,
			Account: acct, MessageSHA: sha, ClientIP: ip, How: how}
		var evs []store.EvidenceEvent
		if how != store.RetrievedSeenFlag && !retrieved {
			if _, err := tx.Exec(ctx, `UPDATE official_copies SET retrieved = true WHERE account = $1 AND blob = $2`, int64(acct), int64(blob)); err != nil {
				return err
			}
			ev.Kind = store.EvidenceRetrieved
			evs = append(evs, ev)
		}
		if how == store.RetrievedBody || how == store.RetrievedSeenFlag {
			tag, err := tx.Exec(ctx, `INSERT INTO ledger_reads (sender, message_id, recipient, at) VALUES ($1, $2, $3, $4)
				ON CONFLICT DO NOTHING`, sender, msgID, recipient, now)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				first = true
				ev.Kind = store.EvidenceRead
				evs = append(evs, ev)
			}
		}
		return appendEvents(ctx, tx, now, evs)
	})
	return first, err
}

// RecordRead records the first read of an official letter by a body
// FETCH in a read-write session (RecordRetrieval with RetrievedBody).
func (s *Store) RecordRead(ctx context.Context, acct, blob uint64, ip string) (bool, error) {
	return s.RecordRetrieval(ctx, acct, blob, ip, store.RetrievedBody)
}

// HasRetrievalRecord reports whether nothing is left to record for how:
// the first retrieval (for a body fetch) and, when how counts as
// reading, the first read (one indexed query; lets callers skip
// RecordRetrieval). Unlike the embedded store, a failed query answers
// false, so that the caller goes on to RecordRetrieval, which fails and
// keeps the body from being served unrecorded.
func (s *Store) HasRetrievalRecord(acct, blob uint64, how string) bool {
	var retrieved, read bool
	err := s.pool.QueryRow(context.Background(), `SELECT oc.retrieved, EXISTS (SELECT 1 FROM ledger_reads r
			WHERE r.sender = oc.sender AND r.message_id = oc.message_id AND r.recipient = oc.recipient)
		FROM official_copies oc WHERE oc.account = $1 AND oc.blob = $2`, int64(acct), int64(blob)).Scan(&retrieved, &read)
	if errors.Is(err, pgx.ErrNoRows) {
		return true // not an official letter: nothing to record
	}
	if err != nil {
		return false
	}
	if how != store.RetrievedSeenFlag && !retrieved {
		return false
	}
	if how == store.RetrievedBody || how == store.RetrievedSeenFlag {
		return read
	}
	return true
}

// HasReadRecord reports whether an official letter's first read is on
// record for a recipient.
func (s *Store) HasReadRecord(acct, blob uint64) bool {
	return s.HasRetrievalRecord(acct, blob, store.RetrievedSeenFlag)
}

// Ledger returns every entry the notice ledger of an older installation
// holds about a message, in order.
func (s *Store) Ledger(messageID string) ([]store.LedgerEntry, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT seq, data FROM ledger WHERE message_id = $1 ORDER BY seq`,
		store.NormalizeMessageID(messageID))
	if err != nil {
		return nil, storageErr(err)
	}
	var out []store.LedgerEntry
	for rows.Next() {
		var seq uint64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, storageErr(err)
		}
		var e store.LedgerEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger entry %d: %w", seq, store.ErrCorrupt)
		}
		out = append(out, e)
	}
	return out, storageErr(rows.Err())
}

// VerifyLedger recomputes the notice ledger's hash chain from the first
// entry and names the first entry that does not verify, reading in
// bounded batches.
func (s *Store) VerifyLedger() (store.LedgerReport, error) {
	ctx := context.Background()
	rep := store.LedgerReport{OK: true}
	prev := strings.Repeat("0", 64)
	var head string
	if err := s.pool.QueryRow(ctx, `SELECT ledger_head FROM evidence_state`).Scan(&head); err != nil {
		return rep, storageErr(err)
	}
	var after uint64
	broken := func(seq uint64, why string) (store.LedgerReport, error) {
		rep.OK, rep.BrokenAt, rep.Problem = false, seq, why
		return rep, nil
	}
	for {
		rows, err := s.pool.Query(ctx, `SELECT seq, data FROM ledger WHERE seq > $1 ORDER BY seq LIMIT 10000`, int64(after))
		if err != nil {
			return rep, storageErr(err)
		}
		type row struct {
			seq uint64
			raw []byte
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.seq, &r.raw); err != nil {
				return rep, storageErr(err)
			}
			batch = append(batch, r)
		}
		if err := rows.Err(); err != nil {
			return rep, storageErr(err)
		}
		for _, r := range batch {
			after = r.seq
			rep.Entries++
			var e store.LedgerEntry
			if err := json.Unmarshal(r.raw, &e); err != nil {
				return broken(r.seq, "entry cannot be decoded")
			}
			switch {
			case e.Seq != r.seq:
				return broken(r.seq, fmt.Sprintf("entry says it is %d", e.Seq))
			case e.Prev != prev:
				return broken(r.seq, "its previous-hash does not match the entry before")
			}
			h, err := store.LedgerEntryHash(e)
			if err != nil || h != e.Hash {
				return broken(r.seq, "its content does not match its hash")
			}
			prev = e.Hash
		}
		if len(batch) < 10000 {
			break
		}
	}
	if rep.Entries > 0 && head != prev {
		return broken(after, "the chain's recorded head does not match its last entry (entries removed at the end?)")
	}
	return rep, nil
}

// Notice gathers what the evidence log (and, for letters from before
// it, the notice ledger) records about a letter, by recipient: the
// letter of sender, or, with sender "", of the only sender that used the
// Message-ID. Events not yet given their place in the log count too. It
// returns store.ErrNotFound when nothing is known of the letter.
func (s *Store) Notice(messageID, sender string) (store.Notice, error) {
	type record struct {
		at                    time.Time
		kind, sender, refusal string
		recipients            []string
	}
	var all []record
	legacy, err := s.Ledger(messageID)
	if err != nil {
		return store.Notice{}, err
	}
	for _, e := range legacy {
		all = append(all, record{e.At, e.Kind, e.Sender, e.Detail, e.Recipients})
	}
	events, err := s.letterEvents(context.Background(), store.NormalizeMessageID(messageID), "", true)
	if err != nil {
		return store.Notice{}, err
	}
	for _, e := range events {
		ev := e.Event
		switch ev.Kind {
		case store.EvidenceAccepted, store.EvidenceStored, store.EvidenceRead, store.EvidenceDeleted, store.EvidenceRefused:
			// SPEC lists every consent refusal as "no-consent"; the
			// evidence entry keeps the precise reason.
		default:
			continue // retrieved without reading: not in the notice
		}
		all = append(all, record{ev.At, ev.Kind, ev.Sender, "no-consent", []string{ev.Recipient}})
	}
	senders := map[string]bool{}
	var mine []record
	for _, r := range all {
		senders[r.sender] = true
		if sender == "" || r.sender == sender {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return store.Notice{}, fmt.Errorf("message %s: %w", store.NormalizeMessageID(messageID), store.ErrNotFound)
	}
	if sender == "" && len(senders) > 1 {
		names := slices.Sorted(maps.Keys(senders))
		return store.Notice{}, fmt.Errorf("message %s: %w (%s): name one with --sender", store.NormalizeMessageID(messageID), store.ErrAmbiguous, strings.Join(names, ", "))
	}
	n := store.Notice{MessageID: store.NormalizeMessageID(messageID), Sender: mine[0].sender, Recipients: []store.NoticeRecipient{}}
	index := map[string]int{}
	for _, e := range mine {
		at := e.at.UTC()
		for _, addr := range e.recipients {
			i, ok := index[addr]
			if !ok {
				i = len(n.Recipients)
				index[addr] = i
				n.Recipients = append(n.Recipients, store.NoticeRecipient{Address: addr})
			}
			r := &n.Recipients[i]
			set := func(p **time.Time) {
				if *p == nil {
					t := at
					*p = &t
				}
			}
			switch e.kind {
			case store.LedgerAccepted:
				set(&r.AcceptedAt)
			case store.LedgerStored:
				set(&r.StoredAt)
			case store.LedgerRead:
				set(&r.FirstReadAt)
			case store.LedgerDeleted:
				set(&r.DeletedAt)
			case store.LedgerRefused:
				r.Refused = e.refusal
			}
		}
	}
	return n, nil
}
