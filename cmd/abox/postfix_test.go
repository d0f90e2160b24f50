package main

// Interoperability of abox's outbound mail with a real third-party MTA:
// Debian's Postfix, run privately for one test (its own configuration,
// queue, data and mail directories under a temporary directory, its
// SMTP server on a random 127.x.y.z address), as the MX of a test
// domain and as a smarthost.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// postfixOpts says what a private Postfix accepts.
type postfixOpts struct {
	// Domains are delivered into one Maildir (every address).
	Domains []string
	// Defer and Reject are recipients answered 450 4.2.1 and 550 5.1.1
	// at RCPT (an access map).
	Defer, Reject []string
}

// postfixServer is a private Postfix instance that runs until the test
// ends.
type postfixServer struct {
	t       *testing.T
	dir     string // everything of this instance is under it
	conf    string // its config_directory
	IP      string // the address its SMTP server listens on
	Port    int
	Addr    string // IP:Port
	Host    string // myhostname, and its certificate's name
	CAFile  string // PEM of the CA that signed its certificate
	maildir string
	logFile string
}

// postfixBinary returns the postfix command, or skips the test when
// there is none (or when Postfix cannot run here: it needs root) unless
// ABOX_REQUIRE_POSTFIX is set, as CI sets it, so that CI never skips
// silently.
func postfixBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("postfix")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/postfix"); serr == nil {
			bin, err = "/usr/sbin/postfix", nil
		}
	}
	required := os.Getenv("ABOX_REQUIRE_POSTFIX") != ""
	switch {
	case err != nil && required:
		t.Fatalf("ABOX_REQUIRE_POSTFIX is set and there is no postfix command: %v", err)
	case err != nil:
		t.Skip("no postfix command (apt-get install postfix; ABOX_REQUIRE_POSTFIX=1 makes this a failure)")
	case os.Geteuid() != 0 && !required:
		t.Skip("Postfix's master must start as root (ABOX_REQUIRE_POSTFIX=1 makes this a failure)")
	}
	return bin
}

