// Package evidence is the arithmetic of abox's evidence log, with no
// storage of its own: the Merkle tree hashing of RFC 9162 §2.1 (leaf and
// node hashes, inclusion and consistency proofs and their verification),
// signed tree heads made with the operator's key, and the receipt a
// trusted sender keeps.
//
// It imports the standard library only, so that what it verifies can be
// checked by anyone with the operator's public key. It never opens a
// file of the store and never reads the clock: callers pass times in.
package evidence
