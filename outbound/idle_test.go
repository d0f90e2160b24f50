package outbound

import (
	"slices"
	"testing"
	"time"
)

// TestIdleCache: the newest fitting session first; the bounds per
// destination and in all push out the oldest; expired sessions are
// never handed out and are returned by expire; close takes all and
// refuses more.
func TestIdleCache(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ic := newIdleCache(Config{MaxIdlePerDomain: 2, MaxIdle: 3, IdleTimeout: 5 * time.Second, ReuseTime: time.Minute})
	sess := func(name string, opened time.Time, info sessionInfo) *session {
		info.host = name
		return &session{opened: opened, info: info}
	}
	names := func(ss []*session) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.info.host)
		}
		slices.Sort(out)
		return out
	}
	put := func(key string, s *session, at time.Duration) []string {
		t.Helper()
		ev, ok := ic.put(key, s, t0.Add(at))
		if !ok {
			t.Fatalf("put %s refused", s.info.host)
		}
		return names(ev)
	}
	plain, big := &envelope{}, &envelope{body: make([]byte, 2000)}
	reqTLS := &envelope{}
	reqTLS.mail.RequireTLS = true

	put("a", sess("a1", t0, sessionInfo{requireTLS: true}), 0)
	put("a", sess("a2", t0, sessionInfo{maxSize: 1000}), time.Second)
	if ev := put("a", sess("a3", t0, sessionInfo{}), 2*time.Second); !slices.Equal(ev, []string{"a1"}) {
		t.Errorf("past MaxIdlePerDomain, evicted %v, want the oldest a1", ev)
	}
	put("b", sess("b1", t0, sessionInfo{}), 3*time.Second)
	if ev := put("c", sess("c1", t0, sessionInfo{}), 4*time.Second); !slices.Equal(ev, []string{"a2"}) {
		t.Errorf("past MaxIdle, evicted %v, want the oldest of all a2", ev)
	}
	if n := ic.count(""); n != 3 {
		t.Errorf("%d idle", n)
	}
	if s := ic.take("a", reqTLS, t0.Add(4*time.Second)); s != nil {
		t.Errorf("REQUIRETLS took %s", s.info.host)
	}
	if s := ic.take("a", plain, t0.Add(4*time.Second)); s == nil || s.info.host != "a3" {
		t.Errorf("took %v, want a3", s)
	}
	if s := ic.take("a", plain, t0.Add(4*time.Second)); s != nil {
		t.Errorf("took %s from an empty destination", s.info.host)
	}

	// Room for all from here on.
	ic = newIdleCache(Config{MaxIdlePerDomain: 2, MaxIdle: 10, IdleTimeout: 5 * time.Second, ReuseTime: time.Minute})
	put("b", sess("b1", t0, sessionInfo{}), 3*time.Second)
	put("c", sess("c1", t0, sessionInfo{}), 4*time.Second)
	put("a", sess("small", t0, sessionInfo{maxSize: 1000}), 4*time.Second)
	put("a", sess("any", t0, sessionInfo{}), 5*time.Second)
	if s := ic.take("a", big, t0.Add(5*time.Second)); s == nil || s.info.host != "any" {
		t.Errorf("a big message took %v, want any", s)
	}
	put("a", sess("any", t0, sessionInfo{}), 5*time.Second)
	// b1 parked at 3s, idle 5s at 8s; "old" opened a minute ago.
	put("old", sess("old", t0.Add(-time.Minute+9*time.Second), sessionInfo{}), 6*time.Second)
	if s := ic.take("b", plain, t0.Add(8*time.Second)); s != nil {
		t.Errorf("took %s, idle for IdleTimeout", s.info.host)
	}
	if s := ic.take("old", plain, t0.Add(9*time.Second)); s != nil {
		t.Errorf("took %s, open for ReuseTime", s.info.host)
	}
	if got := names(ic.expire(t0.Add(9 * time.Second))); !slices.Equal(got, []string{"b1", "c1", "old", "small"}) {
		t.Errorf("expired %v", got)
	}
	if got := names(ic.close()); !slices.Equal(got, []string{"any"}) {
		t.Errorf("close returned %v", got)
	}
	if _, ok := ic.put("a", sess("late", t0, sessionInfo{}), t0.Add(10*time.Second)); ok || ic.count("") != 0 {
		t.Error("put after close kept the session")
	}
}

// TestSessionFits: what a message needs, the session must have shown.
func TestSessionFits(t *testing.T) {
	t.Parallel()
	all := sessionInfo{dsn: true, smtputf8: true, eightBitMIME: true, requireTLS: true, maxSize: 100}
	for _, tc := range []struct {
		name  string
		env   func(*envelope)
		lacks func(*sessionInfo)
	}{
		{"REQUIRETLS", func(e *envelope) { e.mail.RequireTLS = true }, func(i *sessionInfo) { i.requireTLS = false }},
		{"SMTPUTF8", func(e *envelope) { e.needUTF8 = true }, func(i *sessionInfo) { i.smtputf8 = false }},
		{"8BITMIME", func(e *envelope) { e.mail.Body = "8BITMIME" }, func(i *sessionInfo) { i.eightBitMIME = false }},
		{"SIZE", func(e *envelope) { e.body = make([]byte, 50) }, func(i *sessionInfo) { i.maxSize = 10 }},
		{"DSN", func(e *envelope) { e.dsn = true }, func(i *sessionInfo) { i.dsn = false }},
	} {
		var env envelope
		tc.env(&env)
		lacking := all
		tc.lacks(&lacking)
		if !all.fits(&env) || lacking.fits(&env) || !lacking.fits(&envelope{}) {
			t.Errorf("%s: fits with it %v, without it %v, a plain message without it %v", tc.name, all.fits(&env), lacking.fits(&env), lacking.fits(&envelope{}))
		}
	}
}
