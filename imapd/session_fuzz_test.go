package imapd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/policy"
	"abox/store"
	"abox/store/msginfo"
)

// pipeListener hands out the server ends of in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2143} }

// fromLoopback is one end of net.Pipe that says it comes from 127.0.0.1.
type fromLoopback struct{ net.Conn }

func (fromLoopback) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:40000"))
}

// faultLog remembers log records that mean a bug: a recovered panic, or
// an error nobody decided (imapd's "internal error", answered SERVERBUG).
type faultLog struct {
	mu  sync.Mutex
	bad []string
}

func (h *faultLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *faultLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") || r.Level >= slog.LevelError && strings.Contains(r.Message, "internal error") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
		h.mu.Lock()
		h.bad = append(h.bad, b.String())
		h.mu.Unlock()
	}
	return nil
}
func (h *faultLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *faultLog) WithGroup(string) slog.Handler      { return h }
func (h *faultLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bad
	h.bad = nil
	return b
}

// FuzzIMAPSession drives whole IMAP sessions with arbitrary client bytes
// over an in-memory connection, logged in or not, against a real store
// on disk holding a few messages: the server answers with response
// lines, never panics or meets an error nobody decided, and the store
// checks clean after each session.
func FuzzIMAPSession(f *testing.F) {
	login := "a0 LOGIN alice@example.kz password\r\n"
	seeds := []string{
		login + "a1 SELECT INBOX\r\na2 FETCH 1:* (FLAGS UID ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.20>)\r\na3 LOGOUT\r\n",
		login + "a1 SELECT INBOX\r\na2 STORE 1 +FLAGS (\\Seen $Kw)\r\na3 UID SEARCH OR UNSEEN TEXT hello\r\na4 EXPUNGE\r\n",
		login + "a1 APPEND INBOX (\\Flagged) {11+}\r\nSubject: x\r\na2 LIST \"\" *\r\na3 STATUS INBOX (MESSAGES UIDNEXT SIZE)\r\n",
		login + "a1 CREATE a/b/c\r\na2 RENAME a z\r\na3 DELETE z/b/c\r\na4 LSUB \"\" *\r\n",
		login + "a1 SELECT INBOX\r\na2 IDLE\r\nDONE\r\na3 MOVE 1:2 Trash\r\na4 UID COPY 1:* Archive\r\n",
		login + "a1 EXAMINE INBOX\r\na2 FETCH 1 (BODY[] BINARY[1])\r\na3 UNSELECT\r\na4 NAMESPACE\r\na5 ENABLE IMAP4rev2\r\n",
		"a1 CAPABILITY\r\na2 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUua3oAcGFzc3dvcmQ=\r\na3 NOOP\r\n",
		"\x00\xff\r\n* BAD\r\n+\r\n" + strings.Repeat("(", 500) + "\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
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
	acct, err := st.CreateAccount(ctx, accounts.Account{Login: "alice", Domain: "example.kz", PasswordHash: hash}, op)
	if err != nil {
		f.Fatal(err)
	}
	for _, body := range []string{
		"Subject: hello\r\nFrom: a@example.org\r\n\r\nhello world\r\n",
		"Subject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
	} {
		if _, err := st.Deliver(ctx, &store.Delivery{Body: []byte(body), Structure: msginfo.Compute([]byte(body)),
			Recipients: []store.Recipient{{Account: acct.ID}}}); err != nil {
			f.Fatal(err)
		}
	}
	log := &faultLog{}
	eng := policy.New(st, policy.Config{TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	// ImplicitTLS without a TLS config: a plain connection on which
	// LOGIN is allowed, as on the imaps listener once TLS is up.
	srv := New(Config{Name: "fuzz", ImplicitTLS: true, Policy: eng, Store: st, Log: slog.New(log)})
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	go srv.Serve(ln)
	f.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		ln.Close()
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		ln.conns <- fromLoopback{server}
		go func() {
			// Every session ends with LOGOUT, so that most end at once
			// instead of at the read deadline below.
			client.Write(append(in[:len(in):len(in)], "\r\nzz LOGOUT\r\n"...))
		}()
		client.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) // a session waiting for a literal or DONE is cut here
		r := bufio.NewReader(client)
		for {
			if err := readResponse(r); err != nil {
				if errors.Is(err, errBadResponse) {
					t.Fatalf("not a response: %v", err)
				}
				break
			}
		}
		client.Close()
		if bad := log.take(); len(bad) > 0 {
			t.Fatalf("the session logged: %q", bad)
		}
		rep, err := st.Check()
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("check after the session: %v %q", err, rep.Problems)
		}
	})
}

var (
	errBadResponse = errors.New("malformed response")
	literalAtEnd   = regexp.MustCompile(`~?\{([0-9]+)\}\r\n$`)
	responseStart  = regexp.MustCompile(`^(\* |\+ |\+\r\n|[^ *+(){%"\\\]\x00-\x1f\x7f]+ )`)
)

// readResponse reads one server response: a line starting "* ", "+ " or
// a tag, with the literals it announces.
func readResponse(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if testing.Verbose() && os.Getenv("ABOX_FUZZ_SHOW") != "" {
		fmt.Print("S: ", line)
	}
	if !responseStart.MatchString(line) || !strings.HasSuffix(line, "\r\n") {
		return fmt.Errorf("%w: %q", errBadResponse, line)
	}
	for {
		m := literalAtEnd.FindStringSubmatch(line)
		if m == nil {
			return nil
		}
		n, _ := strconv.Atoi(m[1])
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return err
		}
		if line, err = r.ReadString('\n'); err != nil {
			return err
		}
	}
}
