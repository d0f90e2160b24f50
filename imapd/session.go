package imapd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"log/slog"

	"abox/accounts"
	"abox/policy"
)

// opTimeout bounds one store operation of a command.
const opTimeout = time.Minute

// session is one IMAP connection's backend. go-imap calls its methods
// from the connection's goroutine, one at a time (IDLE runs in its own
// goroutine while no command runs).
type session struct {
	srv       *Server
	conn      *conn
	ip        netip.Addr
	log       *slog.Logger
	releaseIP func()

	acct    *accounts.Account
	app     *accounts.AppPassword // the app password of the login (nil: the main one)
	strikes int                   // commands refused by the account's budget in a row
	sel     *selected
	busy    atomic.Int32 // inside a command (not IDLE)
	// idling guards writing updates outside commands: Idle, the IDLE
	// and NOTIFY pusher and Close take it, so a session never closes
	// while a pusher is writing.
	idling sync.Mutex
	// idleW is where the pusher writes while the session idles; nil
	// otherwise. Guarded by idling.
	idleW *UpdateWriter
	// armed mirrors idleW != nil for wake, which must not lock.
	armed    atomic.Bool
	pushing  atomic.Bool // a pusher runs (see push)
	byeOnce  sync.Once
	released bool

	// between: the pusher runs between commands for NOTIFY (armBetween),
	// not in IDLE. Guarded by idling.
	between bool
	// notify is the NOTIFY SET in force (notify.go), nil without one.
	// Guarded by idling.
	notify *notifier

	// condstore and qresync: RFC 7162 is enabled (condstore.go).
	condstore, qresync bool
	// resyncFrom is the modseq of the SELECT (QRESYNC ...) in progress
	// (0: none): Select then reads the changes since with the UIDs.
	resyncFrom uint64
	// clientID is what the client sent in ID (RFC 2971), bounded.
	clientID []IDField
}

// enter marks the start of a command and spends it from the account's
// command budget (pace). The returned function marks the end.
func (s *session) enter(name string) (func(), error) {
	s.busy.Add(1)
	done := func() { s.busy.Add(-1) }
	s.srv.cfg.Metrics.commands.WithLabelValues(s.srv.cfg.Name, name).Inc()
	if s.acct != nil {
		// The account as it is now: blocked or deleted accounts and
		// changed passwords lose access at once (user agreement 2.7-2.8,
		// 2.12.1), and quota or class changes apply to open sessions.
		acct, err := s.srv.cfg.Policy.Recheck(&policy.Identity{Account: s.acct, AppPassword: s.app}, accounts.ServiceIMAP)
		var refusal *policy.Refusal
		if err != nil && !errors.As(err, &refusal) {
			// The account could not be read (the storage is out of
			// reach): no decision, the session stays open.
			return done, noFor(err, s.log)
		}
		if err != nil {
			s.log.Info("session ends: " + policy.ReasonOf(err))
			s.bye("Session ended: " + policy.ReasonOf(err))
			return done, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeContactAdmin, Text: "Session ended: " + policy.ReasonOf(err)}
		}
		*s.acct = *acct
	}
	return done, s.pace()
}

// pace applies the account's IMAP command budget (the terms' "requests
// per period", policy.CommandBudgets): shared by all its sessions and
// kept across logins. Past the class's burst a command waits for its turn
// (a tarpit: the client is slowed, not failed); one that would wait past
// policy.MaxCommandWait is refused NO [LIMIT], and a client that keeps
// going after 20 refusals in a row gets BYE.
func (s *session) pace() error {
	if s.acct == nil {
		return nil
	}
	wait, err := s.srv.cfg.Policy.IMAPCommand(s.acct)
	if err != nil {
		if !errors.Is(err, policy.ErrRateLimited) {
			return noFor(err, s.log)
		}
		s.strikes++
		s.srv.cfg.Metrics.limitHits.WithLabelValues(s.srv.cfg.Name).Inc()
		if s.strikes > 20 {
			s.log.Warn("IMAP command budget abused; closing")
			s.bye("Too many commands; slow down")
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: policy.ReasonOf(err)}
	}
	s.strikes = 0
	if wait > 0 {
		s.srv.cfg.Metrics.delayed.WithLabelValues(s.srv.cfg.Name).Inc()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.srv.stopping:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Server shutting down"}
		}
	}
	return nil
}

