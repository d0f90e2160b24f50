package imapd

import (
	"bufio"
	"errors"
	"io"
)

// inflater decodes the client's half of a COMPRESS=DEFLATE connection:
// a raw DEFLATE stream (RFC 1951) that never ends while the session
// lasts. compress/flate's reader is not used because it hands out what
// it decoded only at a stored block (Z_SYNC_FLUSH) or when its window
// fills: a client that flushes with Z_PARTIAL_FLUSH, as isync/mbsync
// does, ends a command with an empty fixed block, and the command would
// wait in the window until the client's next one. This decoder returns
// what it has whenever the next symbol is not yet complete in what the
// connection delivered, so a command is read as soon as its bytes came.
//
// Its history window grows with what the client sent, up to the 32 KiB
// RFC 1951 lets a back-reference reach: a session that sent a few
// commands holds a few KiB.
type inflater struct {
	src  *bufio.Reader
	bits uint64 // unread input bits, least significant first
	nb   uint   // how many
	hist []byte // the last output bytes, up to maxDist (a ring once full)
	hpos int    // next write position once hist is full
	err  error

	state   int // where the decoder is between two Reads
	final   bool
	stored  int // bytes left in the current stored block
	copyLen int // a back-reference being copied
	copyDst int
	lit     huffman
	dist    huffman
	litTab  *huffman // the current block's codes (fixed or lit/dist)
	distTab *huffman
}

const (
	inflBlockStart = iota
	inflStored
	inflHuffman
	inflDone
)

const maxDist = 32 << 10

var errCorrupt = errors.New("deflate: corrupt input")

// huffman is a canonical Huffman code (RFC 1951 §3.2.2) as puff.c keeps
// it: the number of codes of each length and the symbols in code order.
type huffman struct {
	count  [16]uint16
	symbol [288]uint16
}

// build makes the code from symbol code lengths. An incomplete code is
// accepted only for the one-distance-code case RFC 1951 §3.2.7 allows.
func (h *huffman) build(lengths []uint8) error {
	h.count = [16]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	if int(h.count[0]) == len(lengths) {
		return nil // no codes: any use is an error
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return errCorrupt // over-subscribed
		}
	}
	var offs [16]uint16
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	return nil
}

