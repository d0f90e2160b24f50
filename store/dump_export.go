package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
	"abox/evidence"
)

// Export calls fn with every record of the store (dump.go), in the
// dependency order dump.go describes, from one read transaction: one
// consistent state even while the store is written to. Bodies are read
// one at a time into their own record, so memory stays bounded whatever
// the store holds. fn runs inside the read transaction: a slow fn keeps
// old pages from being reused (the file grows) while a server writes,
// so a migration exports a store no server has open. It stops at fn's
// first error or when ctx ends.
func (s *Store) Export(ctx context.Context, fn func(*DumpRecord) error) error {
	if err := s.barrier(); err != nil {
		return err
	}
	// Segment bodies are read through their mappings, as viewBlobs does:
	// no segment goes while the transaction runs, and a segment cut
	// short faults into ErrCorrupt instead of ending the process.
	e := s.blobs.segs.readers.enter()
	defer s.blobs.segs.readers.leave(e)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	x := &exporter{ctx: ctx, s: s, fn: fn}
	err := s.viewNow(func(tx *bolt.Tx) error {
		x.tx = tx
		for _, step := range []func() error{
			x.meta, x.directory, x.accounts, x.bodies, x.mail,
			x.audit, x.logins, x.consents, x.apiTokens, x.idempotent,
			x.queue, x.broadcasts, x.evidence, x.signedHeads, x.ledger,
			x.ledgerReads, x.officialCopies,
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if x.panicked != nil {
		// fn's own panic, which viewNow would have taken for a
		// damaged file.
		panic(x.panicked)
	}
	return err
}

type exporter struct {
	ctx      context.Context
	tx       *bolt.Tx
	s        *Store
	fn       func(*DumpRecord) error
	n        int
	panicked any // fn panicked with this
}

var errExportPanic = errors.New("export: the callback panicked")

// emit hands one record to fn, checking ctx now and then.
func (x *exporter) emit(r *DumpRecord) (err error) {
	if x.n++; x.n%1024 == 0 {
		if err := x.ctx.Err(); err != nil {
			return err
		}
	}
	defer func() {
		if p := recover(); p != nil {
			x.panicked, err = p, errExportPanic
		}
	}()
	return x.fn(r)
}

// eachJSON decodes every value of a bucket into a fresh T and emits
// what wrap makes of it.
func eachJSON[T any](x *exporter, bucket []byte, wrap func(k []byte, v *T) *DumpRecord) error {
	return x.tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("export: %s record %q: %w", bucket, k, ErrCorrupt)
		}
		return x.emit(wrap(k, v))
	})
}

func (x *exporter) meta() error {
	meta := x.tx.Bucket(bMeta)
	m := &MetaDump{LedgerHead: string(meta.Get([]byte("ledger_head")))}
	if v := meta.Get([]byte("created")); len(v) == 8 {
		m.CreatedAt = time.Unix(int64(decodeU64(v)), 0).UTC()
	}
	uv := decodeU64(meta.Get([]byte("uidvalidity"))) + 1
	if uv > 0xffffffff {
		uv = 1
	}
	m.UIDValidityNext = uint32(uv)
	if v := meta.Get(metaReceiptsMailed); len(v) == 8 {
		n := decodeU64(v)
		m.ReceiptsMailed = &n
	}
	m.LastAccountID = x.tx.Bucket(bAccounts).Sequence()
	m.LastAuditSeq = x.tx.Bucket(bAudit).Sequence()
	m.LastQueueID = x.tx.Bucket(bQueue).Sequence()
	m.LastBroadcastID = x.tx.Bucket(bBroadcasts).Sequence()
	m.LastLedgerSeq = x.tx.Bucket(bLedger).Sequence()
	return x.emit(&DumpRecord{Kind: DumpMeta, Meta: m})
}

