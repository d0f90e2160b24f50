package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"runtime"
	"strings"
	"sync"

	"abox/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978). After the tagged OK both directions are
// raw DEFLATE. What a compressed connection costs:
//
//   - Output: each chunk the connection's output buffer hands down (a
//     batch of responses, or 64 KiB of a larger one) is compressed into
//     memory by a compressor lent from a pool, ended with a sync flush
//     (Z_SYNC_FLUSH, RFC 4978 §4: the client never waits for more), and
//     only then written to the socket. The flush leaves the stream
//     byte-aligned, so the next chunk starts a fresh compressor in the
//     same stream (a decoder does not care that no back-reference
//     reaches into an earlier chunk). A compressor is held only while it
//     computes, never while the socket is slow or the connection idle,
//     and at most zSlots are held at once: a broadcast that wakes 10,000
//     compressed IDLE sessions together needs zSlots compressors, not
//     10,000. zLevel is BestSpeed: its compressor is 1.1 MiB (levels
//     2-9: 0.8 MiB) but its reset costs 0.16 µs, where levels 2-9 clear
//     their hash chains at every reset, that is at every chunk: 9-21 µs
//     (docs/BENCHMARKS.md).
//   - Input: the inflater (inflate.go) and a second 4 KiB reader over
//     it; its history grows with what the client sent, to 32 KiB.
const zLevel = flate.BestSpeed

// zChunk bounds what one compressor takes at a time (the output
// buffer's size, so a batch is usually one chunk).
const zChunk = 64 << 10

var (
	zwriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(io.Discard, zLevel)
		return w
	}}
	zbufs  = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	zSlots = make(chan struct{}, 4*runtime.GOMAXPROCS(0))
)

// deflater is the compressing layer under a compressed connection's
// output buffer.
type deflater struct {
	dst io.Writer // the connection (with its write deadline)
}

func (d *deflater) Write(p []byte) (int, error) {
	zb := zbufs.Get().(*bytes.Buffer)
	defer zbufs.Put(zb)
	for done := 0; done < len(p); {
		chunk := p[done:min(len(p), done+zChunk)]
		zb.Reset()
		compress(zb, chunk)
		if _, err := d.dst.Write(zb.Bytes()); err != nil {
			return done, err
		}
		done += len(chunk)
	}
	return len(p), nil
}

// compress appends chunk to zb as DEFLATE blocks ending in a sync
// flush. Writes to a bytes.Buffer do not fail.
func compress(zb *bytes.Buffer, chunk []byte) {
	zSlots <- struct{}{}
	defer func() { <-zSlots }()
	zw := zwriters.Get().(*flate.Writer)
	zw.Reset(zb)
	zw.Write(chunk)
	zw.Flush()
	zw.Reset(io.Discard)
	zwriters.Put(zw)
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
