package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// AppendMessages stores msgs, in order, in one mailbox of one account,
// all or none (RFC 3502 §6.3.11; store.Store.AppendMessages says what
// is checked). The bodies are shareable and go to the object store
// before the transaction; the transaction sends one abox_deliver per
// message in one batch, so the mailbox's row lock gives them
// consecutive UIDs.
func (s *Store) AppendMessages(ctx context.Context, acct uint64, mailbox string, msgs []store.AppendMessage, maxBytes, maxMessages int64) ([]store.Delivered, error) {
	if len(msgs) == 0 {
		return nil, store.ErrNothingToAppend
	}
	now := s.clock()
	args := make([]*deliverArgs, len(msgs))
	rcpts := make([][]store.Recipient, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		nb, err := s.prepareBody(ctx, m.Body, m.Structure, true)
		if err != nil {
			return nil, err
		}
		date := m.InternalDate
		if date.IsZero() {
			date = now
		}
		rcpts[i] = []store.Recipient{{Account: acct, Mailbox: mailbox, Flags: m.Flags, MaxBytes: maxBytes, MaxMessages: maxMessages, NotReceived: true}}
		if args[i], err = newDeliverArgs(nb, rcpts[i], date, now); err != nil {
			return nil, err
		}
		args[i].allOrNothing = true
	}
	var out []store.Delivered
	trashed := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out, trashed = out[:0], false
		b := &pgx.Batch{}
		for _, a := range args {
			b.Queue(deliverSQL, a.values()...)
		}
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		for i, a := range args {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("message %d of %d: %w", i+1, len(msgs), deliverErr(err, rcpts[i], a))
			}
			res, err := readDeliverRows(rows, rcpts[i])
			if err != nil {
				return fmt.Errorf("message %d of %d: %w", i+1, len(msgs), deliverErr(err, rcpts[i], a))
			}
			if res.out[0].Err != nil {
				return fmt.Errorf("message %d of %d: %w", i+1, len(msgs), res.out[0].Err)
			}
			trashed = trashed || res.trashed
			out = append(out, res.out[0])
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	if trashed {
		s.emptyTrashSoon()
	}
	return out, nil
}