func (x *exporter) directory() error {
	if err := eachJSON(x, bDomains, func(_ []byte, v *accounts.Domain) *DumpRecord {
		return &DumpRecord{Kind: DumpDomain, Domain: v}
	}); err != nil {
		return err
	}
	if err := eachJSON(x, bClasses, func(_ []byte, v *accounts.Class) *DumpRecord {
		return &DumpRecord{Kind: DumpClass, Class: v}
	}); err != nil {
		return err
	}
	if err := eachJSON(x, bSenders, func(_ []byte, v *accounts.Sender) *DumpRecord {
		return &DumpRecord{Kind: DumpSender, Sender: v}
	}); err != nil {
		return err
	}
	return eachJSON(x, bDKIM, func(_ []byte, v *DKIMKey) *DumpRecord {
		return &DumpRecord{Kind: DumpDKIMKey, DKIMKey: v}
	})
}

func (x *exporter) accounts() error {
	mail, gone := x.tx.Bucket(bMail), x.tx.Bucket(bSubsGone).Cursor()
	return x.tx.Bucket(bAccounts).ForEach(func(k, raw []byte) error {
		d := &AccountDump{}
		if err := json.Unmarshal(raw, &d.Account); err != nil {
			return fmt.Errorf("export: account %d: %w", decodeU64(k), ErrCorrupt)
		}
		id := decodeU64(k)
		if v := mail.Get(usageKey(id)); v != nil {
			u, err := decodeUsage(v)
			if err != nil {
				return fmt.Errorf("export: account %d: %w", id, err)
			}
			d.Usage = u
		}
		prefix := u64(id)
		for gk, _ := gone.Seek(prefix); gk != nil && bytes.HasPrefix(gk, prefix); gk, _ = gone.Next() {
			d.GoneSubscriptions = append(d.GoneSubscriptions, string(gk[8:]))
		}
		return x.emit(&DumpRecord{Kind: DumpAccount, Account: d})
	})
}

// bodies emits every body with its bytes, except those only finished
// queue entries still hold (queue_free: references about to be dropped).
func (x *exporter) bodies() error {
	freed := map[uint64]uint64{}
	if err := x.tx.Bucket(bQueueFree).ForEach(func(k, _ []byte) error {
		if len(k) == 16 {
			freed[decodeU64(k)]++
		}
		return nil
	}); err != nil {
		return err
	}
	hashes := lookup{x.tx.Bucket(bBodyHash).Cursor()}
	blobs := x.s.blobs.reader(x.tx)
	var scratch []byte
	return x.tx.Bucket(bBodies).ForEach(func(k, v []byte) error {
		id := decodeU64(k)
		rec, err := decodeBody(v)
		if err != nil {
			return fmt.Errorf("export: body %d: %w", id, err)
		}
		if rec.Refs <= freed[id] {
			return nil
		}
		data, inBuf, err := blobs.read(id, scratch)
		if err != nil {
			return fmt.Errorf("export: body %d cannot be read (abox check names its messages): %w", id, err)
		}
		if inBuf {
			scratch = nil // the record takes the buffer
		} else {
			data = bytes.Clone(data)
		}
		if int64(len(data)) != rec.Size {
			return fmt.Errorf("export: body %d has %d bytes, its record says %d: %w", id, len(data), rec.Size, ErrCorrupt)
		}
		b := &BodyDump{ID: id, SHA256: rec.Hash, Size: rec.Size, Structure: rec.Structure, Data: data}
		if rec.Hash != ([32]byte{}) {
			if hv := hashes.get(rec.Hash[:]); len(hv) == 8 && decodeU64(hv) == id {
				b.Shareable = true
			}
		}
		return x.emit(&DumpRecord{Kind: DumpBody, Body: b})
	})
}

