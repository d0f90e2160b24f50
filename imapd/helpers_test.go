package imapd_test

// Helpers for the IMAP integration tests: on the harness of the abox
// binary (aboxtest: the binary, the CLI, `abox serve` on a temporary data
// directory and the checks at cleanup), mail in with net/smtp, the test
// corpus, a raw IMAP line client for exact responses and the runner of
// the other clients (go-imap's imapclient, python3 imaplib, mbsync,
// curl).

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// Generous limits: the suite must pass on a loaded two-core machine with
// the race detector on. None of them is an assertion about speed.
const (
	ioTimeout   = time.Minute      // one IMAP or SMTP exchange
	waitTimeout = 30 * time.Second // an untagged update an IDLE session waits for
)

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

// usage is the usage part of `user show --json`.
type usage struct {
	StorageBytes int64 `json:"storage_bytes"`
	Messages     int64 `json:"messages"`
}

func (e *env) usage(addr string) usage {
	e.t.Helper()
	var v struct {
		Usage *usage `json:"usage"`
	}
	e.JSON(&v, "user", "show", addr)
	if v.Usage == nil {
		e.t.Fatalf("user show %s --json: no usage", addr)
	}
	return *v.Usage
}

// server is a running `abox serve` and the listeners the tests use.
type server struct {
	*aboxtest.Server
	t     *testing.T
	smtp  string // host:port of each listener used here
	sub   string // submission (STARTTLS)
	imap  string
	imaps string
	http  string
}

// start runs abox serve on the env's data directory until the test ends
// (aboxtest.Env.Start).
func (e *env) start() *server {
	e.t.Helper()
	s := e.Start()
	e.srv = &server{Server: s, t: e.t, smtp: s.Addr("smtp"), sub: s.Addr("submission"),
		imap: s.Addr("imap"), imaps: s.Addr("imaps"), http: s.Addr("http")}
	return e.srv
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
	return runToolFor(t, aboxtest.CommandTimeout, extraEnv, name, args...)
}

// runToolFor is runTool with its own bound on the run: a guard against
// a hang, never a measure of speed.
func runToolFor(t *testing.T, limit time.Duration, extraEnv []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
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
		t.Fatalf("%s: no exit within %v\n%s", name, limit, trimLog(string(out)))
	case errors.As(err, &ee) && ee.Exited():
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return "", -1
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
