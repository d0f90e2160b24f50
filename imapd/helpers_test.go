package imapd_test

// Helpers for the IMAP integration tests: they build the real abox binary
// once (TestMain), run `abox serve` on a temporary data directory with
// every listener on a free 127.0.0.1 port, drive it with the CLI, deliver
// mail with net/smtp, and talk IMAP to it with a raw line client (exact
// responses), go-imap's imapclient, python3 imaplib, mbsync and curl.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/smtp"
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
)

// Generous limits: the suite must pass on a loaded two-core machine with
// the race detector on. None of them is an assertion about speed.
const (
	cliTimeout   = 2 * time.Minute  // one CLI invocation or external client
	readyTimeout = 90 * time.Second // serve printing "ready"
	stopTimeout  = 20 * time.Second // serve exiting after SIGTERM (SPEC: drain up to 10 s)
	ioTimeout    = time.Minute      // one IMAP or SMTP exchange
	waitTimeout  = 30 * time.Second // an untagged update an IDLE session waits for
)

const (
	hostname = "mx.abox.test" // --hostname of every test server
	domain   = "example.kz"   // hosted by every test server
	password = "correct horse battery staple"
)

// aboxBin is the binary TestMain built.
var aboxBin string

// coverDir, when set, collects the coverage counters of every abox run.
var coverDir = os.Getenv("ABOX_TEST_COVERDIR")

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "abox-imapd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	aboxBin = filepath.Join(dir, "abox")
	args := []string{"build", "-o", aboxBin}
	if raceEnabled() {
		// A data race in the server then shows in its log and exit status.
		args = append(args, "-race")
	}
	if coverDir != "" {
		// ABOX_TEST_COVERDIR=DIR measures what the servers ran:
		// go tool covdata percent -i DIR
		args = append(args, "-cover", "-coverpkg=abox/...")
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
	env = append(env, "GORACE="+gorace)
	if coverDir != "" {
		env = append(env, "GOCOVERDIR="+coverDir)
	}
	return env
}

// --- the CLI ---------------------------------------------------------------

// env is one data directory, and the server running on it (if any).
type env struct {
	t   *testing.T
	dir string // data directory
	srv *server
}

var phoneSeq atomic.Int64

// newEnv makes a data directory hosting example.kz.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: filepath.Join(t.TempDir(), "data")}
	e.ok("domain", "add", domain)
	return e
}

// cli runs abox --data DIR args... with stdin.
func (e *env) cli(stdin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	full := append([]string{"--data", e.dir}, args...)
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

// usage is the usage part of `user show --json`.
type usage struct {
	StorageBytes int64 `json:"storage_bytes"`
	Messages     int64 `json:"messages"`
}

func (e *env) usage(addr string) usage {
	e.t.Helper()
	out := e.ok("user", "show", addr, "--json")
	var v struct {
		Usage *usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Usage == nil {
		e.t.Fatalf("user show %s --json: %v\n%s", addr, err, out)
	}
	return *v.Usage
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
	smtp   string // host:port of each listener used here
	sub    string // submission (STARTTLS)
	imap   string
	imaps  string
	http   string
	exited chan struct{}
	err    error // from Wait, once exited is closed

	stopOnce sync.Once
}

// start runs abox serve on the env's data directory until the test ends
// (or stop), when it is stopped with SIGTERM and must exit 0.
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
	args := []string{"--data", e.dir, "serve", "--hostname", hostname, "--log-format", "json"}
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
		smtp: addrs[0], sub: addrs[1], imap: addrs[3], imaps: addrs[4], http: addrs[5]}
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

// stop sends SIGTERM and asserts exit status 0 and no recovered panic or
// data race in the log. It is idempotent.
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
		for _, l := range strings.Split(s.log.String(), "\n") {
			switch {
			case strings.Contains(l, "panic") || strings.Contains(l, "DATA RACE") || strings.Contains(l, "imap: internal error"):
				// An internal error is what clients see as NO [SERVERBUG].
				s.t.Errorf("server log shows a panic, race or internal error:\n%s", s.log)
				return
			case strings.Contains(l, `"level":"ERROR"`):
				s.t.Logf("server logged an error: %s", l)
			}
		}
	})
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

// --- mail in over SMTP -----------------------------------------------------