// mail emits, account by account, the mailboxes, then their messages,
// then their expunges. A mailbox record follows its messages in the
// mail bucket, so the mailboxes are found first by seeking from one
// mailbox's record to the next (never reading the messages between).
func (x *exporter) mail() error {
	c := x.tx.Bucket(bMail).Cursor()
	kw := x.tx.Bucket(bKeywords)
	vc := x.tx.Bucket(bVanished).Cursor()
	for k, _ := c.First(); k != nil; {
		if len(k) != 16 {
			return fmt.Errorf("export: mail record with malformed key %x: %w", k, ErrCorrupt)
		}
		acct := decodeU64(k)
		// The mailboxes.
		var ids []uint32
		for mk, mv := c.Seek(msgKey(acct, 1, 0)); mk != nil && decodeU64(mk) == acct; {
			_, mbox, _ := parseMsgKey(mk)
			if mk, mv = c.Seek(mboxKey(acct, mbox)); mk != nil && bytes.Equal(mk, mboxKey(acct, mbox)) {
				mb, err := decodeMailbox(mbox, mv)
				if err != nil {
					return fmt.Errorf("export: mailbox %d/%d: %w", acct, mbox, err)
				}
				kws, err := decodeKeywords(kw.Get(keywordsKey(acct, mbox)))
				if err != nil {
					return fmt.Errorf("export: mailbox %d/%d: %w", acct, mbox, err)
				}
				if err := x.emit(&DumpRecord{Kind: DumpMailbox, Mailbox: &MailboxDump{Account: acct, Mailbox: *mb, Keywords: kws}}); err != nil {
					return err
				}
				ids = append(ids, mbox)
				mk, mv = c.Next()
			}
			// Otherwise messages without a mailbox record (abox check
			// reports them): they are not exported.
		}
		// The messages.
		for _, mbox := range ids {
			end := mboxKey(acct, mbox)
			for mk, mv := c.Seek(msgKey(acct, mbox, 1)); mk != nil && bytes.Compare(mk, end) < 0; mk, mv = c.Next() {
				_, _, uid := parseMsgKey(mk)
				m, err := decodeMessage(uid, mv)
				if err != nil {
					return fmt.Errorf("export: message %d/%d/%d: %w", acct, mbox, uid, err)
				}
				if err := x.emit(&DumpRecord{Kind: DumpMessage, Message: &MessageDump{Account: acct, Mailbox: mbox, Message: *m}}); err != nil {
					return err
				}
			}
		}
		// The expunges.
		prefix := u64(acct)
		for vk, vv := vc.Seek(prefix); vk != nil && bytes.HasPrefix(vk, prefix); vk, vv = vc.Next() {
			d, err := decodeVanishedDump(vk, vv)
			if err != nil {
				return err
			}
			if err := x.emit(&DumpRecord{Kind: DumpVanished, Vanished: d}); err != nil {
				return err
			}
		}
		if acct == ^uint64(0) {
			break
		}
		k, _ = c.Seek(u64(acct + 1))
	}
	return nil
}

func decodeVanishedDump(k, v []byte) (*VanishedDump, error) {
	if len(k) != 20 {
		return nil, fmt.Errorf("export: vanished record with malformed key %x: %w", k, ErrCorrupt)
	}
	d := &VanishedDump{Account: decodeU64(k), Mailbox: binary.BigEndian.Uint32(k[8:]), ModSeq: binary.BigEndian.Uint64(k[12:])}
	switch {
	case d.ModSeq == 0 && len(v) == 8:
		d.Floor = decodeU64(v)
	case d.ModSeq != 0 && len(v) == 12:
		d.UID = binary.BigEndian.Uint32(v)
		d.At = time.Unix(int64(binary.BigEndian.Uint64(v[4:])), 0).UTC()
	default:
		return nil, fmt.Errorf("export: vanished record %x: %w", k, ErrCorrupt)
	}
	return d, nil
}

func (x *exporter) audit() error {
	return eachJSON(x, bAudit, func(k []byte, v *AuditEntry) *DumpRecord {
		v.Seq = decodeU64(k)
		return &DumpRecord{Kind: DumpAudit, Audit: &AuditDump{Seq: v.Seq, Entry: *v}}
	})
}

