package store

import (
	"errors"
	"fmt"
	"time"

	"abox/accounts"
	"abox/evidence"
)

// A dump is a store's whole content as a stream of backend-neutral
// records (issue 18: `abox migrate` moves an installation between the
// embedded bbolt store and PostgreSQL + S3, and back). A backend exports
// every record (Store.Export) and imports a stream into an empty store
// (Store.Import); DumpDigest condenses a stream per kind, so that the
// source's and the target's exports can be compared by counts and
// hashes.
//
// A record carries what has meaning: ids that clients and other records
// see (account ids, mailbox ids, UIDs, MODSEQs, UIDVALIDITY, audit
// sequence numbers, evidence indexes, queue and broadcast ids) are kept
// by the import. Body ids are the one exception: they name a body inside
// the stream only (a message, queue entry, broadcast or official-copy
// record names the body record before it by its source id), and the
// target gives bodies ids of its own.
//
// Order: records come in a dependency order: meta; the directory
// (domains, classes, senders, DKIM keys); accounts; bodies; per account
// its mailboxes, then their messages, then their expunges (vanished);
// then the rest (audit, logins, consents, API tokens, idempotency
// records, the outbound queue, broadcasts, the evidence log in index
// order, its signed heads, the notice ledger in sequence order, its
// first-read marks, official copies). An importer may rely on a record
// coming after what it names.
//
// What the bbolt buckets hold, and how each is moved (store/keys.go
// allBuckets):
//
//   - Moved as records: meta (the UIDVALIDITY counter, the receipts-mailed
//     cursor, the ledger head, the creation time and the last id each
//     counter handed out), domains, classes, senders, dkim_keys, accounts
//     (with their usage record from mail and their gone subscriptions
//     from mbox_subs_gone), bodies with their bytes (blobs or a segment),
//     the mailbox and message records of mail, mbox_keywords (in the
//     mailbox record), vanished (expunges and floors), audit, logins,
//     consents, api_tokens, api_idem, queue, broadcasts, evidence,
//     evidence_heads, ledger, ledger_read, official.
//   - Derived indexes, rebuilt by the import from the records: acct_addr,
//     acct_purged, acct_state, acct_lastuse, consent_iin (from accounts);
//     mbox_names and mbox_deleting (from mailboxes); body_hash (bodies
//     marked shareable) and every body's reference count (counted from
//     the messages, queue entries and running broadcasts naming it);
//     audit_acct (audit); ledger_msg (ledger); logins_time (logins);
//     queue_due, queue_lease and meta/queue_size (queue entries);
//     meta/evidence_size (the entries) and evidence_tree, evidence_msg,
//     evidence_acct with meta/evidence_built (built at each commit of
//     the import, as at every checkpoint: evidence_build.go).
//   - Pending work applied by the export instead of moved: queue_free
//     (body references of finished queue entries not yet released): a
//     body held by them alone is not exported.
//   - Specific to bbolt and never moved: blob_locs, segments, seg_blobs
//     (where segment bodies lie), incidents (events of this file's
//     write-ahead log), backup_files (files a backup copy carries),
//     and meta's schema, db_id, seg_header_from, last_segment and the
//     write-ahead log's keys.
//
// Times: a record keeps every time to the nanosecond and, for a
// message's INTERNALDATE, with its zone offset; DumpDigest compares the
// other times as instants.

// DumpKind names a record's kind.
type DumpKind string

// The kinds of record, in the order Export writes them.
const (
	DumpMeta         DumpKind = "meta"
	DumpDomain       DumpKind = "domain"
	DumpClass        DumpKind = "class"
	DumpSender       DumpKind = "sender"
	DumpDKIMKey      DumpKind = "dkim_key"
	DumpAccount      DumpKind = "account"
	DumpBody         DumpKind = "body"
	DumpMailbox      DumpKind = "mailbox"
	DumpMessage      DumpKind = "message"
	DumpVanished     DumpKind = "vanished"
	DumpAudit        DumpKind = "audit"
	DumpLogin        DumpKind = "login"
	DumpConsent      DumpKind = "consent"
	DumpAPIToken     DumpKind = "api_token"
	DumpIdempotent   DumpKind = "idempotent"
	DumpQueue        DumpKind = "queue"
	DumpBroadcast    DumpKind = "broadcast"
	DumpEvidence     DumpKind = "evidence"
	DumpSignedHead   DumpKind = "signed_head"
	DumpLedger       DumpKind = "ledger"
	DumpLedgerRead   DumpKind = "ledger_read"
	DumpOfficialCopy DumpKind = "official_copy"
)

// DumpKinds lists every kind in export order.
var DumpKinds = []DumpKind{
	DumpMeta, DumpDomain, DumpClass, DumpSender, DumpDKIMKey, DumpAccount, DumpBody,
	DumpMailbox, DumpMessage, DumpVanished, DumpAudit, DumpLogin, DumpConsent,
	DumpAPIToken, DumpIdempotent, DumpQueue, DumpBroadcast, DumpEvidence,
	DumpSignedHead, DumpLedger, DumpLedgerRead, DumpOfficialCopy,
}

