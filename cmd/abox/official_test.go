package main

// End-to-end tests of official letters (SPEC "Official letters", the
// `user consent`, `sender add`, `notice show/verify` and `broadcast` rows
// of the command table, and the SMTP consent refusal) and of operator
// broadcasts. They drive the real binary (built in TestMain) with real
// clients only: net/smtp for submission, go-imap v2's imapclient over
// implicit TLS, net/http for the notice API, and the control socket's
// own line protocol where a test must see a broadcast's progress.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	bolt "go.etcd.io/bbolt"

	"abox/consent/consenttest"

	"abox/cmd/abox/aboxtest"
)

// Passwords of the trusted senders (SPEC password rules: 10+ characters,
// zxcvbn score at least 3, not containing the name).
const (
	egovPassword    = "Tundra-Pelican-Marble-47"
	courtPassword   = "Quartz-Meadow-Lantern-62"
	telecomPassword = "Saffron-Glacier-Pylon-35"
	kazpostPassword = "Walnut-Harbor-Cinder-58"
)

// netTimeout bounds one protocol exchange with the server.
const netTimeout = time.Minute

// fastHashing makes argon2id cheap for this data directory (the server
// and every CLI run read DIR/abox.toml): hundreds of accounts are
// registered below, and hashing strength is not what these tests check.
// more are further lines of that file.
func fastHashing(t *testing.T, dir string, more ...string) {
	t.Helper()
	cfg := "argon2-memory-kib = 64\nargon2-iterations = 1\n"
	for _, line := range more {
		cfg += line + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testCert makes a self-signed X.509 certificate valid from notBefore to
// notAfter and returns its DER bytes.
func testCert(t *testing.T, cn string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Country: []string{"KZ"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// submitter is a submission session: EHLO, STARTTLS, EHLO, AUTH PLAIN.
func submitter(t *testing.T, addr, user, password string) *smtp.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, netTimeout)
	if err != nil {
		t.Fatalf("dial submission %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(netTimeout))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		t.Fatalf("submission greeting: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if err := c.StartTLS(&tls.Config{ServerName: "test.local", InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", user, password, host)); err != nil {
		t.Fatalf("AUTH PLAIN as %s: %v", user, err)
	}
	return c
}

// smtpCode splits a net/smtp error into its reply code and text.
func smtpCode(err error) (int, string) {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, te.Msg
	}
	return 0, fmt.Sprint(err)
}

// sendData sends DATA and the message and wants 250.
func sendData(t *testing.T, c *smtp.Client, msg string) {
	t.Helper()
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatalf("DATA: writing the message: %v", err)
	}
	if err := w.Close(); err != nil {
		code, text := smtpCode(err)
		t.Fatalf("end of DATA: want 250, got %d %s", code, text)
	}
}

// crlf turns a message written with \n into one with CRLF line ends.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// imapLogin opens an IMAP session over implicit TLS.
func imapLogin(t *testing.T, addr, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{
		TLSConfig: &tls.Config{ServerName: "test.local", InsecureSkipVerify: true},
		Dialer:    &net.Dialer{Timeout: netTimeout},
	})
	if err != nil {
		t.Fatalf("imaps dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN %s: %v", user, err)
	}
	return c
}

// fetchOne fetches message 1 of the selected mailbox with FLAGS and the
// given body section (nil: none) and returns its flags and body bytes.
func fetchOne(t *testing.T, c *imapclient.Client, section *imap.FetchItemBodySection) ([]imap.Flag, []byte) {
	t.Helper()
	opts := &imap.FetchOptions{Flags: true, UID: true}
	if section != nil {
		opts.BodySection = []*imap.FetchItemBodySection{section}
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), opts).Collect()
	if err != nil {
		t.Fatalf("FETCH 1: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("FETCH 1: %d messages", len(msgs))
	}
	var body []byte
	if section != nil {
		body = msgs[0].FindBodySection(section)
	}
	flags := msgs[0].Flags
	if section != nil && !section.Peek && flags == nil {
		// The FETCH that set \Seen carries FLAGS; if the server sent
		// them in a separate response, ask again.
		flags, _ = fetchOne(t, c, nil)
	}
	return flags, body
}

func storeFlags(t *testing.T, c *imapclient.Client, op imap.StoreFlagsOp, flags ...imap.Flag) ([]imap.Flag, error) {
	t.Helper()
	msgs, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: op, Flags: flags}, nil).Collect()
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		t.Fatalf("STORE: %d FETCH responses", len(msgs))
	}
	return msgs[0].Flags, nil
}

// noticeRcpt and noticeJSON are SPEC's notice document.
type noticeRcpt struct {
	Address     string     `json:"address"`
	AcceptedAt  *time.Time `json:"accepted_at"`
	StoredAt    *time.Time `json:"stored_at"`
	FirstReadAt *time.Time `json:"first_read_at"`
	DeletedAt   *time.Time `json:"deleted_at"`
	Refused     string     `json:"refused"`
}

type noticeJSON struct {
	MessageID  string       `json:"message_id"`
	Sender     string       `json:"sender"`
	Recipients []noticeRcpt `json:"recipients"`
}

func (n noticeJSON) rcpt(t *testing.T, addr string) noticeRcpt {
	t.Helper()
	for _, r := range n.Recipients {
		if r.Address == addr {
			return r
		}
	}
	t.Fatalf("notice %s lists no recipient %s: %+v", n.MessageID, addr, n)
	return noticeRcpt{}
}

// checkNoticeShape checks a notice document's raw JSON: exactly SPEC's
// keys, every recipient with all four times (RFC 3339 UTC strings or
// null), and "refused" only as "no-consent".
func checkNoticeShape(t *testing.T, raw []byte) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("notice is not a JSON object: %v\n%s", err, raw)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	if !slices.Equal(sortedCopy(keys), []string{"message_id", "recipients", "sender"}) {
		t.Errorf("notice keys %v, want message_id, recipients, sender", sortedCopy(keys))
	}
	var rs []map[string]any
	if err := json.Unmarshal(doc["recipients"], &rs); err != nil {
		t.Fatalf("notice recipients: %v\n%s", err, raw)
	}
	for _, r := range rs {
		for _, k := range []string{"address", "accepted_at", "stored_at", "first_read_at", "deleted_at"} {
			v, ok := r[k]
			if !ok {
				t.Errorf("notice recipient %v lacks %q (null is required when unknown)", r["address"], k)
				continue
			}
			if k == "address" || v == nil {
				continue
			}
			s, isStr := v.(string)
			if !isStr {
				t.Errorf("notice recipient %v: %s is %v, want an RFC 3339 string or null", r["address"], k, v)
				continue
			}
			if ts, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") || ts.Location() != time.UTC {
				t.Errorf("notice recipient %v: %s = %q is not an RFC 3339 UTC time", r["address"], k, s)
			}
		}
		if v, ok := r["refused"]; ok && v != "no-consent" {
			t.Errorf("notice recipient %v: refused = %v", r["address"], v)
		}
	}
}

// notice runs `notice show ID --json` and returns the decoded document
// and its raw JSON.
func (a *abox) notice(id string) (noticeJSON, []byte) {
	a.t.Helper()
	out := a.OK("notice", "show", id, "--json")
	var n noticeJSON
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		a.t.Fatalf("notice show %s --json: %v\n%s", id, err, out)
	}
	checkNoticeShape(a.t, []byte(out))
	return n, []byte(out)
}

