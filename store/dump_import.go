package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// Bounds of one import transaction: deliveries (if a server were
// running) never wait long behind one, and its dirty pages stay small.
// Variables for the tests.
var (
	importBatchRecords = 4096
	importBatchBytes   = 64 << 20
	importRefsBatch    = 10_000
)

// ImportStats says what Import wrote.
type ImportStats struct {
	Records      map[DumpKind]int64
	BodyBytes    int64
	Transactions int
	// UnreferencedBodies counts bodies that no message, queue entry or
	// running broadcast of the stream named: they are not kept.
	UnreferencedBodies int64
}

// Import writes a dump (dump.go) into this store, which must be new:
// one with accounts or any other data is refused with ErrStoreNotEmpty
// (the default classes a new store starts with are replaced by the
// dump's). next returns the records one by one and io.EOF after the
// last; Import keeps a record until the transaction holding it has
// committed, so next must return a new record each time.
//
// The records are written in bounded transactions (importBatchRecords
// records or importBatchBytes of bodies), keeping every id they carry
// except body ids, which are new here (a map from the source's id
// follows the stream). Every derived index is rebuilt as the records
// come (dump.go lists them); the evidence tree and indexes are built at
// each commit, as at every checkpoint. Once the stream has ended, the
// counters are set past the ids used and each body gets the count of
// the records naming it. A failed import leaves a partial store: start
// again from a new one. Nothing else should write the store meanwhile.
func (s *Store) Import(ctx context.Context, next func() (*DumpRecord, error)) (ImportStats, error) {
	im := &importer{s: s, bodies: map[uint64]uint64{}, refs: map[uint64]uint64{},
		stats: ImportStats{Records: map[DumpKind]int64{}}}
	// The deletions Open found are finished first: a mailbox deletion
	// the dump restores (bMboxDeleting) is resumed at the next Open,
	// never while this import's body references are uncounted (it
	// would drop bodies the import has not counted yet).
	select {
	case <-s.resumed:
	case <-ctx.Done():
		return im.stats, ctx.Err()
	}
	if err := s.view(refuseNotEmpty); err != nil {
		return im.stats, err
	}
	var batch []*DumpRecord
	var size int64
	for {
		r, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return im.stats, err
		}
		if err := r.Validate(); err != nil {
			return im.stats, err
		}
		batch = append(batch, r)
		if r.Body != nil {
			size += int64(len(r.Body.Data))
		}
		if len(batch) >= importBatchRecords || size >= int64(importBatchBytes) {
			if err := im.write(ctx, batch); err != nil {
				return im.stats, err
			}
			batch, size = nil, 0
		}
	}
	if err := im.write(ctx, batch); err != nil {
		return im.stats, err
	}
	return im.stats, im.finish(ctx)
}

// refuseNotEmpty fails unless the store holds nothing but what a new
// one starts with (its meta and default classes) and what is the file's
// own (incidents, backup files).
func refuseNotEmpty(tx *bolt.Tx) error {
	if k, _ := tx.Bucket(bAccounts).Cursor().First(); k != nil {
		return fmt.Errorf("store: import into %s: %w (it has accounts)", tx.DB().Path(), ErrStoreNotEmpty)
	}
	for _, name := range allBuckets {
		switch string(name) {
		case string(bMeta), string(bClasses), string(bIncidents), string(bBackupFiles):
			continue
		}
		if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
			return fmt.Errorf("store: import into %s: %w (it has %s records)", tx.DB().Path(), ErrStoreNotEmpty, name)
		}
	}
	if evidenceSize(tx) != 0 {
		return fmt.Errorf("store: import into %s: %w (it has an evidence log)", tx.DB().Path(), ErrStoreNotEmpty)
	}
	return nil
}

type importer struct {
	s      *Store
	bodies map[uint64]uint64 // source body id -> id here
	refs   map[uint64]uint64 // id here -> records naming it
	st     importState
	stats  ImportStats
}

// importState is what the import carries from one transaction to the
// next; a transaction works on a copy, kept once it commits.
type importState struct {
	classesCleared bool
	evidenceNext   uint64
	queueEntries   int64
	meta           MetaDump // the Last* fields raised to the ids seen
}

// importRun is one run of a batch's request function (which may run
// more than once: only a run that commits counts).
type importRun struct {
	im     *importer
	t      *txn
	st     importState
	bodies map[uint64]uint64
	refs   map[uint64]uint64
	mbox   [12]byte // the last mailbox found (account, id)
}

