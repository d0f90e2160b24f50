package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// CreateMailbox creates a mailbox (and, as RFC 9051 §6.3.4 allows, any
// missing parents in its hierarchy), within the limits: the name's
// depth and length, and the account's number of mailboxes counting the
// parents it makes (ErrMailboxLimit; nothing is created then). It holds
// the account's row lock, so two nodes creating at once count right.
func (s *Store) CreateMailbox(ctx context.Context, acct uint64, name, specialUse string, lim store.MailboxLimits) (store.Mailbox, error) {
	var out store.Mailbox
	name = strings.TrimSuffix(name, store.MailboxDelim)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := getAccount(ctx, tx, acct, true); err != nil {
			return err
		}
		if strings.EqualFold(name, "INBOX") {
			return fmt.Errorf("INBOX: %w", store.ErrMailboxExists)
		}
		if err := lim.CheckMailboxName(name); err != nil {
			return err
		}
		var missing []string
		parts := strings.Split(name, store.MailboxDelim)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], store.MailboxDelim)
			if _, err := mailboxByName(ctx, tx, acct, parent, false); err != nil {
				if !errors.Is(err, store.ErrNoMailbox) && !errors.Is(err, store.ErrInvalidMailbox) {
					return err
				}
				missing = append(missing, parent)
			}
		}
		if lim.Count > 0 {
			var have int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM mailboxes WHERE account = $1 AND NOT deleting`, acct).Scan(&have); err != nil {
				return err
			}
			if n := int64(len(missing) + 1); have+n > lim.Count {
				return fmt.Errorf("the account has %d mailboxes and may have %d; this would make %d more: %w", have, lim.Count, n, store.ErrMailboxLimit)
			}
		}
		for _, parent := range missing {
			if _, err := s.createByClient(ctx, tx, acct, parent, ""); err != nil {
				return err
			}
		}
		if specialUse != "" {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account = $1 AND NOT deleting AND lower(special_use) = lower($2))`,
				acct, specialUse).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return fmt.Errorf("a mailbox with %s exists already: %w", specialUse, store.ErrMailboxExists)
			}
		}
		var err error
		out, err = s.createByClient(ctx, tx, acct, name, specialUse)
		return err
	})
	if err != nil {
		return store.Mailbox{}, err
	}
	return out, nil
}

// createByClient is createMailbox (core.go) for IMAP CREATE: the new
// mailbox is subscribed only if its name still was (it had been deleted
// while subscribed). The caller holds the account's row lock.
func (s *Store) createByClient(ctx context.Context, tx pgx.Tx, acct uint64, name, specialUse string) (store.Mailbox, error) {
	mb, err := createMailbox(ctx, tx, s.clock(), acct, name, specialUse)
	if err != nil {
		return mb, err
	}
	if mb.Subscribed, err = takeSubscription(ctx, tx, acct, mb.Name); err != nil {
		return mb, err
	}
	_, err = tx.Exec(ctx, `UPDATE mailboxes SET subscribed = $3 WHERE account = $1 AND id = $2`, acct, int32(mb.ID), mb.Subscribed)
	return mb, err
}

