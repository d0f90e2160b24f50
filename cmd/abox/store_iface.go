package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"abox/accounts"
	"abox/evidence"
	"abox/imapd"
	"abox/policy"
	"abox/store"
	"abox/store/pgstore"
)

// Store is what abox's operations, HTTP handlers and serving helpers ask
// of the store (issue 18: a second backend must implement it). It is
// policy's and imapd's interfaces plus what only the commands use, taken
// from the calls; *store.Store is the embedded one.
//
// *pgstore.Store is the distributed one (config_store.go opens it).
//
// What is about the bbolt file itself stays on *store.Store, taken
// explicitly: Open and Close (client.go, serve.go, restore.go), backup
// (BackupTo, BackupStream), the file check (Check: pages and segment
// files), the write-ahead log's incidents (AcknowledgeIncidents), and
// the writer's, file's and segments' metrics (WriterStats, FileSize,
// SegmentStats: serve passes the opened file to registerMetrics).
// Operations reach it through env.file.
type Store interface {
	policy.Store
	imapd.Store

	// Clock and stats.
	Now() time.Time
	QueueStats() (store.QueueStats, error)

	// The directory: domains, classes, senders, DKIM keys.
	AddDomain(ctx context.Context, name string, a store.Audit) error
	HasDomain(name string) (bool, error)
	RemoveDomain(ctx context.Context, name string, a store.Audit) error
	Class(name string) (accounts.Class, error)
	SetClass(ctx context.Context, name string, fn func(*accounts.Class) error, a store.Audit) (accounts.Class, error)
	AddSender(ctx context.Context, snd accounts.Sender, a store.Audit) error
	Senders() ([]accounts.Sender, error)
	SetSenderReceipts(ctx context.Context, name, address string, a store.Audit) error
	RemoveSender(ctx context.Context, name string, a store.Audit) error
	AddDKIMKey(ctx context.Context, k store.DKIMKey, a store.Audit) error

	// API tokens and idempotent requests.
	AddAPIToken(ctx context.Context, tok store.APIToken, hash [32]byte, a store.Audit) error
	APITokenByHash(hash [32]byte) (store.APIToken, bool, error)
	APITokens() ([]store.APIToken, error)
	RevokeAPIToken(ctx context.Context, name string, a store.Audit) error
	Idempotent(token, key string, notBefore time.Time) (store.IdempotentResult, bool, error)
	RecordIdempotent(ctx context.Context, token, key string, r store.IdempotentResult) error
	PruneIdempotent(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// The outbound queue, as the operator sees it.
	QueueList(f store.QueueFilter) ([]store.QueueEntry, error)
	QueueGet(id uint64) (store.QueueEntry, error)
	QueueChange(ctx context.Context, id uint64, act store.QueueAction, reason string, a store.Audit) (store.QueueEntry, error)
	QueueChangeAll(ctx context.Context, sel store.QueueSelect, act store.QueueAction, reason string, a store.Audit, account string) (int, error)

	// Audit, logins, consent, bodies by hash.
	ListAudit(f store.AuditFilter) ([]store.AuditEntry, error)
	Logins(acct uint64, limit int) ([]store.LoginRecord, error)
	ConsentCMS(id uint64, recordedNanos int64) ([]byte, error)
	RecordConsent(ctx context.Context, address string, id uint64, c *accounts.Consent, cms []byte, shareIIN bool, a store.Audit) (accounts.Account, error)
	BodyByHash(hash [32]byte) (uint64, error)

	// Official notices, the ledger and the evidence log.
	Notice(messageID, sender string) (store.Notice, error)
	VerifyLedger() (store.LedgerReport, error)
	EvidenceHead() (size uint64, root evidence.Hash, err error)
	AddSignedHead(ctx context.Context, h evidence.SignedHead) error
	SignedHeads() ([]evidence.SignedHead, error)
	VerifyEvidence(pub ed25519.PublicKey, extra []evidence.SignedHead) (store.EvidenceReport, error)
	InclusionProof(index, size uint64) (proof []evidence.Hash, err error)
	ConsistencyProof(m, n uint64) (proof []evidence.Hash, err error)
	EvidenceFor(messageID, sender string) ([]store.EvidenceEntry, error)
	EvidenceForAccount(acct, after uint64, limit int) ([]store.EvidenceEntry, uint64, error)
	EvidenceBetween(from, to uint64, fn func(store.EvidenceEntry) error) error
	ReceiptsMailed() (n uint64, ok bool, err error)
	SetReceiptsMailed(ctx context.Context, n uint64) error
}

var _ Store = (*store.Store)(nil)

var _ Store = (*pgstore.Store)(nil)

// errNoFile answers an operation on the bbolt file (backup, restore,
// check and its incidents) on the PostgreSQL backend, which has no such
// file: its data lives in the database and the bucket, whose own tools
// back them up and check them.
var errNoFile = errors.New("backup, restore and check work on the embedded bbolt file; on the PostgreSQL backend (store) use pg_dump or pg_basebackup (and amcheck) for the database and the object store's own tools for the bucket")

// file returns the embedded store behind e.store, for the operations
// that are about its file (backup, check, the write-ahead log's
// incidents); on the PostgreSQL backend, errNoFile.
func (e *env) file() (*store.Store, error) {
	if st, ok := e.store.(*store.Store); ok {
		return st, nil
	}
	return nil, errNoFile
}
