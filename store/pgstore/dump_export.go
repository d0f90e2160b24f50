package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/evidence"
	"abox/store"
)

// Export hands fn every record of the store (store/dump.go says what a
// dump holds and in which order) from one REPEATABLE READ snapshot, so
// the records agree with each other while nodes keep serving. Pending
// evidence entries are placed in the log first (BuildEvidence), so the
// log moves whole. Bodies are read one at a time, from their row or the
// object store.
func (s *Store) Export(ctx context.Context, fn func(*store.DumpRecord) error) error {
	if _, err := s.build(ctx, true); err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return storageErr(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	x := &pgExporter{s: s, tx: tx, fn: fn}
	for _, step := range []func(context.Context) error{
		x.meta, x.directory, x.accounts, x.bodies, x.mail, x.audit, x.logins, x.consents,
		x.tokens, x.queue, x.broadcasts, x.evidence, x.ledger, x.official,
	} {
		if err := step(ctx); err != nil {
			return storageErr(err)
		}
	}
	return nil
}

type pgExporter struct {
	s  *Store
	tx pgx.Tx
	fn func(*store.DumpRecord) error
}

// each runs q and calls row for every row.
func (x *pgExporter) each(ctx context.Context, q string, row func(pgx.Rows) error, args ...any) error {
	rows, err := x.tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// lastValue is the last value a sequence handed out (0: none yet).
func lastValue(ctx context.Context, q querier, seq string) (uint64, error) {
	var v int64
	var called bool
	if err := q.QueryRow(ctx, `SELECT last_value, is_called FROM `+seq).Scan(&v, &called); err != nil {
		return 0, err
	}
	if !called {
		return 0, nil
	}
	return uint64(v), nil
}

func (x *pgExporter) meta(ctx context.Context) error {
	m := &store.MetaDump{}
	var created time.Time
	var receipts *int64
	if err := x.tx.QueryRow(ctx, `SELECT coalesce((SELECT (value->>'created_at')::timestamptz FROM abox_meta WHERE key = 'installation'),
		(SELECT applied_at FROM abox_schema WHERE version = 1)), receipts_mailed, ledger_head FROM evidence_state`).Scan(&created, &receipts, &m.LedgerHead); err != nil {
		return err
	}
	m.CreatedAt = created.UTC().Truncate(time.Second)
	if receipts != nil {
		n := uint64(*receipts)
		m.ReceiptsMailed = &n
	}
	uv, err := lastValue(ctx, x.tx, "uidvalidity")
	if err != nil {
		return err
	}
	m.UIDValidityNext = uint32(uv + 1)
	if uv+1 > 0xffffffff {
		m.UIDValidityNext = 1
	}
	for _, c := range []struct {
		seq string
		to  *uint64
	}{{"account_ids", &m.LastAccountID}, {"audit_seq", &m.LastAuditSeq}, {"queue_ids", &m.LastQueueID}, {"broadcast_ids", &m.LastBroadcastID}} {
		if *c.to, err = lastValue(ctx, x.tx, c.seq); err != nil {
			return err
		}
	}
	if err := x.tx.QueryRow(ctx, `SELECT greatest(coalesce(max(seq), 0), coalesce((SELECT (value->>'last_ledger_seq')::bigint FROM abox_meta WHERE key = 'installation'), 0)) FROM ledger`).Scan(&m.LastLedgerSeq); err != nil {
		return err
	}
	return x.fn(&store.DumpRecord{Kind: store.DumpMeta, Meta: m})
}

func jsonRows[T any](x *pgExporter, ctx context.Context, q string, wrap func(*T) *store.DumpRecord) error {
	return x.each(ctx, q, func(r pgx.Rows) error {
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return err
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("export: %w: %v", store.ErrCorrupt, err)
		}
		return x.fn(wrap(v))
	})
}

func (x *pgExporter) directory(ctx context.Context) error {
	if err := jsonRows(x, ctx, `SELECT data FROM domains ORDER BY name`, func(v *accounts.Domain) *store.DumpRecord {
		return &store.DumpRecord{Kind: store.DumpDomain, Domain: v}
	}); err != nil {
		return err
	}
	if err := jsonRows(x, ctx, `SELECT data FROM classes ORDER BY name`, func(v *accounts.Class) *store.DumpRecord {
		return &store.DumpRecord{Kind: store.DumpClass, Class: v}
	}); err != nil {
		return err
	}
	if err := jsonRows(x, ctx, `SELECT data FROM senders ORDER BY name`, func(v *accounts.Sender) *store.DumpRecord {
		return &store.DumpRecord{Kind: store.DumpSender, Sender: v}
	}); err != nil {
		return err
	}
	return jsonRows(x, ctx, `SELECT data FROM dkim_keys ORDER BY domain, selector`, func(v *store.DKIMKey) *store.DumpRecord {
		return &store.DumpRecord{Kind: store.DumpDKIMKey, DKIMKey: v}
	})
}

func (x *pgExporter) accounts(ctx context.Context) error {
	return x.each(ctx, `SELECT a.data, u.bytes, u.messages, u.day, u.received, u.sent,
			(SELECT array_agg(name ORDER BY name) FROM subscriptions_gone g WHERE g.account = a.id)
		FROM accounts a LEFT JOIN usage u ON u.account = a.id ORDER BY a.id`, func(r pgx.Rows) error {
		var raw []byte
		var bytes, msgs, recv, sent *int64
		var day *int32
		var gone []string
		if err := r.Scan(&raw, &bytes, &msgs, &day, &recv, &sent, &gone); err != nil {
			return err
		}
		d := &store.AccountDump{GoneSubscriptions: gone}
		if err := json.Unmarshal(raw, &d.Account); err != nil {
			return fmt.Errorf("export: account: %w", store.ErrCorrupt)
		}
		if bytes != nil {
			d.Usage = &store.Usage{Bytes: *bytes, Messages: *msgs, Day: *day, Received: *recv, Sent: *sent}
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpAccount, Account: d})
	})
}

