package evidence

// Builder computes a tree's root leaf by leaf in O(log n) memory, the way
// a verifier replays a whole log without trusting any stored node.
type Builder struct {
	stack []builderNode // perfect subtrees, largest first
	size  uint64
}

type builderNode struct {
	hash  Hash
	level uint8
}

// Completed is called by Add for every perfect subtree it completes,
// leaves included, so a verifier can compare it with the stored node.
type Completed func(level uint8, index uint64, h Hash) error

// Add appends one leaf hash.
func (b *Builder) Add(leaf Hash, done Completed) error {
	idx := b.size
	b.size++
	node := builderNode{hash: leaf}
	if done != nil {
		if err := done(0, idx, leaf); err != nil {
			return err
		}
	}
	for len(b.stack) > 0 && b.stack[len(b.stack)-1].level == node.level {
		left := b.stack[len(b.stack)-1]
		b.stack = b.stack[:len(b.stack)-1]
		node = builderNode{hash: NodeHash(left.hash, node.hash), level: node.level + 1}
		idx >>= 1
		if done != nil {
			if err := done(node.level, idx, node.hash); err != nil {
				return err
			}
		}
	}
	b.stack = append(b.stack, node)
	return nil
}

// Size is the number of leaves added.
func (b *Builder) Size() uint64 { return b.size }

// Root is MTH of the leaves added so far (RFC 9162 §2.1.1).
func (b *Builder) Root() Hash {
	if len(b.stack) == 0 {
		return EmptyRoot
	}
	r := b.stack[len(b.stack)-1].hash
	for i := len(b.stack) - 2; i >= 0; i-- {
		r = NodeHash(b.stack[i].hash, r)
	}
	return r
}