// sameJSON compares two JSON documents by value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func TestOfficialLetter(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.OK("domain", "add", testDomain)
	a.addUser("alice")
	a.addUser("bob")
	a.addUser("carol")
	alice, bob, carol := "alice@"+testDomain, "bob@"+testDomain, "carol@"+testDomain
	// Readers of the second letter, one per way of reading it.
	readers := []string{"dave", "erin", "frank", "gina", "hank"}
	for _, login := range readers {
		a.addUser(login)
	}

	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	a.OKIn(courtPassword+"\n", "sender", "add", "court", "--kind", "official", "--from", "letters@court.kz", "--password-stdin")
	a.OKIn(telecomPassword+"\n", "sender", "add", "telecom", "--kind", "billing", "--from", "bills@telecom.kz", "--password-stdin")

	// Consent: a CMS signature over each subscriber's statement, made
	// with a certificate of the test national CA; given with SPEC's
	// --certificate (alice) and with --cms (the others). consent_test.go
	// covers every refusal.
	now := time.Now()
	pki := configureConsent(t, a, now)
	certs := t.TempDir()
	garbage := writeFile(t, certs, "garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"))
	bobFile, bobCert := a.consentFile(pki, bob, now)
	bare := writeFile(t, certs, "bob.pem", consenttest.CertPEM(bobCert.Cert))
	if r := a.Fail(1, "user", "consent", bob, "--certificate", bare); !strings.Contains(r.Stderr, "not a signed consent") {
		t.Errorf("a bare certificate: want a line saying it is not a signed consent; %v", r)
	}
	a.Fail(1, "user", "consent", bob, "--certificate", garbage)
	a.Fail(1, "user", "consent", bob, "--certificate", filepath.Join(certs, "absent.pem"))
	a.Fail(1, "user", "consent", "nobody@"+testDomain, "--certificate", bobFile)
	a.Fail(2, "user", "consent", bob)
	a.Fail(2, "user", "consent", "--certificate", bobFile)
	if u := a.showUserRaw(bob); u["consent"] != nil {
		t.Errorf("refused consents recorded one for bob: %v", u["consent"])
	}

	aliceFile, _ := a.consentFile(pki, alice, now)
	a.OK("user", "consent", alice, "--certificate", aliceFile)
	carolFile, _ := a.consentFile(pki, carol, now)
	a.OK("user", "consent", carol, "--cms", carolFile)
	for _, login := range readers {
		f, _ := a.consentFile(pki, login+"@"+testDomain, now)
		a.OK("user", "consent", login+"@"+testDomain, "--cms", f)
	}
	for _, who := range []string{alice, carol} {
		u := a.showUserRaw(who)
		c, _ := u["consent"].(map[string]any)
		if c == nil || c["verified"] != true || u["consent_status"] != "in-force" {
			t.Errorf("user show %s after user consent: %v", who, u)
		}
	}

	a.srv = a.Start()
	addrs := a.srv.Addrs()

	// egov submits one letter to alice, bob (no consent) and carol.
	letter := crlf("From: Electronic Government <notices@egov.kz>\n" +
		"To: alice@example.kz, bob@example.kz, carol@example.kz\n" +
		"Subject: Official notice 1\n" +
		"Date: " + now.Format(time.RFC1123Z) + "\n" +
		"Message-ID: <letter-1@egov.kz>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"\n" +
		"You are hereby notified.\n")
	c := submitter(t, addrs["submission"], "egov", egovPassword)
	if err := c.Mail("notices@egov.kz"); err != nil {
		t.Fatalf("MAIL FROM as egov: %v", err)
	}
	if err := c.Rcpt(alice); err != nil {
		t.Fatalf("RCPT TO alice (consented): %v", err)
	}
	err := c.Rcpt(bob)
	code, text := smtpCode(err)
	if code != 550 || !strings.HasPrefix(text, "5.7.1 ") {
		t.Errorf("RCPT TO bob (no consent): want 550 5.7.1, got %d %q", code, text)
	}
	if low := strings.ToLower(text); !strings.Contains(low, "consent") && !strings.Contains(low, "signature") {
		t.Errorf("RCPT TO bob: the reason should mention the signature/consent: %q", text)
	}
	if err := c.Rcpt(carol); err != nil {
		t.Fatalf("RCPT TO carol (consented with DER): %v", err)
	}
	sendData(t, c, letter)
	c.Quit()

	// A billing sender's letter is not official: bob gets it without
	// consent, and without $Official.
	c = submitter(t, addrs["submission"], "telecom", telecomPassword)
	if err := c.Mail("bills@telecom.kz"); err != nil {
		t.Fatalf("MAIL FROM as telecom: %v", err)
	}
	if err := c.Rcpt(bob); err != nil {
		code, text := smtpCode(err)
		t.Fatalf("RCPT TO bob from a billing sender: want 250, got %d %s", code, text)
	}
	sendData(t, c, crlf("From: bills@telecom.kz\nTo: bob@example.kz\nSubject: Your bill\n"+
		"Date: "+now.Format(time.RFC1123Z)+"\nMessage-ID: <billing-1@telecom.kz>\n\nPay 100 KZT.\n"))
	c.Quit()

	// The ledger's record, by either form of the Message-ID.
	n, raw := a.notice("letter-1@egov.kz")
	if _, raw2 := a.notice("<letter-1@egov.kz>"); !sameJSON(raw, raw2) {
		t.Errorf("notice show with and without <>:\n%s\n%s", raw, raw2)
	}
	if n.MessageID != "letter-1@egov.kz" || n.Sender != "egov" {
		t.Errorf("notice: message_id %q sender %q, want letter-1@egov.kz and egov", n.MessageID, n.Sender)
	}
	if len(n.Recipients) != 3 {
		t.Errorf("notice lists %d recipients, want alice, bob and carol: %s", len(n.Recipients), raw)
	}
	for _, who := range []string{alice, carol} {
		r := n.rcpt(t, who)
		if r.AcceptedAt == nil || r.StoredAt == nil || r.FirstReadAt != nil || r.DeletedAt != nil || r.Refused != "" {
			t.Errorf("notice for %s: want accepted and stored, not read or deleted: %+v", who, r)
		} else if r.StoredAt.Before(*r.AcceptedAt) {
			t.Errorf("notice for %s: stored_at %v before accepted_at %v", who, r.StoredAt, r.AcceptedAt)
		}
	}
	if r := n.rcpt(t, bob); r.Refused != "no-consent" || r.StoredAt != nil || r.FirstReadAt != nil {
		t.Errorf("notice for bob: want refused no-consent and nothing stored: %+v", r)
	}
	if out := a.OK("notice", "show", "letter-1@egov.kz"); !strings.Contains(out, "no-consent") || !strings.Contains(out, alice) {
		t.Errorf("human notice show:\n%s", out)
	}
	// A letter that is not official, or unknown, has no record.
	a.Fail(1, "notice", "show", "billing-1@telecom.kz")
	a.Fail(1, "notice", "show", "never-sent@egov.kz")
	a.Fail(2, "notice", "show")

	// The notice API.
	hc := &http.Client{Timeout: netTimeout}
	get := func(path, user, pass string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addrs["http"]+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, resp.Header, body
	}
	const path = "/v1/notices/letter-1%40egov.kz"
	apiMatches := func(stage string) {
		t.Helper()
		_, want := a.notice("letter-1@egov.kz")
		for _, p := range []string{path, "/v1/notices/%3Cletter-1%40egov.kz%3E"} {
			code, hdr, body := get(p, "egov", egovPassword)
			if code != 200 {
				t.Errorf("%s: GET %s as egov: %d %s", stage, p, code, body)
				continue
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: GET %s: Content-Type %q", stage, p, ct)
			}
			checkNoticeShape(t, body)
			if !sameJSON(body, want) {
				t.Errorf("%s: GET %s differs from notice show --json:\n%s\n%s", stage, p, body, want)
			}
		}
	}
	apiMatches("after delivery")
	code, hdr, _ := get(path, "", "")
	if code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("GET without credentials: %d, WWW-Authenticate %q; want 401 with a Basic challenge", code, hdr.Get("WWW-Authenticate"))
	}
	if code, hdr, _ := get(path, "egov", courtPassword); code != 401 || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("GET as egov with a wrong password: %d, want 401 with WWW-Authenticate", code)
	}
	if code, _, _ := get(path, "nosuchsender", egovPassword); code != 401 {
		t.Errorf("GET as an unknown sender: %d, want 401", code)
	}
	if code, _, body := get(path, "court", courtPassword); code != 404 {
		t.Errorf("GET as court, another official sender: %d %s, want 404", code, body)
	}
	if code, _, body := get(path, "telecom", telecomPassword); code != 404 {
		t.Errorf("GET as telecom, a billing sender: %d %s, want 404", code, body)
	}
	if code, _, _ := get(path, alice, goodPassword); code != 401 {
		t.Errorf("GET with a subscriber's credentials: %d, want 401", code)
	}
	if code, _, _ := get("/v1/notices/never-sent%40egov.kz", "egov", egovPassword); code != 404 {
		t.Errorf("GET of an unknown letter as egov: %d, want 404", code)
	}

	// bob has the bill, not the official letter; the bill has no
	// $Official, and a client cannot give it one.
	ib := imapLogin(t, addrs["imaps"], bob, goodPassword)
	sel, err := ib.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("bob SELECT INBOX: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Errorf("bob's INBOX has %d messages, want only the bill", sel.NumMessages)
	}
	flags, body := fetchOne(t, ib, &imap.FetchItemBodySection{Peek: true})
	if !bytes.Contains(body, []byte("billing-1@telecom.kz")) {
		t.Errorf("bob's message is not the bill:\n%s", body)
	}
	if slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("a billing letter has $Official: %v", flags)
	}
	if flags, err := storeFlags(t, ib, imap.StoreFlagsAdd, keywordOfficial); err == nil && slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("a client gave a billing letter $Official: %v", flags)
	}
	if flags, _ := fetchOne(t, ib, nil); slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("after STORE +FLAGS $Official, the bill has %v", flags)
	}
	ib.Logout().Wait()

	// alice reads the letter, step by step.
	readAt := func(who string) *time.Time {
		t.Helper()
		n, _ := a.notice("letter-1@egov.kz")
		return n.rcpt(t, who).FirstReadAt
	}
	ia := imapLogin(t, addrs["imaps"], alice, goodPassword)
	if sel, err := ia.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("alice SELECT INBOX: %v, %+v", err, sel)
	}
	flags, body = fetchOne(t, ia, &imap.FetchItemBodySection{Peek: true})
	if !bytes.Contains(body, []byte("Message-ID: <letter-1@egov.kz>")) {
		t.Errorf("alice's message is not the letter:\n%s", body)
	}
	if !slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("the official letter lacks $Official: %v", flags)
	}
	if slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("BODY.PEEK[] set \\Seen: %v", flags)
	}
	if fr := readAt(alice); fr != nil {
		t.Errorf("BODY.PEEK[] recorded a first read at %v", fr)
	}

	if _, err := ia.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("alice EXAMINE INBOX: %v", err)
	}
	flags, body = fetchOne(t, ia, &imap.FetchItemBodySection{})
	if !bytes.Contains(body, []byte("You are hereby notified.")) {
		t.Errorf("EXAMINE + FETCH BODY[] returned no body:\n%s", body)
	}
	if slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("FETCH BODY[] in an EXAMINEd mailbox set \\Seen: %v", flags)
	}
	if fr := readAt(alice); fr != nil {
		t.Errorf("FETCH BODY[] in an EXAMINEd mailbox recorded a first read at %v", fr)
	}
	if _, err := storeFlags(t, ia, imap.StoreFlagsAdd, imap.FlagSeen); err == nil {
		t.Errorf("STORE +FLAGS \\Seen in an EXAMINEd mailbox succeeded")
	}
	if fr := readAt(alice); fr != nil {
		t.Errorf("STORE in an EXAMINEd mailbox recorded a first read at %v", fr)
	}

	if _, err := ia.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("alice SELECT INBOX again: %v", err)
	}
	if flags, _ := fetchOne(t, ia, nil); slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("\\Seen before the first read in a SELECTed mailbox: %v", flags)
	}
	flags, body = fetchOne(t, ia, &imap.FetchItemBodySection{})
	if !bytes.Contains(body, []byte("You are hereby notified.")) {
		t.Errorf("FETCH BODY[] returned no body:\n%s", body)
	}
	if !slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("FETCH BODY[] did not set \\Seen: %v", flags)
	}
	first := readAt(alice)
	if first == nil {
		t.Fatalf("SELECT + FETCH BODY[] recorded no first read")
	}
	n, _ = a.notice("letter-1@egov.kz")
	if sa := n.rcpt(t, alice).StoredAt; sa != nil && first.Before(*sa) {
		t.Errorf("first_read_at %v before stored_at %v", first, sa)
	}
	if fr := n.rcpt(t, carol).FirstReadAt; fr != nil {
		t.Errorf("alice's read recorded one for carol: %v", fr)
	}
	apiMatches("after the first read")

	fetchOne(t, ia, &imap.FetchItemBodySection{})
	if fr := readAt(alice); !timeEq(fr, first) {
		t.Errorf("a second FETCH BODY[] changed first_read_at from %v to %v", first, fr)
	}
	if flags, err := storeFlags(t, ia, imap.StoreFlagsDel, imap.FlagSeen); err != nil || slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("STORE -FLAGS \\Seen: %v %v", flags, err)
	}
	if flags, err := storeFlags(t, ia, imap.StoreFlagsAdd, imap.FlagSeen); err != nil || !slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("STORE +FLAGS \\Seen: %v %v", flags, err)
	}
	if fr := readAt(alice); !timeEq(fr, first) {
		t.Errorf("unsetting and setting \\Seen changed first_read_at from %v to %v", first, fr)
	}
	if flags, err := storeFlags(t, ia, imap.StoreFlagsDel, keywordOfficial); err != nil {
		t.Errorf("STORE -FLAGS $Official: %v", err)
	} else if !slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("STORE -FLAGS $Official removed it: %v", flags)
	}
	if flags, err := storeFlags(t, ia, imap.StoreFlagsSet, imap.FlagSeen); err != nil || !slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("STORE FLAGS (\\Seen) removed $Official: %v %v", flags, err)
	}
	if flags, _ := fetchOne(t, ia, nil); !slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("after STORE -FLAGS $Official the letter has %v", flags)
	}

	// carol's first read is a STORE adding \Seen (no body fetched).
	ic := imapLogin(t, addrs["imaps"], carol, goodPassword)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("carol SELECT INBOX: %v", err)
	}
	if flags, err := storeFlags(t, ic, imap.StoreFlagsAdd, imap.FlagSeen); err != nil || !slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("carol STORE +FLAGS \\Seen: %v %v", flags, err)
	}
	carolRead := readAt(carol)
	if carolRead == nil {
		t.Errorf("STORE +FLAGS \\Seen in a SELECTed mailbox recorded no first read")
	}
	if fr := readAt(alice); !timeEq(fr, first) {
		t.Errorf("carol's read changed alice's first_read_at from %v to %v", first, fr)
	}
	ic.Logout().Wait()

	// Expunging alice's only copy records the deletion.
	if _, err := storeFlags(t, ia, imap.StoreFlagsAdd, imap.FlagDeleted); err != nil {
		t.Fatalf("STORE +FLAGS \\Deleted: %v", err)
	}
	if err := ia.Expunge().Close(); err != nil {
		t.Fatalf("EXPUNGE: %v", err)
	}
	ia.Logout().Wait()
	n, _ = a.notice("letter-1@egov.kz")
	ar := n.rcpt(t, alice)
	if ar.DeletedAt == nil || ar.AcceptedAt == nil || ar.StoredAt == nil || !timeEq(ar.FirstReadAt, first) {
		t.Errorf("notice for alice after EXPUNGE: want deleted_at set and the rest kept: %+v", ar)
	} else if ar.DeletedAt.Before(*first) {
		t.Errorf("deleted_at %v before first_read_at %v", ar.DeletedAt, first)
	}
	if cr := n.rcpt(t, carol); cr.DeletedAt != nil || !timeEq(cr.FirstReadAt, carolRead) {
		t.Errorf("notice for carol after alice's EXPUNGE: %+v", cr)
	}
	apiMatches("after the deletion")

	// A client can neither set nor clear $Official; APPENDing a letter
	// with it does not make the letter official.
	ia = imapLogin(t, addrs["imaps"], alice, goodPassword)
	app := ia.Append("INBOX", int64(len(letter)), &imap.AppendOptions{Flags: []imap.Flag{keywordOfficial}})
	if _, err := app.Write([]byte(letter)); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if err := app.Close(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	ia.Logout().Wait()
	ia = imapLogin(t, addrs["imaps"], alice, goodPassword)
	if sel, err := ia.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("alice SELECT INBOX after APPEND: %v %+v", err, sel)
	}
	if flags, _ := fetchOne(t, ia, &imap.FetchItemBodySection{}); slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("an APPENDed copy of the letter with $Official kept it: %v", flags)
	}
	ia.Logout().Wait()
	if n, _ := a.notice("letter-1@egov.kz"); !timeEq(n.rcpt(t, alice).FirstReadAt, first) {
		t.Errorf("reading an APPENDed copy changed the official record: %+v", n.rcpt(t, alice))
	}

	a.secondLetter(addrs, readers, now)
	consented := []string{alice, carol}
	for _, l := range readers {
		consented = append(consented, l+"@"+testDomain)
	}
	a.officialBroadcast(addrs, consented, []string{bob})

	// The evidence log verifies (without the key: its entries against
	// the stored tree and heads); a tampered copy of the database does
	// not, and the entry is named. The notice ledger is not written
	// any more (TestLegacyLedger in store covers older databases).
	if out := a.OK("notice", "verify"); !strings.Contains(out, "evidence consistent") {
		t.Errorf("notice verify: %q", out)
	}
	var rep struct {
		Entries  uint64 `json:"entries"`
		OK       bool   `json:"ok"`
		Evidence struct {
			Entries  uint64  `json:"entries"`
			OK       bool    `json:"ok"`
			BadEntry *uint64 `json:"bad_entry"`
		} `json:"evidence"`
	}
	a.JSON(&rep, "notice", "verify")
	if !rep.OK || rep.Entries != 0 || !rep.Evidence.OK || rep.Evidence.Entries < 12 {
		t.Errorf("notice verify --json: %+v, want ok, no ledger entries and at least 12 evidence entries", rep)
	}
	a.srv.Stop()
	a.srv = nil

	if a.SharedStore() != nil {
		// The harness's cluster mode: the tampered copies are of the
		// bbolt file; on PostgreSQL the untouched log verifies (below).
		t.Log("tampered copies: of the bbolt file, not in the cluster mode")
	} else {
		db, err := os.ReadFile(filepath.Join(a.Dir, "abox.db"))
		if err != nil {
			t.Fatal(err)
		}
		tampered := a.tamperedCopy(db, func(tx *bolt.Tx) (uint64, error) {
			b := tx.Bucket([]byte("evidence"))
			if b == nil {
				return 0, errors.New("no evidence bucket")
			}
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				first, raws := evidenceEntries(t, k, v)
				for i, raw := range raws {
					if bytes.Contains(raw, []byte(alice)) {
						raws[i] = bytes.Replace(raw, []byte(alice), []byte("alicf@"+testDomain), 1)
						return first + uint64(i), b.Put(slices.Clone(k), evidenceValue(raws))
					}
				}
			}
			return 0, errors.New("no evidence entry names alice")
		})
		r := a.Exec(aboxtest.RunOpts{Bare: true}, "--data", tampered.dir, "notice", "verify")
		if r.Code != 1 || !strings.Contains(r.Stderr, fmt.Sprintf("entry %d", tampered.seq)) {
			t.Errorf("verify of a copy with entry %d changed: want exit 1 naming the entry; %v", tampered.seq, r)
		}
		aboxtest.CheckOneLineError(t, r)
		t.Logf("verify of the tampered copy: %s", strings.TrimSpace(r.Stderr))
		r = a.Exec(aboxtest.RunOpts{Bare: true}, "--data", tampered.dir, "notice", "verify", "--json")
		rep.Evidence.BadEntry = nil
		if err := json.Unmarshal([]byte(r.Stdout), &rep); r.Code != 1 || err != nil || rep.OK || rep.Evidence.OK ||
			rep.Evidence.BadEntry == nil || *rep.Evidence.BadEntry != tampered.seq {
			t.Errorf("notice verify --json of the tampered copy: want exit 1, ok false and bad_entry %d; %v", tampered.seq, r)
		}

		// Changing a time is caught as well.
		retimed := a.tamperedCopy(db, func(tx *bolt.Tx) (uint64, error) {
			b := tx.Bucket([]byte("evidence"))
			k, last := b.Cursor().Last()
			first, raws := evidenceEntries(t, k, last)
			v := raws[len(raws)-1]
			var e map[string]any
			if err := json.Unmarshal(v, &e); err != nil {
				return 0, err
			}
			at, _ := e["at"].(string)
			if len(at) < 4 {
				return 0, fmt.Errorf("last evidence entry has no time: %s", v)
			}
			// Move the year back by one: the event happened "earlier".
			year := at[:4]
			var y int
			fmt.Sscan(year, &y)
			nv := bytes.Replace(slices.Clone(v), []byte(`"at":"`+year), []byte(fmt.Sprintf(`"at":"%04d`, y-1)), 1)
			if bytes.Equal(nv, v) {
				return 0, fmt.Errorf("could not change the time of %s", v)
			}
			raws[len(raws)-1] = nv
			return first + uint64(len(raws)-1), b.Put(slices.Clone(k), evidenceValue(raws))
		})
		r = a.Exec(aboxtest.RunOpts{Bare: true}, "--data", retimed.dir, "notice", "verify")
		if r.Code != 1 || !strings.Contains(r.Stderr, fmt.Sprintf("entry %d", retimed.seq)) {
			t.Errorf("verify of a copy with the time of entry %d changed: want exit 1 naming the entry; %v", retimed.seq, r)
		}

		// Removing the last entry is caught too.
		truncated := a.tamperedCopy(db, func(tx *bolt.Tx) (uint64, error) {
			b := tx.Bucket([]byte("evidence"))
			k, _ := b.Cursor().Last()
			return binary.BigEndian.Uint64(k), b.Delete(slices.Clone(k))
		})
		if r := a.Exec(aboxtest.RunOpts{Bare: true}, "--data", truncated.dir, "notice", "verify"); r.Code != 1 {
			t.Errorf("verify of a copy without its last entry (%d): want exit 1; %v", truncated.seq, r)
		}
	}

	// The original is untouched and still verifies, directly.
	if out := a.OK("notice", "verify"); !strings.Contains(out, "evidence consistent") {
		t.Errorf("notice verify of the original after the copies: %q", out)
	}
	if n2, _ := a.notice("letter-1@egov.kz"); n2.rcpt(t, alice).DeletedAt == nil {
		t.Errorf("direct notice show after stop lost the deletion: %+v", n2)
	}
}