// deliver sends msg from → to over the MX listener with net/smtp (plain,
// no STARTTLS, no AUTH) and returns the error of the first refused step.
func deliver(addr, from string, to []string, msg string) error {
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return err
	}
	nc.SetDeadline(time.Now().Add(ioTimeout))
	c, err := smtp.NewClient(nc, "127.0.0.1")
	if err != nil {
		nc.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// mustDeliver delivers msg to rcpt and fails the test when it is refused.
func (s *server) mustDeliver(rcpt, msg string) {
	s.t.Helper()
	from := "sender@gov.kz"
	if m := regexp.MustCompile(`(?m)^From:.*<([^>]+)>`).FindStringSubmatch(msg); m != nil {
		from = m[1]
	}
	if err := deliver(s.smtp, from, []string{rcpt}, msg); err != nil {
		s.t.Fatalf("delivering to %s: %v", rcpt, err)
	}
}

// --- the test corpus -------------------------------------------------------

// crlf makes every line end in CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

var msgSeq atomic.Int64

// simpleMessage builds a well-formed one-part message.
func simpleMessage(to, subject, body string) string {
	return crlf(fmt.Sprintf("From: \"Tax Office\" <office@gov.kz>\nTo: <%s>\nSubject: %s\nDate: Mon, 05 Jan 2026 09:00:00 +0000\nMessage-ID: <%d.%d@gov.kz>\n\n%s\n",
		to, subject, time.Now().UnixNano(), msgSeq.Add(1), body))
}

// The three messages of the scenario mailbox, in delivery (UID) order.
const (
	plainSubject = "Hello plain"
	plainBody    = "plain body text\r\nsecond line\r\n"
	// utf8Subject is RFC 2047-encoded in the header; utf8Word is a word
	// of it to SEARCH for.
	utf8Subject = "Счёт за услуги связи"
	utf8Word    = "Счёт"
	// partText is the base64-encoded text part of the multipart message;
	// base64Word is a word that appears only in its decoded form.
	partText   = "Здравствуйте! Your invoice zebrafish number 42.\n"
	base64Word = "zebrafish"
	bigSubject = "Monthly report"
)

// attachment is the binary part of the multipart message.
func attachment() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s + "\n")
	return out.String()
}

func plainMessage(to string) string {
	return crlf(fmt.Sprintf("From: \"Tax Office\" <office@gov.kz>\nTo: <%s>\nSubject: %s\nDate: Mon, 05 Jan 2026 09:00:00 +0000\nMessage-ID: <plain-%d@gov.kz>\n\n%s",
		to, plainSubject, msgSeq.Add(1), plainBody))
}

func multipartMessage(to string) string {
	return crlf(fmt.Sprintf(`From: "Billing" <billing@kazpost.kz>
To: <%s>
Subject: %s
Date: Tue, 03 Feb 2026 10:00:00 +0500
Message-ID: <bill-%d@kazpost.kz>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1-abox"

This is a multi-part message in MIME format.
--b1-abox
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

%s
--b1-abox
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

%s
--b1-abox--
`, to, mime.BEncoding.Encode("utf-8", utf8Subject), msgSeq.Add(1), base64Lines([]byte(partText)), base64Lines(attachment())))
}

func bigMessage(to string) string {
	var body strings.Builder
	for i := 0; body.Len() < 6000; i++ {
		fmt.Fprintf(&body, "line %04d of the monthly statistics report\n", i)
	}
	return crlf(fmt.Sprintf("From: \"Reports\" <reports@stat.gov.kz>\nTo: <%s>\nSubject: %s\nDate: Wed, 04 Mar 2026 12:00:00 +0000\nMessage-ID: <big-%d@stat.gov.kz>\n\n%s",
		to, bigSubject, msgSeq.Add(1), body.String()))
}

// deliverCorpus delivers the plain, multipart and big messages to rcpt,
// in that order (UIDs 1, 2, 3 of a new INBOX).
func (s *server) deliverCorpus(rcpt string) {
	s.t.Helper()
	s.mustDeliver(rcpt, plainMessage(rcpt))
	s.mustDeliver(rcpt, multipartMessage(rcpt))
	s.mustDeliver(rcpt, bigMessage(rcpt))
}

// --- a raw IMAP client for exact responses ---------------------------------

// imapConn speaks IMAP line by line: commands get tags a1, a2, ...; a
// response with literals is read whole, each literal inlined after its
// {n} marker.
type imapConn struct {
	t    *testing.T
	name string // for messages
	nc   net.Conn
	r    *bufio.Reader
	tag  int
	// greeting is the server's first response.
	greeting string
}

// resp is a tagged command's outcome.
type resp struct {
	cmd      string
	untagged []string // "* ..." lines, literals inlined
	status   string   // OK, NO, BAD
	text     string   // the tagged line after the status
}

var codeRE = regexp.MustCompile(`^\[([A-Z0-9.=-]+)[ \]]`)

// code is the response code of the tagged line ("OVERQUOTA"), or "".
func (r resp) code() string {
	if m := codeRE.FindStringSubmatch(r.text); m != nil {
		return m[1]
	}
	return ""
}

