package aboxtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
)

// readyMsg is in the line serve logs once every listener accepts (JSON:
// serve logs JSON when stderr is not a terminal).
const readyMsg = `"msg":"ready"`

// Log collects a process's output (an io.Writer for exec.Cmd) and
// signals the ready line.
type Log struct {
	ready chan struct{} // closed at the first ready line

	mu      sync.Mutex
	buf     bytes.Buffer // guarded by mu
	partial []byte       // guarded by mu; the unfinished last line
	readyAt string       // guarded by mu; the ready line once seen
}

func newLog() *Log {
	return &Log{ready: make(chan struct{})}
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.readyAt != "" {
		return len(p), nil
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if strings.Contains(line, readyMsg) {
			l.readyAt = line
			l.partial = nil
			close(l.ready)
			break
		}
	}
	return len(p), nil
}

func (l *Log) readyLine() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyAt
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Lines returns the complete lines written so far.
func (l *Log) Lines() []string {
	s := l.String()
	s = s[:strings.LastIndexByte(s, '\n')+1]
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// Contains reports whether one line contains every one of words.
func (l *Log) Contains(words ...string) bool {
next:
	for _, line := range l.Lines() {
		for _, w := range words {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		return true
	}
	return false
}

// Records parses the JSON lines (others, such as a panic's trace, are
// skipped).
func (l *Log) Records() []map[string]any {
	var out []map[string]any
	for _, line := range l.Lines() {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}