func (im *importer) write(ctx context.Context, batch []*DumpRecord) error {
	if len(batch) == 0 {
		return nil
	}
	var done *importRun
	err := im.s.update(ctx, func(t *txn) error {
		run := &importRun{im: im, t: t, st: im.st, bodies: map[uint64]uint64{}, refs: map[uint64]uint64{}}
		for _, r := range batch {
			if err := run.apply(r); err != nil {
				return fmt.Errorf("store: import: %s record: %w", r.Kind, err)
			}
		}
		if run.st.evidenceNext != im.st.evidenceNext {
			// The commit builds the tree and indexes of the new entries.
			if err := t.put(bMeta, metaEvidenceSize, u64(run.st.evidenceNext), 0); err != nil {
				return err
			}
		}
		done = run
		return nil
	})
	if err != nil {
		return err
	}
	im.st = done.st
	for k, v := range done.bodies {
		im.bodies[k] = v
	}
	for k, v := range done.refs {
		im.refs[k] += v
	}
	im.stats.Transactions++
	for _, r := range batch {
		im.stats.Records[r.Kind]++
		if r.Body != nil {
			im.stats.BodyBytes += int64(len(r.Body.Data))
		}
	}
	return nil
}

// body returns the id here of a source body id.
func (run *importRun) body(src uint64) (uint64, bool) {
	if id, ok := run.bodies[src]; ok {
		return id, true
	}
	id, ok := run.im.bodies[src]
	return id, ok
}

// use counts one more record naming a body (by its source id).
func (run *importRun) use(src uint64) (uint64, error) {
	id, ok := run.body(src)
	if !ok {
		return 0, fmt.Errorf("body %d is not in the dump before it: %w", src, ErrCorrupt)
	}
	run.refs[id]++
	return id, nil
}

func (run *importRun) apply(r *DumpRecord) error {
	t := run.t
	switch r.Kind {
	case DumpMeta:
		return run.meta(r.Meta)
	case DumpDomain:
		t.dirChanged = true
		return putJSON(t.tx.Bucket(bDomains), []byte(r.Domain.Name), r.Domain)
	case DumpClass:
		t.dirChanged = true
		if !run.st.classesCleared {
			if err := clearBucket(t.tx, bClasses); err != nil {
				return err
			}
			run.st.classesCleared = true
		}
		return putJSON(t.tx.Bucket(bClasses), []byte(r.Class.Name), r.Class)
	case DumpSender:
		t.dirChanged = true
		return putJSON(t.tx.Bucket(bSenders), []byte(r.Sender.Name), r.Sender)
	case DumpDKIMKey:
		return putJSON(t.tx.Bucket(bDKIM), dkimKey(r.DKIMKey.Domain, r.DKIMKey.Selector), r.DKIMKey)
	case DumpAccount:
		return run.account(r.Account)
	case DumpBody:
		return run.bodyRecord(r.Body)
	case DumpMailbox:
		return run.mailbox(r.Mailbox)
	case DumpMessage:
		return run.message(r.Message)
	case DumpVanished:
		return run.vanished(r.Vanished)
	case DumpAudit:
		return run.audit(r.Audit)
	case DumpLogin:
		return run.login(r.Login)
	case DumpConsent:
		c := r.Consent
		return t.tx.Bucket(bConsents).Put(consentKey(c.Account, c.RecordedNanos), bytes.Clone(c.CMS))
	case DumpAPIToken:
		return putJSON(t.tx.Bucket(bAPITokens), bytes.Clone(r.APIToken.Hash[:]), r.APIToken.Token)
	case DumpIdempotent:
		d := r.Idempotent
		return putJSON(t.tx.Bucket(bAPIIdem), idemKey(d.Token, d.Key), d.Result)
	case DumpQueue:
		return run.queue(r.Queue)
	case DumpBroadcast:
		return run.broadcast(r.Broadcast)
	case DumpEvidence:
		return run.evidence(r.Evidence)
	case DumpSignedHead:
		return putJSON(t.tx.Bucket(bEvidenceHeads), headKey(*r.SignedHead), r.SignedHead)
	case DumpLedger:
		return run.ledger(r.Ledger)
	case DumpLedgerRead:
		d := r.LedgerRead
		return t.tx.Bucket(bLedgerRead).Put(ledgerReadKey(d.Sender, d.MessageID, d.Recipient), u64(uint64(d.At.Unix())))
	case DumpOfficialCopy:
		return run.officialCopy(r.OfficialCopy)
	}
	return fmt.Errorf("unknown kind %q", r.Kind)
}

