package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// DefaultMailboxes are the folders every new account gets, with their
// RFC 6154 special-use attributes.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

func (t *txn) getAccount(id uint64) (*accounts.Account, error) {
	raw := t.tx.Bucket(bAccounts).Get(acctKey(id))
	if raw == nil {
		return nil, fmt.Errorf("account %d: %w", id, ErrNoAccount)
	}
	if t.s != nil {
		if a, ok := t.s.acctMemo.get(id, raw); ok {
			return a, nil
		}
	}
	var a accounts.Account
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("account %d: %w", id, ErrCorrupt)
	}
	if t.s != nil {
		t.s.acctMemo.put(id, raw, &a)
	}
	return &a, nil
}

func lookupAddr(tx *bolt.Tx, address string) (uint64, error) {
	login, domain, ok := accounts.SplitAddress(address)
	if !ok {
		return 0, fmt.Errorf("%q: %w", address, ErrNoAccount)
	}
	if v := tx.Bucket(bAcctAddr).Get(addrKey(login, domain)); v != nil {
		return decodeU64(v), nil
	}
	if v := tx.Bucket(bAcctPurged).Get(addrKey(login, domain)); v != nil {
		return decodeU64(v), nil
	}
	return 0, fmt.Errorf("%s: %w", address, ErrNoAccount)
}

// putAccount writes an account and keeps its indexes in step with the
// change from old (nil for a new account).
func (t *txn) putAccount(old, a *accounts.Account) error {
	if old != nil {
		if err := t.tx.Bucket(bAcctState).Delete(stateKey(string(old.State), old.ID)); err != nil {
			return err
		}
		if err := t.tx.Bucket(bAcctLastUse).Delete(lastUseKey(old.LastUseAt.Unix(), old.ID)); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bAcctState).Put(stateKey(string(a.State), a.ID), nil); err != nil {
		return err
	}
	key := addrKey(a.Login, a.Domain)
	if a.State == accounts.Purged {
		if err := t.tx.Bucket(bAcctAddr).Delete(key); err != nil {
			return err
		}
		if err := t.tx.Bucket(bAcctPurged).Put(key, u64(a.ID)); err != nil {
			return err
		}
	} else {
		if err := t.tx.Bucket(bAcctLastUse).Put(lastUseKey(a.LastUseAt.Unix(), a.ID), nil); err != nil {
			return err
		}
		if err := t.tx.Bucket(bAcctAddr).Put(key, u64(a.ID)); err != nil {
			return err
		}
	}
	if err := t.syncConsentIIN(old, a); err != nil {
		return err
	}
	return putJSON(t.tx.Bucket(bAccounts), acctKey(a.ID), a)
}

// CreateAccount registers a new account with the default mailboxes. The
// caller has validated login, phone and password and hashed the password.
// A purged account with the same address is forgotten: its login is free
// again (user agreement clause 2.12.1.2). It returns the stored account.
func (s *Store) CreateAccount(ctx context.Context, in accounts.Account, a Audit) (accounts.Account, error) {
	var out accounts.Account
	err := s.update(ctx, func(t *txn) error {
		var err error
		out, err = t.createAccount(in, a)
		return err
	})
	return out, err
}

func (t *txn) createAccount(acct accounts.Account, a Audit) (accounts.Account, error) {
	if t.tx.Bucket(bDomains).Get([]byte(acct.Domain)) == nil {
		return acct, fmt.Errorf("domain %s: %w", acct.Domain, ErrNoDomain)
	}
	if acct.Class == "" {
		acct.Class = accounts.DefaultClassName
	}
	if t.tx.Bucket(bClasses).Get([]byte(acct.Class)) == nil {
		return acct, fmt.Errorf("class %s: %w", acct.Class, ErrNoClass)
	}
	key := addrKey(acct.Login, acct.Domain)
	if t.tx.Bucket(bAcctAddr).Get(key) != nil {
		return acct, fmt.Errorf("account %s: %w", acct.Address(), ErrExists)
	}
	if v := t.tx.Bucket(bAcctPurged).Get(key); v != nil {
		if err := t.forgetPurged(decodeU64(v), key); err != nil {
			return acct, err
		}
	}
	id, err := t.tx.Bucket(bAccounts).NextSequence()
	if err != nil {
		return acct, err
	}
	now := t.now.UTC().Truncate(time.Second)
	acct.ID = id
	acct.State = accounts.Active
	acct.CreatedAt = now
	acct.LastUseAt = now // registration counts as a use
	if err := t.putAccount(nil, &acct); err != nil {
		return acct, err
	}
	if err := t.putUsage(id, &Usage{}); err != nil {
		return acct, err
	}
	for _, d := range DefaultMailboxes {
		if _, err := t.createMailbox(id, d.Name, d.SpecialUse); err != nil {
			return acct, err
		}
	}
	return acct, t.audit(a, "user.add", acct.Address())
}

