package imapd

import (
	"net"
	"sync"
)

// recordConn sits under crypto/tls and lets one large write leave in
// few system calls: crypto/tls writes each record of at most 16 KiB
// with a write of its own, so a 64 KiB piece of a FETCH response cost
// four write system calls on the socket, each with its share of the
// TCP stack's work (on loopback, half of the server's CPU while it
// serves bodies). While a write is gathered (gather, then send), the
// records are collected in a buffer lent for that write alone and go
// out together; outside one (the handshake, alerts, close_notify)
// every write passes straight through, so nothing ever waits in the
// buffer for a reply that cannot come.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	buf *[]byte // lent while a write is gathered; nil otherwise
	err error   // the first failed write while gathering
}

// recordBufs hold the records of one gathered write: a 64 KiB piece
// of output is four full records and their headers and tags.
var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 68<<10); return &b }}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		return r.Conn.Write(p)
	}
	if r.err != nil {
		return 0, r.err
	}
	b := *r.buf
	if len(b)+len(p) > cap(b) {
		if err := r.flushLocked(); err != nil {
			return 0, err
		}
		b = *r.buf
		if len(p) > cap(b) {
			n, err := r.Conn.Write(p)
			r.err = err
			return n, err
		}
	}
	*r.buf = append(b, p...)
	return len(p), nil
}

func (r *recordConn) flushLocked() error {
	b := *r.buf
	if len(b) == 0 {
		return r.err
	}
	_, err := r.Conn.Write(b)
	*r.buf = b[:0]
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// gather starts collecting records.
func (r *recordConn) gather() {
	r.mu.Lock()
	r.buf = recordBufs.Get().(*[]byte)
	*r.buf = (*r.buf)[:0]
	r.err = nil
	r.mu.Unlock()
}

// send writes what was collected and stops collecting.
func (r *recordConn) send() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.flushLocked()
	*r.buf = (*r.buf)[:0]
	recordBufs.Put(r.buf)
	r.buf = nil
	r.err = nil
	return err
}