// decode reads one symbol from the low nb bits of b: the symbol and the
// bits it took, or used == 0 when b does not hold a whole code yet.
func (h *huffman) decode(b uint64, nb uint) (sym int, used uint, err error) {
	code, first, index := 0, 0, 0
	for l := uint(1); l < 16; l++ {
		if l > nb {
			return 0, 0, nil
		}
		code |= int(b>>(l-1)) & 1
		count := int(h.count[l])
		if code-count < first {
			return int(h.symbol[index+code-first]), l, nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, 0, errCorrupt
}

var fixedLit, fixedDist huffman

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.build(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist.build(d[:])
}

// RFC 1951 §3.2.5: the base values and extra bits of length and
// distance codes.
var (
	lenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

func newInflater(src *bufio.Reader) *inflater { return &inflater{src: src} }

// fillBuffered takes input bytes that already arrived, never waiting.
func (f *inflater) fillBuffered() {
	for f.nb <= 56 && f.src.Buffered() > 0 {
		c, _ := f.src.ReadByte()
		f.bits |= uint64(c) << f.nb
		f.nb += 8
	}
}

// need waits until n bits are there.
func (f *inflater) need(n uint) error {
	for f.nb < n {
		c, err := f.src.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		f.bits |= uint64(c) << f.nb
		f.nb += 8
	}
	return nil
}

// take consumes n bits (they are there).
func (f *inflater) take(n uint) int {
	v := int(f.bits & (1<<n - 1))
	f.bits >>= n
	f.nb -= n
	return v
}

// Read returns decoded bytes: at least one, and no more than what the
// input that arrived so far holds once one was found.
func (f *inflater) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for n < len(p) {
		var err error
		var wait bool
		switch f.state {
		case inflBlockStart:
			if n > 0 {
				return n, nil // a block boundary: a flush point
			}
			err = f.blockHeader()
		case inflStored:
			n, wait, err = f.storedBytes(p, n)
		case inflHuffman:
			n, wait, err = f.symbols(p, n)
		case inflDone:
			err = io.EOF
		}
		if err != nil {
			f.err = err
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if wait && n > 0 {
			return n, nil
		}
	}
	return n, nil
}

// blockHeader reads a block's header (RFC 1951 §3.2.3), waiting for it.
func (f *inflater) blockHeader() error {
	if err := f.need(3); err != nil {
		return err
	}
	f.final = f.take(1) == 1
	switch f.take(2) {
	case 0:
		f.take(f.nb % 8) // to the byte boundary
		if err := f.need(32); err != nil {
			return err
		}
		size, inv := f.take(16), f.take(16)
		if size != ^inv&0xffff {
			return errCorrupt
		}
		f.stored, f.state = size, inflStored
		if size == 0 {
			f.endBlock()
		}
		return nil
	case 1:
		f.litTab, f.distTab = &fixedLit, &fixedDist
	case 2:
		if err := f.dynamicCodes(); err != nil {
			return err
		}
		f.litTab, f.distTab = &f.lit, &f.dist
	default:
		return errCorrupt
	}
	f.state = inflHuffman
	return nil
}

func (f *inflater) endBlock() {
	f.state = inflBlockStart
	if f.final {
		f.state = inflDone
	}
}

// dynamicCodes reads a dynamic block's code lengths (RFC 1951 §3.2.7).
func (f *inflater) dynamicCodes() error {
	if err := f.need(14); err != nil {
		return err
	}
	nlen, ndist, ncode := f.take(5)+257, f.take(5)+1, f.take(4)+4
	if nlen > 286 || ndist > 30 {
		return errCorrupt
	}
	var lengths [320]uint8
	for i := 0; i < ncode; i++ {
		if err := f.need(3); err != nil {
			return err
		}
		lengths[clenOrder[i]] = uint8(f.take(3))
	}
	var clen huffman
	if err := clen.build(lengths[:19]); err != nil {
		return err
	}
	lengths = [320]uint8{}
	for i := 0; i < nlen+ndist; {
		sym, err := f.waitSymbol(&clen)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return errCorrupt
			}
			val = lengths[i-1]
			err, rep = f.need(2), 3
			if err == nil {
				rep += f.take(2)
			}
		case 17:
			err, rep = f.need(3), 3
			if err == nil {
				rep += f.take(3)
			}
		default:
			err, rep = f.need(7), 11
			if err == nil {
				rep += f.take(7)
			}
		}
		if err != nil {
			return err
		}
		if i+rep > nlen+ndist {
			return errCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return errCorrupt // no end-of-block code
	}
	if err := f.lit.build(lengths[:nlen]); err != nil {
		return err
	}
	return f.dist.build(lengths[nlen : nlen+ndist])
}

// waitSymbol decodes one symbol, waiting for its bits.
func (f *inflater) waitSymbol(h *huffman) (int, error) {
	for {
		sym, used, err := h.decode(f.bits, f.nb)
		if err != nil {
			return 0, err
		}
		if used > 0 {
			f.take(used)
			return sym, nil
		}
		if err := f.need(f.nb + 1); err != nil {
			return 0, err
		}
	}
}

// storedBytes copies a stored block's bytes; it waits for input only
// when nothing was decoded yet (wait reports that it stopped for input).
func (f *inflater) storedBytes(p []byte, n int) (int, bool, error) {
	for f.stored > 0 && n < len(p) {
		if f.nb >= 8 { // whole bytes left in the bit buffer
			f.put(p, &n, byte(f.take(8)))
			f.stored--
			continue
		}
		if f.src.Buffered() == 0 && n > 0 {
			return n, true, nil
		}
		c, err := f.src.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, false, err
		}
		f.put(p, &n, c)
		f.stored--
	}
	if f.stored == 0 {
		f.endBlock()
	}
	return n, false, nil
}

// symbols decodes a Huffman block's literals and back-references. A
// symbol is taken only once its bits, extra bits and distance are all
// there, so the decoder can stop between any two for lack of input.
func (f *inflater) symbols(p []byte, n int) (int, bool, error) {
	for n < len(p) {
		if f.copyLen > 0 {
			f.put(p, &n, f.back(f.copyDst))
			f.copyLen--
			continue
		}
		f.fillBuffered()
		done, ok, err := f.symbol(p, &n)
		if err != nil || done {
			return n, false, err
		}
		if !ok {
			if n > 0 {
				return n, true, nil
			}
			if err := f.need(f.nb + 8); err != nil {
				return n, false, err
			}
		}
	}
	return n, false, nil
}

// symbol decodes one literal, back-reference or end of block from the
// bits at hand; ok is false (and nothing consumed) when they are short.
func (f *inflater) symbol(p []byte, n *int) (done, ok bool, err error) {
	b, nb := f.bits, f.nb
	sym, used, err := f.litTab.decode(b, nb)
	if err != nil || used == 0 {
		return false, false, err
	}
	b, nb = b>>used, nb-used
	switch {
	case sym < 256:
		f.bits, f.nb = b, nb
		f.put(p, n, byte(sym))
		return false, true, nil
	case sym == 256:
		f.bits, f.nb = b, nb
		f.endBlock()
		return true, true, nil
	case sym > 285:
		return false, false, errCorrupt
	}
	sym -= 257
	eb := uint(lenExtra[sym])
	if nb < eb {
		return false, false, nil
	}
	length := int(lenBase[sym]) + int(b&(1<<eb-1))
	b, nb = b>>eb, nb-eb
	dsym, used, err := f.distTab.decode(b, nb)
	if err != nil || used == 0 {
		return false, false, err
	}
	if dsym > 29 {
		return false, false, errCorrupt
	}
	b, nb = b>>used, nb-used
	eb = uint(distExtra[dsym])
	if nb < eb {
		return false, false, nil
	}
	d := int(distBase[dsym]) + int(b&(1<<eb-1))
	if d > len(f.hist) {
		return false, false, errCorrupt // before the stream began
	}
	f.bits, f.nb = b>>eb, nb-eb
	f.copyLen, f.copyDst = length, d
	return false, true, nil
}

// put emits one byte and keeps it in the history.
func (f *inflater) put(p []byte, n *int, c byte) {
	p[*n] = c
	*n++
	if len(f.hist) < maxDist {
		if len(f.hist) == cap(f.hist) {
			grown := make([]byte, len(f.hist), min(max(2*cap(f.hist), 1<<10), maxDist))
			copy(grown, f.hist)
			f.hist = grown
		}
		f.hist = append(f.hist, c)
		return
	}
	f.hist[f.hpos] = c
	f.hpos = (f.hpos + 1) % maxDist
}

// back is the byte d bytes back in the output.
func (f *inflater) back(d int) byte {
	if len(f.hist) < maxDist {
		return f.hist[len(f.hist)-d]
	}
	return f.hist[(f.hpos-d+maxDist)%maxDist]
}