// startPostfix configures and starts a private Postfix: SMTP on a
// random 127.x.y.z address and a free port, STARTTLS with a certificate
// from a test CA (CAFile), o's domains delivered into one Maildir, o's
// Defer and Reject recipients refused at RCPT, its log in a file.
// `postfix stop` at the test's cleanup; the log is printed when the test
// failed.
func startPostfix(t *testing.T, o postfixOpts) *postfixServer {
	t.Helper()
	bin := postfixBinary(t)
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("the postfix package's user: %v", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(pfUser.Gid)

	// Not t.TempDir(): its parents are 0700, and Postfix's daemons run
	// as the postfix user (the virtual delivery agent as the mailbox
	// owner) and open paths under it.
	dir, err := os.MkdirTemp("", "abox-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &postfixServer{t: t, dir: dir, conf: filepath.Join(dir, "conf"), Host: "mx.postfix.test",
		maildir: filepath.Join(dir, "mail", "box"), logFile: filepath.Join(dir, "maillog")}
	for _, d := range []string{"conf", "queue", "data", "mail"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// master.lock and the TLS caches are the postfix user's; the
	// Maildir the mailbox owner's (the same user here).
	for _, d := range []string{"data", "mail"} {
		if err := os.Chown(filepath.Join(dir, d), uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	p.IP = fmt.Sprintf("127.%d.%d.%d", 10+mrand.IntN(240), mrand.IntN(256), 1+mrand.IntN(254))
	ln, err := net.Listen("tcp", p.IP+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", p.IP, err)
	}
	p.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p.Addr = net.JoinHostPort(p.IP, strconv.Itoa(p.Port))

	caPEM, certPEM, keyPEM := testPKI(t, []string{p.Host, "relay.postfix.test"}, net.ParseIP(p.IP))
	p.CAFile = writeFile(t, dir, "ca.pem", caPEM)
	writeFile(t, p.conf, "cert.pem", certPEM)
	writeFile(t, p.conf, "key.pem", keyPEM)

	var access strings.Builder
	for _, r := range o.Defer {
		fmt.Fprintf(&access, "%s 450 4.2.1 mailbox busy, try again later (postfix test)\n", r)
	}
	for _, r := range o.Reject {
		fmt.Fprintf(&access, "%s 550 5.1.1 no such mailbox here (postfix test)\n", r)
	}
	writeFile(t, p.conf, "access", []byte(access.String()))

	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
# Postfix refuses an inet_interfaces address no interface has (Linux
# answers all of 127/8 on lo without naming each address); the one SMTP
# service below binds its address itself.
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = %[2]s
mydomain = postfix.test
mydestination =
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = %[3]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:%[4]d
virtual_gid_maps = static:%[5]d
smtpd_recipient_restrictions = check_recipient_access texthash:%[1]s/conf/access, reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_cert_file = %[1]s/conf/cert.pem
smtpd_tls_key_file = %[1]s/conf/key.pem
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
`, dir, p.Host, strings.Join(o.Domains, ", "), uid, gid)
	writeFile(t, p.conf, "main.cf", []byte(mainCF))
	// No chroot (the default master.cf of Debian chroots smtpd into
	// the queue directory) and only the services this needs.
	masterCF := p.Addr + ` inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`
	writeFile(t, p.conf, "master.cf", []byte(masterCF))

	// start-fg keeps the master a child of this process's child (so its
	// daemons are reaped, even where PID 1 reaps nothing); it creates the
	// queue directories first, as `postfix check` does.
	cmd := exec.Command(bin, "-c", p.conf, "start-fg")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		exec.Command(bin, "-c", p.conf, "stop").Run()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("postfix start-fg still running 15 s after postfix stop")
		}
		if t.Failed() {
			t.Logf("Postfix's log (%s):\n%s", p.logFile, p.Log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if greeting, err := smtpGreeting(p.Addr); err == nil {
			if !strings.HasPrefix(greeting, "220 "+p.Host) {
				t.Fatalf("Postfix greets %q", greeting)
			}
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("postfix start-fg exited (%v):\n%s\nlog:\n%s", err, out.String(), p.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix does not answer on %s after 30 s:\n%s\nlog:\n%s", p.Addr, out.String(), p.Log())
		}
	}
	return p
}

// smtpGreeting connects to addr and returns the first line it says.
func smtpGreeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	io.WriteString(c, "QUIT\r\n")
	return strings.TrimSpace(line), err
}

// Log returns Postfix's log so far.
func (p *postfixServer) Log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// LogLines returns the lines of Postfix's log that contain every one of
// words.
func (p *postfixServer) LogLines(words ...string) []string {
	var out []string
next:
	for _, l := range strings.Split(p.Log(), "\n") {
		for _, w := range words {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// Messages returns what Postfix delivered to the Maildir, oldest first,
// with CRLF line ends again (the Maildir keeps the local convention,
// LF; the message came over SMTP with CRLF, which DKIM signed).
func (p *postfixServer) Messages() []string {
	p.t.Helper()
	entries, err := os.ReadDir(filepath.Join(p.maildir, "new"))
	if err != nil && !os.IsNotExist(err) {
		p.t.Fatal(err)
	}
	type file struct {
		mod  time.Time
		body string
	}
	var files []file
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(p.maildir, "new", e.Name()))
		if err != nil {
			p.t.Fatal(err)
		}
		info, _ := e.Info()
		files = append(files, file{info.ModTime(), strings.ReplaceAll(string(b), "\n", "\r\n")})
	}
	slices.SortStableFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	var out []string
	for _, f := range files {
		out = append(out, f.body)
	}
	return out
}

// WaitMessages polls the Maildir until it holds n messages.
func (p *postfixServer) WaitMessages(n int, within time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := p.Messages()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("Postfix's Maildir has %d messages after %v, want %d", len(got), within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testPKI makes a CA and a certificate it signs for names and ip, and
// returns the CA's certificate, the leaf's and its key, in PEM.
func testPKI(t *testing.T, names []string, ip net.IP) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(mrand.Int64()), Subject: pkix.Name{CommonName: "abox test CA " + names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(mrand.Int64()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip != nil {
		leaf.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

// resolverAt is a Go resolver that asks only the DNS server at addr.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "udp", addr)
	}}
}

// waitQueue polls `abox queue list --json` until ok holds for it.
func waitQueue(t *testing.T, a *abox, within time.Duration, what string, ok func([]queueView) bool) []queueView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var q []queueView
		a.JSON(&q, "queue", "list")
		if ok(q) {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue is not %s after %v: %+v", what, within, q)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Received fields of a message abox sent and Postfix delivered: Postfix's
// (the first, RFC 5321 §4.4) names a TLS session ("with ESMTPS", or
// UTF8SMTPS when abox said SMTPUTF8, RFC 6531 §3.7.3, and the cipher
// with smtpd_tls_received_header); abox's own (below it) names the
// authenticated submission and not the subscriber's IP address.
var (
	postfixReceived = regexp.MustCompile(`(?m)^Received: from mx\.sender\.test \(localhost \[127\.0\.0\.1\]\)\r\n\t\(using TLS[^)]*\)(?:\r\n[\t ][^\r]*)*?\r\n\tby mx\.postfix\.test \(Postfix\) with (?:ESMTPS|UTF8SMTPS) id `)
	aboxReceived    = regexp.MustCompile(`(?m)^Received: by mx\.sender\.test \(abox\) with (?:ESMTPSA|UTF8SMTPSA) id [^\r]*\r\n\t\(using TLS [^)]*\)\r\n\t\(authenticated sender: alice@sender\.test\)`)
)

func checkTrace(t *testing.T, msg string) {
	t.Helper()
	hdr, _, _ := strings.Cut(msg, "\r\n\r\n")
	pf, ab := postfixReceived.FindStringIndex(hdr), aboxReceived.FindStringIndex(hdr)
	switch {
	case pf == nil:
		t.Errorf("no Received field of Postfix's recording a TLS session:\n%s", hdr)
	case ab == nil:
		t.Errorf("no Received field of abox's for the authenticated submission:\n%s", hdr)
	case ab[0] < pf[0]:
		t.Errorf("abox's Received field is above Postfix's:\n%s", hdr)
	}
	if strings.Contains(hdr, "client.test") {
		t.Errorf("the subscriber's HELO name went out:\n%s", hdr)
	}
}

// TestOutboundToPostfix: a subscriber's letter to three recipients at a
// domain whose MX is a real Postfix: one accepted, one answered 450,
// one 550. The accepted copy lands in Postfix's Maildir, DKIM-signed
// (go-msgauth verifies it against the published key), with abox's
// Received field and Postfix's own saying the session used TLS; the
// 550 comes back to the sender as a bounce with Postfix's words; the
// 450 is tried again and again (Postfix logs each refusal, abox's queue
// counts the attempts) until the lifetime ends in a "gave up" bounce.
func TestOutboundToPostfix(t *testing.T) {
	t.Parallel()
	const (
		ok       = "carol@postfix.test"
		deferred = "busy@postfix.test"
		rejected = "nobody@postfix.test"
	)
	pf := startPostfix(t, postfixOpts{Domains: []string{"postfix.test"}, Defer: []string{deferred}, Reject: []string{rejected}})

	a := newAbox(t)
	a.Hostname = "mx.sender.test"
	a.OK("domain", "add", "sender.test")
	a.JSONIn(goodPassword+"\n", &userJSON{}, "user", "add", "alice@sender.test", "--phone", testPhone, "--password-stdin")
	var keys []dkimView
	a.JSON(&keys, "domain", "dkim", "sender.test")
	zone := []string{
		"postfix.test. 300 IN MX 10 mx.postfix.test.",
		"mx.postfix.test. 300 IN A " + pf.IP,
		"sender.test. 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"",
	}
	for _, k := range keys {
		zone = append(zone, fmt.Sprintf("%s. 300 IN TXT %s", k.Name, txtQuoted(k.Record)))
	}
	resolver := serveZoneAt(t, mustRRs(t, zone...))
	const lifetime = 8 * time.Second
	a.ServeFlags = []string{"--dns-resolver", resolver, "--outbound-port", strconv.Itoa(pf.Port),
		"--outbound-retry-min", "500ms", "--outbound-retry-max", "1s", "--outbound-lifetime", lifetime.String()}
	a.srv = a.Start()
	addrs := a.srv.Addrs()

	c := submitter(t, addrs["submission"], "alice@sender.test", goodPassword)
	if err := c.Mail("alice@sender.test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{ok, deferred, rejected} {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	sendData(t, c, crlf("From: Alice <alice@sender.test>\nTo: "+ok+", "+deferred+", "+rejected+
		"\nSubject: to postfix\nMessage-ID: <pf-1@sender.test>\n\nHello Postfix.\n"))
	c.Quit()

	// The accepted recipient's copy.
	msg := pf.WaitMessages(1, 30*time.Second)[0]
	vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return resolverAt(resolver).LookupTXT(context.Background(), name) }})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "sender.test" {
		t.Errorf("DKIM of the copy Postfix delivered: %+v, %v", vs, err)
		for _, v := range vs {
			t.Logf("verification: %+v (err %v)", v, v.Err)
		}
	}
	hdr, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, want := range []string{"Delivered-To: " + ok, "Message-ID: <pf-1@sender.test>"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("the copy in Postfix's Maildir lacks %q:\n%s", want, msg)
		}
	}
	checkTrace(t, msg)
	if !strings.Contains(msg, "\r\n\r\nHello Postfix.\r\n") {
		t.Errorf("the body did not arrive as sent:\n%s", msg)
	}
	if len(pf.LogLines("TLS connection established from")) == 0 {
		t.Errorf("Postfix logged no TLS connection")
	}

	// The 450: tried again (at least twice by now, as both sides see).
	q := waitQueue(t, a, lifetime, "tried twice", func(q []queueView) bool { return len(q) == 1 && q[0].Attempts >= 2 })
	if len(q[0].Recipients) != 3 || !strings.Contains(q[0].LastError, "450 4.2.1") || !strings.Contains(q[0].LastError, "try again later (postfix test)") {
		t.Errorf("the queue entry after two attempts: %+v", q[0])
	}
	if n := len(pf.LogLines("reject: RCPT from", "<"+deferred+">", "450 4.2.1")); n < 2 {
		t.Errorf("Postfix logged %d refusals of %s, want at least 2 attempts", n, deferred)
	}

	// Two bounces: the 550 at once, the 450 at the end of the lifetime.
	notes := waitMessages(t, addrs["imaps"], "alice@sender.test", 2, lifetime+30*time.Second)
	findNotice(t, notes, "Final-Recipient: rfc822; "+rejected, "Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx.postfix.test",
		"Diagnostic-Code: smtp; 550 5.1.1 <"+rejected+">: Recipient address rejected: no such mailbox here (postfix test)")
	findNotice(t, notes, "Final-Recipient: rfc822; "+deferred, "Action: failed", "gave up after", "450 4.2.1", "try again later (postfix test)")
	for _, n := range notes {
		if strings.Contains(n, "Final-Recipient: rfc822; "+ok) {
			t.Errorf("a notification names the delivered recipient:\n%s", n)
		}
	}
	if n := len(pf.LogLines("reject: RCPT from", "<"+deferred+">")); n < 3 {
		t.Errorf("Postfix logged %d attempts for %s over the lifetime", n, deferred)
	}
	if got := pf.Messages(); len(got) != 1 {
		t.Errorf("Postfix delivered %d messages, want 1", len(got))
	}
	waitQueue(t, a, 10*time.Second, "empty", func(q []queueView) bool { return len(q) == 0 })
}

// TestOutboundSmarthostPostfix: abox relays through Postfix as its
// smarthost (STARTTLS required, the certificate checked against
// --outbound-ca-file). With the CA of another PKI the certificate is
// not trusted: the letter waits in the queue (deferred, the reason
// named) and nothing reaches Postfix; restarted with the right CA, that
// letter and a new one arrive. far.test has no DNS records at all: only
// the smarthost can have carried them.
func TestOutboundSmarthostPostfix(t *testing.T) {
	t.Parallel()
	pf := startPostfix(t, postfixOpts{Domains: []string{"far.test"}})
	wrongCA, _, _ := testPKI(t, []string{pf.Host}, nil)

	a := newAbox(t)
	a.Hostname = "mx.sender.test"
	a.OK("domain", "add", "sender.test")
	a.JSONIn(goodPassword+"\n", &userJSON{}, "user", "add", "alice@sender.test", "--phone", testPhone, "--password-stdin")
	resolver := serveZoneAt(t, mustRRs(t, "relay.postfix.test. 300 IN A "+pf.IP))
	flags := func(caFile string) []string {
		return []string{"--dns-resolver", resolver,
			"--outbound-smarthost", net.JoinHostPort("relay.postfix.test", strconv.Itoa(pf.Port)),
			"--outbound-smarthost-tls", "starttls", "--outbound-ca-file", caFile,
			"--outbound-retry-min", "300ms", "--outbound-retry-max", "1s"}
	}
	send := func(addrs map[string]string, subject string) {
		t.Helper()
		if err := submitAs(t, addrs, "alice@sender.test", goodPassword, "alice@sender.test", []string{"dan@far.test"},
			"From: alice@sender.test\nTo: dan@far.test\nSubject: "+subject+"\n\nvia the smarthost\n"); err != nil {
			t.Fatalf("submit %q: %v", subject, err)
		}
	}

	a.ServeFlags = flags(writeFile(t, t.TempDir(), "wrong-ca.pem", wrongCA))
	a.srv = a.Start()
	send(a.srv.Addrs(), "untrusted relay")
	q := waitQueue(t, a, 20*time.Second, "tried twice", func(q []queueView) bool {
		if got := pf.Messages(); len(got) != 0 {
			t.Fatalf("Postfix got the letter from a relay session whose certificate was not trusted:\n%s", got[0])
		}
		return len(q) == 1 && q[0].Attempts >= 2
	})
	if e := q[0].LastError; !strings.Contains(e, "451 4.7.5") || !strings.Contains(e, "certificate of relay.postfix.test") ||
		!strings.Contains(e, "certificate signed by unknown authority") {
		t.Errorf("the deferred entry's reason: %q, want the untrusted certificate named", e)
	}
	if got := pf.Messages(); len(got) != 0 {
		t.Fatalf("Postfix got %d messages from a relay session whose certificate was not trusted", len(got))
	}
	if n := len(pf.LogLines("connect from")); n < 2 {
		t.Errorf("Postfix logged %d connections, want one per attempt", n)
	}
	if n := len(inboxBodies(t, a.srv.Addr("imaps"), "alice@sender.test", "INBOX")); n != 0 {
		t.Errorf("the sender got %d notifications for a deferral", n)
	}
	a.srv.Stop()

	a.ServeFlags = flags(pf.CAFile)
	a.srv = a.Start()
	send(a.srv.Addrs(), "trusted relay")
	got := pf.WaitMessages(2, 30*time.Second)
	var subjects []string
	for _, m := range got {
		if !strings.Contains(m, "Delivered-To: dan@far.test") {
			t.Errorf("a relayed message is not for dan@far.test:\n%s", m)
		}
		checkTrace(t, m)
		for _, l := range strings.Split(m, "\r\n") {
			if s, ok := strings.CutPrefix(l, "Subject: "); ok {
				subjects = append(subjects, s)
			}
		}
	}
	slices.Sort(subjects)
	if !slices.Equal(subjects, []string{"trusted relay", "untrusted relay"}) {
		t.Errorf("Postfix got %q", subjects)
	}
	waitQueue(t, a, 10*time.Second, "empty", func(q []queueView) bool { return len(q) == 0 })
	// Both letters may share one session (connection reuse).
	if n := len(pf.LogLines("TLS connection established from")); n < 1 {
		t.Errorf("Postfix logged %d TLS sessions, want the relay's", n)
	}
}
