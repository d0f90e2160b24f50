package policy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rspamdEngine is an engine with rspamd at url and no other DNS data.
func rspamdEngine(t *testing.T, url string, timeout time.Duration) *Engine {
	t.Helper()
	e, _ := dnsEngine(t, zone{}, Config{Spam: SpamConfig{RspamdURL: url, RspamdTimeout: timeout}})
	return e
}

// envelope is the Inspection the rspamd tests send.
func envelope(body []byte) *Inspection {
	return &Inspection{Body: body, ClientIP: netip.MustParseAddr("192.0.2.66"), Helo: "bad.test",
		MailFrom: "spammer@bad.test", Recipients: 2, RcptTo: []string{"user@example.kz", "other@example.kz"}}
}

// TestRspamdProtocol runs the client against a stand-in speaking
// rspamd's /checkv2: the envelope in headers, each action mapped.
func TestRspamdProtocol(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		answer  string
		delay   time.Duration
		action  Action
		reason  string
		neutral bool
	}{
		{name: "reject", status: 200, answer: `{"action":"reject","score":21.5,"required_score":15,"symbols":{"BAYES_SPAM":{"score":5.1},"R_SPF_FAIL":{"score":1}},"messages":{"smtp_message":"Spam message rejected"}}`,
			action: Reject, reason: "rspamd: reject (score 21.5/15.0; Spam message rejected; BAYES_SPAM, R_SPF_FAIL)"},
		{name: "add header", status: 200, answer: `{"action":"add header","score":7,"required_score":15,"symbols":{"X":{"score":7}}}`, action: Junk, reason: "rspamd: add header (score 7.0/15.0; X)"},
		{name: "rewrite subject", status: 200, answer: `{"action":"rewrite subject","score":9,"required_score":15}`, action: Junk, reason: "rewrite subject"},
		{name: "greylist", status: 200, answer: `{"action":"greylist","score":4,"required_score":15}`, action: Accept},
		{name: "soft reject", status: 200, answer: `{"action":"soft reject","score":0,"required_score":15}`, action: Accept},
		{name: "no action", status: 200, answer: `{"action":"no action","score":-1,"required_score":15}`, action: Accept},
		{name: "server error", status: 500, answer: `oops`, action: Accept, neutral: true},
		{name: "not json", status: 200, answer: `<html>`, action: Accept, neutral: true},
		{name: "too slow", status: 200, answer: `{"action":"reject"}`, delay: 2 * time.Second, action: Accept, neutral: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := letter("a@none.test", "hi\r\n")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ := io.ReadAll(r.Body)
				switch {
				case r.Method != http.MethodPost || r.URL.Path != "/checkv2":
					t.Errorf("%s %s, want POST /checkv2", r.Method, r.URL.Path)
				case !bytes.Equal(got, body):
					t.Errorf("body %q, want the message", got)
				case r.Header.Get("IP") != "192.0.2.66" || r.Header.Get("Helo") != "bad.test" || r.Header.Get("From") != "spammer@bad.test" ||
					!slices.Equal(r.Header.Values("Rcpt"), []string{"user@example.kz", "other@example.kz"}):
					t.Errorf("envelope headers %v", r.Header)
				}
				select {
				case <-time.After(tc.delay):
				case <-r.Context().Done():
					return
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			e := rspamdEngine(t, srv.URL+"/", 300*time.Millisecond)
			start := time.Now()
			v := e.Score(context.Background(), envelope(body))
			if took := time.Since(start); took > 1500*time.Millisecond {
				t.Errorf("Score took %v with a 300ms rspamd timeout", took)
			}
			f := findingOf(v, "rspamd")
			if v.Action != tc.action || f == nil || !strings.Contains(f.Reason, tc.reason) || f.Unavailable != tc.neutral {
				t.Fatalf("verdict %s, rspamd finding %+v; want %s with %q (neutral %v)", v.Action, f, tc.action, tc.reason, tc.neutral)
			}
		})
	}
}

// TestRspamdSkipsSubmissions: a logged-in subscriber's message is not
// sent to rspamd.
func TestRspamdSkipsSubmissions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("rspamd asked about a submission")
	}))
	defer srv.Close()
	in := envelope(letter("a@none.test", "hi\r\n"))
	in.Authenticated = true
	if v := rspamdEngine(t, srv.URL, time.Second).Score(context.Background(), in); findingOf(v, "rspamd") != nil {
		t.Fatalf("%+v", v)
	}
}

func TestCheckRspamdURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:11333": true, "https://rspamd.internal/": true,
		"127.0.0.1:11333": false, "ftp://x": false, "http://": false, "http://x/?a=b": false,
	} {
		if err := CheckRspamdURL(u); (err == nil) != ok {
			t.Errorf("CheckRspamdURL(%q) = %v, want ok %v", u, err, ok)
		}
	}
}

// TestRealRspamd checks the client against the real rspamd (the Debian
// package .ci/run installs), started on a free 127.0.0.1 port with a
// minimal configuration of its own: one normal worker, no controller or
// proxy, no remote maps, DNS pointed at a closed local port (it never
// touches the internet), a tiny TLD list (the full one takes rspamd
// tens of seconds to compile), and one Lua rule that scores the envelope
// abox sends, so the test proves the IP, Helo, From and Rcpt headers
// arrive.
func TestRealRspamd(t *testing.T) {
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		t.Skip("rspamd is not installed (apt-get install rspamd): skipping the test against a real rspamd")
	}
	url := startRspamd(t, bin)
	e := rspamdEngine(t, url, 10*time.Second)

	tests := []struct {
		name   string
		in     *Inspection
		action Action
		reason string
	}{
		{"envelope rule adds a header: Junk", envelope(letter("a@none.test", "hello\r\n")), Junk, "rspamd: add header (score 7.0/15.0; ABOX_ENVELOPE)"},
		{"GTUBE: reject", envelope(letter("a@none.test", gtube+"\r\n")), Reject, "rspamd: reject"},
		{"clean: no action", &Inspection{Body: letter("a@none.test", "hello\r\n"), ClientIP: netip.MustParseAddr("192.0.2.67"),
			Helo: "good.test", MailFrom: "friend@good.test", RcptTo: []string{"user@example.kz"}, Recipients: 1}, Accept, "rspamd: no action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := e.Score(context.Background(), tc.in)
			f := findingOf(v, "rspamd")
			if f == nil || f.Unavailable || !strings.Contains(f.Reason, tc.reason) || v.Action != tc.action {
				t.Fatalf("verdict %s, rspamd finding %+v; want %s with %q\n%s", v.Action, f, tc.action, tc.reason, v.Details())
			}
		})
	}
}

// startRspamd runs rspamd until the test ends and returns its worker's
// URL, or skips the test with the reason when it cannot start.
func startRspamd(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	files := map[string]string{
		"tlds.dat": "com\norg\nkz\ntest\n",
		"rules.lua": `rspamd_config:register_symbol({
  name = 'ABOX_ENVELOPE',
  score = 7.0,
  callback = function(task)
    local from = task:get_from('smtp')
    local rcpts = task:get_recipients('smtp')
    local ip = task:get_from_ip()
    if from and from[1] and from[1].addr == 'spammer@bad.test' and ip and tostring(ip) == '192.0.2.66'
      and task:get_helo() == 'bad.test' and rcpts and #rcpts == 2 and rcpts[2].addr == 'other@example.kz' then
      return true
    end
    return false
  end,
})
`,
		"rspamd.conf": fmt.Sprintf(`options {
  pidfile = "%[1]s/rspamd.pid";
  dbdir = "%[1]s";
  filters = "";
  url_tld = "%[1]s/tlds.dat";
  dns { nameserver = ["%[2]s"]; timeout = 0.2s; retransmits = 1; }
}
lua = "%[1]s/rules.lua";
logging { type = "console"; level = "warning"; }
worker "normal" {
  bind_socket = "%[3]s";
  count = 1;
}
actions { reject = 15; add_header = 6; greylist = 4; }
`, dir, closedPort(t), addr),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-f", "-c", filepath.Join(dir, "rspamd.conf"))
	if os.Geteuid() == 0 {
		cmd.Args = append(cmd.Args, "-i") // rspamd refuses root workers otherwise
	}
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Skipf("rspamd cannot start (%v): skipping the test against a real rspamd", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(url + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Skipf("rspamd exited before answering (%v): skipping the test against a real rspamd\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Skipf("rspamd did not answer /ping within 2 minutes: skipping the test against a real rspamd\n%s", out.String())
		}
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
