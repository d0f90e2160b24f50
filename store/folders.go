package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// MailboxDelim is the hierarchy delimiter of mailbox names.
const MailboxDelim = "/"

// deleteBatch bounds how many messages one transaction removes when a
// mailbox is deleted or renamed, so delivery never waits long behind it.
const deleteBatch = 2000

// CreateMailbox creates a mailbox (and, as RFC 9051 §6.3.4 allows, any
// missing parents in its hierarchy), within the limits: the name's
// depth and length, and the account's number of mailboxes counting the
// parents it makes (ErrMailboxLimit; nothing is created then).
func (s *Store) CreateMailbox(ctx context.Context, acct uint64, name, specialUse string, lim MailboxLimits) (Mailbox, error) {
	var out Mailbox
	name = strings.TrimSuffix(name, MailboxDelim)
	err := s.update(ctx, func(t *txn) error {
		if _, err := t.getAccount(acct); err != nil {
			return err
		}
		if strings.EqualFold(name, "INBOX") {
			return fmt.Errorf("INBOX: %w", ErrMailboxExists)
		}
		if err := lim.checkName(name); err != nil {
			return err
		}
		var missing []string
		parts := strings.Split(name, MailboxDelim)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], MailboxDelim)
			if _, err := mailboxIDByName(t.tx, acct, parent); err != nil {
				missing = append(missing, parent)
			}
		}
		if err := lim.checkCount(t, acct, len(missing)+1); err != nil {
			return err
		}
		for _, parent := range missing {
			if _, err := t.createByClient(acct, parent, ""); err != nil {
				return err
			}
		}
		if specialUse != "" {
			if _, err := mailboxBySpecialUse(t.tx, acct, specialUse); err == nil {
				return fmt.Errorf("a mailbox with %s exists already: %w", specialUse, ErrMailboxExists)
			}
		}
		mb, err := t.createByClient(acct, name, specialUse)
		if err != nil {
			return err
		}
		out = *mb
		return nil
	})
	return out, err
}

// DeleteMailbox removes a mailbox and its messages (RFC 9051 §6.3.5):
// INBOX cannot be deleted. A mailbox with children keeps them. Messages
// go in bounded batches; the name is freed in the first transaction.
func (s *Store) DeleteMailbox(ctx context.Context, acct uint64, name string) error {
	var id uint32
	err := s.update(ctx, func(t *txn) error {
		var err error
		if id, err = mailboxIDByName(t.tx, acct, name); err != nil {
			return err
		}
		mb, err := t.getMailbox(acct, id)
		if err != nil {
			return err
		}
		if mb.Name == "INBOX" {
			return fmt.Errorf("INBOX cannot be deleted: %w", ErrInvalidMailbox)
		}
		if err := t.tx.Bucket(bMboxNames).Delete(mboxNameKey(acct, mb.Name)); err != nil {
			return err
		}
		if err := t.tx.Bucket(bMboxDeleting).Put(mboxKey(acct, id), nil); err != nil {
			return err
		}
		if mb.Subscribed {
			// RFC 3501 §6.3.6: the name stays subscribed.
			if err := t.keepSubscription(acct, mb.Name); err != nil {
				return err
			}
		}
		mb.Deleting = true
		t.notify(Change{Kind: MailboxDeleted, Account: acct, Mailbox: id})
		return t.putMailbox(acct, mb)
	})
	if err != nil {
		return err
	}
	return s.finishDelete(ctx, acct, id)
}

// finishDelete removes a hidden mailbox's messages in batches, then its
// record.
func (s *Store) finishDelete(ctx context.Context, acct uint64, id uint32) error {
	for {
		done := false
		err := s.update(ctx, func(t *txn) error {
			done = false
			mb, err := t.getMailbox(acct, id)
			if errors.Is(err, ErrNoMailbox) && t.tx.Bucket(bMboxDeleting).Get(mboxKey(acct, id)) == nil {
				// Another finisher (resumeDeletes at Open, or a purge)
				// got there first: the deletion is done.
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			u, err := t.getUsage(acct)
			if err != nil {
				return err
			}
			// The mailbox's expunge records go first, a batch at a time.
			if n, err := t.dropVanished(acct, id, deleteBatch); err != nil || n == deleteBatch {
				if err != nil {
					return err
				}
				return t.putMailbox(acct, mb)
			}
			uids := t.firstUIDs(acct, id, deleteBatch)
			for _, uid := range uids {
				if _, err := t.removeMessage(acct, mb, u, uid); err != nil {
					return err
				}
			}
			if err := t.putUsage(acct, u); err != nil {
				return err
			}
			if len(uids) < deleteBatch {
				done = true
				if err := t.tx.Bucket(bMboxDeleting).Delete(mboxKey(acct, id)); err != nil {
					return err
				}
				if err := t.dropKeywords(acct, id); err != nil {
					return err
				}
				return t.tx.Bucket(bMail).Delete(mboxKey(acct, id))
			}
			return t.putMailbox(acct, mb)
		})
		if err != nil || done {
			return err
		}
	}
}

// resumeDeletes finishes mailbox deletions a crash interrupted.
func (s *Store) resumeDeletes() {
	defer close(s.resumed)
	var pending [][]byte
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bMboxDeleting).ForEach(func(k, _ []byte) error {
			pending = append(pending, bytes.Clone(k))
			return nil
		})
	})
	for _, k := range pending {
		acct, mbox, _ := parseMsgKey(k)
		if err := s.finishDelete(context.Background(), acct, mbox); err != nil {
			s.log.Error("store: resuming a mailbox deletion", "account", acct, "mailbox", mbox, "err", err)
		}
	}
}

