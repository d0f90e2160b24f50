package store

import (
	"bytes"
	"context"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Subscriptions are to names, not to mailboxes (RFC 3501 §6.3.6, RFC
// 9051 §6.3.7): DELETE does not unsubscribe, and a server "MUST NOT
// unilaterally remove an existing mailbox name from the subscription
// list even if a mailbox by that name no longer exists". A mailbox that
// exists keeps its subscription in its record (Mailbox.Subscribed); a
// subscribed name whose mailbox is gone is kept here, until it is
// unsubscribed or a mailbox of that name is created again (which is then
// subscribed). IMAP CREATE does not subscribe (only the default folders
// of a new account are, SPEC "IMAP").
//
// Bucket mbox_subs_gone: acct(8) name -> nil.

var bSubsGone = []byte("mbox_subs_gone")

// keepSubscription records that name stays subscribed without its
// mailbox.
func (t *txn) keepSubscription(acct uint64, name string) error {
	return t.tx.Bucket(bSubsGone).Put(mboxNameKey(acct, name), nil)
}

// takeSubscription removes name from the gone subscriptions and says
// whether it was there.
func (t *txn) takeSubscription(acct uint64, name string) (bool, error) {
	b := t.tx.Bucket(bSubsGone)
	k := mboxNameKey(acct, name)
	if b.Get(k) == nil {
		return false, nil
	}
	return true, b.Delete(k)
}

// dropSubscriptions forgets every gone subscription of a purged account.
func (t *txn) dropSubscriptions(acct uint64) error {
	c := t.tx.Bucket(bSubsGone).Cursor()
	prefix := u64(acct)
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := t.tx.Bucket(bSubsGone).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// GoneSubscriptions returns the subscribed names of an account that no
// mailbox has, in name order (LSUB lists them \Noselect, LIST
// (SUBSCRIBED) \NonExistent).
func (s *Store) GoneSubscriptions(acct uint64) ([]string, error) {
	var out []string
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		c := tx.Bucket(bSubsGone).Cursor()
		prefix := u64(acct)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[8:]))
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// Unsubscribe removes name from the subscriptions, whether or not its
// mailbox exists; ErrNoMailbox when it was neither a mailbox nor
// subscribed.
func (s *Store) Unsubscribe(ctx context.Context, acct uint64, name string) error {
	return s.update(ctx, func(t *txn) error {
		cname, err := canonicalMailboxName(name)
		if err != nil {
			return err
		}
		if id, err := mailboxIDByName(t.tx, acct, cname); err == nil {
			mb, err := t.getMailbox(acct, id)
			if err != nil {
				return err
			}
			mb.Subscribed = false
			t.notify(Change{Kind: SubscriptionChanged, Account: acct, Mailbox: id})
			return t.putMailbox(acct, mb)
		}
		if had, err := t.takeSubscription(acct, cname); err != nil || had {
			if had {
				// Sessions that watch names (NOTIFY) re-read the list.
				t.notify(Change{Kind: SubscriptionChanged, Account: acct})
			}
			return err
		}
		return ErrNoMailbox
	})
}

// createByClient is createMailbox for IMAP CREATE: the new mailbox is
// subscribed only if its name still was (it had been deleted while
// subscribed).
func (t *txn) createByClient(acct uint64, name, specialUse string) (*Mailbox, error) {
	mb, err := t.createMailbox(acct, name, specialUse)
	if err != nil {
		return nil, err
	}
	if mb.Subscribed, err = t.takeSubscription(acct, mb.Name); err != nil {
		return nil, err
	}
	return mb, t.putMailbox(acct, mb)
}
