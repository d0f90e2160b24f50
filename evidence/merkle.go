package evidence

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// Hash is a SHA-256 value: a leaf, an inner node or a tree's root.
type Hash [HashSize]byte

// HashSize is the bytes of a Hash.
const HashSize = 32

// LeafHash is RFC 9162 §2.1.1's hash of one log entry: SHA-256(0x00 || entry).
func LeafHash(entry []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out Hash
	h.Sum(out[:0])
	return out
}

// LeafHasher computes leaf hashes without allocating (LeafHash does,
// twice per call), for hashing many entries in a row. The zero value is
// ready; it is not safe for concurrent use.
type LeafHasher struct{ buf []byte }

// Sum is LeafHash(entry).
func (l *LeafHasher) Sum(entry []byte) Hash {
	l.buf = append(append(l.buf[:0], 0), entry...)
	return sha256.Sum256(l.buf)
}

// NodeHash is RFC 9162 §2.1.1's inner node: SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// EmptyRoot is the root of the tree with no leaves (SHA-256 of nothing).
var EmptyRoot = Hash(sha256.Sum256(nil))

// NodeReader returns the root of the perfect subtree of 2^level leaves
// starting at leaf index<<level. A store keeps these as leaves arrive, so
// any root and any proof costs O(log n) reads.
type NodeReader func(level uint8, index uint64) (Hash, error)

// ErrProof is returned when a proof does not verify or cannot be made.
var ErrProof = errors.New("proof does not verify")

// splitPoint is RFC 9162's k: the largest power of two smaller than n (n > 1).
func splitPoint(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// SubtreeRoot is MTH(D[a:b]) for a range the RFC's recursion produces
// (a aligned to the largest power of two not above b-a).
func SubtreeRoot(read NodeReader, a, b uint64) (Hash, error) {
	n := b - a
	if n == 0 {
		return EmptyRoot, nil
	}
	if n&(n-1) == 0 && a%n == 0 {
		lvl := uint8(bits.TrailingZeros64(n))
		return read(lvl, a>>lvl)
	}
	k := splitPoint(n)
	l, err := SubtreeRoot(read, a, a+k)
	if err != nil {
		return Hash{}, err
	}
	r, err := SubtreeRoot(read, a+k, b)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(l, r), nil
}

// InclusionProof is RFC 9162 §2.1.3.1's PATH(m, D[n]): the sibling
// hashes from leaf m up to the root of the tree of size n.
func InclusionProof(read NodeReader, m, n uint64) ([]Hash, error) {
	if m >= n {
		return nil, fmt.Errorf("leaf %d is not in a tree of %d: %w", m, n, ErrProof)
	}
	return path(read, m, 0, n)
}

func path(read NodeReader, m, a, b uint64) ([]Hash, error) {
	if b-a == 1 {
		return nil, nil
	}
	k := splitPoint(b - a)
	var (
		rest    []Hash
		sibling Hash
		err     error
	)
	if m < a+k {
		rest, err = path(read, m, a, a+k)
		if err == nil {
			sibling, err = SubtreeRoot(read, a+k, b)
		}
	} else {
		rest, err = path(read, m, a+k, b)
		if err == nil {
			sibling, err = SubtreeRoot(read, a, a+k)
		}
	}
	return append(rest, sibling), err
}

// ConsistencyProof is RFC 9162 §2.1.4.1's PROOF(m, D[n]): it shows the
// tree of size m is a prefix of the tree of size n.
func ConsistencyProof(read NodeReader, m, n uint64) ([]Hash, error) {
	if m == 0 || m > n {
		return nil, fmt.Errorf("no consistency proof from %d to %d: %w", m, n, ErrProof)
	}
	return subproof(read, m, 0, n, true)
}

// subproof is SUBPROOF(m, D[a:b], whole) with m counted from a.
func subproof(read NodeReader, m, a, b uint64, whole bool) ([]Hash, error) {
	if m == b-a {
		if whole {
			return nil, nil
		}
		h, err := SubtreeRoot(read, a, b)
		return []Hash{h}, err
	}
	k := splitPoint(b - a)
	var (
		rest    []Hash
		sibling Hash
		err     error
	)
	if m <= k {
		rest, err = subproof(read, m, a, a+k, whole)
		if err == nil {
			sibling, err = SubtreeRoot(read, a+k, b)
		}
	} else {
		rest, err = subproof(read, m-k, a+k, b, false)
		if err == nil {
			sibling, err = SubtreeRoot(read, a, a+k)
		}
	}
	return append(rest, sibling), err
}

// VerifyInclusion is RFC 9162 §2.1.3.2: leaf (the leaf hash of entry
// index m) is in the tree of size n whose root is root.
func VerifyInclusion(leaf Hash, m, n uint64, proof []Hash, root Hash) error {
	if m >= n {
		return fmt.Errorf("leaf %d beyond tree size %d: %w", m, n, ErrProof)
	}
	fn, sn, r := m, n-1, leaf
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("inclusion proof too long: %w", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 || r != root {
		return fmt.Errorf("inclusion of leaf %d in tree of %d: %w", m, n, ErrProof)
	}
	return nil
}

// VerifyConsistency is RFC 9162 §2.1.4.2: the tree of size m with root
// oldRoot is a prefix of the tree of size n with root newRoot.
func VerifyConsistency(m, n uint64, oldRoot, newRoot Hash, proof []Hash) error {
	switch {
	case m > n:
		return fmt.Errorf("tree shrank from %d to %d: %w", m, n, ErrProof)
	case m == n:
		if len(proof) != 0 || oldRoot != newRoot {
			return fmt.Errorf("two different roots for tree size %d: %w", n, ErrProof)
		}
		return nil
	case m == 0:
		return nil // the empty tree is a prefix of every tree
	case len(proof) == 0:
		return fmt.Errorf("empty consistency proof from %d to %d: %w", m, n, ErrProof)
	}
	if m&(m-1) == 0 {
		proof = append([]Hash{oldRoot}, proof...)
	}
	fn, sn := m-1, n-1
	for fn&1 == 1 {
		fn, sn = fn>>1, sn>>1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return fmt.Errorf("consistency proof too long: %w", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			fr, sr = NodeHash(c, fr), NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn, sn = fn>>1, sn>>1
	}
	if fr != oldRoot || sr != newRoot || sn != 0 {
		return fmt.Errorf("tree of %d is not a prefix of tree of %d: %w", m, n, ErrProof)
	}
	return nil
}
