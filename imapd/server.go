package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"abox/policy"
)

// Config configures one IMAP listener's server.
type Config struct {
	Name        string // listener name: imap, imaps
	TLS         *tls.Config
	ImplicitTLS bool
	Policy      *policy.Engine
	Store       Store
	Log         *slog.Logger
	Metrics     *Metrics
	Version     string // abox's version, for ID (default "devel")

	MaxConnections        int // all clients (default 10,000)
	ConnectionsPerAccount int // default 50
}

// Server serves IMAP with abox's own protocol layer (conn.go, the
// cmd_*.go handlers, imapd/wire).
type Server struct {
	cfg Config

	mu       sync.Mutex
	ln       []net.Listener        // guarded by mu
	sessions map[*session]struct{} // guarded by mu
	perAcct  map[uint64]int        // guarded by mu
	closing  bool                  // guarded by mu
	conns    sync.WaitGroup        // connections being served
	// stopping is closed when Shutdown starts: commands waiting for
	// their turn (pace) stop waiting.
	stopping chan struct{}
}

// numKind says whether a command names messages by sequence number or
// by UID.
type numKind int

const (
	numKindSeq numKind = iota
	numKindUID
)

// New returns a server; defaults fill the zero fields of cfg.
func New(cfg Config) *Server {
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 10_000
	}
	if cfg.ConnectionsPerAccount == 0 {
		cfg.ConnectionsPerAccount = 50
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Server{cfg: cfg, sessions: map[*session]struct{}{}, perAcct: map[uint64]int{}, stopping: make(chan struct{})}
}

// Serve accepts connections on ln until Shutdown. With ImplicitTLS, ln
// is a plain TCP listener: the server runs the TLS itself.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = append(s.ln, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns.Add(1) // under mu: Shutdown waits for every connection counted before it
		s.mu.Unlock()
		go s.handle(nc) // the connection's last goroutine calls s.conns.Done (conn.end)
	}
}

// handle serves one connection: limits first, then the session.
func (s *Server) handle(nc net.Conn) {
	tlsOn := false
	var rec *recordConn
	if s.cfg.ImplicitTLS {
		if s.cfg.TLS != nil {
			rec = &recordConn{Conn: nc}
			nc = tls.Server(rec, s.cfg.TLS)
		}
		tlsOn = true
	}
	c := newConn(s, nc, tlsOn)
	c.rec = rec
	sess, refusal := s.newSession(c)
	if sess == nil {
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		nc.Write([]byte("* BYE [UNAVAILABLE] " + sanitize(refusal) + "\r\n"))
		nc.Close()
		s.conns.Done()
		return
	}
	c.sess = sess
	c.serve()
}

// Shutdown stops accepting at once, lets commands in progress finish, says
// BYE to every session, and closes the rest when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.stopping)
	}
	s.closing = true
	for _, ln := range s.ln {
		ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// Goodbyes are written outside s.mu: a write to a client that
		// does not read must not hold up sessions ending meanwhile.
		s.mu.Lock()
		open := make([]*session, 0, len(s.sessions))
		for sess := range s.sessions {
			open = append(open, sess)
		}
		s.mu.Unlock()
		busy := 0
		for _, sess := range open {
			if sess.tryBye("Server shutting down") {
				s.mu.Lock()
				delete(s.sessions, sess)
				s.mu.Unlock()
				continue
			}
			busy++
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeAll()
		return ctx.Err()
	}
}

// closeAll ends every connection still open.
func (s *Server) closeAll() {
	s.mu.Lock()
	for sess := range s.sessions {
		sess.conn.nc.Close()
	}
	s.mu.Unlock()
}

// newSession counts a connection against the limits; it returns nil and
// why when the connection is refused.
func (s *Server) newSession(c *conn) (*session, string) {
	ip := remoteIP(c.nc)
	s.mu.Lock()
	full := s.closing || len(s.sessions) >= s.cfg.MaxConnections
	s.mu.Unlock()
	if full {
		s.cfg.Metrics.rejected.WithLabelValues(s.cfg.Name, "too many connections").Inc()
		return nil, "Too many connections, try again later"
	}
	release, err := s.cfg.Policy.Limits.OpenConn("imap", ip)
	if err != nil {
		s.cfg.Metrics.rejected.WithLabelValues(s.cfg.Name, "too many connections").Inc()
		return nil, policy.ReasonOf(err)
	}
	sess := &session{srv: s, conn: c, ip: ip, releaseIP: release,
		log: s.cfg.Log.With("listener", s.cfg.Name, "remote", ip.String())}
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	s.cfg.Metrics.sessions.WithLabelValues(s.cfg.Name).Inc()
	return sess, ""
}

// claimAccountSlot counts one more session for an account, or refuses.
func (s *Server) claimAccountSlot(acct uint64, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAcct[acct] >= max {
		return false
	}
	s.perAcct[acct]++
	return true
}

func (s *Server) releaseAccountSlot(acct uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAcct[acct]--; s.perAcct[acct] <= 0 {
		delete(s.perAcct, acct)
	}
}

func (s *Server) forget(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.cfg.Metrics.sessions.WithLabelValues(s.cfg.Name).Dec()
}

func (s *Server) version() string {
	if s.cfg.Version == "" {
		return "devel"
	}
	return s.cfg.Version
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.IPv6Unspecified()
}

// Metrics are the IMAP counters exported on /metrics.
type Metrics struct {
	sessions  *prometheus.GaugeVec
	rejected  *prometheus.CounterVec
	logins    *prometheus.CounterVec
	commands  *prometheus.CounterVec
	limitHits *prometheus.CounterVec
	delayed   *prometheus.CounterVec
	resyncs   *prometheus.CounterVec
}

// NewMetrics creates and registers (with reg, when not nil) the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "abox_imap_sessions", Help: "IMAP sessions open now."}, []string{"listener"}),
		rejected:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_imap_connections_rejected_total", Help: "IMAP connections refused, by reason."}, []string{"listener", "reason"}),
		logins:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_imap_logins_total", Help: "IMAP logins, by result."}, []string{"listener", "result"}),
		commands:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_imap_commands_total", Help: "IMAP commands handled by the backend."}, []string{"listener", "command"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_imap_rate_limited_total", Help: "Commands refused by the account's command budget (they would have waited too long)."}, []string{"listener"}),
		delayed:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_imap_commands_delayed_total", Help: "Commands past the account's burst that waited for their turn."}, []string{"listener"}),
		resyncs:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_imap_view_resyncs_total", Help: "Sessions that fell behind the change feed and re-read their mailbox."}, []string{"listener"}),
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.rejected, m.logins, m.commands, m.limitHits, m.delayed, m.resyncs)
	}
	return m
}
