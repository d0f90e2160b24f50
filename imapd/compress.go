package imapd

import (
	"bufio"
	"compress/flate"
	"io"
	"strings"
	"sync"

	"abox/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978). After the tagged OK both directions are
// raw DEFLATE. What a compressed connection costs:
//
//   - Output: a compressor is lent from a pool for each response batch
//     and given back after the batch's Z_SYNC_FLUSH, which leaves the
//     stream byte-aligned; the next batch starts a fresh compressor in
//     the same stream (a decoder does not care that no back-reference
//     reaches into an earlier batch). An idle connection holds no
//     compressor, and the pool holds about as many as connections write
//     at once. zLevel is BestSpeed: its compressor is about 1/5 of the
//     others' and its reset is cheap, where a level 2-9 compressor clears
//     640 KiB of hash chains at every reset, that is at every batch
//     (docs/BENCHMARKS.md has the sizes and ratios measured).
//   - Input: the inflater (inflate.go) and a second 4 KiB reader over
//     it; its history grows with what the client sent, to 32 KiB.
const zLevel = flate.BestSpeed

var (
	zwriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(io.Discard, zLevel)
		return w
	}}
	// zbufs gather the compressor's output (it writes a few hundred
	// bytes at a time) into TLS-record-sized writes.
	zbufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
)

// deflater is the compressing layer under a compressed connection's
// output buffer; it holds its compressor only while a batch is written.
type deflater struct {
	dst io.Writer // the connection (with its write deadline)
	zw  *flate.Writer
	zb  *bufio.Writer
}

func (d *deflater) Write(p []byte) (int, error) {
	if d.zw == nil {
		d.zb = zbufs.Get().(*bufio.Writer)
		d.zb.Reset(d.dst)
		d.zw = zwriters.Get().(*flate.Writer)
		d.zw.Reset(d.zb)
	}
	return d.zw.Write(p)
}

// flush ends the batch (RFC 4978 §4: the server flushes after each
// batch of responses, so the client never waits for the next one) and
// lends the compressor back.
func (d *deflater) flush() error {
	if d.zw == nil {
		return nil
	}
	err := d.zw.Flush()
	if err == nil {
		err = d.zb.Flush()
	}
	d.zw.Reset(io.Discard)
	zwriters.Put(d.zw)
	d.zb.Reset(nil)
	zbufs.Put(d.zb)
	d.zw, d.zb = nil, nil
	return err
}

// cmdCompress turns compression on (RFC 4978 §3). It answers itself: the
// tagged OK is the last thing sent uncompressed, and every byte the
// client sends after its command, including what is already buffered,
// is compressed. Logging in needs TLS, so COMPRESS, valid only once
// logged in, always runs under TLS.
func cmdCompress(c *conn, tag string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	mech, ok := a.Atom()
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	if c.z != nil {
		return status{"NO", "COMPRESSIONACTIVE", "DEFLATE is already active"}
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		return status{"BAD", "", "Unsupported compression mechanism; DEFLATE is offered"}
	}
	done, err := c.sess.enter("COMPRESS")
	done()
	if err != nil {
		return answer("COMPRESS", err)
	}
	c.writeStatus(tag, okWith("", "DEFLATE active"))
	if err := c.w.Flush(); err != nil {
		c.closing.Store(true)
		return status{}
	}
	c.z = &deflater{dst: c.dw}
	c.bw.Reset(c.z)
	raw := c.br
	c.br = bufio.NewReaderSize(newInflater(raw), 4<<10)
	rd := wire.NewReader(c.br)
	rd.MaxText, rd.MaxParts, rd.LiteralMinus = c.rd.MaxText, c.rd.MaxParts, c.rd.LiteralMinus
	rd.Continue, rd.LiteralLimit = c.rd.Continue, c.rd.LiteralLimit
	c.rd = rd
	c.sess.log.Debug("COMPRESS=DEFLATE active")
	return status{} // answered
}
