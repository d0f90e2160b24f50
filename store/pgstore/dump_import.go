package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// ImportStats counts what Import wrote.
type ImportStats = store.ImportStats

// importBatch bounds one import transaction: records, and bytes of
// bodies kept inline.
const (
	importBatchRecords = 2000
	importBatchBytes   = 32 << 20
)

// Import writes a dump (store/dump.go) into an empty store: every id a
// client or another record sees is kept (account and mailbox ids, UIDs,
// MODSEQs, UIDVALIDITY, audit sequence numbers, evidence positions,
// queue and broadcast ids); bodies get ids of their own, and the
// records naming them are mapped. Bodies over the inline limit go to
// the object store before the transaction that names them. The evidence
// log is placed by the builder, which writes each entry's bytes as they
// were. A failed import leaves a partial store: import again into a new
// database.
func (s *Store) Import(ctx context.Context, next func() (*store.DumpRecord, error)) (ImportStats, error) {
	im := &pgImporter{s: s, bodies: map[uint64]uint64{}, stats: ImportStats{Records: map[store.DumpKind]int64{}}}
	// A mailbox deletion the dump restores waits for a later Open, never
	// runs while the import's body references are uncounted.
	select {
	case <-s.resumed:
	case <-ctx.Done():
		return im.stats, ctx.Err()
	}
	if err := im.refuseNotEmpty(ctx); err != nil {
		return im.stats, err
	}
	var batch []*store.DumpRecord
	size := 0
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
			size += len(r.Body.Data)
		}
		if len(batch) >= importBatchRecords || size >= importBatchBytes {
			if err := im.write(ctx, batch); err != nil {
				return im.stats, err
			}
			batch, size = batch[:0], 0
		}
	}
	if err := im.write(ctx, batch); err != nil {
		return im.stats, err
	}
	if err := im.finish(ctx); err != nil {
		return im.stats, err
	}
	return im.stats, nil
}

type pgImporter struct {
	s      *Store
	bodies map[uint64]uint64 // source body id → ours
	meta   *store.MetaDump
	stats  ImportStats
	maxUV  uint32
	accts  []uint64
}

func (im *pgImporter) refuseNotEmpty(ctx context.Context) error {
	var what string
	err := im.s.pool.QueryRow(ctx, `SELECT CASE
		WHEN EXISTS (SELECT 1 FROM accounts) THEN 'accounts'
		WHEN EXISTS (SELECT 1 FROM domains) THEN 'domains'
		WHEN EXISTS (SELECT 1 FROM blobs) THEN 'bodies'
		WHEN EXISTS (SELECT 1 FROM audit) THEN 'audit entries'
		WHEN EXISTS (SELECT 1 FROM evidence) OR EXISTS (SELECT 1 FROM evidence_pending) THEN 'evidence'
		WHEN EXISTS (SELECT 1 FROM queue) THEN 'queue entries'
		ELSE '' END`).Scan(&what)
	if err != nil {
		return storageErr(err)
	}
	if what != "" {
		return fmt.Errorf("%w (it has %s)", store.ErrStoreNotEmpty, what)
	}
	return nil
}

// write imports one batch: bodies over the inline limit are uploaded
// first, then everything goes in one transaction.
func (im *pgImporter) write(ctx context.Context, batch []*store.DumpRecord) error {
	if len(batch) == 0 {
		return nil
	}
	prepared := map[*store.DumpRecord]*newBody{}
	for _, r := range batch {
		if r.Body == nil {
			continue
		}
		nb, err := im.s.prepareBody(ctx, r.Body.Data, r.Body.Structure, r.Body.Shareable)
		if err != nil {
			return err
		}
		prepared[r] = nb
	}
	return im.s.tx(ctx, func(tx pgx.Tx) error {
		for _, r := range batch {
			if err := im.one(ctx, tx, r, prepared[r]); err != nil {
				return fmt.Errorf("import: %s record: %w", r.Kind, err)
			}
			im.stats.Records[r.Kind]++
		}
		return nil
	})
}

func jsonArg(v any) ([]byte, error) { return json.Marshal(v) }