// keywordOfficial is SPEC's keyword for official letters.
const keywordOfficial = "$Official"

// showUserRaw is `user show ADDRESS --json` as a generic object.
func (a *abox) showUserRaw(address string) map[string]any {
	a.t.Helper()
	var m map[string]any
	a.JSON(&m, "user", "show", address)
	return m
}

type tamperResult struct {
	dir string
	seq uint64
}

// tamperedCopy writes db into a new data directory and changes it there
// with bbolt directly; change returns the entry it touched.
func (a *abox) tamperedCopy(db []byte, change func(tx *bolt.Tx) (uint64, error)) tamperResult {
	a.t.Helper()
	dir := filepath.Join(a.t.TempDir(), "copy")
	if err := os.Mkdir(dir, 0o700); err != nil {
		a.t.Fatal(err)
	}
	path := writeFile(a.t, dir, "abox.db", db)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		a.t.Fatalf("bbolt open of the copy: %v", err)
	}
	var seq uint64
	err = bdb.Update(func(tx *bolt.Tx) error {
		var err error
		seq, err = change(tx)
		return err
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.t.Fatalf("tampering with the copy: %v", err)
	}
	return tamperResult{dir: dir, seq: seq}
}

// --- broadcasts ---

type broadcastJSON struct {
	ID        uint64   `json:"id"`
	Sender    string   `json:"sender"`
	Scanned   int64    `json:"scanned"`
	Delivered int64    `json:"delivered"`
	Skipped   int64    `json:"skipped"`
	Refused   int64    `json:"refused"`
	Sample    []string `json:"skipped_sample"`
	Done      bool     `json:"done"`
}