// firstUIDs returns up to n UIDs of a mailbox from the lowest.
func (t *txn) firstUIDs(acct uint64, mbox uint32, n int) []uint32 {
	var out []uint32
	end := mboxKey(acct, mbox)
	c := t.tx.Bucket(bMail).Cursor()
	for k, _ := c.Seek(msgKey(acct, mbox, 1)); k != nil && bytes.Compare(k, end) < 0 && len(out) < n; k, _ = c.Next() {
		out = append(out, binary.BigEndian.Uint32(k[12:]))
	}
	return out
}

// RenameMailbox renames a mailbox and its children (RFC 9051 §6.3.6).
// Renaming INBOX moves its messages into a new mailbox and leaves INBOX
// empty, as the RFC requires.
// The new names must keep within the depth and length limits (a
// rename adds no mailbox, except INBOX's, which counts).
func (s *Store) RenameMailbox(ctx context.Context, acct uint64, oldName, newName string, lim MailboxLimits) error {
	newName = strings.TrimSuffix(newName, MailboxDelim)
	if strings.EqualFold(newName, "INBOX") {
		return fmt.Errorf("cannot rename to INBOX: %w", ErrMailboxExists)
	}
	// The new name obeys CREATE's rules (before, RENAME took "/", "//"
	// and names with CR, LF or NUL).
	if _, err := canonicalMailboxName(newName); err != nil {
		return err
	}
	if strings.EqualFold(oldName, "INBOX") {
		return s.renameInbox(ctx, acct, newName, lim)
	}
	return s.update(ctx, func(t *txn) error {
		id, err := mailboxIDByName(t.tx, acct, oldName)
		if err != nil {
			return err
		}
		if _, err := mailboxIDByName(t.tx, acct, newName); err == nil {
			return fmt.Errorf("%s: %w", newName, ErrMailboxExists)
		}
		mb, err := t.getMailbox(acct, id)
		if err != nil {
			return err
		}
		oldName = mb.Name
		renames := []*Mailbox{mb}
		prefix := oldName + MailboxDelim
		if err := forEachMailboxID(t.tx, acct, func(cid uint32) error {
			child, err := t.getMailbox(acct, cid)
			if err == nil && strings.HasPrefix(child.Name, prefix) {
				renames = append(renames, child)
			}
			return err
		}); err != nil {
			return err
		}
		names := t.tx.Bucket(bMboxNames)
		for _, m := range renames {
			if err := names.Delete(mboxNameKey(acct, m.Name)); err != nil {
				return err
			}
		}
		for _, m := range renames {
			m.Name = newName + strings.TrimPrefix(m.Name, oldName)
			if err := lim.checkName(m.Name); err != nil {
				return err
			}
			if names.Get(mboxNameKey(acct, m.Name)) != nil {
				return fmt.Errorf("%s: %w", m.Name, ErrMailboxExists)
			}
			if err := names.Put(mboxNameKey(acct, m.Name), binary.BigEndian.AppendUint32(nil, m.ID)); err != nil {
				return err
			}
			if err := t.putMailbox(acct, m); err != nil {
				return err
			}
			t.notify(Change{Kind: MailboxRenamed, Account: acct, Mailbox: m.ID})
		}
		return nil
	})
}

func (s *Store) renameInbox(ctx context.Context, acct uint64, newName string, lim MailboxLimits) error {
	dst, err := s.CreateMailbox(ctx, acct, newName, "", lim)
	if err != nil {
		return err
	}
	inbox, err := s.MailboxByName(acct, "INBOX")
	if err != nil {
		return err
	}
	for {
		var moved int
		err := s.update(ctx, func(t *txn) error {
			uids := t.firstUIDs(acct, inbox.ID, deleteBatch)
			moved = len(uids)
			if moved == 0 {
				return nil
			}
			_, err := t.copyMessages(acct, inbox.ID, uids, dst.ID, 0, 0, true)
			return err
		})
		if err != nil || moved < deleteBatch {
			return err
		}
	}
}

