package pgstore

// Methods of area evidence still to write; each goes from here to its own
// file as it is implemented, and this file goes when it is empty.

import (
	"context"
	"crypto/ed25519"

	"abox/evidence"
	"abox/store"
)

// RecordRefusals is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RecordRefusals(ctx context.Context, o *store.OfficialLetter) (err error) {
	err = errUnimplemented
	return
}

// HasRetrievalRecord is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) HasRetrievalRecord(acct, blob uint64, how string) (r0 bool) {
	return
}

// RecordRetrieval is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RecordRetrieval(ctx context.Context, acct, blob uint64, ip, how string) (r0 bool, err error) {
	err = errUnimplemented
	return
}

// Notice is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Notice(messageID, sender string) (r0 store.Notice, err error) {
	err = errUnimplemented
	return
}

// VerifyLedger is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) VerifyLedger() (r0 store.LedgerReport, err error) {
	err = errUnimplemented
	return
}

// EvidenceHead is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) EvidenceHead() (r0 uint64, r1 evidence.Hash, err error) {
	err = errUnimplemented
	return
}

// AddSignedHead is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) AddSignedHead(ctx context.Context, h evidence.SignedHead) (err error) {
	err = errUnimplemented
	return
}

// SignedHeads is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SignedHeads() (r0 []evidence.SignedHead, err error) {
	err = errUnimplemented
	return
}

// VerifyEvidence is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) VerifyEvidence(pub ed25519.PublicKey, extra []evidence.SignedHead) (r0 store.EvidenceReport, err error) {
	err = errUnimplemented
	return
}

// InclusionProof is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) InclusionProof(index, size uint64) (r0 []evidence.Hash, err error) {
	err = errUnimplemented
	return
}

// ConsistencyProof is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ConsistencyProof(m, n uint64) (r0 []evidence.Hash, err error) {
	err = errUnimplemented
	return
}

// EvidenceFor is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) EvidenceFor(messageID, sender string) (r0 []store.EvidenceEntry, err error) {
	err = errUnimplemented
	return
}

// EvidenceForAccount is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) EvidenceForAccount(acct, after uint64, limit int) (r0 []store.EvidenceEntry, r1 uint64, err error) {
	err = errUnimplemented
	return
}

// EvidenceBetween is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) EvidenceBetween(from, to uint64, fn func(store.EvidenceEntry) error) (err error) {
	err = errUnimplemented
	return
}

// ReceiptsMailed is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ReceiptsMailed() (r0 uint64, r1 bool, err error) {
	err = errUnimplemented
	return
}

// SetReceiptsMailed is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SetReceiptsMailed(ctx context.Context, n uint64) (err error) {
	err = errUnimplemented
	return
}
