package evidence

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// SignedHead is a signed tree head: the operator's statement that the
// log had TreeSize entries with this root at this time (RFC 9162 §4.10
// in spirit; the signed bytes are HeadMessage's, documented in
// docs/EVIDENCE.md).
type SignedHead struct {
	TreeSize  uint64 `json:"tree_size"`
	Timestamp int64  `json:"timestamp"` // milliseconds since the Unix epoch, UTC
	RootHash  string `json:"root_hash"` // hex
	KeyID     string `json:"key_id"`    // hex SHA-256 of the raw public key
	Signature string `json:"signature"` // hex Ed25519 signature of HeadMessage
}

// headLabel makes a head's signature useless for any other purpose.
const headLabel = "abox-evidence-tree-head-v1\n"

// HeadMessage is what the operator key signs: the label, then the tree
// size and the timestamp as 8-byte big-endian integers, then the root.
func HeadMessage(size uint64, timestamp int64, root Hash) []byte {
	msg := make([]byte, 0, len(headLabel)+48)
	msg = append(msg, headLabel...)
	msg = binary.BigEndian.AppendUint64(msg, size)
	msg = binary.BigEndian.AppendUint64(msg, uint64(timestamp))
	return append(msg, root[:]...)
}

// KeyID names a public key: the hex SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Sign makes a signed head with signer, whose public key must be
// Ed25519. A crypto.Signer lets the key live in a file today and in a
// hardware module (PKCS#11) later without changing the format.
func Sign(signer crypto.Signer, size uint64, at time.Time, root Hash) (SignedHead, error) {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return SignedHead{}, errors.New("the evidence key must be Ed25519")
	}
	ts := at.UnixMilli()
	sig, err := signer.Sign(nil, HeadMessage(size, ts, root), crypto.Hash(0))
	if err != nil {
		return SignedHead{}, fmt.Errorf("signing the tree head: %w", err)
	}
	return SignedHead{TreeSize: size, Timestamp: ts, RootHash: hex.EncodeToString(root[:]),
		KeyID: KeyID(pub), Signature: hex.EncodeToString(sig)}, nil
}

// ErrSignature is returned for a head whose signature does not verify.
var ErrSignature = errors.New("signature does not verify")

// Root returns the head's root hash.
func (h SignedHead) Root() (Hash, error) {
	var r Hash
	b, err := hex.DecodeString(h.RootHash)
	if err != nil || len(b) != len(r) {
		return r, fmt.Errorf("tree head of size %d: root hash is not 32 hex bytes", h.TreeSize)
	}
	copy(r[:], b)
	return r, nil
}

// Verify checks the head's signature with pub.
func (h SignedHead) Verify(pub ed25519.PublicKey) error {
	root, err := h.Root()
	if err != nil {
		return err
	}
	if h.KeyID != KeyID(pub) {
		return fmt.Errorf("tree head of size %d was signed by key %.16s…, not this one: %w", h.TreeSize, h.KeyID, ErrSignature)
	}
	sig, err := hex.DecodeString(h.Signature)
	if err != nil || !ed25519.Verify(pub, HeadMessage(h.TreeSize, h.Timestamp, root), sig) {
		return fmt.Errorf("tree head of size %d: %w", h.TreeSize, ErrSignature)
	}
	return nil
}

// Time is the head's timestamp.
func (h SignedHead) Time() time.Time { return time.UnixMilli(h.Timestamp).UTC() }