// forgetPurged drops a purged tombstone whose login is registered again.
// Its audit entries stay. A tombstone whose content is sealed for a
// legal hold keeps its record (and content) until DestroySealed; only
// the address moves to the new account.
func (t *txn) forgetPurged(id uint64, key []byte) error {
	old, err := t.getAccount(id)
	if err != nil {
		return err
	}
	if !old.SealedUntil.IsZero() {
		return t.tx.Bucket(bAcctPurged).Delete(key)
	}
	if err := t.tx.Bucket(bAcctState).Delete(stateKey(string(old.State), id)); err != nil {
		return err
	}
	if err := t.tx.Bucket(bAcctPurged).Delete(key); err != nil {
		return err
	}
	return t.tx.Bucket(bAccounts).Delete(acctKey(id))
}

// AccountWithUsage is Account and Usage in one read transaction, for the
// RCPT-time check of every recipient. It does not wait for acknowledged
// deliveries still in the write-ahead log (the usage may lag them by one
// checkpoint): the delivery's transaction checks quota again exactly. The
// usage is zero for an account without a usage record (a purged one).
func (s *Store) AccountWithUsage(address string) (accounts.Account, Usage, error) {
	var out accounts.Account
	var u Usage
	err := s.viewNow(func(tx *bolt.Tx) error {
		id, err := lookupAddr(tx, address)
		if err != nil {
			return err
		}
		t := &txn{tx: tx, s: s}
		a, err := t.getAccount(id)
		if err != nil {
			return err
		}
		out = *a
		if p, err := t.getUsage(id); err == nil {
			u = *p
		}
		return nil
	})
	return out, u, err
}

// Account looks an account up by address (purged tombstones included).
func (s *Store) Account(address string) (accounts.Account, error) {
	var out accounts.Account
	err := s.viewNow(func(tx *bolt.Tx) error {
		id, err := lookupAddr(tx, address)
		if err != nil {
			return err
		}
		a, err := (&txn{tx: tx, s: s}).getAccount(id)
		if err == nil {
			out = *a
		}
		return err
	})
	return out, err
}

// AccountByID looks an account up by its id.
func (s *Store) AccountByID(id uint64) (accounts.Account, error) {
	var out accounts.Account
	err := s.viewNow(func(tx *bolt.Tx) error {
		a, err := (&txn{tx: tx, s: s}).getAccount(id)
		if err == nil {
			out = *a
		}
		return err
	})
	return out, err
}

// UpdateAccount applies fn to an account in one transaction and writes
// the result with the audit entry action. fn may run more than once and
// must only change the account it is given. A state change is published
// on the change feed.
func (s *Store) UpdateAccount(ctx context.Context, address, action string, fn func(*accounts.Account) error, a Audit) (accounts.Account, error) {
	return s.updateAccount(ctx, func(tx *bolt.Tx) (uint64, error) { return lookupAddr(tx, address) }, action, fn, a)
}

// UpdateAccountByID is UpdateAccount for an account known by id (a
// purged tombstone whose login was registered again has only that).
func (s *Store) UpdateAccountByID(ctx context.Context, id uint64, action string, fn func(*accounts.Account) error, a Audit) (accounts.Account, error) {
	return s.updateAccount(ctx, func(*bolt.Tx) (uint64, error) { return id, nil }, action, fn, a)
}

