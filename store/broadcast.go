package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// A broadcast delivers one message to every active account (or one
// class's) in bounded batches. Its record holds a cursor (the last
// account id done) that each batch advances in the same transaction as
// its deliveries, so an interrupted broadcast resumes with neither
// duplicates nor gaps. The body is stored once; the unfinished broadcast
// itself holds one reference to it.

// Broadcast is a broadcast's record.
type Broadcast struct {
	ID        uint64    `json:"id"`
	Source    string    `json:"source"` // SHA-256 of the operator's file (hex): what a resume matches
	Hash      string    `json:"hash"`   // SHA-256 of the stored body (hex)
	Blob      uint64    `json:"blob"`
	Sender    string    `json:"sender"`
	Class     string    `json:"class,omitempty"`
	Official  bool      `json:"official"`
	MessageID string    `json:"message_id"`
	Cursor    uint64    `json:"cursor"`
	Scanned   int64     `json:"scanned"`   // active accounts looked at
	Delivered int64     `json:"delivered"` // copies stored
	Skipped   int64     `json:"skipped"`   // over quota (or otherwise refused by the store)
	Refused   int64     `json:"refused"`   // no consent (official letters)
	Sample    []string  `json:"skipped_sample,omitempty"`
	StartedAt time.Time `json:"started_at"`
	Done      bool      `json:"done"`
	DoneAt    time.Time `json:"done_at,omitzero"`
}

// maxSample bounds the skipped addresses a broadcast remembers.
const maxSample = 1000

// ErrAlreadyBroadcast is returned when the same message went out before.
var ErrAlreadyBroadcast = errors.New("this message was already broadcast")

// StartBroadcast stores the body (once) and creates the broadcast, or
// returns the unfinished one with the same source, sender and class so
// it resumes (resumed is then true) with the body stored the first time.
// A finished broadcast of the same message is not repeated unless again
// is set: a rerun after an interruption must never send a second copy.
func (s *Store) StartBroadcast(ctx context.Context, b Broadcast, body, structure []byte, again bool) (Broadcast, bool, error) {
	hash := sha256.Sum256(body)
	b.Hash = fmt.Sprintf("%x", hash)
	var out Broadcast
	resumed := false
	err := s.update(ctx, func(t *txn) error {
		resumed = false
		bb := t.tx.Bucket(bBroadcasts)
		c := bb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var old Broadcast
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("broadcast %d: %w", decodeU64(k), ErrCorrupt)
			}
			if old.Source == b.Source && old.Sender == b.Sender && old.Class == b.Class {
				if !old.Done {
					out, resumed = old, true
					return nil
				}
				if !again {
					return fmt.Errorf("%w (broadcast %d, finished %s, %d delivered); use --again to send it again",
						ErrAlreadyBroadcast, old.ID, old.DoneAt.Format(time.RFC3339), old.Delivered)
				}
			}
		}
		id, err := bb.NextSequence()
		if err != nil {
			return err
		}
		blob, known, err := t.blobFor(hash, true)
		if err != nil {
			return err
		}
		// The broadcast's own reference keeps the body while it runs.
		if err := t.addBodyRefs(blob, known, true, hash, body, structure, 1); err != nil {
			return err
		}
		b.ID, b.Blob, b.StartedAt = id, blob, t.now.UTC()
		out = b
		if err := putJSON(bb, u64(id), b); err != nil {
			return err
		}
		return t.audit(Audit{Actor: ActorOperator, Reason: fmt.Sprintf("broadcast %d from %s, class %q", id, b.Sender, b.Class)}, "broadcast.start", "")
	})
	return out, resumed, err
}

// Pick decides, inside a broadcast batch, what one account gets: the
// recipient (limits, flags) or an error that skips it. errRefuse-wrapped
// ErrNoConsent counts as refused. It must be pure: it may run twice.
type Pick func(a *accounts.Account) (Recipient, error)

// ErrSkipNoConsent marks an account refused for lack of consent.
var ErrSkipNoConsent = errors.New("no digital-signature consent")

// SkipNoConsent is ErrSkipNoConsent with the evidence log's code of why
// (consent-expired, consent-revoked, ...).
func SkipNoConsent(reason string) error { return &skipNoConsent{reason} }

