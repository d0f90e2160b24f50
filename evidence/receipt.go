package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// ReceiptVersion names the receipt format of docs/EVIDENCE.md.
const ReceiptVersion = "abox-evidence-receipt-v1"

// Receipt is what a trusted sender keeps for one evidence event: the
// event's exact bytes, its place in the log, the inclusion proof, and the
// signed tree head the proof leads to. With the operator's public key it
// proves the event was in the log the operator signed.
type Receipt struct {
	Version string `json:"version"`
	// Entry is the event exactly as logged (base64 of its JSON bytes);
	// Event is the same JSON, for people. Only Entry is hashed.
	Entry          string          `json:"entry"`
	Event          json.RawMessage `json:"event"`
	LeafIndex      uint64          `json:"leaf_index"`
	InclusionProof []string        `json:"inclusion_proof"` // hex hashes, leaf to root
	SignedHead     SignedHead      `json:"signed_head"`
	PublicKey      string          `json:"public_key"` // PEM of the key that signed the head
}

// NewReceipt builds a receipt for one entry.
func NewReceipt(entry []byte, index uint64, proof []Hash, head SignedHead, pub ed25519.PublicKey) Receipt {
	p := make([]string, len(proof))
	for i, h := range proof {
		p[i] = hex.EncodeToString(h[:])
	}
	return Receipt{Version: ReceiptVersion, Entry: base64.StdEncoding.EncodeToString(entry),
		Event: json.RawMessage(entry), LeafIndex: index, InclusionProof: p,
		SignedHead: head, PublicKey: string(MarshalPublicKey(pub))}
}

// Verify checks the receipt against the operator's public key pub (which
// the sender got from the operator, not from the receipt) and returns
// the entry's bytes.
func (r Receipt) Verify(pub ed25519.PublicKey) ([]byte, error) {
	if r.Version != ReceiptVersion {
		return nil, fmt.Errorf("receipt format %q is not %q", r.Version, ReceiptVersion)
	}
	entry, err := base64.StdEncoding.DecodeString(r.Entry)
	if err != nil {
		return nil, fmt.Errorf("receipt entry is not base64: %w", err)
	}
	if len(r.Event) > 0 && !sameJSON(entry, r.Event) {
		return nil, fmt.Errorf("the receipt's readable event differs from its signed entry: %w", ErrProof)
	}
	if err := r.SignedHead.Verify(pub); err != nil {
		return nil, err
	}
	root, err := r.SignedHead.Root()
	if err != nil {
		return nil, err
	}
	proof := make([]Hash, len(r.InclusionProof))
	for i, s := range r.InclusionProof {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("inclusion proof hash %d is not 32 hex bytes: %w", i, ErrProof)
		}
		copy(proof[i][:], b)
	}
	if err := VerifyInclusion(LeafHash(entry), r.LeafIndex, r.SignedHead.TreeSize, proof, root); err != nil {
		return nil, err
	}
	return entry, nil
}

func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
