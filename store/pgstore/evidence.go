package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// The evidence log of official letters (docs/EVIDENCE.md), as the
// embedded store keeps it and byte for byte the same: one entry per
// event and recipient, its JSON the Merkle leaf, in an RFC 9162 tree
// whose heads the operator signs.
//
// Deliveries commit concurrently from several nodes, and a log position
// taken from a counter in the delivery's transaction would either
// serialize every official delivery on one row lock or leave a gap for
// every rollback. So a transaction writes its events to
// evidence_pending (seq from a sequence, the position left out of the
// entry), and the builder (evidence_build.go) gives them their positions
// afterwards, in seq order, one builder at a time.

// appendEvents writes events to the pending log in tx, in order: each
// one's time defaults to now, its Message-ID is normalized and its
// consent fingerprint, when not given, is the account's (as
// store.evidenceWriter.add does).
func appendEvents(ctx context.Context, tx pgx.Tx, now time.Time, evs []store.EvidenceEvent) error {
	if len(evs) == 0 {
		return nil
	}
	var need []uint64
	for i := range evs {
		if evs[i].ConsentSHA == "" && evs[i].Account != 0 {
			need = append(need, evs[i].Account)
		}
	}
	consent := map[uint64]string{}
	if len(need) > 0 {
		rows, err := tx.Query(ctx, `SELECT id, coalesce(data->'consent'->>'sha256', '') FROM accounts WHERE id = ANY($1)`, need)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id uint64
			var sha string
			if err := rows.Scan(&id, &sha); err != nil {
				return err
			}
			consent[id] = sha
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	msgIDs := make([]string, len(evs))
	senders := make([]string, len(evs))
	accts := make([]int64, len(evs))
	entries := make([][]byte, len(evs))
	for i := range evs {
		e := evs[i]
		e.Index = 0
		if e.At.IsZero() {
			e.At = now
		}
		e.At = e.At.UTC()
		e.MessageID = store.NormalizeMessageID(e.MessageID)
		if e.ConsentSHA == "" && e.Account != 0 {
			e.ConsentSHA = consent[e.Account]
		}
		raw, err := store.EncodeEvidenceEvent(&e)
		if err != nil {
			return err
		}
		msgIDs[i], senders[i], accts[i], entries[i] = e.MessageID, e.Sender, int64(e.Account), raw
	}
	// nextval is evaluated after the sort, so seq follows the order given.
	_, err := tx.Exec(ctx, `INSERT INTO evidence_pending (seq, message_id, sender, account, entry)
		SELECT nextval('evidence_seq'), m, s, a, e
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[]) WITH ORDINALITY AS u(m, s, a, e, n)
		ORDER BY n`, msgIDs, senders, accts, entries)
	return err
}

// recordOfficialTx writes an official letter's evidence events (accepted
// and stored for each recipient stored, refused for each refused) and
// starts tracking each stored copy, in the delivery's transaction: the
// delivery and its record commit together. res is parallel to
// o.Addresses.
func (s *Store) recordOfficialTx(ctx context.Context, tx pgx.Tx, o *store.OfficialLetter, res []store.Delivered, blob uint64, now time.Time) error {
	if o.MessageSHA == "" {
		var sha *string
		err := tx.QueryRow(ctx, `SELECT encode(sha256, 'hex') FROM blobs WHERE id = $1`, blob).Scan(&sha)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if sha != nil {
			o.MessageSHA = *sha
		}
	}
	msgID := store.NormalizeMessageID(o.MessageID)
	var evs []store.EvidenceEvent
	var copies []officialCopy
	for i, r := range res {
		if r.Err != nil || i >= len(o.Addresses) {
			continue
		}
		copies = append(copies, officialCopy{Account: r.Account, MessageID: msgID, Sender: o.Sender, Recipient: o.Addresses[i], SHA256: o.MessageSHA})
		ev := store.EvidenceEvent{At: o.AcceptedAt, Kind: store.EvidenceAccepted, MessageID: o.MessageID, Sender: o.Sender,
			Recipient: o.Addresses[i], Account: r.Account, MessageSHA: o.MessageSHA, ClientIP: o.ClientIP, TLS: o.TLS}
		evs = append(evs, ev)
		ev.At, ev.Kind, ev.ClientIP, ev.TLS = time.Time{}, store.EvidenceStored, "", ""
		evs = append(evs, ev)
	}
	if err := addOfficialCopies(ctx, tx, blob, copies); err != nil {
		return err
	}
	// The stored event carries the accepted one's consent fingerprint
	// (read once per account, in appendEvents).
	refused, err := refusedEvents(ctx, tx, o)
	if err != nil {
		return err
	}
	return appendEvents(ctx, tx, now, append(evs, refused...))
}

// refusedEvents are the refused events of the recipients of o refused
// for lack of consent, with their reason codes.
func refusedEvents(ctx context.Context, tx pgx.Tx, o *store.OfficialLetter) ([]store.EvidenceEvent, error) {
	var evs []store.EvidenceEvent
	for i, addr := range o.Refused {
		reason := o.Reason
		if i < len(o.RefusedReasons) && o.RefusedReasons[i] != "" {
			reason = o.RefusedReasons[i]
		}
		acct, err := lookupAddr(ctx, tx, addr)
		if errors.Is(err, store.ErrNoAccount) {
			acct, err = 0, nil
		}
		if err != nil {
			return nil, err
		}
		evs = append(evs, store.EvidenceEvent{At: o.AcceptedAt, Kind: store.EvidenceRefused, MessageID: o.MessageID, Sender: o.Sender,
			Recipient: addr, Account: acct, MessageSHA: o.MessageSHA, ClientIP: o.ClientIP, TLS: o.TLS, Reason: reason})
	}
	return evs, nil
}

// RecordRefusals logs the refusals of an official letter that was never
// delivered to anyone (every recipient refused, the transaction
// abandoned, or the content rejected). MessageID and MessageSHA are what
// is known, possibly nothing.
func (s *Store) RecordRefusals(ctx context.Context, o *store.OfficialLetter) error {
	if len(o.Refused) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		evs, err := refusedEvents(ctx, tx, o)
		if err != nil {
			return err
		}
		return appendEvents(ctx, tx, s.clock(), evs)
	})
}

// errEvidenceCorrupt wraps store.ErrCorrupt for a log that does not
// read back as written.
func errEvidenceCorrupt(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, store.ErrCorrupt)...)
}