// DumpRecord is one record of a dump: its Kind and exactly one payload,
// the field of that kind. A record handed to Export's callback belongs
// to the callback (nothing in it is reused); one returned to Import must
// not be changed by the caller afterwards.
type DumpRecord struct {
	Kind DumpKind `json:"kind"`

	Meta         *MetaDump            `json:"meta,omitempty"`
	Domain       *accounts.Domain     `json:"domain,omitempty"`
	Class        *accounts.Class      `json:"class,omitempty"`
	Sender       *accounts.Sender     `json:"sender,omitempty"`
	DKIMKey      *DKIMKey             `json:"dkim_key,omitempty"`
	Account      *AccountDump         `json:"account,omitempty"`
	Body         *BodyDump            `json:"body,omitempty"`
	Mailbox      *MailboxDump         `json:"mailbox,omitempty"`
	Message      *MessageDump         `json:"message,omitempty"`
	Vanished     *VanishedDump        `json:"vanished,omitempty"`
	Audit        *AuditDump           `json:"audit,omitempty"`
	Login        *LoginDump           `json:"login,omitempty"`
	Consent      *ConsentDump         `json:"consent,omitempty"`
	APIToken     *APITokenDump        `json:"api_token,omitempty"`
	Idempotent   *IdempotentDump      `json:"idempotent,omitempty"`
	Queue        *QueueEntry          `json:"queue,omitempty"`
	Broadcast    *Broadcast           `json:"broadcast,omitempty"`
	Evidence     *EvidenceDump        `json:"evidence,omitempty"`
	SignedHead   *evidence.SignedHead `json:"signed_head,omitempty"`
	Ledger       *LedgerEntry         `json:"ledger,omitempty"`
	LedgerRead   *LedgerReadDump      `json:"ledger_read,omitempty"`
	OfficialCopy *OfficialCopyDump    `json:"official_copy,omitempty"`
}

// MetaDump is the store-wide state that is no record of its own.
type MetaDump struct {
	// CreatedAt is when the installation's store was created.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// UIDValidityNext is the UIDVALIDITY the next mailbox created gets
	// (one store-wide counter: no two mailboxes ever share one).
	UIDValidityNext uint32 `json:"uidvalidity_next"`
	// ReceiptsMailed is the evidence log size up to which receipts were
	// mailed (nil: never).
	ReceiptsMailed *uint64 `json:"receipts_mailed,omitempty"`
	// LedgerHead is the hash of the notice ledger's last entry, which
	// VerifyLedger compares with the chain ("" without a ledger).
	LedgerHead string `json:"ledger_head,omitempty"`
	// The last id each counter handed out: ids are never handed out
	// twice, also those of records that are gone (a forgotten purged
	// account's id stays in its audit entries).
	LastAccountID   uint64 `json:"last_account_id"`
	LastAuditSeq    uint64 `json:"last_audit_seq"`
	LastQueueID     uint64 `json:"last_queue_id"`
	LastBroadcastID uint64 `json:"last_broadcast_id"`
	LastLedgerSeq   uint64 `json:"last_ledger_seq"`
}

// AccountDump is an account record (purged tombstones included) with
// its usage counters and its subscribed names that have no mailbox.
type AccountDump struct {
	Account accounts.Account `json:"account"`
	// Usage is nil for an account without a usage record (a purged
	// tombstone whose content is destroyed).
	Usage             *Usage   `json:"usage,omitempty"`
	GoneSubscriptions []string `json:"gone_subscriptions,omitempty"`
}

// BodyDump is one stored body with its bytes, one record per body.
type BodyDump struct {
	// ID is the body's id in the source: the later records that use the
	// body name it by this id.
	ID uint64 `json:"id"`
	// Shareable says the body is in the hash index: an identical APPEND,
	// import or broadcast shares it. SHA256 is its SHA-256 when the
	// source knows it (shareable bodies; zero otherwise: an importer
	// computes it if it needs it).
	Shareable bool     `json:"shareable,omitempty"`
	SHA256    [32]byte `json:"sha256"`
	Size      int64    `json:"size"`
	// Structure is the precomputed envelope and body structure.
	Structure []byte `json:"structure"`
	Data      []byte `json:"data"`
}

// MailboxDump is a mailbox record (counters, UIDNEXT, HIGHESTMODSEQ,
// RecentUID, Deleting) and the keywords it has held, in the order first
// seen.
type MailboxDump struct {
	Account  uint64   `json:"account"`
	Mailbox  Mailbox  `json:"mailbox"`
	Keywords []string `json:"keywords,omitempty"`
}

// MessageDump is a message record; Message.Blob is the source id of its
// body record.
type MessageDump struct {
	Account uint64  `json:"account"`
	Mailbox uint32  `json:"mailbox"`
	Message Message `json:"message"`
}

