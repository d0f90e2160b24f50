package imapd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "records.test"},
		DNSNames:     []string{"records.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRecordConnGathersRecords: a 64 KiB write under TLS is four
// records; gathered, they reach the socket in one write, and the client
// reads every byte in order. Outside a gathered write (the handshake, a
// small reply) writes pass straight through.
func TestRecordConnGathersRecords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB
	got := make(chan []byte, 1)
	go func() {
		nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			got <- nil
			return
		}
		defer nc.Close()
		b, _ := io.ReadAll(io.LimitReader(nc, int64(3*len(payload)+2)))
		got <- b
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: raw}
	rc := &recordConn{Conn: cc}
	tc := tls.Server(rc, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}

	// Not gathered: every record is a write of its own.
	before := cc.writes.Load()
	if _, err := tc.Write(payload); err != nil {
		t.Fatal(err)
	}
	plain := cc.writes.Load() - before
	if plain < 4 {
		t.Fatalf("64 KiB without gathering went out in %d writes; want one per record (4 or more)", plain)
	}

	// Gathered: one write for the four records.
	before = cc.writes.Load()
	rc.gather()
	if _, err := tc.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := rc.send(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - before; n != 1 {
		t.Fatalf("64 KiB gathered went out in %d writes, want 1", n)
	}

	// A write larger than the buffer still arrives whole, in few writes.
	before = cc.writes.Load()
	rc.gather()
	if _, err := tc.Write(append(payload[:len(payload):len(payload)], "\r\n"...)); err != nil {
		t.Fatal(err)
	}
	if err := rc.send(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - before; n > 2 {
		t.Fatalf("64 KiB + 2 gathered went out in %d writes, want at most 2", n)
	}

	want := append(append(append([]byte{}, payload...), payload...), payload...)
	want = append(want, "\r\n"...)
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("client read %d bytes, want %d identical", len(b), len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client read nothing")
	}
}
