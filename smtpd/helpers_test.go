package smtpd_test

// Helpers for the SMTP integration tests: on the harness of the abox
// binary (aboxtest: the binary, the CLI, `abox serve` on a temporary data
// directory and the checks at cleanup), a raw SMTP client for exact
// replies and the runner of the other clients (net/smtp, python3 smtplib,
// curl).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"abox/accounts"
	"abox/cmd/abox/aboxtest"
	"abox/store"
	"abox/store/pgstore"
)

// ioTimeout bounds one SMTP exchange; generous, as the suite runs on a
// loaded two-core machine with the race detector on.
const ioTimeout = time.Minute

const (
	hostname = aboxtest.DefaultHostname // --hostname of every test server
	domain   = "example.kz"             // hosted by every test server
	password = "correct horse battery staple"
)

func TestMain(m *testing.M) { aboxtest.Main(m) }

// env is one data directory, and the server running on it (if any).
type env struct {
	*aboxtest.Env
	t   *testing.T
	srv *server
}

var phoneSeq atomic.Int64

// newEnv makes a data directory hosting example.kz.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: aboxtest.New(t), t: t}
	e.ServeFlags = []string{"--log-format", "json"}
	e.OK("domain", "add", domain)
	return e
}

// addUser registers login@example.kz with the test password.
func (e *env) addUser(login string, extra ...string) string {
	e.t.Helper()
	addr := login + "@" + domain
	phone := fmt.Sprintf("+7701%07d", phoneSeq.Add(1))
	e.OKIn(password+"\n", append([]string{"user", "add", addr, "--phone", phone, "--password-stdin"}, extra...)...)
	return addr
}

// addSender registers a trusted sender NAME with the test password.
func (e *env) addSender(name, kind string, from ...string) {
	e.t.Helper()
	args := []string{"sender", "add", name, "--kind", kind, "--password-stdin"}
	for _, f := range from {
		args = append(args, "--from", f)
	}
	e.OKIn(password+"\n", args...)
}

// usage is the usage part of `user show --json`.
type usage struct {
	StorageBytes int64 `json:"storage_bytes"`
	Messages     int64 `json:"messages"`
}

func (e *env) usage(addr string) usage {
	e.t.Helper()
	var v struct {
		State string `json:"state"`
		Usage *usage `json:"usage"`
	}
	e.JSON(&v, "user", "show", addr)
	if v.Usage == nil {
		e.t.Fatalf("user show %s --json: no usage", addr)
	}
	return *v.Usage
}

// wantMessages asserts how many messages addr holds.
func (e *env) wantMessages(addr string, n int64) usage {
	e.t.Helper()
	u := e.usage(addr)
	if u.Messages != n {
		e.t.Errorf("%s holds %d messages, want %d (usage %+v)", addr, u.Messages, n, u)
	}
	return u
}

// storedMessage is one message as the store holds it.
type storedMessage struct {
	Flags []string
	Body  []byte
}

// storeReader is what inbox reads: the bbolt store or, in the
// harness's cluster mode, the shared PostgreSQL store.
type storeReader interface {
	Account(address string) (accounts.Account, error)
	MailboxByName(acct uint64, name string) (store.Mailbox, error)
	Messages(acct uint64, mbox uint32, afterUID uint32, limit int) ([]store.Message, error)
	Body(blob uint64) (body, structure []byte, err error)
}

// inbox returns the messages in addr's INBOX, read from a hot backup
// (the server keeps the database itself locked), or in the cluster mode
// from the shared store.
func (e *env) inbox(addr string) []storedMessage {
	e.t.Helper()
	var st storeReader
	if sh := e.SharedStore(); sh != nil {
		pg, err := pgstore.Open(context.Background(), pgstore.Options{DSN: sh.DSN, InlineMax: sh.InlineMax, MaxConns: 2,
			Objects: pgstore.ObjectOptions{Endpoint: sh.ObjectEndpoint, Bucket: sh.ObjectBucket, AccessKey: sh.ObjectAccessKey, SecretKey: sh.ObjectSecretKey}})
		if err != nil {
			e.t.Fatalf("opening the cluster's store: %v", err)
		}
		defer pg.Close()
		st = pg
	} else {
		path := filepath.Join(e.Dir, store.FileName)
		if e.srv != nil && e.srv.Running() {
			path = filepath.Join(e.t.TempDir(), "backup.db")
			e.OK("backup", path)
		}
		bolt, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: 10 * time.Second})
		if err != nil {
			e.t.Fatalf("opening %s: %v", path, err)
		}
		defer bolt.Close()
		st = bolt
	}
	acct, err := st.Account(addr)
	if err != nil {
		e.t.Fatalf("account %s: %v", addr, err)
	}
	mb, err := st.MailboxByName(acct.ID, "INBOX")
	if err != nil {
		e.t.Fatalf("INBOX of %s: %v", addr, err)
	}
	msgs, err := st.Messages(acct.ID, mb.ID, 0, 0)
	if err != nil {
		e.t.Fatalf("messages of %s: %v", addr, err)
	}
	var out []storedMessage
	for _, m := range msgs {
		body, _, err := st.Body(m.Blob)
		if err != nil {
			e.t.Fatalf("body of %s UID %d: %v", addr, m.UID, err)
		}
		out = append(out, storedMessage{Flags: m.Flags, Body: body})
	}
	return out
}

