package evidence

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"
)

// mth is RFC 9162 §2.1.1's definition, written as directly as possible,
// to check the stored-node shortcuts against.
func mth(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return EmptyRoot
	case 1:
		return leaves[0]
	}
	k := splitPoint(uint64(len(leaves)))
	return NodeHash(mth(leaves[:k]), mth(leaves[k:]))
}

// memTree keeps every perfect subtree, as the store does.
type memTree map[[2]uint64]Hash

func (t memTree) read(level uint8, index uint64) (Hash, error) {
	h, ok := t[[2]uint64{uint64(level), index}]
	if !ok {
		return Hash{}, fmt.Errorf("no node %d/%d", level, index)
	}
	return h, nil
}

func buildTree(n int) ([]Hash, memTree, *Builder) {
	leaves := make([]Hash, n)
	tree := memTree{}
	var b Builder
	for i := range leaves {
		leaves[i] = LeafHash(fmt.Appendf(nil, "entry %d", i))
		b.Add(leaves[i], func(level uint8, index uint64, h Hash) error {
			tree[[2]uint64{uint64(level), index}] = h
			return nil
		})
	}
	return leaves, tree, &b
}

func TestMerkleProofsAgainstDefinition(t *testing.T) {
	const max = 70
	leaves, tree, _ := buildTree(max)
	for n := uint64(1); n <= max; n++ {
		root, err := SubtreeRoot(tree.read, 0, n)
		if err != nil || root != mth(leaves[:n]) {
			t.Fatalf("root of %d: %v (err %v)", n, root, err)
		}
		var b Builder
		for _, l := range leaves[:n] {
			b.Add(l, nil)
		}
		if b.Root() != root {
			t.Fatalf("builder root of %d differs", n)
		}
		for m := uint64(0); m < n; m++ {
			p, err := InclusionProof(tree.read, m, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(leaves[m], m, n, p, root); err != nil {
				t.Fatalf("inclusion %d in %d: %v", m, n, err)
			}
			if m > 0 {
				if err := VerifyInclusion(leaves[m-1], m, n, p, root); !errors.Is(err, ErrProof) {
					t.Fatalf("inclusion %d in %d accepted the wrong leaf", m, n)
				}
			}
		}
		for m := uint64(1); m <= n; m++ {
			p, err := ConsistencyProof(tree.read, m, n)
			if err != nil {
				t.Fatal(err)
			}
			old := mth(leaves[:m])
			if err := VerifyConsistency(m, n, old, root, p); err != nil {
				t.Fatalf("consistency %d→%d: %v", m, n, err)
			}
			if m < n {
				bad := old
				bad[0] ^= 1
				if err := VerifyConsistency(m, n, bad, root, p); !errors.Is(err, ErrProof) {
					t.Fatalf("consistency %d→%d accepted a wrong old root", m, n)
				}
			}
		}
	}
}

func TestReceiptVerifies(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	entries := [][]byte{[]byte(`{"kind":"accepted"}`), []byte(`{"kind":"stored"}`), []byte(`{"kind":"read"}`)}
	tree := memTree{}
	var b Builder
	for _, e := range entries {
		b.Add(LeafHash(e), func(level uint8, index uint64, h Hash) error {
			tree[[2]uint64{uint64(level), index}] = h
			return nil
		})
	}
	head, err := Sign(priv, 3, time.Unix(1700000000, 0), b.Root())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := InclusionProof(tree.read, 1, 3)
	r := NewReceipt(entries[1], 1, p, head, pub)
	if _, err := r.Verify(pub); err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	cases := map[string]func(r *Receipt){
		"other entry":     func(r *Receipt) { r.Entry = "eyJraW5kIjoicmVhZCJ9" },
		"other index":     func(r *Receipt) { r.LeafIndex = 2 },
		"other size":      func(r *Receipt) { r.SignedHead.TreeSize = 4 },
		"other timestamp": func(r *Receipt) { r.SignedHead.Timestamp++ },
		"readable event":  func(r *Receipt) { r.Event = []byte(`{"kind":"read"}`) },
	}
	for name, change := range cases {
		c := r
		change(&c)
		if _, err := c.Verify(pub); err == nil {
			t.Errorf("%s: receipt still verifies", name)
		}
	}
	if _, err := r.Verify(other); err == nil {
		t.Error("a receipt verifies with another operator's key")
	}
}

// TestBuilderAt: a Builder resumed from the stored nodes at any size
// reaches the same roots as one that saw every leaf.
func TestBuilderAt(t *testing.T) {
	leaves, tree, _ := buildTree(300)
	for _, at := range []uint64{0, 1, 63, 64, 65, 128, 255, 256, 299} {
		b, err := BuilderAt(at, tree.read)
		if err != nil {
			t.Fatal(at, err)
		}
		for i := at; i < uint64(len(leaves)); i++ {
			if err := b.Add(leaves[i], nil); err != nil {
				t.Fatal(err)
			}
			if got, want := b.Root(), mth(leaves[:i+1]); got != want {
				t.Fatalf("resumed at %d, root after %d leaves differs", at, i+1)
			}
		}
	}
	if _, err := BuilderAt(5, memTree{}.read); err == nil {
		t.Fatal("resumed without the nodes it needs")
	}
}

func TestLeafHasherIsLeafHash(t *testing.T) {
	var l LeafHasher
	for _, entry := range [][]byte{nil, []byte("a"), []byte(`{"index":1}`), make([]byte, 1000)} {
		if got, want := l.Sum(entry), LeafHash(entry); got != want {
			t.Fatalf("LeafHasher.Sum(%q) = %x, LeafHash %x", entry, got, want)
		}
	}
}