// SetSubscribed changes a mailbox's subscription.
func (s *Store) SetSubscribed(ctx context.Context, acct uint64, name string, on bool) error {
	return s.update(ctx, func(t *txn) error {
		id, err := mailboxIDByName(t.tx, acct, name)
		if err != nil {
			return err
		}
		mb, err := t.getMailbox(acct, id)
		if err != nil {
			return err
		}
		mb.Subscribed = on
		t.notify(Change{Kind: SubscriptionChanged, Account: acct, Mailbox: id})
		return t.putMailbox(acct, mb)
	})
}

// CopyResult pairs source and destination UIDs of a COPY or MOVE.
type CopyResult struct {
	UIDValidity uint32 // of the destination
	Source      []uint32
	Dest        []uint32
}

// Copy copies messages into another mailbox of the same account, sharing
// their bodies (RFC 9051 §6.4.7). The quota limits (0 = none) are checked
// against the account's usage after the copy, in the same transaction.
func (s *Store) Copy(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32, maxBytes, maxMessages int64) (CopyResult, error) {
	var out CopyResult
	err := s.update(ctx, func(t *txn) error {
		var err error
		out, err = t.copyMessages(acct, src, uids, dst, maxBytes, maxMessages, false)
		return err
	})
	return out, err
}

// Move moves messages to another mailbox (RFC 6851): copy and expunge in
// one transaction. It never raises usage, so no quota applies.
func (s *Store) Move(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32) (CopyResult, error) {
	var out CopyResult
	err := s.update(ctx, func(t *txn) error {
		var err error
		out, err = t.copyMessages(acct, src, uids, dst, 0, 0, true)
		return err
	})
	return out, err
}

// copyMessages copies (or moves) the existing messages among uids. New
// copies get the mailbox's next UIDs and a fresh AddedAt (retention counts
// from entering the mailbox).
func (t *txn) copyMessages(acct uint64, src uint32, uids []uint32, dst uint32, maxBytes, maxMessages int64, move bool) (CopyResult, error) {
	// src == dst with move: RFC 6851 allows MOVE into the selected
	// mailbox; each message gets a new UID (above every one the loop
	// reads) and leaves its old one.
	from, err := t.getMailbox(acct, src)
	if err != nil {
		return CopyResult{}, err
	}
	to, err := t.getMailbox(acct, dst)
	if err != nil {
		return CopyResult{}, err
	}
	if src == dst {
		to = from
	}
	u, err := t.getUsage(acct)
	if err != nil {
		return CopyResult{}, err
	}
	out := CopyResult{UIDValidity: to.UIDValidity}
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	msgs := t.tx.Bucket(bMail)
	bodies := t.tx.Bucket(bBodies)
	for _, uid := range slices.Compact(sorted) {
		if uid == 0 || uid >= mboxRecordUID {
			continue
		}
		v := msgs.Get(msgKey(acct, src, uid))
		if v == nil {
			continue
		}
		m, err := decodeMessage(uid, v)
		if err != nil {
			return CopyResult{}, err
		}
		cp := *m
		cp.AddedAt = t.now
		if err := t.insertMessage(acct, to, &cp, u); err != nil {
			return CopyResult{}, err
		}
		// The copy takes a reference before a move releases the old one,
		// so the body is never freed in between.
		rv := bodies.Get(u64(m.Blob))
		if rv == nil {
			return CopyResult{}, fmt.Errorf("body %d of message %d has no record: %w", m.Blob, uid, ErrCorrupt)
		}
		rec, err := decodeBody(rv)
		if err != nil {
			return CopyResult{}, err
		}
		rec.Refs++
		if err := bodies.Put(u64(m.Blob), encodeBody(rec)); err != nil {
			return CopyResult{}, err
		}
		if m.Official() {
			if err := t.addOfficialCopy(acct, m.Blob, nil); err != nil {
				return CopyResult{}, err
			}
		}
		if move {
			if _, err := t.removeMessage(acct, from, u, uid); err != nil {
				return CopyResult{}, err
			}
		}
		out.Source = append(out.Source, uid)
		out.Dest = append(out.Dest, cp.UID)
	}
	if maxBytes > 0 && u.Bytes > maxBytes || maxMessages > 0 && u.Messages > maxMessages {
		return CopyResult{}, ErrOverQuota
	}
	if src != dst {
		if err := t.putMailbox(acct, from); err != nil {
			return CopyResult{}, err
		}
	}
	if err := t.putMailbox(acct, to); err != nil {
		return CopyResult{}, err
	}
	return out, t.putUsage(acct, u)
}