// controlLines sends one request over the control socket and returns a
// reader of the answer lines; the caller closes the connection.
func controlLines(t *testing.T, dir, op string, args any) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("unix", filepath.Join(dir, "control.sock"), netTimeout)
	if err != nil {
		t.Fatalf("control socket: %v", err)
	}
	rawArgs, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(map[string]any{"op": op, "args": json.RawMessage(rawArgs)})
	conn.SetDeadline(time.Now().Add(aboxtest.CommandTimeout))
	if _, err := conn.Write(append(req, '\n')); err != nil {
		conn.Close()
		t.Fatalf("control socket: %v", err)
	}
	return conn, bufio.NewReader(conn)
}

// controlCall is one request over the control socket, safe to call
// from any goroutine: it returns the operation's error text, or err when
// the exchange itself failed.
func controlCall(dir, op string, args any) (errText string, err error) {
	conn, err := net.DialTimeout("unix", filepath.Join(dir, "control.sock"), netTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(aboxtest.CommandTimeout))
	rawArgs, err := json.Marshal(args)
	if err != nil {
		return "", err
	}
	req, _ := json.Marshal(map[string]any{"op": op, "args": json.RawMessage(rawArgs)})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return "", err
		}
		var resp struct {
			Error    string          `json:"error"`
			Progress json.RawMessage `json:"progress"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return "", fmt.Errorf("bad answer %q", line)
		}
		if resp.Progress == nil {
			return resp.Error, nil
		}
	}
}

// messageCounts maps every account (any state) to its message count,
// from `user list --json`.
func (a *abox) messageCounts() map[string]int64 {
	a.t.Helper()
	var us []userJSON
	out := map[string]int64{}
	for _, st := range []string{"active", "blocked"} {
		us = nil
		a.JSON(&us, "user", "list", "--state", st)
		for _, u := range us {
			if u.Usage == nil {
				a.t.Fatalf("user list: %s has no usage", u.Address)
			}
			out[u.Address] = u.Usage.Messages
		}
	}
	return out
}

// broadcastStarts returns the broadcast ids of the broadcast.start audit
// entries ("broadcast N from ...").
func (a *abox) broadcastStarts() []uint64 {
	a.t.Helper()
	var ids []uint64
	for _, e := range a.audit() {
		if e.Action != "broadcast.start" {
			continue
		}
		var id uint64
		if _, err := fmt.Sscanf(e.Reason, "broadcast %d", &id); err != nil {
			a.t.Errorf("broadcast.start audit entry without an id: %+v", e)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkClean runs `check --json` and wants no problems.
func (a *abox) checkClean(stage string) {
	a.t.Helper()
	if a.SharedStore() != nil {
		return // abox check is bbolt's; the cluster mode runs on PostgreSQL
	}
	var rep struct {
		Accounts int      `json:"accounts"`
		Problems []string `json:"problems"`
	}
	a.JSON(&rep, "check")
	if rep.Problems == nil || len(rep.Problems) != 0 {
		a.t.Errorf("%s: check --json problems %q", stage, rep.Problems)
	}
}

// broadcastAccounts is how many accounts TestBroadcast registers: more
// than two batches of the broadcast (250 accounts each), so that an
// interruption after the first batch leaves work to resume.
const broadcastAccounts = 560

func TestBroadcast(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.srv = a.Start()
	a.OK("domain", "add", testDomain)
	a.OKIn(kazpostPassword+"\n", "sender", "add", "kazpost", "--kind", "informational", "--from", "news@kazpost.kz", "--password-stdin")

	// Register the accounts through the server's control socket, a few
	// at a time.
	addr := func(i int) string { return fmt.Sprintf("sub%04d@%s", i, testDomain) }
	var wg sync.WaitGroup
	var mu sync.Mutex
	var addErrs []string
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				e, err := controlCall(a.Dir, "user.add", userAddArgs{Address: addr(i), Phone: testPhone, Password: goodPassword})
				if err != nil {
					e = err.Error()
				}
				if e != "" {
					mu.Lock()
					addErrs = append(addErrs, addr(i)+": "+e)
					mu.Unlock()
				}
			}
		})
	}
	for i := range broadcastAccounts {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(addErrs) > 0 {
		t.Fatalf("registering %d accounts: %d failed, e.g. %s", broadcastAccounts, len(addErrs), addErrs[0])
	}
	full, blocked := addr(7), addr(301)
	a.OK("user", "set", full, "--quota-storage", "10B")
	a.OK("user", "block", blocked, "--reason", "abuse reports")
	active := int64(broadcastAccounts - 1)

	files := t.TempDir()
	message := func(n int) string {
		return writeFile(t, files, fmt.Sprintf("msg%d.eml", n), []byte(crlf(fmt.Sprintf(
			"From: Kazpost <news@kazpost.kz>\nSubject: Service news %d\nDate: Mon, 02 Mar 2026 10:00:00 +0500\n"+
				"Message-ID: <news-%d@kazpost.kz>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"+
				"Post offices are open on Saturday (%d).\n", n, n, n))))
	}
	wantCounts := func(stage string, copies int64) {
		t.Helper()
		counts := a.messageCounts()
		if len(counts) != broadcastAccounts {
			t.Errorf("%s: user list shows %d accounts, want %d", stage, len(counts), broadcastAccounts)
		}
		bad := 0
		for who, n := range counts {
			want := copies
			if who == full || who == blocked {
				want = 0
			}
			if n != want {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s has %d messages, want %d", stage, who, n, want)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d accounts in all have the wrong number of messages", stage, bad)
		}
	}

	// A From: the sender does not own is refused before anything is sent.
	forged := writeFile(t, files, "forged.eml", []byte(crlf("From: someone@gov.kz\nSubject: x\n\nx\n")))
	a.Fail(1, "broadcast", "--from", "kazpost", "--file", forged)
	a.Fail(1, "broadcast", "--from", "no-such-sender", "--file", message(1))
	a.Fail(2, "broadcast", "--file", message(1))
	a.Fail(2, "broadcast", "--from", "kazpost")

	// 1. A complete broadcast: every active account but the full one.
	var b1 broadcastJSON
	a.JSON(&b1, "broadcast", "--from", "kazpost", "--file", message(1))
	if !b1.Done || b1.Sender != "kazpost" || b1.Delivered != active-1 || b1.Skipped != 1 || b1.Refused != 0 || b1.Scanned != active {
		t.Errorf("broadcast 1: %+v, want done, %d delivered, 1 skipped (the full account), %d scanned", b1, active-1, active)
	}
	if !slices.ContainsFunc(b1.Sample, func(s string) bool { return strings.Contains(s, full) }) {
		t.Errorf("broadcast 1 does not report the full account %s as skipped: %q", full, b1.Sample)
	}
	wantCounts("after broadcast 1", 1)
	a.checkClean("after broadcast 1")

	// The copy is a normal letter to a subscriber's IMAP client.
	addrs := a.srv.Addrs()
	ic := imapLogin(t, addrs["imaps"], addr(0), goodPassword)
	if sel, err := ic.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("sub0000 SELECT INBOX: %v %+v", err, sel)
	}
	flags, body := fetchOne(t, ic, &imap.FetchItemBodySection{Peek: true})
	if !bytes.Contains(body, []byte("Message-ID: <news-1@kazpost.kz>")) || !bytes.Contains(body, []byte("Post offices are open")) {
		t.Errorf("sub0000's copy of broadcast 1:\n%s", body)
	}
	if slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("an informational broadcast has $Official: %v", flags)
	}
	ic.Logout().Wait()

	// 2. Interrupted after its first batch: the client goes away (as a
	// killed CLI's connection does) as soon as the first progress line
	// arrives; running the same command again finishes the job.
	raw2, err := os.ReadFile(message(2))
	if err != nil {
		t.Fatal(err)
	}
	conn, br := controlLines(t, a.Dir, "broadcast", broadcastArgs{Sender: "kazpost", Message: raw2})
	line, err := br.ReadBytes('\n')
	conn.Close()
	if err != nil {
		t.Fatalf("broadcast 2 over the control socket: %v", err)
	}
	var first struct {
		Progress *broadcastProgress `json:"progress"`
		Error    string             `json:"error"`
	}
	if err := json.Unmarshal(line, &first); err != nil || first.Progress == nil {
		t.Fatalf("broadcast 2: the first answer line is not progress: %q", line)
	}
	if p := first.Progress; p.Scanned <= 0 || p.Scanned >= p.Total || p.Total != active {
		t.Errorf("broadcast 2's first progress: %+v, want part of %d active accounts", p, active)
	}
	partial := a.messageCounts()
	got2 := 0
	for _, n := range partial {
		if n == 2 {
			got2++
		}
	}
	t.Logf("broadcast 2 interrupted: %d of %d accounts have it so far", got2, active-1)
	resumed := a.resume(message(2), "broadcast 2", 1)
	if resumed.Scanned != 0 && (resumed.Delivered != active-1 || resumed.Skipped != 1 || resumed.Scanned != active) {
		t.Errorf("broadcast 2 resumed: %+v, want the totals of the whole run: %d delivered, 1 skipped, %d scanned", resumed, active-1, active)
	}
	wantCounts("after broadcast 2, interrupted and resumed", 2)
	a.checkClean("after broadcast 2")

	// 3. The CLI itself killed (SIGKILL) once the server has its request.
	logged := func() int { return strings.Count(a.srv.Log.String(), `"op":"broadcast"`) }
	before := logged()
	cmd := exec.Command(aboxtest.Bin(t), "--data", a.Dir, "broadcast", "--from", "kazpost", "--file", message(3))
	cmd.Env = aboxtest.Environ()
	var cliErr bytes.Buffer
	cmd.Stderr = &cliErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(aboxtest.CommandTimeout)
	killed := false
	for !killed {
		select {
		case err := <-exited:
			t.Logf("the broadcast 3 CLI exited by itself before it could be killed (%v): %s", err, cliErr.String())
			killed = true
			continue
		default:
		}
		if logged() > before {
			cmd.Process.Kill()
			<-exited
			killed = true
			continue
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the server never logged the broadcast 3 request:\n%s", a.srv.Log)
		}
		time.Sleep(time.Millisecond)
	}
	a.resume(message(3), "broadcast 3", 2)
	wantCounts("after broadcast 3, CLI killed and run again", 3)
	a.checkClean("after broadcast 3")

	// The blocked account got nothing and is still blocked; after the
	// server stops, a direct broadcast of the same file starts a new one
	// only because the last one finished (nothing is left to resume).
	if u := a.showUser(blocked); u.State != "blocked" || u.Usage == nil || u.Usage.Messages != 0 {
		t.Errorf("the blocked account after the broadcasts: %+v %+v", u, u.Usage)
	}
	a.srv.Stop()
	a.srv = nil

	// 4. Without a server, the CLI runs the broadcast itself; SIGINT
	// (Ctrl-C) once it holds the database stops it, and the same
	// command resumes it.
	a.interruptDirect(message(4))
	a.resume(message(4), "broadcast 4 (direct, SIGINT)", 3)
	wantCounts("after broadcast 4, interrupted with SIGINT and run again", 4)
	a.checkClean("after broadcast 4")

	// 5. A class broadcast, direct.
	a.OK("user", "set", addr(1), "--class", "organization")
	a.OK("user", "set", addr(2), "--class", "organization")
	var b5 broadcastJSON
	a.JSON(&b5, "broadcast", "--from", "kazpost", "--file", message(5), "--class", "organization")
	if !b5.Done || b5.Delivered != 2 || b5.Skipped != 0 {
		t.Errorf("direct broadcast to class organization: %+v, want 2 delivered", b5)
	}
	if u := a.showUser(addr(1)); u.Usage == nil || u.Usage.Messages != 5 {
		t.Errorf("%s after the organization broadcast: %+v", addr(1), u.Usage)
	}
	if u := a.showUser(addr(3)); u.Usage == nil || u.Usage.Messages != 4 {
		t.Errorf("%s (standard) after the organization broadcast: %+v", addr(3), u.Usage)
	}
	a.checkClean("after the direct broadcast")
}

// resume runs a broadcast again after an interruption. prior is how
// many broadcasts had run before the interrupted one. The interrupted run
// may have been recorded (a broadcast.start entry) or not; when it was,
// the second run must continue it: same id, no new start. An
// interruption that came only after the broadcast had finished (not
// expected: the kill lands long before) leaves nothing to resume, and
// the second run is then skipped, since it would rightly be a new
// broadcast.
func (a *abox) resume(file, stage string, prior int) broadcastJSON {
	a.t.Helper()
	starts := a.broadcastStarts()
	if len(starts) == prior+1 && a.broadcastDone(starts[prior]) {
		a.t.Logf("%s: the interruption came after broadcast %d had finished; nothing to resume", stage, starts[prior])
		return broadcastJSON{ID: starts[prior], Done: true}
	}
	var b broadcastJSON
	a.JSON(&b, "broadcast", "--from", "kazpost", "--file", file)
	after := a.broadcastStarts()
	switch {
	case len(starts) == prior+1:
		if b.ID != starts[prior] || len(after) != len(starts) {
			a.t.Errorf("%s: the second run did not resume broadcast %d: it answered id %d; broadcast.start ids %v before, %v after", stage, starts[prior], b.ID, starts, after)
		} else {
			a.t.Logf("%s: the second run resumed broadcast %d", stage, b.ID)
		}
	case len(starts) == prior:
		a.t.Logf("%s: the interruption came before the broadcast was recorded; the second run started it (id %d)", stage, b.ID)
		if len(after) != prior+1 {
			a.t.Errorf("%s: broadcast.start ids %v after the second run, want one more than %v", stage, after, starts)
		}
	default:
		a.t.Errorf("%s: broadcast.start ids %v before the second run, want %d or %d of them", stage, starts, prior, prior+1)
	}
	if !b.Done {
		a.t.Errorf("%s: the second run did not finish: %+v", stage, b)
	}
	return b
}

// broadcastDone says whether the audit has a broadcast.done entry for id
// ("broadcast N: ...").
func (a *abox) broadcastDone(id uint64) bool {
	a.t.Helper()
	for _, e := range a.audit() {
		var n uint64
		if e.Action == "broadcast.done" {
			if _, err := fmt.Sscanf(e.Reason, "broadcast %d:", &n); err == nil && n == id {
				return true
			}
		}
	}
	return false
}

// rawIMAP is a bare IMAP client over implicit TLS, for the FETCH items
// imapclient does not offer (RFC822, RFC822.TEXT, RFC822.HEADER).
type rawIMAP struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func rawIMAPLogin(t *testing.T, addr, user, password string) *rawIMAP {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: netTimeout}, "tcp", addr, &tls.Config{ServerName: "test.local", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("imaps dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(aboxtest.CommandTimeout))
	c := &rawIMAP{t: t, conn: conn, r: bufio.NewReader(conn)}
	if line, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("IMAP greeting: %q %v", line, err)
	}
	if _, st := c.cmd(`LOGIN "%s" "%s"`, user, password); !strings.HasPrefix(st, "OK") {
		t.Fatalf("raw IMAP LOGIN %s: %s", user, st)
	}
	return c
}

// cmd sends one command and returns what came before the tagged reply
// (literals inlined) and the tagged reply's status and text.
func (c *rawIMAP) cmd(format string, args ...any) (string, string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("r%d", c.n)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, fmt.Sprintf(format, args...)); err != nil {
		c.t.Fatalf("raw IMAP: %v", err)
	}
	var out strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("raw IMAP %s: %v after %q", format, err, out.String())
		}
		if strings.HasPrefix(line, tag+" ") {
			return out.String(), strings.TrimSpace(strings.TrimPrefix(line, tag+" "))
		}
		out.WriteString(line)
		// A line ending in {N} is followed by N bytes of literal.
		trimmed := strings.TrimRight(line, "\r\n")
		if i := strings.LastIndexByte(trimmed, '{'); i >= 0 && strings.HasSuffix(trimmed, "}") {
			var n int
			if _, err := fmt.Sscanf(trimmed[i:], "{%d}", &n); err == nil {
				buf := make([]byte, n)
				if _, err := io.ReadFull(c.r, buf); err != nil {
					c.t.Fatalf("raw IMAP literal: %v", err)
				}
				out.Write(buf)
			}
		}
	}
}

// secondLetter sends letter-2@egov.kz to readers (all with consent)
// and checks each way of reading it SPEC names, and that COPY and MOVE
// keep the record right: deleted_at only when the last copy goes.
func (a *abox) secondLetter(addrs map[string]string, readers []string, now time.Time) {
	t := a.t
	var to []string
	for _, l := range readers {
		to = append(to, l+"@"+testDomain)
	}
	c := submitter(t, addrs["submission"], "egov", egovPassword)
	if err := c.Mail("notices@egov.kz"); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT TO %s: %v", r, err)
		}
	}
	sendData(t, c, crlf("From: notices@egov.kz\nTo: "+strings.Join(to, ", ")+"\nSubject: Official notice 2\n"+
		"Date: "+now.Format(time.RFC1123Z)+"\nMessage-ID: <letter-2@egov.kz>\n\nSecond notice text.\n"))
	c.Quit()

	readAt := func(who string) *time.Time {
		t.Helper()
		n, _ := a.notice("letter-2@egov.kz")
		r := n.rcpt(t, who+"@"+testDomain)
		if r.StoredAt == nil {
			t.Errorf("letter 2 for %s: not stored: %+v", who, r)
		}
		return r.FirstReadAt
	}
	mustRead := func(who, how string) {
		t.Helper()
		if readAt(who) == nil {
			t.Errorf("%s in a SELECTed mailbox recorded no first read (%s)", how, who)
		}
	}
	mustNotRead := func(who, how string) {
		t.Helper()
		if fr := readAt(who); fr != nil {
			t.Errorf("%s recorded a first read at %v (%s)", how, fr, who)
		}
	}
	for _, who := range readers {
		mustNotRead(who, "delivery")
	}

	// dave: BODY[TEXT].
	ic := imapLogin(t, addrs["imaps"], "dave@"+testDomain, goodPassword)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("dave SELECT: %v", err)
	}
	fetchOne(t, ic, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true})
	mustNotRead("dave", "FETCH BODY.PEEK[TEXT]")
	if _, body := fetchOne(t, ic, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}); !bytes.Contains(body, []byte("Second notice text.")) {
		t.Errorf("dave FETCH BODY[TEXT]: %q", body)
	}
	mustRead("dave", "FETCH BODY[TEXT]")
	ic.Logout().Wait()

	// erin: BINARY[].
	ic = imapLogin(t, addrs["imaps"], "erin@"+testDomain, goodPassword)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("erin SELECT: %v", err)
	}
	if _, err := ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}}).Collect(); err != nil {
		t.Errorf("erin FETCH BINARY.PEEK[]: %v", err)
	}
	mustNotRead("erin", "FETCH BINARY.PEEK[]")
	if _, err := ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{}}}).Collect(); err != nil {
		t.Errorf("erin FETCH BINARY[]: %v", err)
	}
	mustRead("erin", "FETCH BINARY[]")
	ic.Logout().Wait()

	// frank: RFC822.HEADER and RFC822.SIZE are not reads; RFC822 is.
	rc := rawIMAPLogin(t, addrs["imaps"], "frank@"+testDomain, goodPassword)
	if _, st := rc.cmd("SELECT INBOX"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("frank SELECT: %s", st)
	}
	if out, st := rc.cmd("FETCH 1 (RFC822.HEADER RFC822.SIZE)"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "letter-2@egov.kz") {
		t.Errorf("frank FETCH RFC822.HEADER: %s\n%s", st, out)
	}
	mustNotRead("frank", "FETCH RFC822.HEADER")
	if out, st := rc.cmd("FETCH 1 RFC822"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "Second notice text.") || !strings.Contains(out, `\Seen`) {
		t.Errorf("frank FETCH RFC822: want the message and FLAGS with \\Seen: %s\n%s", st, out)
	}
	mustRead("frank", "FETCH RFC822")
	rc.cmd("LOGOUT")

	// gina: RFC822.TEXT.
	rc = rawIMAPLogin(t, addrs["imaps"], "gina@"+testDomain, goodPassword)
	if _, st := rc.cmd("SELECT INBOX"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("gina SELECT: %s", st)
	}
	if out, st := rc.cmd("FETCH 1 RFC822.TEXT"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "Second notice text.") {
		t.Errorf("gina FETCH RFC822.TEXT: %s\n%s", st, out)
	}
	mustRead("gina", "FETCH RFC822.TEXT")
	rc.cmd("LOGOUT")

	// hank: COPY to Archive, EXPUNGE the INBOX copy: still held. The
	// first read happens on the copy; MOVE to Trash keeps one copy;
	// expunging that last copy records the deletion.
	hank := "hank@" + testDomain
	deletedAt := func() *time.Time {
		t.Helper()
		n, _ := a.notice("letter-2@egov.kz")
		return n.rcpt(t, hank).DeletedAt
	}
	ic = imapLogin(t, addrs["imaps"], hank, goodPassword)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("hank SELECT: %v", err)
	}
	if _, err := ic.Copy(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatalf("hank COPY: %v", err)
	}
	if _, err := storeFlags(t, ic, imap.StoreFlagsAdd, imap.FlagDeleted); err != nil {
		t.Fatalf("hank STORE \\Deleted: %v", err)
	}
	if err := ic.Expunge().Close(); err != nil {
		t.Fatalf("hank EXPUNGE: %v", err)
	}
	if d := deletedAt(); d != nil {
		t.Errorf("expunging one of two copies recorded the deletion at %v", d)
	}
	if _, err := ic.Select("Archive", nil).Wait(); err != nil {
		t.Fatalf("hank SELECT Archive: %v", err)
	}
	flags, _ := fetchOne(t, ic, &imap.FetchItemBodySection{})
	if !slices.Contains(flags, imap.Flag(keywordOfficial)) {
		t.Errorf("the COPY of an official letter lacks $Official: %v", flags)
	}
	mustRead("hank", "FETCH BODY[] of a COPY")
	if _, err := ic.Move(imap.SeqSetNum(1), "Trash").Wait(); err != nil {
		t.Fatalf("hank MOVE: %v", err)
	}
	if d := deletedAt(); d != nil {
		t.Errorf("MOVE of the last copy recorded a deletion at %v", d)
	}
	if _, err := ic.Select("Trash", nil).Wait(); err != nil {
		t.Fatalf("hank SELECT Trash: %v", err)
	}
	if _, err := storeFlags(t, ic, imap.StoreFlagsAdd, imap.FlagDeleted); err != nil {
		t.Fatalf("hank STORE \\Deleted in Trash: %v", err)
	}
	if err := ic.Expunge().Close(); err != nil {
		t.Fatalf("hank EXPUNGE Trash: %v", err)
	}
	if d := deletedAt(); d == nil {
		t.Errorf("expunging the last copy recorded no deletion")
	}
	ic.Logout().Wait()
	a.checkClean("after COPY, MOVE and EXPUNGE of official letters")
}

// officialBroadcast sends an official letter by `abox broadcast`: only
// accounts with consent get it (with $Official), the others are refused
// and listed in the notice as such.
func (a *abox) officialBroadcast(addrs map[string]string, consented []string, refused []string) {
	t := a.t
	file := writeFile(t, t.TempDir(), "bulk.eml", []byte(crlf("From: notices@egov.kz\nSubject: Bulk notice\n"+
		"Date: Mon, 02 Mar 2026 10:00:00 +0500\nMessage-ID: <bulk-1@egov.kz>\n\nTo every subscriber.\n")))
	var b broadcastJSON
	a.JSON(&b, "broadcast", "--from", "egov", "--file", file)
	if !b.Done || b.Delivered != int64(len(consented)) || b.Refused != int64(len(refused)) || b.Skipped != 0 {
		t.Errorf("official broadcast: %+v, want %d delivered and %d refused (no consent)", b, len(consented), len(refused))
	}
	n, _ := a.notice("bulk-1@egov.kz")
	if n.Sender != "egov" || len(n.Recipients) != len(consented)+len(refused) {
		t.Errorf("notice of the official broadcast: %+v", n)
	}
	for _, who := range consented {
		if r := n.rcpt(t, who); r.AcceptedAt == nil || r.StoredAt == nil || r.Refused != "" || r.FirstReadAt != nil {
			t.Errorf("official broadcast, %s: %+v", who, r)
		}
	}
	for _, who := range refused {
		if r := n.rcpt(t, who); r.Refused != "no-consent" || r.StoredAt != nil {
			t.Errorf("official broadcast, %s without consent: %+v", who, r)
		}
	}
	// hank's INBOX is empty but for it now.
	ic := imapLogin(t, addrs["imaps"], "hank@"+testDomain, goodPassword)
	if sel, err := ic.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("hank SELECT INBOX after the broadcast: %v %+v", err, sel)
	}
	flags, body := fetchOne(t, ic, &imap.FetchItemBodySection{Peek: true})
	if !slices.Contains(flags, imap.Flag(keywordOfficial)) || !bytes.Contains(body, []byte("bulk-1@egov.kz")) {
		t.Errorf("hank's copy of the official broadcast: flags %v\n%s", flags, body)
	}
	ic.Logout().Wait()
}

// interruptDirect starts a direct (no server) broadcast of file and
// sends it SIGINT as soon as its progress bar shows on a terminal (a
// pseudo-terminal on stderr), i.e. after its first batch; without a
// pseudo-terminal, as soon as it holds the database's lock.
func (a *abox) interruptDirect(file string) {
	t := a.t
	t.Helper()
	cmd := exec.Command(aboxtest.Bin(t), "--data", a.Dir, "broadcast", "--from", "kazpost", "--file", file)
	cmd.Env = aboxtest.Environ()
	var stderr lockedBuffer
	progress := make(chan struct{})
	master, slave, ptyErr := openPTY()
	// drained is closed once everything the child wrote to the terminal
	// has been read: its last line may still be in the terminal when
	// Wait returns.
	drained := make(chan struct{})
	if ptyErr == nil {
		defer master.Close()
		cmd.Stderr = slave
		go func() {
			defer close(drained)
			var once sync.Once
			buf := make([]byte, 4096)
			for {
				n, err := master.Read(buf)
				if n > 0 {
					stderr.Write(buf[:n])
					once.Do(func() { close(progress) })
				}
				if err != nil {
					return
				}
			}
		}()
	} else {
		t.Logf("no pseudo-terminal (%v): interrupting once the broadcast holds the database", ptyErr)
		cmd.Stderr = &stderr
		close(drained) // Wait copies a plain pipe to the end itself
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if slave != nil {
		slave.Close() // the child has its own copy
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	locked := func() bool {
		f, err := os.Open(filepath.Join(a.Dir, "abox.db"))
		if err != nil {
			return false
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
			return true
		}
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	deadline := time.After(aboxtest.CommandTimeout)
wait:
	for {
		select {
		case err := <-exited:
			t.Logf("the direct broadcast finished before it could be interrupted (%v): %q", err, stderr.String())
			return
		case <-progress:
			break wait
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the direct broadcast showed no progress: %q", stderr.String())
		case <-time.After(time.Millisecond):
			if ptyErr != nil && locked() {
				break wait
			}
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case err = <-exited:
	case <-time.After(aboxtest.CommandTimeout):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("the direct broadcast did not stop after SIGINT")
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Logf("the terminal was not drained within 10 s after the exit")
	}
	out := stderr.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("the direct broadcast finished despite SIGINT: %q", out)
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		i := strings.LastIndex(out, "abox: ")
		if i < 0 || !strings.Contains(out[i:], "resume") {
			t.Errorf("direct broadcast after SIGINT: want a line saying it can be resumed, got %q", out)
		} else {
			t.Logf("direct broadcast after SIGINT: %q", strings.TrimSpace(out[i:]))
		}
	default:
		t.Errorf("direct broadcast after SIGINT: want exit 1 (or 0 if it had finished): %v, stderr %q", err, out)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and other readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// officialSetup is a served data directory with egov and court (both
// official senders) and the given subscribers, all with consent.
func officialSetup(t *testing.T, logins ...string) (*abox, map[string]string) {
	t.Helper()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	a.OKIn(courtPassword+"\n", "sender", "add", "court", "--kind", "official", "--from", "letters@court.kz", "--password-stdin")
	now := time.Now()
	pki := configureConsent(t, a, now)
	for _, login := range logins {
		a.addUser(login)
		f, _ := a.consentFile(pki, login+"@"+testDomain, now)
		a.OK("user", "consent", login+"@"+testDomain, "--cms", f)
	}
	a.srv = a.Start()
	return a, a.srv.Addrs()
}

// submitAs sends msg from a trusted sender to rcpts and returns the
// error at the end of DATA (nil for 250).
func submitAs(t *testing.T, addrs map[string]string, user, password, from string, rcpts []string, msg string) error {
	t.Helper()
	c := submitter(t, addrs["submission"], user, password)
	defer c.Quit()
	if err := c.Mail(from); err != nil {
		t.Fatalf("MAIL FROM as %s: %v", user, err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT TO %s from %s: %v", r, user, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, crlf(msg)); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	return w.Close()
}

// getNotice is GET /v1/notices/{id} with Basic auth.
func getNotice(t *testing.T, httpAddr, escapedID, user, password string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+httpAddr+"/v1/notices/"+escapedID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := (&http.Client{Timeout: netTimeout}).Do(req)
	if err != nil {
		t.Fatalf("GET notice %s: %v", escapedID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestOfficialMessageIDReuse: the ledger must keep one sender's letter's
// record apart from another official sender's letter that carries the
// same Message-ID (by mistake or on purpose). Refusing the second
// letter would be as good as recording it separately; merging it into
// the first sender's record is not: the record would then "prove" that
// egov's letter reached dave.
func TestOfficialMessageIDReuse(t *testing.T) {
	t.Parallel()
	a, addrs := officialSetup(t, "alice", "dave")
	alice, dave := "alice@"+testDomain, "dave@"+testDomain
	date := time.Now().Format(time.RFC1123Z)
	if err := submitAs(t, addrs, "egov", egovPassword, "notices@egov.kz", []string{alice, dave},
		"From: notices@egov.kz\nTo: alice@example.kz, dave@example.kz\nSubject: Notice\nDate: "+date+"\nMessage-ID: <shared-1@egov.kz>\n\nNotice.\n"); err != nil {
		t.Fatalf("egov's letter: %v", err)
	}
	const id = "shared-1%40egov.kz"
	_, before := getNotice(t, addrs["http"], id, "egov", egovPassword)
	err := submitAs(t, addrs, "court", courtPassword, "letters@court.kz", []string{dave},
		"From: letters@court.kz\nTo: dave@example.kz\nSubject: Summons\nDate: "+date+"\nMessage-ID: <shared-1@egov.kz>\n\nSummons.\n")
	if err != nil {
		code, text := smtpCode(err)
		t.Logf("court's letter reusing egov's Message-ID was refused: %d %s", code, text)
		if code < 500 {
			t.Errorf("a refusal of a reused Message-ID should be permanent: %d %s", code, text)
		}
		return
	}
	// recordOf is a sender's record of the letter through the API.
	recordOf := func(sender, password string) (int, noticeJSON, []byte) {
		t.Helper()
		code, body := getNotice(t, addrs["http"], id, sender, password)
		var n noticeJSON
		if code == 200 {
			checkNoticeShape(t, body)
			if err := json.Unmarshal(body, &n); err != nil {
				t.Fatalf("GET as %s: %v", sender, err)
			}
		}
		return code, n, body
	}
	code, n, after := recordOf("egov", egovPassword)
	if code != 200 || !sameJSON(before, after) {
		t.Errorf("court's letter with Message-ID <shared-1@egov.kz> changed egov's record of its own letter: "+
			"GET as egov answered %d\n%s\nbefore court's letter:\n%s", code, after, before)
	}
	code, cn, body := recordOf("court", courtPassword)
	if code != 200 || cn.Sender != "court" || len(cn.Recipients) != 1 || cn.Recipients[0].Address != dave {
		t.Errorf("court's record of the letter it sent to dave (Message-ID <shared-1@egov.kz>): GET answered %d %s", code, body)
	}

	// The operator names the sender when the Message-ID is ambiguous.
	r := a.Fail(1, "notice", "show", "shared-1@egov.kz")
	if !strings.Contains(r.Stderr, "egov") || !strings.Contains(r.Stderr, "court") || !strings.Contains(r.Stderr, "--sender") {
		t.Errorf("notice show of a Message-ID two senders used: want a line naming both and --sender; %v", r)
	}
	for _, s := range []struct{ sender, password string }{{"egov", egovPassword}, {"court", courtPassword}} {
		_, _, api := recordOf(s.sender, s.password)
		if out := a.OK("notice", "show", "shared-1@egov.kz", "--sender", s.sender, "--json"); !sameJSON([]byte(out), api) {
			t.Errorf("notice show --sender %s differs from GET as %s:\n%s", s.sender, s.sender, out)
		}
	}
	a.Fail(1, "notice", "show", "shared-1@egov.kz", "--sender", "telecom")

	// dave reads court's letter (the second in his INBOX): that is no
	// read of egov's.
	rc := rawIMAPLogin(t, addrs["imaps"], dave, goodPassword)
	if _, st := rc.cmd("SELECT INBOX"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("SELECT: %s", st)
	}
	if out, st := rc.cmd("FETCH 2 BODY[]"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "Summons.") {
		t.Fatalf("FETCH 2 BODY[]: want court's letter; %s\n%s", st, out)
	}
	_, cn, _ = recordOf("court", courtPassword)
	_, n, _ = recordOf("egov", egovPassword)
	if len(cn.Recipients) != 1 || cn.Recipients[0].FirstReadAt == nil {
		t.Errorf("dave's read of court's letter is not on court's record: %+v", cn)
	}
	if fr := n.rcpt(t, dave).FirstReadAt; fr != nil {
		t.Errorf("dave's read of court's letter was recorded as a read of egov's letter with the same Message-ID at %v", fr)
	}
	if out, st := rc.cmd("FETCH 1 BODY[]"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "Notice.") {
		t.Fatalf("FETCH 1 BODY[]: want egov's letter; %s\n%s", st, out)
	}
	rc.cmd("LOGOUT")
	if _, n, _ = recordOf("egov", egovPassword); n.rcpt(t, dave).FirstReadAt == nil {
		t.Errorf("dave's read of egov's letter is not on egov's record: %+v", n)
	}
	if out := a.OK("notice", "verify"); !strings.Contains(out, "evidence consistent") {
		t.Errorf("notice verify: %q", out)
	}
}

// TestOfficialHeaderFetchIsNotARead: SPEC's first read is a FETCH of the
// body (BODY[], BODY[TEXT], RFC822, RFC822.TEXT, BINARY[]) or a STORE
// adding \Seen. A client that fetches only header fields without PEEK
// (IMAP then sets \Seen) has not fetched the body: the subscriber must
// not count as notified.
func TestOfficialHeaderFetchIsNotARead(t *testing.T) {
	t.Parallel()
	a, addrs := officialSetup(t, "gina")
	gina := "gina@" + testDomain
	if err := submitAs(t, addrs, "egov", egovPassword, "notices@egov.kz", []string{gina},
		"From: notices@egov.kz\nTo: gina@example.kz\nSubject: Header only\nDate: "+time.Now().Format(time.RFC1123Z)+
			"\nMessage-ID: <headers-1@egov.kz>\n\nThe text.\n"); err != nil {
		t.Fatalf("egov's letter: %v", err)
	}
	rc := rawIMAPLogin(t, addrs["imaps"], gina, goodPassword)
	if _, st := rc.cmd("SELECT INBOX"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("SELECT: %s", st)
	}
	for _, item := range []string{"BODY[HEADER.FIELDS (SUBJECT)]", "BODY[HEADER]"} {
		if out, st := rc.cmd("FETCH 1 %s", item); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "Header only") {
			t.Errorf("FETCH %s: %s\n%s", item, st, out)
		}
		n, _ := a.notice("headers-1@egov.kz")
		if fr := n.rcpt(t, gina).FirstReadAt; fr != nil {
			t.Errorf("FETCH 1 %s (header fields, no body) recorded the first read of an official letter at %v", item, fr)
			break
		}
	}
	rc.cmd("LOGOUT")
}