func (r resp) String() string {
	var b strings.Builder
	for _, u := range r.untagged {
		b.WriteString(u + "\n")
	}
	b.WriteString(r.status + " " + r.text)
	return b.String()
}

// find returns the untagged responses that start with prefix (after "* ").
func (r resp) find(prefix string) []string {
	var out []string
	for _, u := range r.untagged {
		if strings.HasPrefix(strings.ToUpper(strings.TrimPrefix(u, "* ")), strings.ToUpper(prefix)) {
			out = append(out, u)
		}
	}
	return out
}

func (r resp) has(prefix string) bool { return len(r.find(prefix)) > 0 }

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: hostname}
}

// dialIMAPS connects to the implicit-TLS listener and reads the greeting.
func dialIMAPS(t *testing.T, addr, name string) *imapConn {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: clientTLS()}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("%s: dial TLS %s: %v", name, addr, err)
	}
	return newIMAPConn(t, nc, name)
}

// inInbox is a session on the implicit-TLS listener, logged in as user,
// with INBOX selected.
func inInbox(t *testing.T, addr, name, user string) *imapConn {
	t.Helper()
	c := dialIMAPS(t, addr, name)
	c.login(user)
	c.selectBox("SELECT", "INBOX")
	return c
}

// dialIMAP connects to the plain listener (STARTTLS) and reads the
// greeting.
func dialIMAP(t *testing.T, addr, name string) *imapConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, addr, err)
	}
	return newIMAPConn(t, nc, name)
}

func newIMAPConn(t *testing.T, nc net.Conn, name string) *imapConn {
	t.Helper()
	c := &imapConn{t: t, name: name, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { c.nc.Close() })
	g, err := c.readResponse(ioTimeout)
	if err != nil {
		t.Fatalf("%s: greeting: %v", name, err)
	}
	if !strings.HasPrefix(g, "* OK") {
		t.Fatalf("%s: greeting %q, want * OK", name, g)
	}
	c.greeting = g
	return c
}

var literalRE = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

// readResponse reads one response (a line and, for each literal it
// announces, the literal and the rest of the line).
func (c *imapConn) readResponse(timeout time.Duration) (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return b.String() + line, err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return b.String() + line, fmt.Errorf("response line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		b.WriteString(line)
		m := literalRE.FindStringSubmatch(line)
		if m == nil {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return b.String(), fmt.Errorf("reading a %d-byte literal: %w", n, err)
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// send writes raw bytes.
func (c *imapConn) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("%s: writing %q: %v", c.name, trim(s), err)
	}
}

func trim(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

func (c *imapConn) nextTag() string {
	c.tag++
	return "a" + strconv.Itoa(c.tag)
}

// try sends one command (without tag and CRLF; it may hold non-
// synchronizing literals) and reads its responses; it returns an error
// when the connection fails or closes first.
func (c *imapConn) try(command string) (resp, error) {
	c.t.Helper()
	tag := c.nextTag()
	c.send(tag + " " + command + "\r\n")
	return c.readTagged(tag, command)
}

// tryQuiet is try for goroutines other than the test's: it reports
// every failure as an error.
func (c *imapConn) tryQuiet(command string) (resp, error) {
	tag := c.nextTag()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write([]byte(tag + " " + command + "\r\n")); err != nil {
		return resp{cmd: command}, err
	}
	return c.readTagged(tag, command)
}

func (c *imapConn) readTagged(tag, command string) (resp, error) {
	r := resp{cmd: command}
	for {
		line, err := c.readResponse(ioTimeout)
		if err != nil {
			return r, fmt.Errorf("%s: %s: reading (so far %q, partial %q): %w", c.name, trim(command), r.untagged, line, err)
		}
		if strings.HasPrefix(line, tag+" ") {
			st, text, _ := strings.Cut(strings.TrimPrefix(line, tag+" "), " ")
			r.status, r.text = strings.ToUpper(st), text
			return r, nil
		}
		r.untagged = append(r.untagged, line)
	}
}

// do sends a command and returns its responses, whatever the status.
func (c *imapConn) do(format string, args ...any) resp {
	c.t.Helper()
	r, err := c.try(fmt.Sprintf(format, args...))
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// ok sends a command that must succeed.
func (c *imapConn) ok(format string, args ...any) resp {
	c.t.Helper()
	r := c.do(format, args...)
	if r.status != "OK" {
		c.t.Fatalf("%s: %s: got\n%s\nwant OK", c.name, trim(r.cmd), r)
	}
	return r
}

// no sends a command that must be refused with NO and the response code
// (unless code is "").
func (c *imapConn) no(code, format string, args ...any) resp {
	c.t.Helper()
	r := c.do(format, args...)
	if r.status != "NO" || code != "" && r.code() != code {
		want := "NO"
		if code != "" {
			want += " [" + code + "]"
		}
		c.t.Errorf("%s: %s: got\n%s\nwant %s", c.name, trim(r.cmd), r, want)
	}
	return r
}

// login logs in with LOGIN.
func (c *imapConn) login(user string) {
	c.t.Helper()
	c.ok("LOGIN %s %s", quote(user), quote(password))
}

// startTLS runs STARTTLS and the handshake.
func (c *imapConn) startTLS() {
	c.t.Helper()
	c.ok("STARTTLS")
	tc := tls.Client(c.nc, clientTLS())
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("%s: TLS handshake: %v", c.name, err)
	}
	tc.SetDeadline(time.Time{})
	c.nc, c.r = tc, bufio.NewReader(tc)
}

// caps runs CAPABILITY and returns the capabilities, upper-cased.
func (c *imapConn) caps() map[string]bool {
	c.t.Helper()
	r := c.ok("CAPABILITY")
	out := map[string]bool{}
	for _, l := range r.find("CAPABILITY ") {
		for _, f := range strings.Fields(l)[2:] {
			out[strings.ToUpper(f)] = true
		}
	}
	return out
}

// idle starts IDLE; the returned tag ends it with done.
func (c *imapConn) idle() string {
	c.t.Helper()
	tag := c.nextTag()
	c.send(tag + " IDLE\r\n")
	for {
		line, err := c.readResponse(ioTimeout)
		if err != nil {
			c.t.Fatalf("%s: IDLE: %v", c.name, err)
		}
		if strings.HasPrefix(line, "+") {
			return tag
		}
		if strings.HasPrefix(line, tag+" ") {
			c.t.Fatalf("%s: IDLE refused: %q", c.name, line)
		}
	}
}

// waitFor reads untagged responses (while IDLE) until one matches re, and
// returns it; it fails the test when none comes within waitTimeout.
func (c *imapConn) waitFor(re *regexp.Regexp) string {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var seen []string
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("%s: no response matching %q within %v; saw %q", c.name, re, waitTimeout, seen)
		}
		line, err := c.readResponse(left)
		if err != nil {
			c.t.Fatalf("%s: waiting for %q (saw %q): %v", c.name, re, seen, err)
		}
		if re.MatchString(line) {
			return line
		}
		seen = append(seen, line)
	}
}