func (s *session) bye(text string) {
	s.byeOnce.Do(func() { s.conn.bye(text) })
}

// tryBye says goodbye unless a command is running (Shutdown).
// It runs on a goroutine other than the connection's, so it must not
// trust inRun: a command may have taken the writer and not yet counted
// itself busy. Holding the writer proves no command runs.
func (s *session) tryBye(text string) bool {
	if s.busy.Load() > 0 || !s.conn.wmu.TryLock() {
		return false
	}
	defer s.conn.wmu.Unlock()
	if s.busy.Load() > 0 || s.conn.inRun.Load() {
		return false
	}
	s.byeOnce.Do(func() { s.conn.byeLocked(text) })
	return true
}

func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// Close ends the session.
func (s *session) Close() error {
	s.idling.Lock()
	defer s.idling.Unlock()
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	s.stopNotify()
	s.logout()
	s.releaseIP()
	s.srv.forget(s)
	return nil
}

func (s *session) logout() {
	if s.acct != nil && !s.released {
		s.srv.releaseAccountSlot(s.acct.ID)
		s.released = true
	}
}

// Login authenticates a subscriber (RFC 9051 §6.2.3; only under TLS,
// which go-imap enforces with LOGINDISABLED before STARTTLS).
func (s *session) Login(username, password string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	id, delay, err := s.srv.cfg.Policy.Authenticate(ctx, "imap", username, password, s.ip)
	if err != nil {
		s.srv.cfg.Metrics.logins.WithLabelValues(s.srv.cfg.Name, "failed").Inc()
		s.log.Info("login failed", "user", policy.LoginOf(err), "err", err) // the name as typed may be a password
		if delay > 0 {
			time.Sleep(delay)
		}
		return loginError(err, s.log)
	}
	maxSessions := s.srv.cfg.ConnectionsPerAccount
	if lim, err := s.srv.cfg.Policy.LimitsOf(id.Account); err == nil {
		maxSessions = int(lim.ConnectionsPerAccount)
		if maxSessions == 0 {
			maxSessions = 1 << 30 // 0 = unlimited, as every class limit
		}
	}
	if !s.srv.claimAccountSlot(id.Account.ID, maxSessions) {
		s.srv.cfg.Metrics.logins.WithLabelValues(s.srv.cfg.Name, "too many sessions").Inc()
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("Too many sessions for %s (at most %d)", id.Account.Address(), maxSessions)}
	}
	s.acct, s.app = id.Account, id.AppPassword
	s.released = false
	s.log = s.log.With("account", s.acct.Address())
	s.srv.cfg.Metrics.logins.WithLabelValues(s.srv.cfg.Name, "ok").Inc()
	s.log.Info("logged in")
	if len(s.clientID) > 0 {
		s.noteClientID() // sent before the login: recorded with it
	}
	return nil
}

// loginError says why a login was refused: bad credentials, or (to the
// holder of the password only) a blocked or deleted account.
func loginError(err error, log *slog.Logger) error {
	switch {
	case errors.Is(err, accounts.ErrBlocked), errors.Is(err, policy.ErrServiceDenied):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeContactAdmin, Text: policy.ReasonOf(err)}
	case errors.Is(err, accounts.ErrPendingDeletion), errors.Is(err, accounts.ErrPurged):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeExpired, Text: policy.ReasonOf(err)}
	case errors.Is(err, policy.ErrAuthFailed):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Authentication failed"}
	}
	return noFor(err, log)
}

// Unauthenticate returns to the not-authenticated state (RFC 8437).
func (s *session) Unauthenticate() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	s.stopNotify()
	s.logout()
	s.acct, s.app = nil, nil
	return nil
}

// Namespace has one personal namespace with "/" as delimiter.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	done, err := s.enter("NAMESPACE")
	defer done()
	if err != nil {
		return nil, err
	}
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}}, nil
}

// appendLimit is the account's message size limit, reported by STATUS
// (APPENDLIMIT); the capability is advertised without a value.
func (s *session) appendLimit() uint32 {
	if s.acct != nil {
		if lim, err := s.srv.cfg.Policy.LimitsOf(s.acct); err == nil && lim.MaxMessageSize > 0 {
			return uint32(min(lim.MaxMessageSize, 1<<32-1))
		}
	}
	return uint32(min(s.srv.cfg.Policy.AdvertisedSize(), 1<<32-1))
}
