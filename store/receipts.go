package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// Receipts by mail (issue 15): after each signed tree head, the events
// of letters from trusted senders that asked for them are mailed to
// the sender with their inclusion proofs. The store keeps how far the
// log has been mailed, so a restart neither skips nor repeats a head.

var metaReceiptsMailed = []byte("evidence_receipts_mailed")

// SetSenderReceipts sets (or, with "", clears) the address a trusted
// sender's receipts are mailed to.
func (s *Store) SetSenderReceipts(ctx context.Context, name, address string, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		t.dirChanged = true
		b := t.tx.Bucket(bSenders)
		var snd accounts.Sender
		ok, err := getJSON(b, []byte(name), &snd)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("sender %s: %w", name, ErrNoSender)
		}
		snd.ReceiptsTo = strings.ToLower(address)
		if err := putJSON(b, []byte(name), snd); err != nil {
			return err
		}
		a.Reason = "receipts to " + address
		if address == "" {
			a.Reason = "no receipts by mail"
		}
		return t.audit(a, "sender.set", "")
	})
}

// ReceiptsMailed is the log size up to which receipts were mailed; ok
// is false before the first time.
func (s *Store) ReceiptsMailed() (n uint64, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(metaReceiptsMailed); len(v) == 8 {
			n, ok = decodeU64(v), true
		}
		return nil
	})
	return n, ok, err
}

// SetReceiptsMailed records that receipts were mailed up to log size n.
func (s *Store) SetReceiptsMailed(ctx context.Context, n uint64) error {
	return s.update(ctx, func(t *txn) error { return t.put(bMeta, metaReceiptsMailed, u64(n), 0) })
}

// EvidenceBetween calls fn for the entries from index from up to (not
// including) to, in order, in read transactions of at most 1,000
// entries.
func (s *Store) EvidenceBetween(from, to uint64, fn func(EvidenceEntry) error) error {
	for from < to {
		var batch []EvidenceEntry
		err := s.view(func(tx *bolt.Tx) error {
			ec := newEntryCursor(tx)
			for i, v, ok := ec.Seek(from); ok && i < to && len(batch) < 1000; i, v, ok = ec.Next() {
				var e EvidenceEvent
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("evidence entry %d: %w", i, ErrCorrupt)
				}
				batch = append(batch, EvidenceEntry{Event: e, Raw: bytes.Clone(v)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		for _, en := range batch {
			if err := fn(en); err != nil {
				return err
			}
		}
		from = batch[len(batch)-1].Event.Index + 1
	}
	return nil
}