// done ends IDLE and reads the tagged OK.
func (c *imapConn) done(tag string) resp {
	c.t.Helper()
	c.send("DONE\r\n")
	r, err := c.readTagged(tag, "IDLE")
	if err != nil {
		c.t.Fatal(err)
	}
	if r.status != "OK" {
		c.t.Fatalf("%s: IDLE ended with %s", c.name, r)
	}
	return r
}

// quote makes an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// literal makes a non-synchronizing literal (LITERAL+).
func literal(s string) string {
	return fmt.Sprintf("{%d+}\r\n%s", len(s), s)
}

var (
	uidValidityRE = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	existsRE      = regexp.MustCompile(`^\* (\d+) EXISTS$`)
)

// selectInfo is what SELECT said.
type selectInfo struct {
	exists      int
	uidValidity uint32
}

// selectBox SELECTs (or EXAMINEs) a mailbox that must exist.
func (c *imapConn) selectBox(cmd, mailbox string) selectInfo {
	c.t.Helper()
	r := c.ok("%s %s", cmd, quote(mailbox))
	var si selectInfo
	si.exists = -1
	for _, u := range r.untagged {
		if m := existsRE.FindStringSubmatch(u); m != nil {
			si.exists, _ = strconv.Atoi(m[1])
		}
		if m := uidValidityRE.FindStringSubmatch(u); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			si.uidValidity = uint32(v)
		}
	}
	if si.exists < 0 || si.uidValidity == 0 {
		c.t.Fatalf("%s: %s %s: no EXISTS or UIDVALIDITY:\n%s", c.name, cmd, mailbox, r)
	}
	return si
}

var uidRE = regexp.MustCompile(`\bUID (\d+)\b`)

// uids returns the UIDs of the selected mailbox, in sequence order.
func (c *imapConn) uids() []uint32 {
	c.t.Helper()
	r := c.ok("UID FETCH 1:* (UID)")
	var out []uint32
	for _, u := range r.find("") {
		if !strings.Contains(u, " FETCH ") {
			continue
		}
		if m := uidRE.FindStringSubmatch(u); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			out = append(out, uint32(v))
		}
	}
	return out
}

// --- external clients ------------------------------------------------------

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// runTool runs an external client with extra environment; it returns
// combined output and the exit code.
func runTool(t *testing.T, extraEnv []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
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
