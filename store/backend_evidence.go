package store

import (
	"crypto/ed25519"

	"abox/evidence"
)

// Exported for another backend (store/pgstore) so that its evidence log
// is byte for byte the embedded one's: the same entry encoding, the same
// verification and the same report texts.

// EncodeEvidenceEvent returns e's entry bytes exactly as the embedded
// store writes them (the Merkle leaf is over these bytes).
func EncodeEvidenceEvent(e *EvidenceEvent) ([]byte, error) {
	return appendEvidenceJSON(make([]byte, 0, evidenceJSONSize(e)), e)
}

// EvidenceEntryIndex reads the index an entry says it has.
func EvidenceEntryIndex(raw []byte) (uint64, bool) { return entryIndex(raw) }

// FailEvidence marks rep failed at entry (nil: no entry in particular)
// and returns the error VerifyEvidence stops on (IgnoreEvidenceBad
// turns it into nil).
func FailEvidence(rep *EvidenceReport, entry *uint64, format string, args ...any) error {
	return rep.fail(entry, format, args...)
}

// IgnoreEvidenceBad is nil for the error FailEvidence returns, err
// otherwise.
func IgnoreEvidenceBad(err error) error { return ignoreBad(err) }

// MergeSignedHeads checks every head's signature (pub nil: none) and
// orders them by size without duplicates, as VerifyEvidence does.
func MergeSignedHeads(rep *EvidenceReport, pub ed25519.PublicKey, all []evidence.SignedHead) ([]evidence.SignedHead, error) {
	return mergeHeads(rep, pub, all)
}

// CheckSignedHead compares heads[i] with the root recomputed at its
// size and advances rep.SignedUpTo.
func CheckSignedHead(rep *EvidenceReport, heads []evidence.SignedHead, i int, root evidence.Hash) error {
	return checkHead(rep, heads, i, root)
}

// LedgerEntryHash is the hash a notice ledger entry's chain link must
// carry.
func LedgerEntryHash(e LedgerEntry) (string, error) { return entryHash(e) }