// bodies exports every body some message, queue entry or running
// broadcast holds, in id order. Bodies in the object store are read
// one at a time (their rows are listed first, a page at a time).
func (x *pgExporter) bodies(ctx context.Context) error {
	var after int64
	for {
		type row struct {
			id        int64
			sha       []byte
			size      int64
			structure []byte
			body      []byte
			object    *string
		}
		var page []row
		err := x.each(ctx, `SELECT id, sha256, size, structure, body, object FROM blobs WHERE id > $1 AND refs > 0 ORDER BY id LIMIT 256`, func(r pgx.Rows) error {
			var b row
			if err := r.Scan(&b.id, &b.sha, &b.size, &b.structure, &b.body, &b.object); err != nil {
				return err
			}
			page = append(page, b)
			return nil
		}, after)
		if err != nil || len(page) == 0 {
			return err
		}
		for _, b := range page {
			d := &store.BodyDump{ID: uint64(b.id), Size: b.size, Structure: b.structure, Data: b.body}
			if b.sha != nil {
				d.Shareable = true
				copy(d.SHA256[:], b.sha)
			}
			if b.object != nil {
				if x.s.objects == nil {
					return ErrNoObjectStore
				}
				if d.Data, err = x.s.objects.get(ctx, *b.object); err != nil {
					return err
				}
			}
			if d.Data == nil {
				d.Data = []byte{}
			}
			if err := x.fn(&store.DumpRecord{Kind: store.DumpBody, Body: d}); err != nil {
				return err
			}
			after = b.id
		}
	}
}

