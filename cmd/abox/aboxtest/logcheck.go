package aboxtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// What in a server's log shows a bug. abox logs at level ERROR only what
// no client can cause by asking: a recovered panic (smtp, imap IDLE,
// control, store writer), an internal error answered 451 4.3.0 or NO
// [SERVERBUG] (smtpd/imapd errors.go), a failed write, checkpoint or
// sweep, damage found in the store, a listener that stopped. Refusals of
// what a client asked (unknown recipient, bad password, limits) are
// INFO or WARN. So every ERROR record fails the test, unless the test
// expects it (AllowError: a full disk, a store damaged on purpose, and
// the one client-caused ERROR: "control: backup" when the CLI goes away
// in the middle of a backup's stream).
// go-imap logs what it recovers through imapd's adapter at WARN: a panic
// in a command or in IDLE, and "handling X command: err" when a handler
// returned an error that is no *imap.Error (the client got NO
// [SERVERBUG]); those count as ERROR records. Output that is not a
// record is the runtime's: a panic, a fatal error or a data race report,
// never expected.

// suppressedMsg is the summary of records the log guard held back
// (cmd/abox/loghandler.go); its "message" is theirs.
const suppressedMsg = "suppressed similar log lines"

// logFinding says why one line of a server's log shows a bug, or "".
// allowed are substrings of the messages of records the test expects.
func logFinding(line string, allowed []string) string {
	var rec struct {
		Level   string `json:"level"`
		Msg     string `json:"msg"`
		Message string `json:"message"`
	}
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &rec) != nil {
		switch {
		case strings.HasPrefix(line, "panic: "):
			return "a panic killed the server"
		case strings.HasPrefix(line, "fatal error: "):
			return "the Go runtime failed"
		case strings.Contains(line, "WARNING: DATA RACE"):
			return "a data race"
		}
		return ""
	}
	msg := rec.Msg
	if msg == suppressedMsg {
		msg = rec.Message
	}
	for _, a := range allowed {
		if strings.Contains(msg, a) {
			return ""
		}
	}
	switch {
	case rec.Level == "ERROR":
		return "an internal error"
	case rec.Level == "WARN" && strings.HasPrefix(msg, "imap: panic"):
		return "a panic go-imap recovered"
	case rec.Level == "WARN" && strings.HasPrefix(msg, "imap: handling "):
		return "an internal error go-imap answered NO [SERVERBUG]"
	}
	return ""
}

// AllowError makes records whose message contains one of msgs expected
// in this test: they no longer fail it. Say why beside the call.
func (e *Env) AllowError(msgs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.allowed = append(e.allowed, msgs...)
}

// SkipStoreCheck leaves `abox check` out of e's cleanup: the test
// damages the store on purpose.
func (e *Env) SkipStoreCheck(why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.noCheck = why
}

// started records a server that became ready. The first one registers
// e's cleanup checks, which run after every server's stop (cleanups run
// last registered first); each registers its stop, which runs the store
// check first while the server is the last one started and runs.
func (e *Env) started(s *Server) {
	e.mu.Lock()
	e.servers = append(e.servers, s)
	first := !e.registered
	e.registered = true
	e.mu.Unlock()
	if first {
		e.t.Cleanup(e.cleanupChecks)
	}
	e.t.Cleanup(func() { e.stopAtCleanup(s) })
}

// stopAtCleanup stops s at the test's cleanup. When s is the server the
// test left running, the store is checked through its control socket
// first: the server's own check of the state it serves, without a run
// of the binary.
func (e *Env) stopAtCleanup(s *Server) {
	e.t.Helper()
	e.mu.Lock()
	live := s == e.servers[len(e.servers)-1] && e.noCheck == ""
	e.mu.Unlock()
	if live && s.Running() && e.checkLive() {
		e.mu.Lock()
		e.checked = true
		e.mu.Unlock()
	}
	s.Stop()
}

// cleanupChecks fails the test on an internal error in the log of any
// server it started on e, and unless SkipStoreCheck, on a problem `abox
// check` finds in the store: through the control socket before the
// last server stopped (stopAtCleanup), or else now, directly.
func (e *Env) cleanupChecks() {
	e.t.Helper()
	e.mu.Lock()
	servers, allowed, noCheck, checked := e.servers, e.allowed, e.noCheck, e.checked
	e.mu.Unlock()
	for i, s := range servers {
		if s.Running() { // not stopped by its own cleanup: stop it now
			s.Stop()
		}
		e.checkLog(fmt.Sprintf("server %d of %d", i+1, len(servers)), s, allowed)
	}
	switch {
	case noCheck != "":
		e.t.Logf("the store is not checked at cleanup: %s", noCheck)
	case !checked:
		e.Check()
	}
}

// checkLive runs the control socket's "check" operation (as `abox check`
// does when a server runs: one JSON line each way, progress lines
// before the answer) and fails the test on any problem it reports. It
// returns false when no server answers, to check directly instead.
func (e *Env) checkLive() bool {
	e.t.Helper()
	conn, err := net.DialTimeout("unix", filepath.Join(e.Dir, "control.sock"), 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(CommandTimeout))
	if _, err := io.WriteString(conn, `{"op":"check","args":{}}`+"\n"); err != nil {
		return false
	}
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			e.t.Errorf("abox check through the control socket at cleanup: %v (so far %q)", err, line)
			return true
		}
		var resp struct {
			Result   json.RawMessage `json:"result"`
			Error    string          `json:"error"`
			Progress json.RawMessage `json:"progress"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			e.t.Errorf("abox check through the control socket at cleanup: a bad answer %q", line)
			return true
		}
		if resp.Progress != nil {
			continue
		}
		var rep struct {
			Problems []string `json:"problems"`
		}
		if resp.Error != "" || json.Unmarshal(resp.Result, &rep) != nil || len(rep.Problems) != 0 {
			e.t.Errorf("abox check through the control socket at cleanup finds problems: %s", line)
		}
		return true
	}
}

// Bounds of what a failure prints of a log.
const (
	maxFindings   = 20
	maxFindingLen = 2000
	maxLogTail    = 64 << 10
)

// checkLog fails the test on every line of s's log that shows a bug.
func (e *Env) checkLog(which string, s *Server, allowed []string) {
	e.t.Helper()
	log := s.Log.String()
	var found []string
	first := -1
	off := 0
	for _, line := range strings.SplitAfter(log, "\n") {
		if why := logFinding(strings.TrimSuffix(line, "\n"), allowed); why != "" {
			if first < 0 {
				first = off
			}
			if len(found) < maxFindings {
				found = append(found, why+": "+cut(strings.TrimSuffix(line, "\n"), maxFindingLen))
			}
		}
		off += len(line)
	}
	if first < 0 {
		return
	}
	e.t.Errorf("%s on %s logged what shows a bug (AllowError if the test expects it):\n%s\n--- the log from there on:\n%s",
		which, s.dir, strings.Join(found, "\n"), cut(log[first:], maxLogTail))
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d more bytes)", len(s)-n)
}
