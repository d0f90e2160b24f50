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

// BuilderAt resumes a Builder after size leaves, from the stored perfect
// subtrees of size's binary decomposition (largest first), as read
// returns them: a store that keeps its tree need not replay the log to
// append to it.
func BuilderAt(size uint64, read NodeReader) (*Builder, error) {
	b := &Builder{size: size}
	var off uint64
	for level := 63; level >= 0; level-- {
		if size&(1<<level) == 0 {
			continue
		}
		h, err := read(uint8(level), off>>level)
		if err != nil {
			return nil, err
		}
		b.stack = append(b.stack, builderNode{hash: h, level: uint8(level)})
		off += 1 << level
	}
	return b, nil
}
