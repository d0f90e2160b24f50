package imapd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"
)

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestCoalescingConnDeliversInOrder writes a few MiB in pieces of random
// size, with flushes and timed flushes in between, through the
// background sender and (with TLS) the record batching, and checks that
// the peer reads exactly the same bytes.
func TestCoalescingConnDeliversInOrder(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "plain"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer tcp.Close()
			ln := coalescingListener{Listener: tcp}
			if withTLS {
				ln.tls = testTLSConfig(t)
			}
			want := make([]byte, 3<<20)
			for i := range want {
				want[i] = byte(mrand.IntN(256))
			}
			got := make(chan []byte, 1)
			go func() {
				var c net.Conn
				c, err := net.Dial("tcp", tcp.Addr().String())
				if err != nil {
					got <- nil
					return
				}
				if withTLS {
					c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				}
				defer c.Close()
				b, _ := io.ReadAll(c)
				got <- b
			}()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			cc := sc.(*coalescingConn)
			rest := want
			for len(rest) > 0 {
				n := min(len(rest), []int{1, 17, 300, 4 << 10, 64 << 10, 200 << 10}[mrand.IntN(6)])
				if _, err := cc.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
				switch mrand.IntN(20) {
				case 0:
					if err := cc.Flush(); err != nil {
						t.Fatal(err)
					}
				case 1:
					time.Sleep(3 * time.Millisecond) // lets the timed flush run
				}
			}
			if err := cc.Close(); err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("peer read %d bytes, not the %d written (or they differ)", len(b), len(want))
			}
			if cc.buf != nil || len(cc.queue) != 0 || cc.sending {
				t.Fatal("the closed connection still holds a buffer or a sender")
			}
		})
	}
}

// TestCoalescingConnReportsWriteErrors: once the peer is gone, writes
// fail instead of queueing forever.
func TestCoalescingConnReportsWriteErrors(t *testing.T) {
	a, b := net.Pipe()
	cc := newCoalescingConn(a)
	b.Close()
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = cc.Write(make([]byte, 100<<10))
	}
	if err == nil {
		err = cc.Flush()
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
}

// TestCoalescingConnWriteDeadlines: a client that reads nothing makes
// the writes fail at the deadline go-imap asked for, and at writeStall
// when it asked for none (go-imap clears its deadline after every
// response, while the sender may still be writing it).
func TestCoalescingConnWriteDeadlines(t *testing.T) {
	defer func(d time.Duration) { writeStall = d }(writeStall)
	writeStall = 300 * time.Millisecond
	for _, tc := range []struct {
		name     string
		deadline time.Time
	}{
		{"asked for", time.Now().Add(300 * time.Millisecond)},
		{"none asked for", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, _ := tcpPair(t) // the peer never reads
			cc := newCoalescingConn(sc)
			cc.SetWriteDeadline(tc.deadline)
			failed := make(chan error, 1)
			go func() {
				chunk := make([]byte, 1<<20)
				for range 256 { // far beyond both sockets' buffers
					if _, err := cc.Write(chunk); err != nil {
						failed <- err
						return
					}
				}
				failed <- cc.Flush()
			}()
			select {
			case err := <-failed:
				if err == nil {
					t.Fatal("256 MiB written to a peer that reads nothing")
				}
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("write failed with %v, want a timeout", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the write to a peer that reads nothing is still blocked after 30 s")
			}
		})
	}
}

// TestCoalescingConnTimedFlushAfterBurst: updates written while the
// session waits for the client (IDLE) arrive whole without a flush, even
// when they filled a buffer and started the sender: the timed flush
// sends the rest once the sender has nothing left, and the sender ends.
func TestCoalescingConnTimedFlushAfterBurst(t *testing.T) {
	sc, peer := tcpPair(t)
	cc := newCoalescingConn(sc)
	defer cc.Close()
	want := make([]byte, coalesceLimit+100)
	for i := range want {
		want[i] = byte(mrand.IntN(256))
	}
	if _, err := cc.Write(want); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if n, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("read %d of %d bytes written without a flush: %v", n, len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read differ from those written")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		cc.mu.Lock()
		sending := cc.sending
		cc.mu.Unlock()
		if !sending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sender still runs 10 s after everything was sent")
		}
	}
}

// tcpPair returns both ends of a TCP connection on 127.0.0.1, closed
// when the test ends.
func tcpPair(t *testing.T) (server, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if peer, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, peer
}

// TestCoalescingConnSmallResponsesHoldSmallBuffers: a short response
// holds a small buffer; one that outgrows it moves to a full piece, and
// what was written before comes first.
func TestCoalescingConnSmallResponsesHoldSmallBuffers(t *testing.T) {
	sc, peer := tcpPair(t)
	cc := newCoalescingConn(sc)
	defer cc.Close()
	head := []byte("* 1 FETCH (UID 1 BODY[] {20000}\r\n")
	if _, err := cc.Write(head); err != nil {
		t.Fatal(err)
	}
	cc.mu.Lock()
	small := cap(cc.buf)
	cc.mu.Unlock()
	if small != pieces.smallCap {
		t.Fatalf("a %d-byte response holds a buffer of %d bytes, want %d", len(head), small, pieces.smallCap)
	}
	body := bytes.Repeat([]byte("0123456789"), 2000)
	if _, err := cc.Write(body); err != nil {
		t.Fatal(err)
	}
	cc.mu.Lock()
	large := cap(cc.buf)
	cc.mu.Unlock()
	if large != coalesceLimit {
		t.Fatalf("a %d-byte response holds a buffer of %d bytes, want %d", len(head)+len(body), large, coalesceLimit)
	}
	if err := cc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := append(head, body...)
	got := make([]byte, len(want))
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("peer read %q..., %v", got[:min(len(got), 40)], err)
	}
}
