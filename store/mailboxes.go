package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// nextUIDValidity hands out UIDVALIDITY values from one store-wide
// counter, so no two mailboxes (even of the same name after a DELETE or a
// purge and re-registration) ever share one.
func (t *txn) nextUIDValidity() (uint32, error) {
	meta := t.tx.Bucket(bMeta)
	v := decodeU64(meta.Get([]byte("uidvalidity"))) + 1
	if v > 0xffffffff {
		v = 1
	}
	if err := meta.Put([]byte("uidvalidity"), u64(v)); err != nil {
		return 0, err
	}
	return uint32(v), nil
}

// canonicalMailboxName spells INBOX in upper case whatever the input
// (RFC 9051 §5.1: INBOX is case-insensitive) and checks the name.
func canonicalMailboxName(name string) (string, error) {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if name == "" || len(name) > 1024 || strings.ContainsAny(name, "\x00\r\n") {
		return "", fmt.Errorf("%q: %w", name, ErrInvalidMailbox)
	}
	// No empty level ("/a", "a//b"): no client can name one, and an
	// export would have no folder name for it.
	if slices.Contains(strings.Split(name, MailboxDelim), "") {
		return "", fmt.Errorf("%q has an empty level: %w", name, ErrInvalidMailbox)
	}
	return name, nil
}

func (t *txn) createMailbox(acct uint64, name, specialUse string) (*Mailbox, error) {
	name, err := canonicalMailboxName(name)
	if err != nil {
		return nil, err
	}
	names := t.tx.Bucket(bMboxNames)
	if names.Get(mboxNameKey(acct, name)) != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrMailboxExists)
	}
	// Mailbox ids are per account: one past the highest in use.
	id := uint32(1)
	if err := forEachMailboxID(t.tx, acct, func(mbox uint32) error {
		id = max(id, mbox+1)
		return nil
	}); err != nil {
		return nil, err
	}
	uv, err := t.nextUIDValidity()
	if err != nil {
		return nil, err
	}
	mb := &Mailbox{
		ID: id, Name: name, SpecialUse: specialUse, UIDValidity: uv, UIDNext: 1,
		Subscribed: true, CreatedAt: t.now.UTC().Truncate(time.Second), HighestModSeq: 1,
	}
	if err := t.tx.Bucket(bMail).Put(mboxKey(acct, id), encodeMailbox(mb)); err != nil {
		return nil, err
	}
	if err := names.Put(mboxNameKey(acct, name), binary.BigEndian.AppendUint32(nil, id)); err != nil {
		return nil, err
	}
	t.notify(Change{Kind: MailboxCreated, Account: acct, Mailbox: id})
	return mb, nil
}

func (t *txn) getMailbox(acct uint64, id uint32) (*Mailbox, error) {
	v := t.tx.Bucket(bMail).Get(mboxKey(acct, id))
	if v == nil {
		return nil, fmt.Errorf("mailbox %d: %w", id, ErrNoMailbox)
	}
	return decodeMailbox(id, v)
}

func (t *txn) putMailbox(acct uint64, mb *Mailbox) error {
	return t.put(bMail, mboxKey(acct, mb.ID), encodeMailbox(mb), 0)
}

func mailboxIDByName(tx *bolt.Tx, acct uint64, name string) (uint32, error) {
	name, err := canonicalMailboxName(name)
	if err != nil {
		return 0, err
	}
	v := tx.Bucket(bMboxNames).Get(mboxNameKey(acct, name))
	if v == nil {
		return 0, fmt.Errorf("%s: %w", name, ErrNoMailbox)
	}
	return binary.BigEndian.Uint32(v), nil
}

// mailboxBySpecialUse finds the account's mailbox with a special-use
// attribute (e.g. `\Junk`).
func mailboxBySpecialUse(tx *bolt.Tx, acct uint64, use string) (*Mailbox, error) {
	var found *Mailbox
	t := &txn{tx: tx}
	err := forEachMailboxID(tx, acct, func(id uint32) error {
		mb, err := t.getMailbox(acct, id)
		if err == nil && found == nil && strings.EqualFold(mb.SpecialUse, use) {
			found = mb
		}
		return err
	})
	if err == nil && found == nil {
		err = fmt.Errorf("%s: %w", use, ErrNoMailbox)
	}
	return found, err
}

// Mailboxes lists an account's mailboxes in id order.
func (s *Store) Mailboxes(acct uint64) ([]Mailbox, error) {
	var out []Mailbox
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		t := &txn{tx: tx}
		err := forEachMailboxID(tx, acct, func(id uint32) error {
			mb, err := t.getMailbox(acct, id)
			if err == nil {
				out = append(out, *mb)
			}
			return err
		})
		slices.SortFunc(out, func(a, b Mailbox) int { return cmp.Compare(a.ID, b.ID) })
		return err
	})
	return out, err
}

// MailboxByName returns one mailbox of an account.
func (s *Store) MailboxByName(acct uint64, name string) (Mailbox, error) {
	var out Mailbox
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		id, err := mailboxIDByName(tx, acct, name)
		if err != nil {
			return err
		}
		mb, err := (&txn{tx: tx}).getMailbox(acct, id)
		if err == nil {
			out = *mb
		}
		return err
	})
	return out, err
}

// forEachMailboxID calls fn with the id of every mailbox of an account,
// in name order, from the name index.
func forEachMailboxID(tx *bolt.Tx, acct uint64, fn func(uint32) error) error {
	prefix := acctKey(acct)
	c := tx.Bucket(bMboxNames).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) != 4 {
			return fmt.Errorf("mailbox name index: %w", ErrCorrupt)
		}
		if err := fn(binary.BigEndian.Uint32(v)); err != nil {
			return err
		}
	}
	return nil
}