// mail exports, account by account, the mailboxes, their messages and
// their expunges.
func (x *pgExporter) mail(ctx context.Context) error {
	var ids []int64
	if err := x.each(ctx, `SELECT DISTINCT account FROM mailboxes ORDER BY account`, func(r pgx.Rows) error {
		var id int64
		ids = append(ids, 0)
		if err := r.Scan(&id); err != nil {
			return err
		}
		ids[len(ids)-1] = id
		return nil
	}); err != nil {
		return err
	}
	for _, acct := range ids {
		var boxes []uint32
		if err := x.each(ctx, `SELECT `+mailboxColsDump+`, (SELECT keywords FROM mailbox_keywords k WHERE k.account = m.account AND k.mailbox = m.id)
			FROM mailboxes m WHERE account = $1 ORDER BY id`, func(r pgx.Rows) error {
			var mb store.Mailbox
			var id int32
			var uv, next, recent int64
			var kws []string
			if err := r.Scan(&id, &mb.Name, &mb.SpecialUse, &uv, &next, &mb.Messages, &mb.Size, &mb.Unseen,
				&mb.HighestModSeq, &mb.Subscribed, &mb.Deleting, &mb.CreatedAt, &recent, &kws); err != nil {
				return err
			}
			mb.ID, mb.UIDValidity, mb.UIDNext, mb.RecentUID = uint32(id), uint32(uv), uint32(next), uint32(recent)
			mb.CreatedAt = mb.CreatedAt.UTC()
			boxes = append(boxes, mb.ID)
			return x.fn(&store.DumpRecord{Kind: store.DumpMailbox, Mailbox: &store.MailboxDump{Account: uint64(acct), Mailbox: mb, Keywords: kws}})
		}, acct); err != nil {
			return err
		}
		for _, mbox := range boxes {
			if err := x.each(ctx, `SELECT uid, modseq, flags, internal_date, internal_zone, added_at, size, blob
				FROM messages WHERE account = $1 AND mailbox = $2 ORDER BY uid`, func(r pgx.Rows) error {
				var m store.Message
				var uid int64
				var zone int16
				var blob int64
				if err := r.Scan(&uid, &m.ModSeq, &m.Flags, &m.InternalDate, &zone, &m.AddedAt, &m.Size, &blob); err != nil {
					return err
				}
				m.UID, m.Blob = uint32(uid), uint64(blob)
				m.InternalDate = m.InternalDate.In(fixedZone(int(zone)))
				m.AddedAt = m.AddedAt.UTC()
				return x.fn(&store.DumpRecord{Kind: store.DumpMessage, Message: &store.MessageDump{Account: uint64(acct), Mailbox: mbox, Message: m}})
			}, acct, int32(mbox)); err != nil {
				return err
			}
		}
		if err := x.each(ctx, `SELECT mailbox, floor FROM vanished_floor WHERE account = $1 ORDER BY mailbox`, func(r pgx.Rows) error {
			var mbox int32
			var floor int64
			if err := r.Scan(&mbox, &floor); err != nil {
				return err
			}
			return x.fn(&store.DumpRecord{Kind: store.DumpVanished, Vanished: &store.VanishedDump{Account: uint64(acct), Mailbox: uint32(mbox), Floor: uint64(floor)}})
		}, acct); err != nil {
			return err
		}
		if err := x.each(ctx, `SELECT mailbox, uid, modseq, at FROM vanished WHERE account = $1 ORDER BY mailbox, modseq`, func(r pgx.Rows) error {
			var mbox int32
			var uid, modseq int64
			var at time.Time
			if err := r.Scan(&mbox, &uid, &modseq, &at); err != nil {
				return err
			}
			return x.fn(&store.DumpRecord{Kind: store.DumpVanished, Vanished: &store.VanishedDump{Account: uint64(acct), Mailbox: uint32(mbox),
				UID: uint32(uid), ModSeq: uint64(modseq), At: at.UTC()}})
		}, acct); err != nil {
			return err
		}
	}
	return nil
}

const mailboxColsDump = `id, name, special_use, uid_validity, uid_next, messages, size, unseen, highest_modseq, subscribed, deleting, created_at, recent_uid`

func (x *pgExporter) audit(ctx context.Context) error {
	return x.each(ctx, `SELECT seq, data FROM audit ORDER BY seq`, func(r pgx.Rows) error {
		var seq int64
		var raw []byte
		if err := r.Scan(&seq, &raw); err != nil {
			return err
		}
		d := &store.AuditDump{Seq: uint64(seq)}
		if err := json.Unmarshal(raw, &d.Entry); err != nil {
			return fmt.Errorf("export: audit %d: %w", seq, store.ErrCorrupt)
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpAudit, Audit: d})
	})
}

func (x *pgExporter) logins(ctx context.Context) error {
	return x.each(ctx, `SELECT account, at, data FROM logins ORDER BY account, at`, func(r pgx.Rows) error {
		d := &store.LoginDump{}
		var raw []byte
		if err := r.Scan(&d.Account, &d.KeyNanos, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &d.Record); err != nil {
			return fmt.Errorf("export: login: %w", store.ErrCorrupt)
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpLogin, Login: d})
	})
}

func (x *pgExporter) consents(ctx context.Context) error {
	return x.each(ctx, `SELECT account, recorded, cms FROM consent_cms ORDER BY account, recorded`, func(r pgx.Rows) error {
		d := &store.ConsentDump{}
		if err := r.Scan(&d.Account, &d.RecordedNanos, &d.CMS); err != nil {
			return err
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpConsent, Consent: d})
	})
}

