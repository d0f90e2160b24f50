package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/policy"
	"abox/store"
)

// pipeConn is one end of net.Pipe that says it comes from 127.0.0.1.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:2525"))
}

// failOnPanic is a log handler that remembers error records naming a
// panic or an internal error: a fuzzed session must cause neither.
type failOnPanic struct {
	mu  sync.Mutex
	bad []string
}

func (h *failOnPanic) Enabled(context.Context, slog.Level) bool { return true }
func (h *failOnPanic) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && (strings.Contains(r.Message, "panic") || strings.Contains(r.Message, "internal error")) {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
		h.mu.Lock()
		h.bad = append(h.bad, b.String())
		h.mu.Unlock()
	}
	return nil
}
func (h *failOnPanic) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *failOnPanic) WithGroup(string) slog.Handler      { return h }

func (h *failOnPanic) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bad
	h.bad = nil
	return b
}

var replyLine = regexp.MustCompile(`^[2-5][0-9]{2}[ -]`)

// FuzzSMTPSession drives whole SMTP sessions (MX and submission) with
// arbitrary client bytes over an in-memory connection, against a real
// store on disk: every reply is a well-formed reply line, the session
// never panics or hits an internal error, and the store checks clean
// after each session.
func FuzzSMTPSession(f *testing.F) {
	seeds := []string{
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.kz>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org> SIZE=100\r\nRCPT TO:<alice@example.kz>\r\nBDAT 5\r\nhello BDAT 0 LAST\r\nQUIT\r\n",
		"EHLO c\r\nBDAT 10\r\nBDAT 9223372036854775807 LAST\r\n",
		"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<nobody@example.kz>\r\nDATA\r\n..\r\n.\r\n",
		"EHLO c\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUua3oAcGFzc3dvcmQ=\r\nAUTH LOGIN\r\n*\r\nSTARTTLS\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.kz>\r\nDATA\r\nX: 1\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n.\r\nRSET\r\nVRFY x\r\nNOOP\r\nQUIT\r\n",
		"\x00\xff\r\n\r\n\n\n" + strings.Repeat("A", 20000) + "\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	dir := f.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{WAL: true, ReserveSpace: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	op := store.Audit{Actor: store.ActorOperator}
	if err := st.AddDomain(ctx, "example.kz", op); err != nil {
		f.Fatal(err)
	}
	hash, err := accounts.HashPassword("password", accounts.HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, accounts.Account{Login: "alice", Domain: "example.kz", PasswordHash: hash}, op); err != nil {
		f.Fatal(err)
	}
	log := &failOnPanic{}
	f.Fuzz(func(t *testing.T, in []byte, submission bool) {
		// A fresh engine and server per session: the growing delay
		// after failed logins must not carry from one input to the next.
		eng := policy.New(st, policy.Config{TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		mode := MX
		if submission {
			mode = Submission
		}
		srv := New(Config{Name: "fuzz", Mode: mode, Hostname: "fuzz.test", Policy: eng, Log: slog.New(log),
			TLS: &tls.Config{}, HelloTimeout: 200 * time.Millisecond, CommandTimeout: 200 * time.Millisecond, DataTimeout: 400 * time.Millisecond})
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.handle(pipeConn{server})
		}()
		go func() {
			client.Write(in)
		}()
		// A session that waits (a TLS handshake after STARTTLS) is cut here.
		client.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		sc := bufio.NewScanner(client)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			line := sc.Text()
			if !replyLine.MatchString(line) {
				t.Fatalf("not a reply line: %q", line)
			}
		}
		client.Close()
		<-done
		if bad := log.take(); len(bad) > 0 {
			t.Fatalf("the session logged: %q", bad)
		}
		rep, err := st.Check()
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("check after the session: %v %q", err, rep.Problems)
		}
	})
}
