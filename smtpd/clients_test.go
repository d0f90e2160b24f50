package smtpd_test

// Three independent SMTP clients against the real server: Go's net/smtp,
// Python's smtplib and curl.

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clientsFixture is a server and accounts for the client tests.
type clientsFixture struct {
	e    *env
	s    *server
	user map[string]string
}

func newClientsFixture(t *testing.T, logins ...string) *clientsFixture {
	t.Helper()
	e := newEnv(t)
	f := &clientsFixture{e: e, user: map[string]string{}}
	for _, l := range logins {
		f.user[l] = e.addUser(l)
	}
	f.s = e.start()
	return f
}

func TestNetSMTP(t *testing.T) {
	t.Parallel()
	f := newClientsFixture(t, "gomx", "gotls", "gosub", "gosubs", "gorcpt")
	e, s := f.e, f.s

	send := func(t *testing.T, c *smtp.Client, from, to, msg string) {
		t.Helper()
		if err := c.Mail(from); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		if err := c.Rcpt(to); err != nil {
			t.Fatalf("RCPT: %v", err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("DATA: %v", err)
		}
		if _, err := w.Write([]byte(msg)); err != nil {
			t.Fatalf("writing the message: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("end of DATA: %v", err)
		}
	}

	t.Run("MX plain", func(t *testing.T) {
		t.Parallel()
		to := f.user["gomx"]
		c, err := smtp.Dial(s.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("gosmtp.client.test"); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"} {
			if ok, _ := c.Extension(ext); !ok {
				t.Errorf("net/smtp sees no %s", ext)
			}
		}
		if _, p := c.Extension("SIZE"); p != "26214400" {
			t.Errorf("SIZE parameter %q, want 26214400", p)
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("MX advertises AUTH")
		}
		msg := message("sender@remote.test", to, "net/smtp", "plain MX")
		send(t, c, "sender@remote.test", to, msg)
		// A refused recipient surfaces as an error with the code.
		c.Mail("sender@remote.test")
		err = c.Rcpt("someone@elsewhere.test")
		if !isReply(err, 554, "5.7.1") {
			t.Errorf("relay attempt through net/smtp: %v, want 554 5.7.1", err)
		}
		if err := c.Quit(); err != nil {
			t.Errorf("QUIT: %v", err)
		}
		checkStored(t, e.onlyMessage(to).Body, msg, "net/smtp message")
	})

	t.Run("MX STARTTLS", func(t *testing.T) {
		t.Parallel()
		to := f.user["gotls"]
		c, err := smtp.Dial(s.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.StartTLS(clientTLS()); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		if st, ok := c.TLSConnectionState(); !ok || st.Version != tls.VersionTLS13 {
			t.Errorf("TLS state %v %x, want TLS 1.3", ok, st.Version)
		}
		msg := message("sender@remote.test", to, "net/smtp TLS", "over STARTTLS")
		send(t, c, "sender@remote.test", to, msg)
		c.Quit()
		hdr := checkStored(t, e.onlyMessage(to).Body, msg, "net/smtp STARTTLS message")
		if !strings.Contains(hdr, "TLS 1.3") {
			t.Errorf("Received lacks the TLS version:\n%s", hdr)
		}
	})

	t.Run("submission STARTTLS AUTH PLAIN", func(t *testing.T) {
		t.Parallel()
		from, to := f.user["gosub"], f.user["gorcpt"]
		c, err := smtp.Dial(s.sub)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("submission advertises AUTH before STARTTLS")
		}
		if err := c.StartTLS(clientTLS()); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") {
			t.Errorf("AUTH after STARTTLS: %v %q", ok, mechs)
		}
		if err := c.Mail(from); !isReply(err, 530, "5.7.0") {
			t.Errorf("MAIL before AUTH: %v, want 530 5.7.0", err)
		}
		if err := c.Auth(smtp.PlainAuth("", from, password, "127.0.0.1")); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
		msg := crlf("From: <" + from + ">\nTo: <" + to + ">\nSubject: no date, no id\n\nbody\n")
		send(t, c, from, to, msg)
		c.Quit()
		hdr := headerOf(e.onlyMessage(to).Body)
		if countHeader(hdr, "Message-ID") != 1 || countHeader(hdr, "Date") != 1 {
			t.Errorf("submission did not add Message-ID and Date once each:\n%s", hdr)
		}
		// A failed AUTH (net/smtp then quits the session).
		c2, err := smtp.Dial(s.sub)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if err := c2.StartTLS(clientTLS()); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		if err := c2.Auth(smtp.PlainAuth("", from, "bad password here", "127.0.0.1")); !isReply(err, 535, "5.7.8") {
			t.Errorf("AUTH with a bad password: %v, want 535 5.7.8", err)
		}
	})

	t.Run("submissions implicit TLS", func(t *testing.T) {
		t.Parallel()
		from, to := f.user["gosubs"], f.user["gosubs"]
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", s.subs, clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		c, err := smtp.NewClient(conn, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ok, _ := c.Extension("STARTTLS"); ok {
			t.Error("implicit-TLS listener offers STARTTLS")
		}
		if err := c.Auth(smtp.PlainAuth("", from, password, "127.0.0.1")); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
		msg := message(from, to, "to myself", "over implicit TLS")
		send(t, c, from, to, msg)
		c.Quit()
		hdr := checkStored(t, e.onlyMessage(to).Body, msg, "net/smtp implicit TLS message")
		// net/smtp adds SMTPUTF8 to MAIL whenever the server offers it,
		// hence UTF8SMTPSA (RFC 6531 §4.3).
		for _, want := range []string{"SMTPSA id", "TLS 1.3", "authenticated sender: " + from} {
			if !strings.Contains(hdr, want) {
				t.Errorf("Received lacks %q:\n%s", want, hdr)
			}
		}
	})

	t.Cleanup(e.Check)
}

