package smtpd_test

// Helpers for the SMTP integration tests: they build the real abox binary
// once (TestMain), run `abox serve` on a temporary data directory with
// every listener on a free 127.0.0.1 port, drive it with the CLI, and talk
// SMTP to it with a raw client (exact replies), net/smtp, python3 smtplib
// and curl.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"abox/store"
)

// Generous limits: the suite must pass on a loaded two-core machine with
// the race detector on. None of them is an assertion about speed.
const (
	cliTimeout   = 2 * time.Minute  // one CLI invocation
	readyTimeout = 90 * time.Second // serve printing "ready"
	stopTimeout  = 20 * time.Second // serve exiting after SIGTERM (SPEC: drain up to 10 s)
	ioTimeout    = time.Minute      // one SMTP exchange
)

const (
	hostname = "mx.abox.test" // --hostname of every test server
	domain   = "example.kz"   // hosted by every test server
	password = "correct horse battery staple"
)

// aboxBin is the binary TestMain built.
var aboxBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker runs one fuzz target of package smtpd only.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "abox-smtpd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	aboxBin = filepath.Join(dir, "abox")
	args := []string{"build", "-o", aboxBin}
	if raceEnabled() {
		// A data race in the server then shows as exit status 66 at stop.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "abox/cmd/abox")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "TestMain: building abox:", err)
		return 1
	}
	return m.Run()
}

func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// aboxEnv is the environment of every run: ours, without ABOX_DATA, and
// without the race runtime's one-second sleep at exit.
func aboxEnv() []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "ABOX_DATA="):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GORACE="+gorace)
}

// --- the CLI ---------------------------------------------------------------

// env is one data directory, and the server running on it (if any).
type env struct {
	t      *testing.T
	dir    string // data directory
	config string // --config file, "" for none
	srv    *server
}

var phoneSeq atomic.Int64

// newEnv makes a data directory hosting example.kz.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: filepath.Join(t.TempDir(), "data")}
	e.ok("domain", "add", domain)
	return e
}

