package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Subscriptions are to names, not to mailboxes (RFC 9051 §6.3.7,
// store/subscriptions.go): a mailbox that exists keeps its subscription
// in mailboxes.subscribed; a subscribed name whose mailbox was deleted
// is kept in subscriptions_gone until it is unsubscribed or a mailbox
// of that name is created again (which is then subscribed).

// keepSubscription records that name stays subscribed without its
// mailbox.
func keepSubscription(ctx context.Context, tx pgx.Tx, acct uint64, name string) error {
	_, err := tx.Exec(ctx, `INSERT INTO subscriptions_gone (account, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, acct, name)
	return err
}

// takeSubscription removes name from the gone subscriptions and says
// whether it was there.
func takeSubscription(ctx context.Context, tx pgx.Tx, acct uint64, name string) (bool, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM subscriptions_gone WHERE account = $1 AND name = $2`, acct, name)
	return err == nil && tag.RowsAffected() > 0, err
}

// GoneSubscriptions returns the subscribed names of an account that no
// mailbox has, in name order (byte order, as the embedded store's).
func (s *Store) GoneSubscriptions(acct uint64) ([]string, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT name FROM subscriptions_gone WHERE account = $1 ORDER BY name COLLATE "C"`, acct)
	if err != nil {
		return nil, storageErr(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if len(out) == 0 {
		out = nil
	}
	return out, storageErr(err)
}

// SetSubscribed changes a mailbox's subscription.
func (s *Store) SetSubscribed(ctx context.Context, acct uint64, name string, on bool) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		mb, err := mailboxByName(ctx, tx, acct, name, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET subscribed = $3 WHERE account = $1 AND id = $2`, acct, int32(mb.ID), on); err != nil {
			return err
		}
		return notify(ctx, tx, []store.Change{{Kind: store.SubscriptionChanged, Account: acct, Mailbox: mb.ID}})
	})
}

// Unsubscribe removes name from the subscriptions, whether or not its
// mailbox exists; ErrNoMailbox when it was neither a mailbox nor
// subscribed.
func (s *Store) Unsubscribe(ctx context.Context, acct uint64, name string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		cname, err := store.CanonicalMailboxName(name)
		if err != nil {
			return err
		}
		if mb, err := mailboxByName(ctx, tx, acct, cname, true); err == nil {
			if _, err := tx.Exec(ctx, `UPDATE mailboxes SET subscribed = false WHERE account = $1 AND id = $2`, acct, int32(mb.ID)); err != nil {
				return err
			}
			return notify(ctx, tx, []store.Change{{Kind: store.SubscriptionChanged, Account: acct, Mailbox: mb.ID}})
		}
		had, err := takeSubscription(ctx, tx, acct, cname)
		if err != nil {
			return err
		}
		if !had {
			return store.ErrNoMailbox
		}
		// Sessions that watch names (NOTIFY) re-read the list.
		return notify(ctx, tx, []store.Change{{Kind: store.SubscriptionChanged, Account: acct}})
	})
}