// isReply reports whether err is an SMTP error reply with code and
// enhanced code.
func isReply(err error, code int, enh string) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code == code && strings.HasPrefix(te.Msg, enh+" ")
}

// pyClient is smtplib driven by a JSON job on stdin; it prints a JSON
// result.
const pyClient = `
import json, smtplib, ssl, sys
job = json.load(sys.stdin)
ctx = ssl._create_unverified_context()
out = {}
def dec(b):
    return b.decode('utf-8', 'replace') if isinstance(b, bytes) else str(b)
try:
    if job['mode'] == 'ssl':
        s = smtplib.SMTP_SSL(job['host'], job['port'], timeout=60, context=ctx)
    else:
        s = smtplib.SMTP(job['host'], job['port'], timeout=60)
    code, msg = s.ehlo('py.client.test')
    out['ehlo'] = dec(msg)
    out['features'] = sorted(s.esmtp_features)
    if job['mode'] == 'starttls':
        s.starttls(context=ctx)
        s.ehlo('py.client.test')
        out['features_tls'] = sorted(s.esmtp_features)
    if job.get('user'):
        mech = job.get('mech')
        if mech:
            s.user, s.password = job['user'], job['password']
            fn = {'PLAIN': s.auth_plain, 'LOGIN': s.auth_login}[mech]
            code, msg = s.auth(mech, fn, initial_response_ok=job.get('initial', True))
        else:
            code, msg = s.login(job['user'], job['password'])
        out['auth'] = [code, dec(msg)]
    refused = s.sendmail(job['from'], job['rcpts'], job['msg'].encode('utf-8'), mail_options=job.get('mail_options', []))
    out['refused'] = {k: [v[0], dec(v[1])] for k, v in refused.items()}
    out['result'] = 'ok'
    s.quit()
except smtplib.SMTPRecipientsRefused as e:
    out['result'] = 'SMTPRecipientsRefused'
    out['refused'] = {k: [v[0], dec(v[1])] for k, v in e.recipients.items()}
except smtplib.SMTPResponseException as e:
    out['result'] = type(e).__name__
    out['error'] = [e.smtp_code, dec(e.smtp_error)]
print(json.dumps(out))
`

