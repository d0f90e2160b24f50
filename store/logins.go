package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Login history (user agreement 2.7-2.8: a subscriber who suspects a
// stolen password needs to see who logged in, from where, with what).
// One record per login attempt on an existing account, kept for the
// configured period (policy's sweep prunes older ones) and deleted with
// the account's content.
//
// Bucket logins:      acct(8) at(8, unix ns) -> JSON LoginRecord
// Bucket logins_time: at(8) acct(8)          -> nil (for pruning in time order)
var (
	bLogins     = []byte("logins")
	bLoginsTime = []byte("logins_time")
)

// LoginRecord is one login attempt on an account.
type LoginRecord struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`          // imap, submission, notice-api
	Address string    `json:"address"`          // the client's IP address
	Client  string    `json:"client,omitempty"` // what the client said it is (IMAP ID)
	// Outcome is ok, failed (wrong password), refused (right password,
	// no access: the reason follows) or id (the client's IMAP ID, sent
	// after its login).
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// AppPassword names the app password used (empty: the main one).
	AppPassword string `json:"app_password,omitempty"`
}

func loginKey(acct uint64, at int64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, acct)
	binary.BigEndian.PutUint64(k[8:], uint64(at))
	return k
}

// RecordLogin adds r to the account's login history. Two records of one
// account at the same nanosecond keep both (the second a nanosecond on).
func (s *Store) RecordLogin(ctx context.Context, acct uint64, r LoginRecord) error {
	r.At = r.At.UTC()
	return s.update(ctx, func(t *txn) error {
		b := t.tx.Bucket(bLogins)
		at := r.At.UnixNano()
		for b.Get(loginKey(acct, at)) != nil {
			at++
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(loginKey(acct, at), v); err != nil {
			return err
		}
		tk := make([]byte, 16)
		binary.BigEndian.PutUint64(tk, uint64(at))
		binary.BigEndian.PutUint64(tk[8:], acct)
		return t.tx.Bucket(bLoginsTime).Put(tk, nil)
	})
}

// Logins returns the account's login history, newest first, at most
// limit records (0: all).
func (s *Store) Logins(acct uint64, limit int) ([]LoginRecord, error) {
	var out []LoginRecord
	err := s.view(func(tx *bolt.Tx) error {
		prefix := u64(acct)
		c := tx.Bucket(bLogins).Cursor()
		k, v := c.Seek(loginKey(acct+1, 0))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			var r LoginRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("login record %x: %w", k, ErrCorrupt)
			}
			out = append(out, r)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// PruneLogins removes login records older than before, at most batch per
// write transaction (so deliveries never wait behind it), and returns
// how many it removed.
func (s *Store) PruneLogins(ctx context.Context, before time.Time, batch int) (int, error) {
	total := 0
	for {
		n := 0
		err := s.update(ctx, func(t *txn) error {
			n = 0
			c := t.tx.Bucket(bLoginsTime).Cursor()
			logins := t.tx.Bucket(bLogins)
			limit := uint64(before.UnixNano())
			for k, _ := c.First(); k != nil && n < batch; k, _ = c.First() {
				at := binary.BigEndian.Uint64(k)
				if at >= limit {
					break
				}
				if err := logins.Delete(loginKey(binary.BigEndian.Uint64(k[8:]), int64(at))); err != nil {
					return err
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// deleteLogins removes an account's login history (with its content: an
// address is personal data). The time index keeps its keys until pruned;
// they name no one once the records are gone.
func (s *Store) deleteLogins(ctx context.Context, acct uint64) error {
	for {
		more := false
		err := s.update(ctx, func(t *txn) error {
			c := t.tx.Bucket(bLogins).Cursor()
			prefix := u64(acct)
			n := 0
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
				if n == 1000 {
					more = true
					return nil
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}