func clearBucket(tx *bolt.Tx, name []byte) error {
	b := tx.Bucket(name)
	var keys [][]byte
	_ = b.ForEach(func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (run *importRun) meta(m *MetaDump) error {
	meta := run.t.tx.Bucket(bMeta)
	uv := uint64(0)
	if m.UIDValidityNext > 0 {
		uv = uint64(m.UIDValidityNext) - 1
	}
	if err := meta.Put([]byte("uidvalidity"), u64(uv)); err != nil {
		return err
	}
	if !m.CreatedAt.IsZero() {
		if err := meta.Put([]byte("created"), u64(uint64(m.CreatedAt.Unix()))); err != nil {
			return err
		}
	}
	if m.ReceiptsMailed != nil {
		if err := meta.Put(metaReceiptsMailed, u64(*m.ReceiptsMailed)); err != nil {
			return err
		}
	}
	if m.LedgerHead != "" {
		if err := meta.Put([]byte("ledger_head"), []byte(m.LedgerHead)); err != nil {
			return err
		}
	}
	st := &run.st.meta
	st.LastAccountID = max(st.LastAccountID, m.LastAccountID)
	st.LastAuditSeq = max(st.LastAuditSeq, m.LastAuditSeq)
	st.LastQueueID = max(st.LastQueueID, m.LastQueueID)
	st.LastBroadcastID = max(st.LastBroadcastID, m.LastBroadcastID)
	st.LastLedgerSeq = max(st.LastLedgerSeq, m.LastLedgerSeq)
	return nil
}

// account writes an account and its indexes. A purged tombstone whose
// login was registered again (a sealed one keeps its record) leaves the
// address to the account registered after it, as CreateAccount does.
func (run *importRun) account(d *AccountDump) error {
	tx := run.t.tx
	a := d.Account
	if a.ID == 0 {
		return fmt.Errorf("account %s without an id: %w", a.Address(), ErrCorrupt)
	}
	if tx.Bucket(bAccounts).Get(acctKey(a.ID)) != nil {
		return fmt.Errorf("account %d twice: %w", a.ID, ErrCorrupt)
	}
	if err := tx.Bucket(bAcctState).Put(stateKey(string(a.State), a.ID), nil); err != nil {
		return err
	}
	key := addrKey(a.Login, a.Domain)
	addr, purged := tx.Bucket(bAcctAddr), tx.Bucket(bAcctPurged)
	if a.State == accounts.Purged {
		later := func(v []byte) bool { return len(v) == 8 && decodeU64(v) > a.ID }
		if !later(addr.Get(key)) && !later(purged.Get(key)) {
			if err := purged.Put(key, u64(a.ID)); err != nil {
				return err
			}
		}
	} else {
		if v := addr.Get(key); v != nil {
			return fmt.Errorf("accounts %d and %d both hold %s: %w", decodeU64(v), a.ID, a.Address(), ErrCorrupt)
		}
		if v := purged.Get(key); len(v) == 8 && decodeU64(v) < a.ID {
			if err := purged.Delete(key); err != nil {
				return err
			}
		}
		if err := addr.Put(key, u64(a.ID)); err != nil {
			return err
		}
		if err := tx.Bucket(bAcctLastUse).Put(lastUseKey(a.LastUseAt.Unix(), a.ID), nil); err != nil {
			return err
		}
	}
	if err := run.t.syncConsentIIN(nil, &a); err != nil {
		return err
	}
	if err := putJSON(tx.Bucket(bAccounts), acctKey(a.ID), a); err != nil {
		return err
	}
	if d.Usage != nil {
		if err := tx.Bucket(bMail).Put(usageKey(a.ID), encodeUsage(d.Usage)); err != nil {
			return err
		}
	}
	for _, name := range d.GoneSubscriptions {
		if err := tx.Bucket(bSubsGone).Put(mboxNameKey(a.ID, name), nil); err != nil {
			return err
		}
	}
	run.st.meta.LastAccountID = max(run.st.meta.LastAccountID, a.ID)
	return nil
}

// bodyRecord stores a body under a new id, with no reference yet
// (finish counts them).
func (run *importRun) bodyRecord(d *BodyDump) error {
	t := run.t
	if _, dup := run.body(d.ID); dup {
		return fmt.Errorf("body %d twice: %w", d.ID, ErrCorrupt)
	}
	if int64(len(d.Data)) != d.Size {
		return fmt.Errorf("body %d has %d bytes, its record says %d: %w", d.ID, len(d.Data), d.Size, ErrCorrupt)
	}
	hash := d.SHA256
	if hash != ([32]byte{}) || d.Shareable {
		sum := sha256.Sum256(d.Data)
		if hash != ([32]byte{}) && sum != hash {
			return fmt.Errorf("body %d does not match its SHA-256: %w", d.ID, ErrCorrupt)
		}
		hash = sum
	}
	id, err := t.nextSequence(bBodies)
	if err != nil {
		return err
	}
	if err := t.s.blobs.put(t, id, d.Data); err != nil {
		return err
	}
	if d.Shareable && t.tx.Bucket(bBodyHash).Get(hash[:]) == nil {
		if err := t.put(bBodyHash, bytes.Clone(hash[:]), u64(id), 0); err != nil {
			return err
		}
	}
	rec := &bodyRecord{Size: d.Size, Hash: hash, Structure: d.Structure}
	if err := t.put(bBodies, u64(id), encodeBody(rec), appendFill); err != nil {
		return err
	}
	run.bodies[d.ID] = id
	return nil
}

func (run *importRun) mailbox(d *MailboxDump) error {
	tx := run.t.tx
	mb := d.Mailbox
	if mb.ID == 0 || mb.ID == mboxRecordUID {
		return fmt.Errorf("mailbox %d/%q has a bad id %d: %w", d.Account, mb.Name, mb.ID, ErrCorrupt)
	}
	if tx.Bucket(bAccounts).Get(acctKey(d.Account)) == nil {
		return fmt.Errorf("mailbox %d/%s of an account not in the dump before it: %w", d.Account, mb.Name, ErrCorrupt)
	}
	key := mboxKey(d.Account, mb.ID)
	mail := tx.Bucket(bMail)
	if mail.Get(key) != nil {
		return fmt.Errorf("mailbox %d/%d twice: %w", d.Account, mb.ID, ErrCorrupt)
	}
	if err := mail.Put(key, encodeMailbox(&mb)); err != nil {
		return err
	}
	if mb.Deleting {
		// Its deletion is finished the next time the store is opened
		// (resumeDeletes).
		if err := tx.Bucket(bMboxDeleting).Put(key, nil); err != nil {
			return err
		}
	} else {
		names := tx.Bucket(bMboxNames)
		nk := mboxNameKey(d.Account, mb.Name)
		if names.Get(nk) != nil {
			return fmt.Errorf("account %d has two mailboxes named %q: %w", d.Account, mb.Name, ErrCorrupt)
		}
		if err := names.Put(nk, binary.BigEndian.AppendUint32(nil, mb.ID)); err != nil {
			return err
		}
	}
	if len(d.Keywords) > 0 {
		if len(d.Keywords) > 255 {
			return fmt.Errorf("mailbox %d/%s has %d keywords: %w", d.Account, mb.Name, len(d.Keywords), ErrCorrupt)
		}
		e := enc{b: make([]byte, 0, 1+len(d.Keywords)*12)}
		e.u8(uint8(len(d.Keywords)))
		for _, k := range d.Keywords {
			if len(k) > 255 {
				return fmt.Errorf("mailbox %d/%s: keyword of %d bytes: %w", d.Account, mb.Name, len(k), ErrCorrupt)
			}
			e.str8(k)
		}
		if err := tx.Bucket(bKeywords).Put(keywordsKey(d.Account, mb.ID), e.b); err != nil {
			return err
		}
	}
	return nil
}

// haveMailbox fails unless the mailbox's record is written.
func (run *importRun) haveMailbox(acct uint64, mbox uint32) error {
	var k [12]byte
	binary.BigEndian.PutUint64(k[:], acct)
	binary.BigEndian.PutUint32(k[8:], mbox)
	if k == run.mbox {
		return nil
	}
	if run.t.tx.Bucket(bMail).Get(mboxKey(acct, mbox)) == nil {
		return fmt.Errorf("mailbox %d/%d is not in the dump before its records: %w", acct, mbox, ErrCorrupt)
	}
	run.mbox = k
	return nil
}

func (run *importRun) message(d *MessageDump) error {
	if err := run.haveMailbox(d.Account, d.Mailbox); err != nil {
		return err
	}
	m := d.Message
	if m.UID == 0 || m.UID >= mboxRecordUID {
		return fmt.Errorf("message %d/%d has a bad UID %d: %w", d.Account, d.Mailbox, m.UID, ErrCorrupt)
	}
	id, err := run.use(m.Blob)
	if err != nil {
		return fmt.Errorf("message %d/%d/%d: %w", d.Account, d.Mailbox, m.UID, err)
	}
	m.Blob = id
	return run.t.tx.Bucket(bMail).Put(msgKey(d.Account, d.Mailbox, m.UID), encodeMessage(&m))
}

func (run *importRun) vanished(d *VanishedDump) error {
	if err := run.haveMailbox(d.Account, d.Mailbox); err != nil {
		return err
	}
	v := u64(d.Floor)
	if d.ModSeq != 0 {
		v = make([]byte, 12)
		binary.BigEndian.PutUint32(v, d.UID)
		binary.BigEndian.PutUint64(v[4:], uint64(d.At.Unix()))
	}
	return run.t.tx.Bucket(bVanished).Put(vanishedKey(d.Account, d.Mailbox, d.ModSeq), v)
}

func (run *importRun) audit(d *AuditDump) error {
	tx := run.t.tx
	if d.Seq == 0 {
		return fmt.Errorf("audit entry without a sequence number: %w", ErrCorrupt)
	}
	e := d.Entry
	e.Seq = d.Seq
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b := tx.Bucket(bAudit)
	b.FillPercent = appendFill
	if err := b.Put(u64(d.Seq), raw); err != nil {
		return err
	}
	if e.Account != "" {
		if err := tx.Bucket(bAuditAcct).Put(auditAcctKey(e.Account, d.Seq), nil); err != nil {
			return err
		}
	}
	run.st.meta.LastAuditSeq = max(run.st.meta.LastAuditSeq, d.Seq)
	return nil
}

func (run *importRun) login(d *LoginDump) error {
	tx := run.t.tx
	raw, err := json.Marshal(d.Record)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bLogins).Put(loginKey(d.Account, d.KeyNanos), raw); err != nil {
		return err
	}
	tk := make([]byte, 16)
	binary.BigEndian.PutUint64(tk, uint64(d.KeyNanos))
	binary.BigEndian.PutUint64(tk[8:], d.Account)
	return tx.Bucket(bLoginsTime).Put(tk, nil)
}

func (run *importRun) queue(d *QueueEntry) error {
	tx := run.t.tx
	e := *d
	if e.ID == 0 {
		return fmt.Errorf("queue entry without an id: %w", ErrCorrupt)
	}
	if tx.Bucket(bQueue).Get(u64(e.ID)) != nil {
		return fmt.Errorf("queue entry %d twice: %w", e.ID, ErrCorrupt)
	}
	id, err := run.use(e.Blob)
	if err != nil {
		return fmt.Errorf("queue entry %d: %w", e.ID, err)
	}
	e.Blob = id
	if err := putJSON(tx.Bucket(bQueue), u64(e.ID), &e); err != nil {
		return err
	}
	if !e.Held {
		if err := tx.Bucket(bQueueDue).Put(e.dueKey(e.NextAttempt), nil); err != nil {
			return err
		}
	}
	if e.Leased {
		if err := tx.Bucket(bQueueLease).Put(u64(e.ID), nil); err != nil {
			return err
		}
	}
	run.st.queueEntries++
	run.st.meta.LastQueueID = max(run.st.meta.LastQueueID, e.ID)
	return nil
}

// broadcast writes a broadcast. A running one holds its body; a
// finished one may name a body that is gone (its Hash says which it
// was): its Blob is then 0.
func (run *importRun) broadcast(d *Broadcast) error {
	b := *d
	if b.ID == 0 {
		return fmt.Errorf("broadcast without an id: %w", ErrCorrupt)
	}
	if !b.Done {
		id, err := run.use(b.Blob)
		if err != nil {
			return fmt.Errorf("broadcast %d: %w", b.ID, err)
		}
		b.Blob = id
	} else if id, ok := run.body(b.Blob); ok {
		b.Blob = id
	} else {
		b.Blob = 0
	}
	run.st.meta.LastBroadcastID = max(run.st.meta.LastBroadcastID, b.ID)
	return putJSON(run.t.tx.Bucket(bBroadcasts), u64(b.ID), &b)
}

// evidence appends an entry; entries come in index order from 0, since
// the tree is built from them in that order.
func (run *importRun) evidence(d *EvidenceDump) error {
	if d.Index != run.st.evidenceNext {
		return fmt.Errorf("evidence entry %d where %d comes next (entries are in index order): %w", d.Index, run.st.evidenceNext, ErrCorrupt)
	}
	if _, _, ok := entryKeys(d.Raw); !ok {
		return fmt.Errorf("evidence entry %d cannot be decoded: %w", d.Index, ErrCorrupt)
	}
	b := run.t.tx.Bucket(bEvidence)
	b.FillPercent = appendFill
	if err := b.Put(u64(d.Index), bytes.Clone(d.Raw)); err != nil {
		return err
	}
	run.st.evidenceNext++
	return nil
}

func (run *importRun) ledger(e *LedgerEntry) error {
	tx := run.t.tx
	if e.Seq == 0 {
		return fmt.Errorf("ledger entry without a sequence number: %w", ErrCorrupt)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bLedger).Put(u64(e.Seq), raw); err != nil {
		return err
	}
	k := binary.BigEndian.AppendUint64(append([]byte(NormalizeMessageID(e.MessageID)), 0), e.Seq)
	if err := tx.Bucket(bLedgerMsg).Put(k, nil); err != nil {
		return err
	}
	run.st.meta.LastLedgerSeq = max(run.st.meta.LastLedgerSeq, e.Seq)
	return nil
}

func (run *importRun) officialCopy(d *OfficialCopyDump) error {
	id, ok := run.body(d.Blob)
	if !ok {
		return fmt.Errorf("official copies of account %d name body %d, not in the dump before them: %w", d.Account, d.Blob, ErrCorrupt)
	}
	oc := officialCopy{Count: d.Count, MessageID: d.MessageID, Sender: d.Sender, Recipient: d.Recipient, SHA256: d.SHA256, Retrieved: d.Retrieved}
	return putJSON(run.t.tx.Bucket(bOfficial), officialKey(d.Account, id), oc)
}

// finish sets the counters past the ids used and writes each body's
// reference count, dropping the bodies nothing names.
func (im *importer) finish(ctx context.Context) error {
	m := im.st.meta
	err := im.s.update(ctx, func(t *txn) error {
		for _, c := range []struct {
			bucket []byte
			last   uint64
		}{{bAccounts, m.LastAccountID}, {bAudit, m.LastAuditSeq}, {bQueue, m.LastQueueID}, {bBroadcasts, m.LastBroadcastID}, {bLedger, m.LastLedgerSeq}} {
			if err := t.tx.Bucket(c.bucket).SetSequence(c.last); err != nil {
				return err
			}
		}
		return t.put(bMeta, metaQueueSize, u64(uint64(im.st.queueEntries)), 0)
	})
	if err != nil {
		return err
	}
	im.stats.Transactions++
	ids := make([]uint64, 0, len(im.bodies))
	for _, id := range im.bodies {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for len(ids) > 0 {
		n := min(len(ids), importRefsBatch)
		part := ids[:n]
		var dropped int64
		err := im.s.update(ctx, func(t *txn) error {
			dropped = 0
			bodies := t.tx.Bucket(bBodies)
			for _, id := range part {
				rec, err := decodeBody(bodies.Get(u64(id)))
				if err != nil {
					return fmt.Errorf("store: import: body %d: %w", id, err)
				}
				if rec.Refs = im.refs[id]; rec.Refs > 0 {
					if err := t.put(bBodies, u64(id), encodeBody(rec), 0); err != nil {
						return err
					}
					continue
				}
				dropped++
				if err := t.s.blobs.del(t, id); err != nil {
					return err
				}
				hashes := t.tx.Bucket(bBodyHash)
				if v := hashes.Get(rec.Hash[:]); v != nil && decodeU64(v) == id {
					if err := hashes.Delete(rec.Hash[:]); err != nil {
						return err
					}
				}
				if err := bodies.Delete(u64(id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		im.stats.Transactions++
		im.stats.UnreferencedBodies += dropped
		ids = ids[n:]
	}
	return nil
}