type pyJob struct {
	Host        string   `json:"host"`
	Port        int      `json:"port"`
	Mode        string   `json:"mode"` // plain, starttls, ssl
	User        string   `json:"user,omitempty"`
	Password    string   `json:"password,omitempty"`
	Mech        string   `json:"mech,omitempty"`
	Initial     bool     `json:"initial"`
	From        string   `json:"from"`
	Rcpts       []string `json:"rcpts"`
	Msg         string   `json:"msg"`
	MailOptions []string `json:"mail_options,omitempty"`
}

type pyResult struct {
	EHLO        string              `json:"ehlo"`
	Features    []string            `json:"features"`
	FeaturesTLS []string            `json:"features_tls"`
	Auth        []any               `json:"auth"`
	Refused     map[string][]any    `json:"refused"`
	Result      string              `json:"result"`
	Error       []any               `json:"error"`
	Extra       map[string]struct{} `json:"-"`
}

func runPython(t *testing.T, py, addr string, job pyJob) pyResult {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	job.Host = host
	job.Port = atoi(port)
	in, _ := json.Marshal(job)
	out, code := runTool(t, in, py, "-c", pyClient)
	var r pyResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("python smtplib: exit %d:\n%s", code, out)
	}
	return r
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	py := needTool(t, "python3")
	f := newClientsFixture(t, "pymx", "pytls", "pysub", "pylogin", "pyssl", "pyutf")
	e, s := f.e, f.s

	t.Run("MX plain", func(t *testing.T) {
		t.Parallel()
		to := f.user["pymx"]
		msg := message("sender@remote.test", to, "smtplib", "plain")
		r := runPython(t, py, s.smtp, pyJob{Mode: "plain", From: "sender@remote.test", Rcpts: []string{to, "nobody@" + domain}, Msg: msg})
		if r.Result != "ok" {
			t.Fatalf("smtplib: %+v", r)
		}
		if !strings.HasPrefix(r.EHLO, hostname) {
			t.Errorf("EHLO reply %q does not begin with %q", r.EHLO, hostname)
		}
		for _, x := range []string{"pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "starttls"} {
			if !contains(r.Features, x) {
				t.Errorf("smtplib sees no %s in %q", x, r.Features)
			}
		}
		if contains(r.Features, "auth") {
			t.Errorf("MX advertises AUTH: %q", r.Features)
		}
		if ref := r.Refused["nobody@"+domain]; len(ref) != 2 || ref[0] != float64(550) || !strings.HasPrefix(ref[1].(string), "5.1.1") {
			t.Errorf("refused recipients %v, want nobody@%s with 550 5.1.1", r.Refused, domain)
		}
		checkStored(t, e.onlyMessage(to).Body, msg, "smtplib message")
	})

	t.Run("MX STARTTLS", func(t *testing.T) {
		t.Parallel()
		to := f.user["pytls"]
		r := runPython(t, py, s.smtp, pyJob{Mode: "starttls", From: "sender@remote.test", Rcpts: []string{to}, Msg: message("sender@remote.test", to, "tls", "x")})
		if r.Result != "ok" {
			t.Fatalf("smtplib: %+v", r)
		}
		if contains(r.FeaturesTLS, "auth") || contains(r.FeaturesTLS, "starttls") {
			t.Errorf("MX features after STARTTLS: %q", r.FeaturesTLS)
		}
		e.wantMessages(to, 1)
	})

	t.Run("submission STARTTLS login", func(t *testing.T) {
		t.Parallel()
		from := f.user["pysub"]
		r := runPython(t, py, s.sub, pyJob{Mode: "starttls", User: from, Password: password, From: from, Rcpts: []string{from}, Msg: message(from, from, "self", "x")})
		if r.Result != "ok" {
			t.Fatalf("smtplib: %+v", r)
		}
		if contains(r.Features, "auth") || !contains(r.FeaturesTLS, "auth") {
			t.Errorf("AUTH must appear only after STARTTLS: before %q, after %q", r.Features, r.FeaturesTLS)
		}
		e.wantMessages(from, 1)
		// Forged header sender: 553 5.7.1 at the end of DATA.
		r = runPython(t, py, s.sub, pyJob{Mode: "starttls", User: from, Password: password, From: from, Rcpts: []string{from}, Msg: message("boss@"+domain, from, "forged", "x")})
		if r.Result != "SMTPDataError" || len(r.Error) != 2 || r.Error[0] != float64(553) || !strings.HasPrefix(r.Error[1].(string), "5.7.1") {
			t.Errorf("forged From: through smtplib: %+v, want SMTPDataError 553 5.7.1", r)
		}
		// Wrong password: 535 5.7.8.
		r = runPython(t, py, s.sub, pyJob{Mode: "starttls", User: from, Password: "nope nope nope", From: from, Rcpts: []string{from}, Msg: "x"})
		if r.Result != "SMTPAuthenticationError" || len(r.Error) != 2 || r.Error[0] != float64(535) || !strings.HasPrefix(r.Error[1].(string), "5.7.8") {
			t.Errorf("bad password through smtplib: %+v, want 535 5.7.8", r)
		}
	})

	t.Run("submission AUTH LOGIN", func(t *testing.T) {
		t.Parallel()
		from := f.user["pylogin"]
		for _, initial := range []bool{true, false} {
			r := runPython(t, py, s.sub, pyJob{Mode: "starttls", User: from, Password: password, Mech: "LOGIN", Initial: initial, From: from, Rcpts: []string{from}, Msg: message(from, from, "login", "x")})
			if r.Result != "ok" || len(r.Auth) != 2 || r.Auth[0] != float64(235) {
				t.Fatalf("AUTH LOGIN (initial response %v): %+v", initial, r)
			}
		}
		e.wantMessages(from, 2)
	})

	t.Run("submissions SMTP_SSL", func(t *testing.T) {
		t.Parallel()
		from := f.user["pyssl"]
		r := runPython(t, py, s.subs, pyJob{Mode: "ssl", User: from, Password: password, Mech: "PLAIN", Initial: true, From: from, Rcpts: []string{from}, Msg: message(from, from, "ssl", "x")})
		if r.Result != "ok" {
			t.Fatalf("smtplib: %+v", r)
		}
		if !contains(r.Features, "auth") || contains(r.Features, "starttls") {
			t.Errorf("submissions features %q: want AUTH, no STARTTLS", r.Features)
		}
		e.wantMessages(from, 1)
		// Envelope sender not owned: 553 5.7.1 at MAIL.
		r = runPython(t, py, s.subs, pyJob{Mode: "ssl", User: from, Password: password, From: "boss@" + domain, Rcpts: []string{from}, Msg: "x"})
		if r.Result != "SMTPSenderRefused" || len(r.Error) != 2 || r.Error[0] != float64(553) || !strings.HasPrefix(r.Error[1].(string), "5.7.1") {
			t.Errorf("foreign envelope sender through smtplib: %+v, want SMTPSenderRefused 553 5.7.1", r)
		}
	})

	t.Run("SMTPUTF8", func(t *testing.T) {
		t.Parallel()
		to := f.user["pyutf"]
		from := "дәулет@мысал.kz"
		msg := crlf("From: " + from + "\nTo: " + to + "\nSubject: Сәлеметсіз бе\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nМәтін.\n")
		r := runPython(t, py, s.smtp, pyJob{Mode: "plain", From: from, Rcpts: []string{to}, Msg: msg, MailOptions: []string{"SMTPUTF8", "BODY=8BITMIME"}})
		if r.Result != "ok" {
			t.Fatalf("smtplib SMTPUTF8: %+v", r)
		}
		m := e.onlyMessage(to)
		checkStored(t, m.Body, msg, "smtplib SMTPUTF8 message")
		if !strings.Contains(string(m.Body), "Return-Path: <"+from+">") {
			t.Errorf("Return-Path lacks the UTF-8 sender:\n%s", m.Body)
		}
	})

	t.Cleanup(e.Check)
}