func (x *pgExporter) tokens(ctx context.Context) error {
	if err := x.each(ctx, `SELECT hash, data FROM api_tokens ORDER BY name`, func(r pgx.Rows) error {
		d := &store.APITokenDump{}
		var hash, raw []byte
		if err := r.Scan(&hash, &raw); err != nil {
			return err
		}
		copy(d.Hash[:], hash)
		if err := json.Unmarshal(raw, &d.Token); err != nil {
			return fmt.Errorf("export: API token: %w", store.ErrCorrupt)
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpAPIToken, APIToken: d})
	}); err != nil {
		return err
	}
	return x.each(ctx, `SELECT token, key, data FROM api_idempotent ORDER BY token, key`, func(r pgx.Rows) error {
		d := &store.IdempotentDump{}
		var raw []byte
		if err := r.Scan(&d.Token, &d.Key, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &d.Result); err != nil {
			return fmt.Errorf("export: idempotent result: %w", store.ErrCorrupt)
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpIdempotent, Idempotent: d})
	})
}

// queue exports the entries; the JSON keeps the times to the
// nanosecond, the columns (which the queue's own reads trust) to the
// microsecond: the JSON's is taken when it still agrees.
func (x *pgExporter) queue(ctx context.Context) error {
	return x.each(ctx, `SELECT `+queueCols+`, blob FROM queue ORDER BY id`, func(r pgx.Rows) error {
		var raw []byte
		var id, blob uint64
		var next time.Time
		var held, leased bool
		if err := r.Scan(&raw, &id, &next, &held, &leased, &blob); err != nil {
			return err
		}
		var e store.QueueEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("export: queue entry %d: %w", id, store.ErrCorrupt)
		}
		if !queueTime(e.NextAttempt).Equal(next) {
			e.NextAttempt = next.UTC()
		}
		e.ID, e.Held, e.Leased, e.Blob = id, held, leased, blob
		if !e.Held {
			e.HeldReason = ""
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpQueue, Queue: &e})
	})
}

func (x *pgExporter) broadcasts(ctx context.Context) error {
	return x.each(ctx, `SELECT data, blob, done FROM broadcasts ORDER BY id`, func(r pgx.Rows) error {
		var raw []byte
		var blob uint64
		var done bool
		if err := r.Scan(&raw, &blob, &done); err != nil {
			return err
		}
		var b store.Broadcast
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("export: broadcast: %w", store.ErrCorrupt)
		}
		b.Blob = blob
		return x.fn(&store.DumpRecord{Kind: store.DumpBroadcast, Broadcast: &b})
	})
}

func (x *pgExporter) evidence(ctx context.Context) error {
	var pending bool
	if err := x.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM evidence_pending)`).Scan(&pending); err != nil {
		return err
	}
	if pending {
		// Committed after the build above: a node is still writing.
		return errors.New("export: evidence entries were written during the export; stop the nodes (or try again)")
	}
	if err := x.each(ctx, `SELECT position, entry FROM evidence ORDER BY position`, func(r pgx.Rows) error {
		d := &store.EvidenceDump{}
		if err := r.Scan(&d.Index, &d.Raw); err != nil {
			return err
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpEvidence, Evidence: d})
	}); err != nil {
		return err
	}
	return jsonRows(x, ctx, `SELECT data FROM evidence_heads ORDER BY tree_size, ts`, func(v *evidence.SignedHead) *store.DumpRecord {
		return &store.DumpRecord{Kind: store.DumpSignedHead, SignedHead: v}
	})
}

func (x *pgExporter) ledger(ctx context.Context) error {
	if err := jsonRows(x, ctx, `SELECT data FROM ledger ORDER BY seq`, func(v *store.LedgerEntry) *store.DumpRecord {
		return &store.DumpRecord{Kind: store.DumpLedger, Ledger: v}
	}); err != nil {
		return err
	}
	return x.each(ctx, `SELECT sender, message_id, recipient, at FROM ledger_reads ORDER BY sender, message_id, recipient`, func(r pgx.Rows) error {
		d := &store.LedgerReadDump{}
		if err := r.Scan(&d.Sender, &d.MessageID, &d.Recipient, &d.At); err != nil {
			return err
		}
		d.At = d.At.UTC()
		return x.fn(&store.DumpRecord{Kind: store.DumpLedgerRead, LedgerRead: d})
	})
}

func (x *pgExporter) official(ctx context.Context) error {
	return x.each(ctx, `SELECT account, blob, count, message_id, sender, recipient, sha256, retrieved FROM official_copies ORDER BY account, blob`, func(r pgx.Rows) error {
		d := &store.OfficialCopyDump{}
		if err := r.Scan(&d.Account, &d.Blob, &d.Count, &d.MessageID, &d.Sender, &d.Recipient, &d.SHA256, &d.Retrieved); err != nil {
			return err
		}
		return x.fn(&store.DumpRecord{Kind: store.DumpOfficialCopy, OfficialCopy: d})
	})
}
