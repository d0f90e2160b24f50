package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the handler's timer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		json.Unmarshal([]byte(l), &m)
		out = append(out, m)
	}
	return out
}

type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func guardedLogger(maxField, repeat int) (*slog.Logger, *syncBuffer, *fakeNow) {
	buf := &syncBuffer{}
	clk := &fakeNow{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newGuardedHandler(slog.NewJSONHandler(buf, nil), maxField, repeat, clk.now)
	return slog.New(h), buf, clk
}

// TestLogFieldCap: a 700 KB field (issue 13: a 700 KB user name was
// logged verbatim) is cut to the cap, with the cut marked, wherever it
// sits: a record's attribute, an attribute given to With, a group, an
// error, the message.
func TestLogFieldCap(t *testing.T) {
	huge := strings.Repeat("A", 700<<10)
	log, buf, _ := guardedLogger(256, 0)
	log.Info("login failed", "user", huge)
	log.With("helo", huge).Info("session")
	log.Info("grouped", slog.Group("g", slog.String("inner", huge)))
	log.Info("error", "err", errors.New(huge))
	log.Info(huge)
	lines := buf.lines()
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	buf.mu.Lock()
	total := buf.b.Len()
	buf.mu.Unlock()
	if total > 5*1024 {
		t.Errorf("five records with a 700 KB field each wrote %d bytes, want under 5 KiB", total)
	}
	for _, v := range []any{lines[0]["user"], lines[1]["helo"], lines[2]["g"].(map[string]any)["inner"], lines[3]["err"], lines[4]["msg"]} {
		s, _ := v.(string)
		if !strings.HasPrefix(s, strings.Repeat("A", 256)+"…[cut ") || !strings.Contains(s, "716544 bytes]") {
			t.Errorf("capped field %.300q, want 256 bytes and the cut marked", s)
		}
	}
	// Short fields and other kinds pass unchanged.
	log.Info("short", "user", "anna@example.kz", "n", 7)
	if l := buf.lines()[5]; l["user"] != "anna@example.kz" || l["n"] != float64(7) {
		t.Errorf("short fields changed: %v", l)
	}
}

// TestLogRepeats: 1,000 identical refusals from one client write at
// most the limit plus one summary saying how many were held back; other
// clients' lines are not held back with them; the summary comes at the
// end of the minute.
func TestLogRepeats(t *testing.T) {
	log, buf, clk := guardedLogger(256, 10)
	attacker := log.With("remote", "203.0.113.9")
	for range 1000 {
		attacker.Info("refused", "code", 535)
	}
	log.With("remote", "198.51.100.7").Info("refused", "code", 535)
	log.Info("refused", "code", 535, "remote", "192.0.2.1")
	lines := buf.lines()
	if len(lines) != 12 {
		t.Fatalf("1,000 repeated lines from one client and one each from two others wrote %d lines, want 12", len(lines))
	}
	clk.add(time.Minute)
	attacker.Info("refused", "code", 535) // the next window
	lines = buf.lines()
	if len(lines) != 14 {
		t.Fatalf("after the minute: %d lines, want 14 (a summary, then the new line)", len(lines))
	}
	sum := lines[12]
	if sum["msg"] != "suppressed similar log lines" || sum["message"] != "refused" || sum["suppressed"] != float64(990) || sum["remote"] != "203.0.113.9" || sum["level"] != "INFO" {
		t.Errorf("summary %v, want 990 \"refused\" lines from 203.0.113.9 held back", sum)
	}
	if lines[13]["msg"] != "refused" {
		t.Errorf("first line of the next minute: %v", lines[13])
	}
}