// onlyMessage returns the one message in addr's INBOX.
func (e *env) onlyMessage(addr string) storedMessage {
	e.t.Helper()
	msgs := e.inbox(addr)
	if len(msgs) != 1 {
		e.t.Fatalf("%s's INBOX holds %d messages, want 1", addr, len(msgs))
	}
	return msgs[0]
}

// server is a running `abox serve` and the listeners the tests use.
type server struct {
	*aboxtest.Server
	smtp  string // host:port of each listener
	sub   string
	subs  string
	imaps string
	http  string
}

// start runs abox serve on the env's data directory until the test ends
// (aboxtest.Env.Start).
func (e *env) start() *server {
	e.t.Helper()
	s := e.Start()
	e.srv = &server{Server: s, smtp: s.Addr("smtp"), sub: s.Addr("submission"), subs: s.Addr("submissions"),
		imaps: s.Addr("imaps"), http: s.Addr("http")}
	return e.srv
}

// --- a raw SMTP client for exact replies ------------------------------------

// reply is one SMTP reply, possibly multi-line.
type reply struct {
	code  int
	lines []string // text after "NNN-" / "NNN "
}

var enhRE = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)

// enh is the enhanced status code of the first line, or "".
func (r reply) enh() string {
	if len(r.lines) == 0 {
		return ""
	}
	f, _, _ := strings.Cut(r.lines[0], " ")
	if enhRE.MatchString(f) {
		return f
	}
	return ""
}

func (r reply) text() string { return strings.Join(r.lines, "\n") }

func (r reply) String() string {
	var b strings.Builder
	for i, l := range r.lines {
		sep := "-"
		if i == len(r.lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s%s\n", r.code, sep, l)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// rawClient speaks SMTP line by line.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// dial connects, reads the banner and checks it is 220 <hostname>.
func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newRaw(t, nc)
}

// dialTLS connects with implicit TLS (submissions).
func dialTLS(t *testing.T, addr string) *rawClient {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: clientTLS()}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial TLS %s: %v", addr, err)
	}
	return newRaw(t, nc)
}

func newRaw(t *testing.T, nc net.Conn) *rawClient {
	t.Helper()
	c := &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	banner := c.read()
	if banner.code != 220 || !strings.HasPrefix(banner.text(), hostname+" ") {
		t.Fatalf("banner %q, want it to start \"220 %s \"", banner, hostname)
	}
	return c
}

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: hostname}
}

// readErr reads one reply.
func (c *rawClient) readErr() (reply, error) {
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var r reply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return r, fmt.Errorf("reading a reply (so far %q, partial line %q): %w", r, line, err)
		}
		if !strings.HasSuffix(line, "\r\n") {
			return r, fmt.Errorf("reply line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if len(line) < 3 {
			return r, fmt.Errorf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || r.code != 0 && code != r.code {
			return r, fmt.Errorf("bad reply line %q after %q", line, r)
		}
		r.code = code
		sep, text := byte(' '), ""
		if len(line) > 3 {
			sep, text = line[3], line[4:]
		}
		r.lines = append(r.lines, text)
		switch sep {
		case ' ':
			return r, nil
		case '-':
		default:
			return r, fmt.Errorf("bad reply line %q", line)
		}
	}
}

func (c *rawClient) read() reply {
	c.t.Helper()
	r, err := c.readErr()
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// send writes raw bytes.
func (c *rawClient) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("writing %q: %v", trim(s), err)
	}
}

