package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Actors that appear in the audit log.
const (
	ActorOperator = "operator"
	ActorPolicy   = "policy"
	ActorUser     = "user"
	ActorSystem   = "system"
)

// AuditEntry is one policy or operator action. The audit log is append
// only: nothing in the store rewrites or deletes an entry.
type AuditEntry struct {
	Seq     uint64    `json:"-"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Account string    `json:"account"`
	Reason  string    `json:"reason"`
	// Staff is who among the operator's staff acted, for operator
	// actions: the OS user of the abox command (user name and uid), or
	// a named API token; empty for policy and system actions.
	Staff string `json:"staff,omitempty"`
	// AccountID is the stable id of the account the entry is about (0
	// when none, or for entries written before ids were recorded): a
	// login registered again after a purge is another account, and its
	// entries are never mixed with its previous holder's.
	AccountID uint64 `json:"account_id,omitempty"`
}

// Audit says who does an action and why; the store fills in the time and
// the account and writes the entry in the same transaction as the action.
type Audit struct {
	Actor  string
	Reason string
	Staff  string // see AuditEntry.Staff
}

// appendAudit writes e in t's transaction.
func (t *txn) appendAudit(e AuditEntry) error {
	if e.At.IsZero() {
		e.At = t.now
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	if e.AccountID == 0 && e.Account != "" {
		if id, err := lookupAddr(t.tx, e.Account); err == nil {
			e.AccountID = id
		}
	}
	b := t.tx.Bucket(bAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.Put(u64(seq), v); err != nil {
		return err
	}
	if e.Account != "" {
		return t.tx.Bucket(bAuditAcct).Put(auditAcctKey(e.Account, seq), nil)
	}
	return nil
}

func (t *txn) audit(a Audit, action, account string) error {
	return t.appendAudit(AuditEntry{Actor: a.Actor, Action: action, Account: account, Reason: a.Reason, Staff: a.Staff})
}

// AppendAudit records an action that changes nothing else in the store.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) error {
	return s.update(ctx, func(t *txn) error { return t.appendAudit(e) })
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	Account string // exact address, or "" for all
	// AccountID, when set, leaves out entries about another account
	// (one that held the address before, or holds it now); entries
	// written before ids were recorded are kept.
	AccountID uint64
	Since     time.Time // zero for all
	After     uint64    // resume after this sequence number
	Limit     int       // 0 means 1000
}

// ListAudit returns entries in the order they were written, at most
// f.Limit of them; pass the last Seq as f.After for the next page.
func (s *Store) ListAudit(f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var out []AuditEntry
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAudit)
		add := func(seq uint64, v []byte) (bool, error) {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("audit entry %d: %w", seq, ErrCorrupt)
			}
			e.Seq = seq
			if !f.Since.IsZero() && e.At.Before(f.Since) {
				return true, nil
			}
			if f.AccountID != 0 && e.AccountID != 0 && e.AccountID != f.AccountID {
				return true, nil // the address's other holder
			}
			out = append(out, e)
			return len(out) < f.Limit, nil
		}
		if f.Account == "" {
			c := b.Cursor()
			for k, v := c.Seek(u64(f.After + 1)); k != nil; k, v = c.Next() {
				if more, err := add(decodeU64(k), v); err != nil || !more {
					return err
				}
			}
			return nil
		}
		prefix := auditAcctKey(f.Account, 0)[:len(f.Account)+1]
		c := tx.Bucket(bAuditAcct).Cursor()
		for k, _ := c.Seek(auditAcctKey(f.Account, f.After+1)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := decodeU64(k[len(prefix):])
			if more, err := add(seq, b.Get(u64(seq))); err != nil || !more {
				return err
			}
		}
		return nil
	})
	return out, err
}

// PruneAudit removes audit entries recorded before before, oldest first,
// at most batch per write transaction (so deliveries never wait behind
// it), with their by-account index keys, and returns how many it
// removed. It is the audit log's retention (audit-retention): the only
// thing that ever removes an entry, and only from the old end.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, batch int) (int, error) {
	total := 0
	for {
		n := 0
		done := false
		err := s.update(ctx, func(t *txn) error {
			n, done = 0, false
			b := t.tx.Bucket(bAudit)
			idx := t.tx.Bucket(bAuditAcct)
			c := b.Cursor()
			for k, v := c.First(); ; k, v = c.First() {
				if k == nil || n == batch {
					done = k == nil
					return nil
				}
				var e AuditEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("audit entry %d: %w", decodeU64(k), ErrCorrupt)
				}
				if !e.At.Before(before) {
					done = true
					return nil
				}
				seq := decodeU64(k)
				if e.Account != "" {
					if err := idx.Delete(auditAcctKey(e.Account, seq)); err != nil {
						return err
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		})
		total += n
		if err != nil || done || n == 0 {
			return total, err
		}
	}
}
