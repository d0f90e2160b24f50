// Command abox-verify-receipt checks an abox evidence receipt with the
// operator's public key alone: no abox database, no abox code, only Go's
// standard library, so a sender can read all of it (docs/EVIDENCE.md).
//
//	abox-verify-receipt -public-key operator.pub receipt.json
//
// It reads one receipt (or the "receipts" of `abox notice proof --json`
// or GET /v1/receipts/{message-id}), prints each verified event, and
// exits 1 when any receipt does not verify.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
)

type signedHead struct {
	TreeSize  uint64 `json:"tree_size"`
	Timestamp int64  `json:"timestamp"`
	RootHash  string `json:"root_hash"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

type receipt struct {
	Version        string          `json:"version"`
	Entry          string          `json:"entry"`
	Event          json.RawMessage `json:"event"`
	LeafIndex      uint64          `json:"leaf_index"`
	InclusionProof []string        `json:"inclusion_proof"`
	SignedHead     signedHead      `json:"signed_head"`
}

func main() {
	pubFile := flag.String("public-key", "", "the operator's evidence public key (PEM), obtained from the operator")
	flag.Parse()
	if *pubFile == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: abox-verify-receipt -public-key FILE RECEIPT.json")
		os.Exit(2)
	}
	pub, err := readPublicKey(*pubFile)
	if err != nil {
		fail(err)
	}
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	rs, err := parseReceipts(data)
	if err != nil {
		fail(err)
	}
	bad := 0
	for _, r := range rs {
		entry, err := verify(r, pub)
		if err != nil {
			fmt.Printf("NOT VERIFIED entry %d: %v\n", r.LeafIndex, err)
			bad++
			continue
		}
		fmt.Printf("verified entry %d in the log of %d entries signed at %d ms: %s\n", r.LeafIndex, r.SignedHead.TreeSize, r.SignedHead.Timestamp, entry)
	}
	if bad > 0 || len(rs) == 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "abox-verify-receipt:", err)
	os.Exit(1)
}

func parseReceipts(data []byte) ([]receipt, error) {
	var bundle struct {
		Receipts []receipt `json:"receipts"`
	}
	if err := json.Unmarshal(data, &bundle); err == nil && len(bundle.Receipts) > 0 {
		return bundle.Receipts, nil
	}
	var r receipt
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return []receipt{r}, nil
}

func readPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("the public key is not a PEM PUBLIC KEY")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("the public key is not Ed25519")
	}
	return pub, nil
}

// verify checks the head's signature, then the entry's inclusion under
// the head's root (RFC 9162 §2.1.3.2), and returns the entry.
func verify(r receipt, pub ed25519.PublicKey) ([]byte, error) {
	if r.Version != "abox-evidence-receipt-v1" {
		return nil, fmt.Errorf("unknown receipt format %q", r.Version)
	}
	entry, err := base64.StdEncoding.DecodeString(r.Entry)
	if err != nil {
		return nil, errors.New("entry is not base64")
	}
	if len(r.Event) > 0 && !sameJSON(entry, r.Event) {
		return nil, errors.New("the readable event differs from the signed entry")
	}
	h := r.SignedHead
	keyID := sha256.Sum256(pub)
	if h.KeyID != hex.EncodeToString(keyID[:]) {
		return nil, errors.New("the head was signed by another key")
	}
	root, err := hex.DecodeString(h.RootHash)
	if err != nil || len(root) != 32 {
		return nil, errors.New("the root hash is not 32 hex bytes")
	}
	msg := []byte("abox-evidence-tree-head-v1\n")
	msg = binary.BigEndian.AppendUint64(msg, h.TreeSize)
	msg = binary.BigEndian.AppendUint64(msg, uint64(h.Timestamp))
	msg = append(msg, root...)
	sig, err := hex.DecodeString(h.Signature)
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		return nil, errors.New("the tree head's signature does not verify")
	}
	leaf := sha256.Sum256(append([]byte{0}, entry...))
	if r.LeafIndex >= h.TreeSize {
		return nil, errors.New("the entry is beyond the signed tree")
	}
	fn, sn, cur := r.LeafIndex, h.TreeSize-1, leaf
	for _, s := range r.InclusionProof {
		p, err := hex.DecodeString(s)
		if err != nil || len(p) != 32 || sn == 0 {
			return nil, errors.New("malformed inclusion proof")
		}
		if fn&1 == 1 || fn == sn {
			cur = node(p, cur[:])
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			cur = node(cur[:], p)
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 || !bytes.Equal(cur[:], root) {
		return nil, errors.New("the inclusion proof does not lead to the signed root")
	}
	return entry, nil
}

func node(l, r []byte) [32]byte {
	return sha256.Sum256(append(append([]byte{1}, l...), r...))
}

func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