func (x *exporter) logins() error {
	return eachJSON(x, bLogins, func(k []byte, v *LoginRecord) *DumpRecord {
		return &DumpRecord{Kind: DumpLogin, Login: &LoginDump{Account: decodeU64(k), KeyNanos: int64(decodeU64(k[8:])), Record: *v}}
	})
}

func (x *exporter) consents() error {
	return x.tx.Bucket(bConsents).ForEach(func(k, v []byte) error {
		if len(k) != 16 {
			return fmt.Errorf("export: consent with malformed key %x: %w", k, ErrCorrupt)
		}
		return x.emit(&DumpRecord{Kind: DumpConsent, Consent: &ConsentDump{Account: decodeU64(k), RecordedNanos: int64(decodeU64(k[8:])), CMS: bytes.Clone(v)}})
	})
}

func (x *exporter) apiTokens() error {
	return eachJSON(x, bAPITokens, func(k []byte, v *APIToken) *DumpRecord {
		d := &APITokenDump{Token: *v}
		copy(d.Hash[:], k)
		return &DumpRecord{Kind: DumpAPIToken, APIToken: d}
	})
}

func (x *exporter) idempotent() error {
	return eachJSON(x, bAPIIdem, func(k []byte, v *IdempotentResult) *DumpRecord {
		token, key, _ := bytes.Cut(k, []byte{0})
		return &DumpRecord{Kind: DumpIdempotent, Idempotent: &IdempotentDump{Token: string(token), Key: string(key), Result: *v}}
	})
}

func (x *exporter) queue() error {
	return eachJSON(x, bQueue, func(_ []byte, v *QueueEntry) *DumpRecord {
		return &DumpRecord{Kind: DumpQueue, Queue: v}
	})
}

func (x *exporter) broadcasts() error {
	return eachJSON(x, bBroadcasts, func(_ []byte, v *Broadcast) *DumpRecord {
		return &DumpRecord{Kind: DumpBroadcast, Broadcast: v}
	})
}

func (x *exporter) evidence() error {
	ec := newEntryCursor(x.tx)
	for i, v, ok := ec.First(); ok; i, v, ok = ec.Next() {
		if err := x.emit(&DumpRecord{Kind: DumpEvidence, Evidence: &EvidenceDump{Index: i, Raw: bytes.Clone(v)}}); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) signedHeads() error {
	return eachJSON(x, bEvidenceHeads, func(_ []byte, v *evidence.SignedHead) *DumpRecord {
		return &DumpRecord{Kind: DumpSignedHead, SignedHead: v}
	})
}

func (x *exporter) ledger() error {
	return eachJSON(x, bLedger, func(_ []byte, v *LedgerEntry) *DumpRecord {
		return &DumpRecord{Kind: DumpLedger, Ledger: v}
	})
}

func (x *exporter) ledgerReads() error {
	return x.tx.Bucket(bLedgerRead).ForEach(func(k, v []byte) error {
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) != 3 || len(v) != 8 {
			return fmt.Errorf("export: first-read mark %q: %w", k, ErrCorrupt)
		}
		return x.emit(&DumpRecord{Kind: DumpLedgerRead, LedgerRead: &LedgerReadDump{
			Sender: string(parts[0]), MessageID: string(parts[1]), Recipient: string(parts[2]),
			At: time.Unix(int64(decodeU64(v)), 0).UTC()}})
	})
}

func (x *exporter) officialCopies() error {
	return x.tx.Bucket(bOfficial).ForEach(func(k, v []byte) error {
		var oc officialCopy
		if len(k) != 16 || json.Unmarshal(v, &oc) != nil {
			return fmt.Errorf("export: official copy record %x: %w", k, ErrCorrupt)
		}
		return x.emit(&DumpRecord{Kind: DumpOfficialCopy, OfficialCopy: &OfficialCopyDump{
			Account: decodeU64(k), Blob: decodeU64(k[8:]), Count: oc.Count, MessageID: oc.MessageID,
			Sender: oc.Sender, Recipient: oc.Recipient, SHA256: oc.SHA256, Retrieved: oc.Retrieved}})
	})
}