func (s *Store) updateAccount(ctx context.Context, find func(*bolt.Tx) (uint64, error), action string, fn func(*accounts.Account) error, a Audit) (accounts.Account, error) {
	var out accounts.Account
	err := s.update(ctx, func(t *txn) error {
		id, err := find(t.tx)
		if err != nil {
			return err
		}
		old, err := t.getAccount(id)
		if err != nil {
			return err
		}
		acct := *old
		if err := fn(&acct); err != nil {
			return err
		}
		acct.ID, acct.Login, acct.Domain = old.ID, old.Login, old.Domain
		if acct.Class != old.Class && t.tx.Bucket(bClasses).Get([]byte(acct.Class)) == nil {
			return fmt.Errorf("class %s: %w", acct.Class, ErrNoClass)
		}
		if err := t.putAccount(old, &acct); err != nil {
			return err
		}
		t.notify(Change{Kind: AccountChanged, Account: id})
		out = acct
		if action == "" {
			return nil
		}
		return t.audit(a, action, acct.Address())
	})
	return out, err
}

// AccountFilter selects accounts for ListAccounts.
type AccountFilter struct {
	State accounts.State // "" for every state
	After uint64         // resume after this id
	Limit int            // 0 means 1000
}

// ListAccounts returns accounts in id order, at most f.Limit; pass the
// last ID as f.After for the next page. With a State it walks that
// state's index, never the whole account table.
func (s *Store) ListAccounts(f AccountFilter) ([]accounts.Account, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var out []accounts.Account
	err := s.viewNow(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAccounts)
		add := func(id uint64, v []byte) error {
			var a accounts.Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("account %d: %w", id, ErrCorrupt)
			}
			out = append(out, a)
			return nil
		}
		if f.State == "" {
			c := b.Cursor()
			for k, v := c.Seek(u64(f.After + 1)); k != nil && len(out) < f.Limit; k, v = c.Next() {
				if err := add(decodeU64(k), v); err != nil {
					return err
				}
			}
			return nil
		}
		prefix := stateKey(string(f.State), 0)[:len(f.State)+1]
		c := tx.Bucket(bAcctState).Cursor()
		for k, _ := c.Seek(stateKey(string(f.State), f.After+1)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < f.Limit; k, _ = c.Next() {
			id := decodeU64(k[len(prefix):])
			v := b.Get(acctKey(id))
			if v == nil {
				return fmt.Errorf("state index names missing account %d: %w", id, ErrCorrupt)
			}
			if err := add(id, v); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// AccountsUnusedSince returns up to limit accounts (not purged) whose last
// use is before t, oldest first, starting after the cursor (lastUse, id)
// that the previous page ended on. It walks the last-use index.
func (s *Store) AccountsUnusedSince(before time.Time, afterUse time.Time, afterID uint64, limit int) ([]accounts.Account, error) {
	var out []accounts.Account
	err := s.viewNow(func(tx *bolt.Tx) error {
		c := tx.Bucket(bAcctLastUse).Cursor()
		tt := &txn{tx: tx}
		start := lastUseKey(afterUse.Unix(), afterID+1)
		if afterUse.IsZero() && afterID == 0 {
			start = nil
		}
		k, _ := c.First()
		if start != nil {
			k, _ = c.Seek(start)
		}
		for ; k != nil && len(out) < limit; k, _ = c.Next() {
			if int64(decodeU64(k)) >= before.Unix() {
				break
			}
			a, err := tt.getAccount(decodeU64(k[8:]))
			if err != nil {
				return err
			}
			out = append(out, *a)
		}
		return nil
	})
	return out, err
}

// Usage returns an account's usage counters.
func (s *Store) Usage(id uint64) (Usage, error) {
	var u Usage
	err := s.viewFor(id, func(tx *bolt.Tx) error {
		p, err := (&txn{tx: tx}).getUsage(id)
		if err == nil {
			u = *p
		}
		return err
	})
	return u, err
}

// AccountCount returns how many account records exist (purged tombstones
// included).
func (s *Store) AccountCount() (int, error) {
	var n int
	err := s.viewNow(func(tx *bolt.Tx) error {
		n = tx.Bucket(bAccounts).Stats().KeyN
		return nil
	})
	return n, err
}