func (im *pgImporter) one(ctx context.Context, tx pgx.Tx, r *store.DumpRecord, nb *newBody) error {
	exec := func(q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}
	switch r.Kind {
	case store.DumpMeta:
		im.meta = r.Meta
		return nil
	case store.DumpDomain:
		raw, err := jsonArg(r.Domain)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO domains (name, data) VALUES ($1, $2)`, r.Domain.Name, raw)
	case store.DumpClass:
		raw, err := jsonArg(r.Class)
		if err != nil {
			return err
		}
		// The default classes are seeded at the first migration.
		return exec(`INSERT INTO classes (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data`, r.Class.Name, raw)
	case store.DumpSender:
		raw, err := jsonArg(r.Sender)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO senders (name, data) VALUES ($1, $2)`, r.Sender.Name, raw)
	case store.DumpDKIMKey:
		raw, err := jsonArg(r.DKIMKey)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO dkim_keys (domain, selector, data) VALUES ($1, $2, $3)`, r.DKIMKey.Domain, r.DKIMKey.Selector, raw)
	case store.DumpAccount:
		a := r.Account.Account
		if err := putAccount(ctx, tx, &a); err != nil {
			return err
		}
		im.accts = append(im.accts, a.ID)
		if a.State == "purged" {
			// A tombstone holds its address unless a later account
			// took it (finish decides).
			if err := exec(`UPDATE accounts SET address_held = false WHERE id = $1`, a.ID); err != nil {
				return err
			}
		}
		if u := r.Account.Usage; u != nil {
			if err := exec(`INSERT INTO usage (account, bytes, messages, day, received, sent) VALUES ($1, $2, $3, $4, $5, $6)`,
				a.ID, u.Bytes, u.Messages, u.Day, u.Received, u.Sent); err != nil {
				return err
			}
		}
		for _, name := range r.Account.GoneSubscriptions {
			if err := exec(`INSERT INTO subscriptions_gone (account, name) VALUES ($1, $2)`, a.ID, name); err != nil {
				return err
			}
		}
		return nil
	case store.DumpBody:
		id, err := nb.insert(ctx, tx, 0)
		if err != nil {
			return err
		}
		im.bodies[r.Body.ID] = id

		im.stats.BodyBytes += int64(len(r.Body.Data))
		return nil
	case store.DumpMailbox:
		d := r.Mailbox
		mb := d.Mailbox
		im.maxUV = max(im.maxUV, mb.UIDValidity)
		if err := exec(`INSERT INTO mailboxes (account, id, name, special_use, uid_validity, uid_next, messages, size, unseen,
				highest_modseq, subscribed, deleting, created_at, recent_uid)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			d.Account, int32(mb.ID), mb.Name, mb.SpecialUse, int64(mb.UIDValidity), int64(mb.UIDNext), int32(mb.Messages), mb.Size,
			int32(mb.Unseen), int64(mb.HighestModSeq), mb.Subscribed, mb.Deleting, mb.CreatedAt, int64(mb.RecentUID)); err != nil {
			return err
		}
		if err := exec(`INSERT INTO mailbox_ids (account, next) VALUES ($1, $2)
			ON CONFLICT (account) DO UPDATE SET next = greatest(mailbox_ids.next, EXCLUDED.next)`, d.Account, int32(mb.ID)+1); err != nil {
			return err
		}
		if len(d.Keywords) > 0 {
			return exec(`INSERT INTO mailbox_keywords (account, mailbox, keywords) VALUES ($1, $2, $3)`, d.Account, int32(mb.ID), d.Keywords)
		}
		return nil
	case store.DumpMessage:
		d := r.Message
		m := d.Message
		blob, ok := im.bodies[m.Blob]
		if !ok {
			return fmt.Errorf("message %d/%d/%d names body %d, which the dump did not bring before it", d.Account, d.Mailbox, m.UID, m.Blob)
		}
		_, off := m.InternalDate.Zone()
		return exec(`INSERT INTO messages (account, mailbox, uid, modseq, flags, seen, internal_date, internal_zone, added_at, size, blob)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			d.Account, int32(d.Mailbox), int64(m.UID), int64(m.ModSeq), flagsOrEmpty(m.Flags), m.Seen(),
			m.InternalDate, int16(off/60), m.AddedAt, m.Size, int64(blob))
	case store.DumpVanished:
		d := r.Vanished
		if d.ModSeq == 0 {
			return exec(`INSERT INTO vanished_floor (account, mailbox, floor) VALUES ($1, $2, $3)`, d.Account, int32(d.Mailbox), int64(d.Floor))
		}
		return exec(`INSERT INTO vanished (account, mailbox, uid, modseq, at) VALUES ($1, $2, $3, $4, $5)`,
			d.Account, int32(d.Mailbox), int64(d.UID), int64(d.ModSeq), d.At)
	case store.DumpAudit:
		e := r.Audit.Entry
		raw, err := jsonArg(e)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO audit (seq, at, account, account_id, data) VALUES ($1, $2, $3, $4, $5)`,
			int64(r.Audit.Seq), e.At, e.Account, e.AccountID, raw)
	case store.DumpLogin:
		raw, err := jsonArg(r.Login.Record)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO logins (account, at, data) VALUES ($1, $2, $3)`, r.Login.Account, r.Login.KeyNanos, raw)
	case store.DumpConsent:
		return exec(`INSERT INTO consent_cms (account, recorded, cms) VALUES ($1, $2, $3)`, r.Consent.Account, r.Consent.RecordedNanos, r.Consent.CMS)
	case store.DumpAPIToken:
		raw, err := jsonArg(r.APIToken.Token)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO api_tokens (hash, name, data) VALUES ($1, $2, $3)`, r.APIToken.Hash[:], r.APIToken.Token.Name, raw)
	case store.DumpIdempotent:
		raw, err := jsonArg(r.Idempotent.Result)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO api_idempotent (token, key, at, data) VALUES ($1, $2, $3, $4)`,
			r.Idempotent.Token, r.Idempotent.Key, r.Idempotent.Result.At, raw)
	case store.DumpQueue:
		e := *r.Queue
		blob, ok := im.bodies[e.Blob]
		if !ok {
			return fmt.Errorf("queue entry %d names body %d, which the dump did not bring before it", e.ID, e.Blob)
		}
		e.Blob = blob
		raw, err := jsonArg(&e)
		if err != nil {
			return err
		}
		if err := exec(`INSERT INTO queue (id, domain, account, blob, created_at, next_attempt, held, leased, data)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			e.ID, e.Domain, e.Account, int64(blob), queueTime(e.CreatedAt), queueTime(e.NextAttempt), e.Held, e.Leased, raw); err != nil {
			return err
		}
		return addQueueCount(ctx, tx, e.ID, 1)
	case store.DumpBroadcast:
		b := *r.Broadcast
		blob, ok := im.bodies[b.Blob]
		if !ok {
			if !b.Done {
				return fmt.Errorf("broadcast %d names body %d, which the dump did not bring before it", b.ID, b.Blob)
			}
			blob = 0 // a finished broadcast holds no body
		}
		b.Blob = blob
		raw, err := jsonArg(&b)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO broadcasts (id, source, sender, class, blob, done, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			b.ID, b.Source, b.Sender, b.Class, int64(blob), b.Done, raw)
	case store.DumpEvidence:
		return im.evidence(ctx, tx, r.Evidence)
	case store.DumpSignedHead:
		raw, err := jsonArg(r.SignedHead)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO evidence_heads (tree_size, ts, data) VALUES ($1, $2, $3)`,
			int64(r.SignedHead.TreeSize), int64(r.SignedHead.Timestamp), raw)
	case store.DumpLedger:
		raw, err := jsonArg(r.Ledger)
		if err != nil {
			return err
		}
		return exec(`INSERT INTO ledger (seq, message_id, data) VALUES ($1, $2, $3)`, int64(r.Ledger.Seq), store.NormalizeMessageID(r.Ledger.MessageID), raw)
	case store.DumpLedgerRead:
		d := r.LedgerRead
		return exec(`INSERT INTO ledger_reads (sender, message_id, recipient, at) VALUES ($1, $2, $3, $4)`, d.Sender, d.MessageID, d.Recipient, d.At)
	case store.DumpOfficialCopy:
		d := r.OfficialCopy
		blob, ok := im.bodies[d.Blob]
		if !ok {
			return fmt.Errorf("official copy of account %d names body %d, which the dump did not bring before it", d.Account, d.Blob)
		}
		return exec(`INSERT INTO official_copies (account, blob, count, message_id, sender, recipient, sha256, retrieved)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, d.Account, int64(blob), d.Count, d.MessageID, d.Sender, d.Recipient, d.SHA256, d.Retrieved)
	}
	return fmt.Errorf("unknown kind %q", r.Kind)
}

