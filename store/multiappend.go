package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// AppendMessage is one message a subscriber adds to a mailbox
// (IMAP APPEND, one of a MULTIAPPEND).
type AppendMessage struct {
	Body []byte
	// Structure is the precomputed envelope and body structure, stored
	// beside the body; opaque to the store.
	Structure    []byte
	Flags        []string
	InternalDate time.Time // zero: now
}

// ErrNothingToAppend: AppendMessages was called with no message.
var ErrNothingToAppend = errors.New("no message to append")

// AppendMessages stores msgs, in order, in one mailbox of one account,
// in one write transaction: all of them or, on any error (the quota
// passed by their sum, a missing mailbox, an account not active), none
// (RFC 3502 §6.3.11). They get consecutive UIDs, since nothing else can
// write the mailbox inside the transaction. maxBytes and maxMessages are
// the account's quotas (0 = unlimited), checked against the running
// total as each message is added. Bodies are shareable: a body stored
// before, or twice in msgs, is stored once. The daily received counter
// is left alone (the subscriber's own copies).
func (s *Store) AppendMessages(ctx context.Context, acct uint64, mailbox string, msgs []AppendMessage, maxBytes, maxMessages int64) ([]Delivered, error) {
	if len(msgs) == 0 {
		return nil, ErrNothingToAppend
	}
	hashes := make([][32]byte, len(msgs))
	for i := range msgs {
		hashes[i] = sha256.Sum256(msgs[i].Body)
	}
	var out []Delivered
	// Like a delivery it writes through txn.put and txn.nextSequence
	// only, so it is acknowledged from the write-ahead log.
	err := s.updateLogged(ctx, func(t *txn) error {
		out = make([]Delivered, 0, len(msgs))
		r := Recipient{Account: acct, Mailbox: mailbox, MaxBytes: maxBytes, MaxMessages: maxMessages, NotReceived: true}
		for i := range msgs {
			m := &msgs[i]
			date := m.InternalDate
			if date.IsZero() {
				date = t.now
			}
			blob, known, err := t.blobFor(hashes[i], true)
			if err != nil {
				return err
			}
			r.Flags = m.Flags
			res, err := t.deliverOne(&r, blob, int64(len(m.Body)), date)
			if err != nil {
				return fmt.Errorf("message %d of %d: %w", i+1, len(msgs), err)
			}
			res.Account = acct
			if err := t.addBodyRefs(blob, known, true, hashes[i], m.Body, m.Structure, 1); err != nil {
				return err
			}
			out = append(out, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