// DeleteMailbox removes a mailbox and its messages (RFC 9051 §6.3.5):
// INBOX cannot be deleted; a mailbox with children keeps them. The
// first transaction hides the mailbox and frees its name; its messages
// then go in bounded batches (finishDelete).
func (s *Store) DeleteMailbox(ctx context.Context, acct uint64, name string) error {
	var id uint32
	err := s.tx(ctx, func(tx pgx.Tx) error {
		mb, err := mailboxByName(ctx, tx, acct, name, true)
		if err != nil {
			return err
		}
		if mb.Name == "INBOX" {
			return fmt.Errorf("INBOX cannot be deleted: %w", store.ErrInvalidMailbox)
		}
		id = mb.ID
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET deleting = true WHERE account = $1 AND id = $2`, acct, int32(id)); err != nil {
			return err
		}
		if mb.Subscribed {
			// RFC 3501 §6.3.6: the name stays subscribed.
			if err := keepSubscription(ctx, tx, acct, mb.Name); err != nil {
				return err
			}
		}
		return notify(ctx, tx, []store.Change{{Kind: store.MailboxDeleted, Account: acct, Mailbox: id}})
	})
	if err != nil {
		return err
	}
	return s.finishDelete(ctx, acct, id)
}

// finishDelete removes a hidden mailbox's expunge records and messages,
// store.DeleteBatch a transaction, then its row. Two nodes finishing
// the same deletion take turns on its row lock; the one that finds it
// gone is done.
func (s *Store) finishDelete(ctx context.Context, acct uint64, id uint32) error {
	for {
		done, trashed := false, false
		err := s.tx(ctx, func(tx pgx.Tx) error {
			done, trashed = false, false
			if _, err := lockUsageRow(ctx, tx, acct); err != nil {
				return err
			}
			mb, err := getMailbox(ctx, tx, acct, id, true)
			if errors.Is(err, store.ErrNoMailbox) {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			if !mb.Deleting {
				return fmt.Errorf("mailbox %d is not being deleted: %w", id, store.ErrInvalidMailbox)
			}
			tag, err := tx.Exec(ctx, `DELETE FROM vanished WHERE (account, mailbox, uid) IN (
				SELECT account, mailbox, uid FROM vanished WHERE account = $1 AND mailbox = $2 LIMIT $3)`, acct, int32(id), store.DeleteBatch)
			if err != nil || tag.RowsAffected() == store.DeleteBatch {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT uid FROM messages WHERE account = $1 AND mailbox = $2 ORDER BY uid LIMIT $3`, acct, int32(id), store.DeleteBatch)
			if err != nil {
				return err
			}
			uids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			if _, trashed, err = s.removeMessages(ctx, tx, acct, &mb, uids, false); err != nil {
				return err
			}
			if len(uids) == store.DeleteBatch {
				return nil
			}
			done = true
			_, err = tx.Exec(ctx, `DELETE FROM mailboxes WHERE account = $1 AND id = $2`, acct, int32(id))
			return err
		})
		if trashed {
			s.emptyTrashSoon()
		}
		if err != nil || done {
			return err
		}
	}
}

// ResumeDeletes finishes the mailbox deletions a node's crash (or a
// lost connection) interrupted, and returns how many it finished; any
// node may run it (at start, or from a sweep).
func (s *Store) ResumeDeletes(ctx context.Context) (int, error) {
	n := 0
	var afterAcct int64
	var afterID int32
	for {
		rows, err := s.pool.Query(ctx, `SELECT account, id FROM mailboxes WHERE deleting AND (account, id) > ($1, $2)
			ORDER BY account, id LIMIT 100`, afterAcct, afterID)
		if err != nil {
			return n, storageErr(err)
		}
		type key struct {
			acct int64
			id   int32
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
			var k key
			return k, r.Scan(&k.acct, &k.id)
		})
		if err != nil {
			return n, storageErr(err)
		}
		for _, k := range page {
			if err := s.finishDelete(ctx, uint64(k.acct), uint32(k.id)); err != nil {
				return n, err
			}
			n++
			afterAcct, afterID = k.acct, k.id
		}
		if len(page) < 100 {
			return n, nil
		}
	}
}