func flagsOrEmpty(f []string) []string {
	if f == nil {
		return []string{}
	}
	return f
}

// evidence queues an entry for the builder exactly as a delivery
// would (its bytes with index 0, in order), which then places it at
// the same position with the same bytes.
func (im *pgImporter) evidence(ctx context.Context, tx pgx.Tx, d *store.EvidenceDump) error {
	prefix := []byte(`{"index":` + strconv.FormatUint(d.Index, 10) + `,`)
	rest, ok := bytes.CutPrefix(d.Raw, prefix)
	if !ok {
		return fmt.Errorf("evidence entry %d does not begin with its index", d.Index)
	}
	pending := append([]byte(`{"index":0,`), rest...)
	var ev store.EvidenceEvent
	if err := json.Unmarshal(d.Raw, &ev); err != nil {
		return fmt.Errorf("evidence entry %d: %w", d.Index, store.ErrCorrupt)
	}
	_, err := tx.Exec(ctx, `INSERT INTO evidence_pending (seq, message_id, sender, account, entry) VALUES ($1, $2, $3, $4, $5)`,
		int64(d.Index)+1, ev.MessageID, ev.Sender, int64(ev.Account), pending)
	return err
}

// finish sets the counters past every id the source handed out, gives
// bodies their reference counts, lets the tombstones that still own
// their address hold it, and builds the evidence log.
func (im *pgImporter) finish(ctx context.Context) error {
	m := im.meta
	if m == nil {
		m = &store.MetaDump{}
	}
	err := im.s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		setAfter := func(seq string, last uint64, q string) {
			b.Queue(`SELECT setval('`+seq+`', greatest($1::bigint, (`+q+`), 1), greatest($1::bigint, (`+q+`)) > 0)`, int64(last))
		}
		setAfter("account_ids", m.LastAccountID, `SELECT coalesce(max(id), 0) FROM accounts`)
		setAfter("audit_seq", m.LastAuditSeq, `SELECT coalesce(max(seq), 0) FROM audit`)
		setAfter("queue_ids", m.LastQueueID, `SELECT coalesce(max(id), 0) FROM queue`)
		setAfter("broadcast_ids", m.LastBroadcastID, `SELECT coalesce(max(id), 0) FROM broadcasts`)
		setAfter("evidence_seq", 0, `SELECT coalesce(max(seq), 0) FROM evidence_pending`)
		uv := int64(m.UIDValidityNext) - 1
		if m.UIDValidityNext == 0 {
			uv = int64(im.maxUV)
		}
		if uv < 1 {
			uv = time.Now().Unix()
		}
		b.Queue(`SELECT setval('uidvalidity', $1)`, uv)
		b.Queue(`UPDATE blobs b SET refs = (SELECT count(*) FROM messages m WHERE m.blob = b.id)
			+ (SELECT count(*) FROM queue q WHERE q.blob = b.id)
			+ (SELECT count(*) FROM broadcasts c WHERE c.blob = b.id AND NOT c.done)`)
		b.Queue(`UPDATE accounts SET address_held = true WHERE id IN (
			SELECT DISTINCT ON (domain, login) id FROM accounts a WHERE state = 'purged'
				AND NOT EXISTS (SELECT 1 FROM accounts o WHERE o.domain = a.domain AND o.login = a.login AND o.address_held)
			ORDER BY domain, login, id DESC)`)
		var receipts *int64
		if m.ReceiptsMailed != nil {
			n := int64(*m.ReceiptsMailed)
			receipts = &n
		}
		b.Queue(`UPDATE evidence_state SET receipts_mailed = $1, ledger_head = $2`, receipts, m.LedgerHead)
		meta, _ := json.Marshal(map[string]any{"created_at": m.CreatedAt, "last_ledger_seq": m.LastLedgerSeq})
		b.Queue(`INSERT INTO abox_meta (key, value) VALUES ('installation', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, meta)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return err
	}
	_, err = im.s.build(ctx, true)
	return err
}