type skipNoConsent struct{ reason string }

func (e *skipNoConsent) Error() string { return ErrSkipNoConsent.Error() + ": " + e.reason }
func (e *skipNoConsent) Unwrap() error { return ErrSkipNoConsent }

// skipReason is the evidence code of a consent refusal.
func skipReason(err error) string {
	var s *skipNoConsent
	if errors.As(err, &s) {
		return s.reason
	}
	return "no-consent"
}

// BroadcastStep delivers to the next batch of up to max active accounts
// after the cursor in one transaction and returns the updated record.
// When no account is left, it releases the broadcast's reference and
// marks it done.
func (s *Store) BroadcastStep(ctx context.Context, id uint64, max int, pick Pick) (Broadcast, error) {
	var out Broadcast
	err := s.update(ctx, func(t *txn) error {
		bb := t.tx.Bucket(bBroadcasts)
		var b Broadcast
		ok, err := getJSON(bb, u64(id), &b)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("broadcast %d: %w", id, ErrNotFound)
		}
		if b.Done {
			out = b
			return nil
		}
		prefix := stateKey(string(accounts.Active), 0)[:len(accounts.Active)+1]
		c := t.tx.Bucket(bAcctState).Cursor()
		var ids []uint64
		for k, _ := c.Seek(stateKey(string(accounts.Active), b.Cursor+1)); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < max; k, _ = c.Next() {
			ids = append(ids, decodeU64(k[len(prefix):]))
		}
		var delivered []Delivered
		var addrs, refused, reasons []string
		for _, aid := range ids {
			b.Cursor = aid
			b.Scanned++
			a, err := t.getAccount(aid)
			if err != nil {
				return err
			}
			if b.Class != "" && a.Class != b.Class {
				continue
			}
			r, err := pick(a)
			if errors.Is(err, ErrSkipNoConsent) {
				b.Refused++
				refused = append(refused, a.Address())
				reasons = append(reasons, skipReason(err))
				continue
			}
			if err == nil {
				r.Account = aid
				var res Delivered
				if res, err = t.deliverOne(&r, b.Blob, t.bodySize(b.Blob), t.now); err == nil {
					res.Account = aid
					delivered = append(delivered, res)
					addrs = append(addrs, a.Address())
					continue
				}
			}
			b.Skipped++
			if len(b.Sample) < maxSample {
				b.Sample = append(b.Sample, err.Error())
			}
		}
		if n := uint64(len(delivered)); n > 0 {
			if err := t.addBodyRefs(b.Blob, true, true, [32]byte{}, nil, nil, n); err != nil {
				return err
			}
			b.Delivered += int64(n)
		}
		if b.Official {
			o := &OfficialLetter{MessageID: b.MessageID, Sender: b.Sender, Addresses: addrs, AcceptedAt: t.now, Refused: refused, Reason: "no-consent", RefusedReasons: reasons}
			if err := t.recordOfficial(o, delivered, b.Blob); err != nil {
				return err
			}
		}
		if len(ids) < max {
			b.Done, b.DoneAt = true, t.now.UTC()
			if err := t.dropBodyRef(b.Blob); err != nil {
				return err
			}
			if err := t.audit(Audit{Actor: ActorOperator, Reason: fmt.Sprintf("broadcast %d: %d delivered, %d skipped, %d refused", b.ID, b.Delivered, b.Skipped, b.Refused)}, "broadcast.done", ""); err != nil {
				return err
			}
		}
		out = b
		return putJSON(bb, u64(id), b)
	})
	return out, err
}

// bodySize is a stored body's size.
func (t *txn) bodySize(blob uint64) int64 {
	v := t.tx.Bucket(bBodies).Get(u64(blob))
	if v == nil {
		return 0
	}
	rec, err := decodeBody(v)
	if err != nil {
		return 0
	}
	return rec.Size
}

// CountState counts the accounts in a state from its index.
func (s *Store) CountState(st accounts.State) (int64, error) {
	var n int64
	err := s.viewNow(func(tx *bolt.Tx) error {
		prefix := stateKey(string(st), 0)[:len(st)+1]
		c := tx.Bucket(bAcctState).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}