// RenameMailbox renames a mailbox and its children (RFC 9051 §6.3.6).
// Renaming INBOX moves its messages into a new mailbox and leaves INBOX
// empty, as the RFC requires. The new names must keep within the depth
// and length limits (a rename adds no mailbox, except INBOX's, which
// counts).
func (s *Store) RenameMailbox(ctx context.Context, acct uint64, oldName, newName string, lim store.MailboxLimits) error {
	newName = strings.TrimSuffix(newName, store.MailboxDelim)
	if strings.EqualFold(newName, "INBOX") {
		return fmt.Errorf("cannot rename to INBOX: %w", store.ErrMailboxExists)
	}
	if _, err := store.CanonicalMailboxName(newName); err != nil {
		return err
	}
	if strings.EqualFold(oldName, "INBOX") {
		return s.renameInbox(ctx, acct, newName, lim)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		oldCanon, err := store.CanonicalMailboxName(oldName)
		if err != nil {
			return err
		}
		// Every mailbox row of the account, locked in id order (as
		// copy and move lock theirs).
		rows, err := tx.Query(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE account = $1 AND NOT deleting ORDER BY id FOR UPDATE`, acct)
		if err != nil {
			return err
		}
		var all []store.Mailbox
		for rows.Next() {
			mb, err := scanMailbox(rows)
			if err != nil {
				rows.Close()
				return err
			}
			all = append(all, mb)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		names := map[string]bool{}
		var old *store.Mailbox
		for i := range all {
			names[all[i].Name] = true
			if all[i].Name == oldCanon {
				old = &all[i]
			}
		}
		if old == nil {
			return fmt.Errorf("%s: %w", oldCanon, store.ErrNoMailbox)
		}
		if names[newName] {
			return fmt.Errorf("%s: %w", newName, store.ErrMailboxExists)
		}
		renames := []*store.Mailbox{old}
		prefix := old.Name + store.MailboxDelim
		for i := range all {
			if strings.HasPrefix(all[i].Name, prefix) {
				renames = append(renames, &all[i])
			}
		}
		for _, m := range renames {
			delete(names, m.Name)
		}
		oldBase := old.Name
		var ids []int32
		var newNames []string
		var changes []store.Change
		for _, m := range renames {
			n := newName + strings.TrimPrefix(m.Name, oldBase)
			if err := lim.CheckMailboxName(n); err != nil {
				return err
			}
			if names[n] {
				return fmt.Errorf("%s: %w", n, store.ErrMailboxExists)
			}
			names[n] = true
			ids = append(ids, int32(m.ID))
			newNames = append(newNames, n)
			changes = append(changes, store.Change{Kind: store.MailboxRenamed, Account: acct, Mailbox: m.ID})
		}
		// Through names no mailbox can have (a newline), so that no
		// rename meets another's old name on the way.
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET name = name || E'\n' || id WHERE account = $1 AND id = ANY ($2)`, acct, ids); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mailboxes m SET name = x.name FROM unnest($2::integer[], $3::text[]) x(id, name)
			WHERE m.account = $1 AND m.id = x.id`, acct, ids, newNames); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%s: %w", newName, store.ErrMailboxExists)
			}
			return err
		}
		return notify(ctx, tx, changes)
	})
}

// renameInbox creates the new mailbox and moves INBOX's messages into
// it, store.DeleteBatch a transaction.
func (s *Store) renameInbox(ctx context.Context, acct uint64, newName string, lim store.MailboxLimits) error {
	dst, err := s.CreateMailbox(ctx, acct, newName, "", lim)
	if err != nil {
		return err
	}
	inbox, err := s.MailboxByName(acct, "INBOX")
	if err != nil {
		return err
	}
	for {
		moved := 0
		err := s.tx(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT uid FROM messages WHERE account = $1 AND mailbox = $2 ORDER BY uid LIMIT $3`,
				acct, int32(inbox.ID), store.DeleteBatch)
			if err != nil {
				return err
			}
			list, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			moved = len(list)
			if moved == 0 {
				return nil
			}
			uids := make([]uint32, len(list))
			for i, u := range list {
				uids[i] = uint32(u)
			}
			_, err = s.copyMessages(ctx, tx, acct, inbox.ID, uids, dst.ID, 0, 0, true)
			return err
		})
		if err != nil || moved < store.DeleteBatch {
			return err
		}
	}
}