// VanishedDump is one expunge remembered for QRESYNC (ModSeq > 0: UID
// went at ModSeq, at At, seconds), or a mailbox's floor (ModSeq 0:
// every expunge above Floor is remembered).
type VanishedDump struct {
	Account uint64    `json:"account"`
	Mailbox uint32    `json:"mailbox"`
	ModSeq  uint64    `json:"modseq"`
	UID     uint32    `json:"uid,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Floor   uint64    `json:"floor,omitempty"`
}

// AuditDump is an audit entry with its sequence number.
type AuditDump struct {
	Seq   uint64     `json:"seq"`
	Entry AuditEntry `json:"entry"`
}

// LoginDump is one login record; KeyNanos is the exact time it is kept
// under (two logins in one nanosecond are a nanosecond apart there).
type LoginDump struct {
	Account  uint64      `json:"account"`
	KeyNanos int64       `json:"key_nanos"`
	Record   LoginRecord `json:"record"`
}

// ConsentDump is the signed CMS object of a consent an account gave,
// under its accounts.Consent.RecordedAt in Unix nanoseconds.
type ConsentDump struct {
	Account       uint64 `json:"account"`
	RecordedNanos int64  `json:"recorded_nanos"`
	CMS           []byte `json:"cms"`
}

// APITokenDump is a provisioning API token and the SHA-256 of its
// secret (the secret itself is never stored).
type APITokenDump struct {
	Hash  [32]byte `json:"hash"`
	Token APIToken `json:"token"`
}

// IdempotentDump is the answer a token's call with an Idempotency-Key
// gave.
type IdempotentDump struct {
	Token  string           `json:"token"`
	Key    string           `json:"key"`
	Result IdempotentResult `json:"result"`
}

// EvidenceDump is one evidence log entry: Raw is exactly the bytes that
// are hashed into its Merkle leaf (never re-encoded).
type EvidenceDump struct {
	Index uint64 `json:"index"`
	Raw   []byte `json:"raw"`
}

// LedgerReadDump is a first-read mark of the notice ledger: a recipient
// first read a sender's letter at At (seconds).
type LedgerReadDump struct {
	Sender    string    `json:"sender"`
	MessageID string    `json:"message_id"`
	Recipient string    `json:"recipient"`
	At        time.Time `json:"at"`
}

// OfficialCopyDump tracks one account's copies of one official letter
// (they share the body Blob, a source body id): how many there are,
// whose letter it is, and whether its first retrieval is in the evidence
// log.
type OfficialCopyDump struct {
	Account   uint64 `json:"account"`
	Blob      uint64 `json:"blob"`
	Count     int    `json:"count"`
	MessageID string `json:"message_id"`
	Sender    string `json:"sender"`
	Recipient string `json:"recipient"`
	SHA256    string `json:"sha256,omitempty"`
	Retrieved bool   `json:"retrieved,omitempty"`
}

// ErrStoreNotEmpty: Import was given a store that already holds data.
var ErrStoreNotEmpty = errors.New("the store is not empty: an import needs a new one")

// payload returns the record's payload for its kind and how many
// payload fields are set.
func (r *DumpRecord) payload() (any, int) {
	fields := []struct {
		kind DumpKind
		set  bool
		v    any
	}{
		{DumpMeta, r.Meta != nil, r.Meta},
		{DumpDomain, r.Domain != nil, r.Domain},
		{DumpClass, r.Class != nil, r.Class},
		{DumpSender, r.Sender != nil, r.Sender},
		{DumpDKIMKey, r.DKIMKey != nil, r.DKIMKey},
		{DumpAccount, r.Account != nil, r.Account},
		{DumpBody, r.Body != nil, r.Body},
		{DumpMailbox, r.Mailbox != nil, r.Mailbox},
		{DumpMessage, r.Message != nil, r.Message},
		{DumpVanished, r.Vanished != nil, r.Vanished},
		{DumpAudit, r.Audit != nil, r.Audit},
		{DumpLogin, r.Login != nil, r.Login},
		{DumpConsent, r.Consent != nil, r.Consent},
		{DumpAPIToken, r.APIToken != nil, r.APIToken},
		{DumpIdempotent, r.Idempotent != nil, r.Idempotent},
		{DumpQueue, r.Queue != nil, r.Queue},
		{DumpBroadcast, r.Broadcast != nil, r.Broadcast},
		{DumpEvidence, r.Evidence != nil, r.Evidence},
		{DumpSignedHead, r.SignedHead != nil, r.SignedHead},
		{DumpLedger, r.Ledger != nil, r.Ledger},
		{DumpLedgerRead, r.LedgerRead != nil, r.LedgerRead},
		{DumpOfficialCopy, r.OfficialCopy != nil, r.OfficialCopy},
	}
	var out any
	n := 0
	for _, f := range fields {
		if f.set {
			n++
			if f.kind == r.Kind {
				out = f.v
			}
		}
	}
	return out, n
}

// Validate checks that the record has exactly the payload of its kind.
func (r *DumpRecord) Validate() error {
	if r == nil {
		return errors.New("dump: nil record")
	}
	p, n := r.payload()
	switch {
	case p == nil:
		return fmt.Errorf("dump: a %q record without its payload", r.Kind)
	case n != 1:
		return fmt.Errorf("dump: a %q record with %d payloads", r.Kind, n)
	}
	return nil
}
