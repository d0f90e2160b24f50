package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// Consent records (issue 15): the signed CMS object of every consent an
// account ever gave, kept for re-verification and export even after the
// account is purged (the evidence of letters delivered under it refers
// to it), and the binding of an IIN to the accounts not purged whose
// verified consent carries it. putAccount keeps the binding in step
// with every account change, so a purge or a withdrawal releases it.

// ErrIINBound is returned when a consent's IIN is already bound to
// another account and the operator did not allow sharing it.
var ErrIINBound = errors.New("the certificate's IIN is already bound to another account")

func consentKey(acct uint64, recordedNanos int64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, acct)
	binary.BigEndian.PutUint64(k[8:], uint64(recordedNanos))
	return k
}

func iinKey(iin string, acct uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(iin), 0), acct)
}

// boundIIN is the IIN an account holds in the binding index: that of a
// verified consent, while the account is not purged.
func boundIIN(a *accounts.Account) string {
	if a == nil || a.State == accounts.Purged || a.Consent == nil || !a.Consent.Verified {
		return ""
	}
	return a.Consent.IIN
}

// syncConsentIIN moves the account's IIN binding from old to a.
func (t *txn) syncConsentIIN(old, a *accounts.Account) error {
	was, is := boundIIN(old), boundIIN(a)
	if was == is {
		return nil
	}
	b := t.tx.Bucket(bConsentIIN)
	if was != "" {
		if err := b.Delete(iinKey(was, old.ID)); err != nil {
			return err
		}
	}
	if is != "" {
		return b.Put(iinKey(is, a.ID), nil)
	}
	return nil
}

// IINAccounts returns the ids of the accounts an IIN is bound to.
func (s *Store) IINAccounts(iin string) ([]uint64, error) {
	var out []uint64
	err := s.view(func(tx *bolt.Tx) error {
		out = iinHolders(tx, iin)
		return nil
	})
	return out, err
}

func iinHolders(tx *bolt.Tx, iin string) []uint64 {
	var out []uint64
	prefix := append([]byte(iin), 0)
	c := tx.Bucket(bConsentIIN).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Next() {
		out = append(out, decodeU64(k[len(prefix):]))
	}
	return out
}

// RecordConsent stores a verified consent and its CMS object for the
// account at address, which must still be account id (the statement
// named it), in one transaction with its audit entry. Unless shareIIN,
// an IIN already bound to another account refuses it with ErrIINBound.
func (s *Store) RecordConsent(ctx context.Context, address string, id uint64, c *accounts.Consent, cms []byte, shareIIN bool, a Audit) (accounts.Account, error) {
	var out accounts.Account
	err := s.update(ctx, func(t *txn) error {
		got, err := lookupAddr(t.tx, address)
		if err != nil {
			return err
		}
		old, err := t.getAccount(got)
		if err != nil {
			return err
		}
		switch {
		case got != id:
			return fmt.Errorf("%s is now account %d, the statement names %d: %w", address, got, id, ErrNoAccount)
		case old.State == accounts.Purged:
			return fmt.Errorf("account %s is purged: %w", address, ErrNoAccount)
		}
		if !shareIIN && c.IIN != "" {
			for _, other := range iinHolders(t.tx, c.IIN) {
				if other == id {
					continue
				}
				holder := fmt.Sprintf("account %d", other)
				if o, err := t.getAccount(other); err == nil {
					holder = o.Address()
				}
				return fmt.Errorf("IIN %s is bound to %s: %w", c.IIN, holder, ErrIINBound)
			}
		}
		b := t.tx.Bucket(bConsents)
		if err := b.Put(consentKey(id, c.RecordedAt.UnixNano()), bytes.Clone(cms)); err != nil {
			return err
		}
		acct := *old
		acct.Consent = c
		if err := t.putAccount(old, &acct); err != nil {
			return err
		}
		t.notify(Change{Kind: AccountChanged, Account: id})
		out = acct
		return t.audit(a, "user.consent", acct.Address())
	})
	return out, err
}

// ConsentCMS returns the stored CMS object of the consent an account
// recorded at recordedNanos (accounts.Consent.RecordedAt), for export
// and re-verification.
func (s *Store) ConsentCMS(id uint64, recordedNanos int64) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bConsents).Get(consentKey(id, recordedNanos))
		if v == nil {
			return fmt.Errorf("no signed consent stored for account %d: %w", id, ErrNotFound)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// appendRefused logs a refused evidence event for each recipient of o
// refused for lack of consent, with its reason code; the consent
// fingerprint in force is filled in from the account (appendEvidence).
func (t *txn) appendRefused(o *OfficialLetter) error {
	w := t.evidenceWriter()
	if err := t.addRefused(w, o); err != nil {
		return err
	}
	return w.close()
}

// addRefused is appendRefused into w.
func (t *txn) addRefused(w *evidenceWriter, o *OfficialLetter) error {
	for i, addr := range o.Refused {
		reason := o.Reason
		if i < len(o.RefusedReasons) && o.RefusedReasons[i] != "" {
			reason = o.RefusedReasons[i]
		}
		ev := EvidenceEvent{At: o.AcceptedAt, Kind: EvidenceRefused, MessageID: o.MessageID, Sender: o.Sender,
			Recipient: addr, Account: t.accountByAddress(addr), MessageSHA: o.MessageSHA, ClientIP: o.ClientIP, TLS: o.TLS, Reason: reason}
		if err := w.add(ev); err != nil {
			return err
		}
	}
	return nil
}

// RecordRefusals logs the refusals of an official letter that was never
// delivered to anyone (every recipient refused, the transaction
// abandoned, or the content rejected): without it, a letter refused for
// lack of consent would leave no record (issue 15). MessageID and
// MessageSHA are what is known, possibly nothing.
func (s *Store) RecordRefusals(ctx context.Context, o *OfficialLetter) error {
	if len(o.Refused) == 0 {
		return nil
	}
	return s.update(ctx, func(t *txn) error { return t.appendRefused(o) })
}

// consentIndex checks the IIN binding against the accounts (abox check):
// every account not purged with a verified consent holds exactly its
// own entry, and no entry names anyone else.
func (c *checker) consentIndex() {
	want := map[string]uint64{}
	_ = c.tx.Bucket(bAccounts).ForEach(func(_, v []byte) error {
		var a accounts.Account
		if json.Unmarshal(v, &a) != nil {
			return nil // accounts() reports it
		}
		if iin := boundIIN(&a); iin != "" {
			want[string(iinKey(iin, a.ID))] = a.ID
		}
		return nil
	})
	_ = c.tx.Bucket(bConsentIIN).ForEach(func(k, _ []byte) error {
		if _, ok := want[string(k)]; ok {
			delete(want, string(k))
		} else if len(k) > 8 {
			c.problem("consent IIN index: stale entry %s for account %d", k[:len(k)-9], decodeU64(k[len(k)-8:]))
		} else {
			c.problem("consent IIN index: malformed key %x", k)
		}
		return nil
	})
	for _, id := range want {
		c.problem("consent IIN index: account %d's IIN is missing", id)
	}
}
