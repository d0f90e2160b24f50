package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// A brute force used to write 265 MB of log a minute, and a client could
// have a 700 KB user name written verbatim (issue 13). guardedHandler
// sits in front of the real handler and
//
//   - cuts every string it passes (the message, string attributes,
//     errors, Stringers) to maxField bytes, marking the cut;
//   - lets at most repeatLimit records a minute through for one key
//     (level, message, and the client address when the record carries a
//     "remote" attribute), and says how many it held back in one summary
//     line per key at the end of the minute.
//
// Keying by client keeps one client from silencing the lines of others;
// records without a client (start, sweeps) are keyed by level and
// message alone.
type guardedHandler struct {
	next   slog.Handler
	st     *logGuard
	remote string // the "remote" attribute given to With, if any
	groups int    // groups opened by WithGroup (attributes below are not top level)
}

// logGuard is the state every handler derived from one guardedHandler
// shares.
type logGuard struct {
	maxField    int
	repeatLimit int // 0: no limit
	window      time.Duration
	now         func() time.Time
	root        slog.Handler // summaries go here

	keyCap int // keys tracked in a window; past it new clients share one key

	mu       sync.Mutex
	windowAt time.Time         // guarded by mu; when the current window began
	seen     map[repeatKey]int // guarded by mu; records per key in the window
	held     map[repeatKey]int // guarded by mu; records held back per key in the window
	timer    *time.Timer       // guarded by mu; writes the summaries at the window's end
}

type repeatKey struct {
	level  slog.Level
	msg    string
	remote string
}

// manyClients stands for every client past keyCap keys in a window.
const manyClients = "(many clients)"

func newGuardedHandler(next slog.Handler, maxField, repeatLimit int, now func() time.Time) *guardedHandler {
	return &guardedHandler{next: next, st: &logGuard{
		maxField: maxField, repeatLimit: repeatLimit, window: time.Minute, now: now, root: next,
		seen: map[repeatKey]int{}, held: map[repeatKey]int{}, keyCap: 10_000,
	}}
}

func (h *guardedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *guardedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	capped := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		capped[i] = h.st.capAttr(a)
		if h.groups == 0 && a.Key == "remote" {
			c.remote = capped[i].Value.String()
		}
	}
	c.next = h.next.WithAttrs(capped)
	return &c
}

func (h *guardedHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.groups++
	return &c
}

func (h *guardedHandler) Handle(ctx context.Context, r slog.Record) error {
	remote := h.remote
	out := slog.NewRecord(r.Time, r.Level, h.st.capString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		a = h.st.capAttr(a)
		if h.groups == 0 && a.Key == "remote" {
			remote = a.Value.String()
		}
		out.AddAttrs(a)
		return true
	})
	if !h.st.admit(repeatKey{r.Level, out.Message, remote}) {
		return nil
	}
	return h.next.Handle(ctx, out)
}

// admit counts a record against its key's budget for the window.
func (g *logGuard) admit(k repeatKey) bool {
	if g.repeatLimit <= 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if now.Sub(g.windowAt) >= g.window {
		g.flushLocked()
		g.windowAt = now
	}
	if _, tracked := g.seen[k]; !tracked && len(g.seen) >= g.keyCap {
		k.remote = manyClients
	}
	g.seen[k]++
	if g.seen[k] <= g.repeatLimit {
		return true
	}
	g.held[k]++
	if g.timer == nil {
		g.timer = time.AfterFunc(g.windowAt.Add(g.window).Sub(now), g.flush)
	}
	return false
}

// flush writes the summaries of a window that has ended (timer).
func (g *logGuard) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.timer = nil
	if g.now().Sub(g.windowAt) >= g.window {
		g.flushLocked()
		g.windowAt = g.now()
	}
}

// flushLocked writes one summary per key that had records held back and
// starts a new window. Caller holds g.mu.
func (g *logGuard) flushLocked() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	for k, n := range g.held {
		r := slog.NewRecord(g.now(), k.level, "suppressed similar log lines", 0)
		r.AddAttrs(slog.String("message", k.msg), slog.Int("suppressed", n), slog.String("window", g.window.String()))
		if k.remote != "" {
			r.AddAttrs(slog.String("remote", k.remote))
		}
		_ = g.root.Handle(context.Background(), r)
	}
	clear(g.held)
	clear(g.seen)
}

// Flush writes the summaries still pending (at shutdown).
func (h *guardedHandler) Flush() {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	h.st.flushLocked()
}

// capAttr cuts an attribute's strings; groups are cut member by member.
func (g *logGuard) capAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, g.capString(v.String()))
	case slog.KindGroup:
		members := v.Group()
		capped := make([]any, len(members))
		for i, m := range members {
			capped[i] = g.capAttr(m)
		}
		return slog.Group(a.Key, capped...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, g.capString(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, g.capString(x.String()))
		case []byte:
			return slog.String(a.Key, g.capString(string(x)))
		}
	}
	return slog.Attr{Key: g.capString(a.Key), Value: v}
}

// capString cuts s to maxField bytes (at a UTF-8 boundary) and says how
// much it left out.
func (g *logGuard) capString(s string) string {
	if g.maxField <= 0 || len(s) <= g.maxField {
		return s
	}
	cut := g.maxField
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…[cut " + strconv.Itoa(len(s)-cut) + " bytes]"
}