func TestCurl(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	f := newClientsFixture(t, "curlmx", "curltls", "curlsub", "curlsubs")
	e, s := f.e, f.s
	dir := t.TempDir()
	upload := func(t *testing.T, name, msg string) string {
		t.Helper()
		p := filepath.Join(dir, name+".eml")
		if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// run runs curl -v; the transcript (stderr) has "< " server lines.
	run := func(t *testing.T, url, from, to, file string, extra ...string) (string, int) {
		t.Helper()
		args := append([]string{"-sS", "-v", "--max-time", "60", url + "/curl.client.test",
			"--mail-from", from, "--mail-rcpt", to, "--upload-file", file}, extra...)
		return runTool(t, nil, curl, args...)
	}

	t.Run("MX plain", func(t *testing.T) {
		t.Parallel()
		to := f.user["curlmx"]
		msg := message("sender@remote.test", to, "curl", ".dot line\r\nbody")
		out, code := run(t, "smtp://"+s.smtp, "sender@remote.test", to, upload(t, "mx", msg))
		if code != 0 {
			t.Fatalf("curl exit %d:\n%s", code, out)
		}
		for _, want := range []string{"< 220 " + hostname, "< 250-" + hostname, "< 250 2.0.0"} {
			if !strings.Contains(out, want) {
				t.Errorf("curl transcript lacks %q:\n%s", want, out)
			}
		}
		checkStored(t, e.onlyMessage(to).Body, msg, "curl message")
		// Relay attempt: curl fails on 554 5.7.1.
		out, code = run(t, "smtp://"+s.smtp, "sender@remote.test", "someone@gmail.com", upload(t, "relay", msg))
		if code == 0 || !strings.Contains(out, "< 554 5.7.1") {
			t.Errorf("curl relay attempt: exit %d, want failure with 554 5.7.1:\n%s", code, out)
		}
	})

	t.Run("MX STARTTLS", func(t *testing.T) {
		t.Parallel()
		to := f.user["curltls"]
		msg := message("sender@remote.test", to, "curl tls", "x")
		out, code := run(t, "smtp://"+s.smtp, "sender@remote.test", to, upload(t, "tls", msg), "--ssl-reqd", "-k")
		if code != 0 {
			t.Fatalf("curl exit %d:\n%s", code, out)
		}
		hdr := checkStored(t, e.onlyMessage(to).Body, msg, "curl STARTTLS message")
		if !strings.Contains(hdr, "TLS 1.") {
			t.Errorf("Received lacks the TLS version:\n%s", hdr)
		}
	})

	t.Run("submission STARTTLS", func(t *testing.T) {
		t.Parallel()
		from := f.user["curlsub"]
		msg := message(from, from, "curl sub", "x")
		out, code := run(t, "smtp://"+s.sub, from, from, upload(t, "sub", msg), "--ssl-reqd", "-k", "--user", from+":"+password)
		if code != 0 {
			t.Fatalf("curl exit %d:\n%s", code, out)
		}
		if !strings.Contains(out, "< 235 2.7.0") {
			t.Errorf("curl transcript lacks 235 2.7.0:\n%s", out)
		}
		e.wantMessages(from, 1)
		// Without credentials: 530 5.7.0 at MAIL.
		out, code = run(t, "smtp://"+s.sub, from, from, upload(t, "noauth", msg), "--ssl-reqd", "-k")
		if code == 0 || !strings.Contains(out, "< 530 5.7.0") {
			t.Errorf("curl submission without AUTH: exit %d, want 530 5.7.0:\n%s", code, out)
		}
	})

	t.Run("submissions", func(t *testing.T) {
		t.Parallel()
		from := f.user["curlsubs"]
		msg := message(from, from, "curl subs", "x")
		out, code := run(t, "smtps://"+s.subs, from, from, upload(t, "subs", msg), "-k", "--user", from+":"+password)
		if code != 0 {
			t.Fatalf("curl exit %d:\n%s", code, out)
		}
		e.wantMessages(from, 1)
		// Wrong password: 535 5.7.8.
		out, code = run(t, "smtps://"+s.subs, from, from, upload(t, "badpw", msg), "-k", "--user", from+":wrong password here")
		if code == 0 || !strings.Contains(out, "< 535 5.7.8") {
			t.Errorf("curl with a bad password: exit %d, want 535 5.7.8:\n%s", code, out)
		}
	})

	t.Cleanup(e.Check)
}
