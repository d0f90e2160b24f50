package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"abox/policy"
)

// Mode says which door a listener is.
type Mode int

// The two doors.
const (
	MX         Mode = iota // inbound mail for hosted domains; no AUTH
	Submission             // authenticated submission (RFC 6409)
)

// Config configures one listener's server.
type Config struct {
	Name        string // listener name for logs and metrics: smtp, submission, submissions
	Mode        Mode
	Hostname    string
	TLS         *tls.Config
	ImplicitTLS bool // the listener is already TLS (submissions)
	Policy      *policy.Engine
	Log         *slog.Logger
	Metrics     *Metrics

	MaxConnections int // all clients together (default 1,000)
	// MaxPerNetwork bounds the connections of one network (an IPv4 /24,
	// an IPv6 /64) outside the trusted networks, so that a few addresses
	// cannot fill MaxConnections (default a tenth of it).
	MaxPerNetwork  int
	MaxRecipients  int // per message (default 100)
	MaxBadCommands int // before 421 (default 10)
	// MaxUnknownRecipients a session may be told of; its next RCPT gets
	// 421 4.7.0 and the connection closes (default 5).
	MaxUnknownRecipients int
	HelloTimeout         time.Duration // waiting for the first command and every one before EHLO/HELO (default 30 s)
	CommandTimeout       time.Duration // waiting for a command after EHLO/HELO (default 5 min, RFC 5321 §4.5.3.2.7)
	DataTimeout          time.Duration // whole DATA or BDAT transfer (default 10 min)
}

// Server serves SMTP on the listeners given to Serve.
type Server struct {
	cfg Config

	mu       sync.Mutex
	ln       []net.Listener     // guarded by mu
	conns    map[*conn]struct{} // guarded by mu
	closing  atomic.Bool        // set once by Shutdown, under mu
	wg       sync.WaitGroup
	sessions int                  // guarded by mu
	networks map[netip.Prefix]int // guarded by mu; sessions per untrusted network
}

// New returns a server; defaults fill the zero fields of cfg.
func New(cfg Config) *Server {
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 1000
	}
	if cfg.MaxPerNetwork == 0 {
		cfg.MaxPerNetwork = max(cfg.MaxConnections/10, 1)
	}
	if cfg.HelloTimeout == 0 {
		cfg.HelloTimeout = 30 * time.Second
	}
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = 100
	}
	if cfg.MaxUnknownRecipients == 0 {
		cfg.MaxUnknownRecipients = 5
	}
	if cfg.MaxBadCommands == 0 {
		cfg.MaxBadCommands = 10
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = 10 * time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Server{cfg: cfg, conns: map[*conn]struct{}{}, networks: map[netip.Prefix]int{}}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = append(s.ln, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
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
		// Shutdown waits for s.wg once closing is set, under s.mu: a
		// connection accepted meanwhile is counted before that or not
		// served (an Add after the Wait began was a data race, and a
		// session Shutdown did not wait for).
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return net.ErrClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

// handle runs one connection: limits first, then the session.
func (s *Server) handle(nc net.Conn) {
	defer nc.Close()
	ip := remoteIP(nc)
	c := newConn(s, nc, ip)
	network, counted := clientNetwork(ip), !s.cfg.Policy.Trusted(ip)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return
	}
	full := s.sessions >= s.cfg.MaxConnections
	crowded := counted && s.networks[network] >= s.cfg.MaxPerNetwork
	if !full && !crowded {
		s.sessions++
		s.conns[c] = struct{}{}
		if counted {
			s.networks[network]++
		}
	}
	s.mu.Unlock()
	switch {
	case full:
		s.cfg.Metrics.rejected(s.cfg.Name, "too many connections")
		c.refuseConnection("Too many connections, try again later")
		return
	case crowded:
		s.cfg.Metrics.rejected(s.cfg.Name, "too many connections")
		c.refuseConnection("Too many connections from your network, try again later")
		return
	}
	defer func() {
		s.mu.Lock()
		s.sessions--
		delete(s.conns, c)
		if counted {
			if s.networks[network]--; s.networks[network] <= 0 {
				delete(s.networks, network)
			}
		}
		s.mu.Unlock()
	}()
	release, err := s.cfg.Policy.Limits.OpenConn(s.cfg.Name, ip)
	if err != nil {
		s.cfg.Metrics.rejected(s.cfg.Name, reasonLabel(err))
		c.refuseConnection(policy.ReasonOf(err))
		return
	}
	defer release()
	s.cfg.Metrics.sessions.WithLabelValues(s.cfg.Name).Inc()
	defer s.cfg.Metrics.sessions.WithLabelValues(s.cfg.Name).Dec()
	c.serve()
}

// Shutdown stops accepting at once. Sessions waiting for a command
// outside a mail transaction are told 421 and closed; sessions inside a
// transaction may finish it (then get 421). When ctx ends first, the
// remaining connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for _, ln := range s.ln {
		ln.Close()
	}
	for c := range s.conns {
		c.wakeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// isClosing takes no lock: sessions ask while holding their own, which
// Shutdown takes under the server's.
func (s *Server) isClosing() bool {
	return s.closing.Load()
}

// clientNetwork is the network a client's connections count against:
// its IPv4 /24 or IPv6 /64.
func clientNetwork(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

func remoteIP(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.IPv6Unspecified()
}