// cli runs abox --data DIR [--config F] args... with stdin.
func (e *env) cli(stdin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	full := []string{"--data", e.dir}
	if e.config != "" {
		full = append(full, "--config", e.config)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, aboxBin, full...)
	cmd.Env = aboxEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		e.t.Fatalf("abox %s: no exit within %v\nstderr: %s", strings.Join(args, " "), cliTimeout, errb.String())
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		e.t.Fatalf("abox %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	return e.okIn("", args...)
}

func (e *env) okIn(stdin string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.cli(stdin, args...)
	if code != 0 {
		e.t.Fatalf("abox %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// addUser registers login@example.kz with the test password.
func (e *env) addUser(login string, extra ...string) string {
	e.t.Helper()
	addr := login + "@" + domain
	phone := fmt.Sprintf("+7701%07d", phoneSeq.Add(1))
	e.okIn(password+"\n", append([]string{"user", "add", addr, "--phone", phone, "--password-stdin"}, extra...)...)
	return addr
}

// addSender registers a trusted sender NAME with the test password.
func (e *env) addSender(name, kind string, from ...string) {
	e.t.Helper()
	args := []string{"sender", "add", name, "--kind", kind, "--password-stdin"}
	for _, f := range from {
		args = append(args, "--from", f)
	}
	e.okIn(password+"\n", args...)
}

// usage is the usage part of `user show --json`.
type usage struct {
	StorageBytes int64 `json:"storage_bytes"`
	Messages     int64 `json:"messages"`
}

func (e *env) usage(addr string) usage {
	e.t.Helper()
	out := e.ok("user", "show", addr, "--json")
	var v struct {
		State string `json:"state"`
		Usage *usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Usage == nil {
		e.t.Fatalf("user show %s --json: %v\n%s", addr, err, out)
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

// check asserts that `abox check` finds no problem.
func (e *env) check() {
	e.t.Helper()
	out, errs, code := e.cli("", "check", "--json")
	var rep struct {
		Problems []any `json:"problems"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Problems) != 0 {
		e.t.Errorf("abox check: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

// storedMessage is one message as the store holds it.
type storedMessage struct {
	Flags []string
	Body  []byte
}

// inbox returns the messages in addr's INBOX, read from a hot backup
// (the server keeps the database itself locked).
func (e *env) inbox(addr string) []storedMessage {
	e.t.Helper()
	path := filepath.Join(e.dir, store.FileName)
	if e.srv != nil && e.srv.running() {
		path = filepath.Join(e.t.TempDir(), "backup.db")
		e.ok("backup", path)
	}
	st, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: 10 * time.Second})
	if err != nil {
		e.t.Fatalf("opening %s: %v", path, err)
	}
	defer st.Close()
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

// --- the server ------------------------------------------------------------

var listenFlags = []string{
	"--listen-smtp", "--listen-submission", "--listen-submissions",
	"--listen-imap", "--listen-imaps", "--listen-http",
}

// server is a running `abox serve`.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    *lineLog
	smtp   string // host:port of each listener
	sub    string
	subs   string
	imaps  string
	http   string
	exited chan struct{}
	err    error // from Wait, once exited is closed

	stopOnce sync.Once
}

// start runs abox serve on the env's data directory until the test ends,
// when it is stopped with SIGTERM and must exit 0.
func (e *env) start() *server {
	e.t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := e.tryStart()
		if err == nil {
			e.srv = s
			e.t.Cleanup(s.stop)
			return s
		}
		if attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			e.t.Logf("retrying serve: %v", err)
			continue
		}
		e.t.Fatal(err)
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (e *env) tryStart() (*server, error) {
	ports := freePorts(e.t, len(listenFlags))
	args := []string{"--data", e.dir}
	if e.config != "" {
		args = append(args, "--config", e.config)
	}
	args = append(args, "serve", "--hostname", hostname, "--log-format", "json")
	addrs := make([]string, len(ports))
	for i, f := range listenFlags {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", ports[i])
		args = append(args, f, addrs[i])
	}
	cmd := exec.Command(aboxBin, args...)
	cmd.Env = aboxEnv()
	log := newLineLog(`"msg":"ready"`)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting abox serve: %w", err)
	}
	s := &server{t: e.t, cmd: cmd, log: log, exited: make(chan struct{}),
		smtp: addrs[0], sub: addrs[1], subs: addrs[2], imaps: addrs[4], http: addrs[5]}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-log.ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("abox serve exited before ready (%v):\n%s", s.err, log)
	case <-time.After(readyTimeout):
		cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("abox serve not ready within %v:\n%s", readyTimeout, log)
	}
}

func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and asserts exit status 0 and no recovered panic in
// the log. It is idempotent.
func (s *server) stop() {
	s.stopOnce.Do(func() {
		s.t.Helper()
		if !s.running() {
			s.t.Errorf("abox serve exited before it was stopped (%v):\n%s", s.err, s.log)
			return
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			s.t.Errorf("SIGTERM: %v", err)
		}
		select {
		case <-s.exited:
			if s.err != nil {
				s.t.Errorf("abox serve after SIGTERM: %v (want exit 0):\n%s", s.err, s.log)
			}
		case <-time.After(stopTimeout):
			// SIGQUIT makes the Go runtime print every goroutine's stack
			// (into the log below) before it exits.
			s.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				s.cmd.Process.Kill()
				<-s.exited
			}
			s.t.Errorf("abox serve still running %v after SIGTERM:\n%s", stopTimeout, s.log)
		}
		s.checkLog()
	})
}

// kill stops the server with SIGKILL, as a crash would.
func (s *server) kill() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Kill()
		<-s.exited
		s.checkLog()
	})
}

// checkLog fails the test on a recovered panic or a data race.
func (s *server) checkLog() {
	s.t.Helper()
	for _, l := range strings.Split(s.log.String(), "\n") {
		recovered := strings.Contains(l, `"level":"ERROR"`) && strings.Contains(strings.ToLower(l), "panic")
		if recovered || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.Contains(l, "DATA RACE") {
			s.t.Errorf("server log shows a panic or race:\n%s", s.log)
			return
		}
	}
}

// logged reports whether a log line contains every one of words.
func (s *server) logged(words ...string) bool {
next:
	for _, l := range strings.Split(s.log.String(), "\n") {
		for _, w := range words {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		return true
	}
	return false
}

// lineLog collects a process's output and signals the first line that
// contains a word.
type lineLog struct {
	word  string
	ready chan struct{}

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	seen    bool
}

func newLineLog(word string) *lineLog {
	return &lineLog{word: word, ready: make(chan struct{})}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if !l.seen && strings.Contains(line, l.word) {
			l.seen = true
			close(l.ready)
		}
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
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
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
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
		t.Fatalf("%s: no exit within %v\n%s", name, cliTimeout, out)
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