// cmd sends one command line and reads its reply.
func (c *rawClient) cmd(line string) reply {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.read()
}

// expect sends a command and checks the reply's code and (unless "")
// enhanced code.
func (c *rawClient) expect(line string, code int, enh string) reply {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.want(trim(line), code, enh)
}

// want reads a reply and checks it.
func (c *rawClient) want(what string, code int, enh string) reply {
	c.t.Helper()
	r := c.read()
	if r.code != code || enh != "" && r.enh() != enh {
		want := strconv.Itoa(code)
		if enh != "" {
			want += " " + enh
		}
		c.t.Fatalf("%s: got %q, want %s", what, r, want)
	}
	return r
}

// expectClosed checks that the server closed the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	if b, err := c.r.ReadByte(); err == nil {
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Fatalf("connection still open; read %q", string(b)+string(rest))
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ehlo sends EHLO and returns the extension keywords (first line
// excluded), upper-cased.
func (c *rawClient) ehlo() (first string, exts []string) {
	c.t.Helper()
	r := c.expect("EHLO client.test", 250, "")
	for _, l := range r.lines[1:] {
		exts = append(exts, strings.ToUpper(l))
	}
	return r.lines[0], exts
}

// startTLS runs STARTTLS and the handshake.
func (c *rawClient) startTLS() {
	c.t.Helper()
	c.expect("STARTTLS", 220, "")
	tc := tls.Client(c.nc, clientTLS())
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	c.nc, c.r = tc, bufio.NewReader(tc)
}

// authPlain authenticates with AUTH PLAIN and an initial response.
func (c *rawClient) authPlain(user, pass string) reply {
	c.t.Helper()
	c.send("AUTH PLAIN " + plain(user, pass) + "\r\n")
	return c.read()
}

func plain(user, pass string) string {
	return b64("\x00" + user + "\x00" + pass)
}

// submissionSession returns a session on the submission port after
// EHLO, STARTTLS, EHLO and a successful AUTH PLAIN as user.
func submissionSession(t *testing.T, s *server, user string) *rawClient {
	t.Helper()
	c := dial(t, s.sub)
	c.ehlo()
	c.startTLS()
	c.ehlo()
	if r := c.authPlain(user, password); r.code != 235 || r.enh() != "2.7.0" {
		t.Fatalf("AUTH PLAIN %s: %q, want 235 2.7.0", user, r)
	}
	return c
}

// deliver sends one message through a ready session (after EHLO/AUTH)
// and checks every reply is positive.
func (c *rawClient) deliver(from string, to []string, msg string) reply {
	c.t.Helper()
	c.expect("MAIL FROM:<"+from+">", 250, "2.1.0")
	for _, r := range to {
		c.expect("RCPT TO:<"+r+">", 250, "2.1.5")
	}
	c.expect("DATA", 354, "")
	c.send(dotStuff(msg) + ".\r\n")
	return c.want("end of DATA", 250, "2.0.0")
}

// dotStuff turns a message (CRLF lines) into DATA content without the
// terminating line.
func dotStuff(msg string) string {
	if !strings.HasSuffix(msg, "\r\n") {
		msg += "\r\n"
	}
	lines := strings.SplitAfter(msg, "\r\n")
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	return b.String()
}

// message builds a well-formed message with CRLF line ends.
func message(from, to, subject, body string) string {
	return crlf(fmt.Sprintf("From: <%s>\nTo: <%s>\nSubject: %s\nDate: Mon, 02 Jan 2006 15:04:05 +0000\nMessage-ID: <%d.test@client.test>\n\n%s\n",
		from, to, subject, time.Now().UnixNano(), body))
}

// crlf makes every line end in CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

// --- external clients ------------------------------------------------------

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// runTool runs an external client; it returns combined output and the
// exit code.
func runTool(t *testing.T, stdin []byte, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), aboxtest.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case ctx.Err() != nil:
		t.Fatalf("%s: no exit within %v\n%s", name, aboxtest.CommandTimeout, out)
	case errors.As(err, &ee) && ee.Exited():
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return "", -1
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// hasExt reports whether an EHLO extension list holds ext (exact line)
// or, when ext ends in a space, a line starting with it.
func hasExt(exts []string, ext string) bool {
	for _, e := range exts {
		if e == ext || strings.HasSuffix(ext, " ") && strings.HasPrefix(e, ext) {
			return true
		}
	}
	return false
}
