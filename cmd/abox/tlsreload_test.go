package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTLSReloadOnHangup: SIGHUP makes serve load its certificate files
// again: a new connection gets the new certificate while one opened
// before goes on with the old; a file that does not load leaves the
// certificate in use.
func TestTLSReloadOnHangup(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	now := time.Now()
	dir := t.TempDir()
	cert, key := writeCertPair(t, dir, now.Add(-time.Hour), now.AddDate(1, 0, 0))
	writeFile(t, a.Dir, ConfigFileName, []byte(fmt.Sprintf("tls-cert = %q\ntls-key = %q\n", cert, key)))
	a.srv = a.Start()
	imaps := a.srv.Addr("imaps")

	serial := func(c *tls.Conn) string {
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", imaps, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	old := dial()
	first := serial(old)
	buf := make([]byte, 512)
	if _, err := old.Read(buf); err != nil { // the greeting
		t.Fatal(err)
	}

	// Renew: new files in place, then SIGHUP.
	newDir := t.TempDir()
	nc, nk := writeCertPair(t, newDir, now.Add(-time.Hour), now.AddDate(2, 0, 0))
	for src, dst := range map[string]string{nc: cert, nk: key} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, dst[len(dir)+1:], b)
	}
	if err := a.srv.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var second string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c := dial()
		if second = serial(c); second != first {
			break
		}
	}
	if second == first {
		t.Fatalf("after SIGHUP new connections still get the old certificate:\n%s", a.srv.Log)
	}
	// The connection opened before goes on.
	old.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := old.Write([]byte("a1 NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	n, err := old.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "a1 OK") {
		t.Errorf("the connection opened before the reload: %q %v", buf[:n], err)
	}

	// A broken file: the renewed certificate stays, and the log says so.
	a.AllowError("TLS certificate not reloaded")
	writeFile(t, dir, cert[len(dir)+1:], []byte("not a certificate"))
	a.srv.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); !a.srv.Log.Contains("not reloaded") && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !a.srv.Log.Contains("TLS certificate not reloaded") {
		t.Errorf("no log line for a certificate that did not load:\n%s", a.srv.Log)
	}
	if s := serial(dial()); s != second {
		t.Errorf("after a failed reload the certificate changed: %s, want %s", s, second)
	}
}
