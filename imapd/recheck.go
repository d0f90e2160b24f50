package imapd

import (
	"errors"

	"abox/accounts"
	"abox/policy"
)

// EndInvalidSessions ends, at once, the sessions of an account that may
// no longer go on: blocked, deleted, its password changed, or its class
// no longer including IMAP (user agreement 2.7-2.8, 2.12.1). The admin
// operations that change an account call it (through the control
// socket, in the serving process); a session running a command is left
// to that command's end, where every command rechecks the account
// anyway (session.enter). It returns how many sessions it ended.
func (s *Server) EndInvalidSessions(acctID uint64) int {
	s.mu.Lock()
	open := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()
	ended := 0
	for _, sess := range open {
		if sess.endIfInvalid(acctID) {
			ended++
		}
	}
	return ended
}

// endIfInvalid says goodbye to the session if it is logged in to acctID
// and Recheck refuses it. Holding the writer with no command running
// (as tryBye does) makes s.acct stable: only commands change it.
func (s *session) endIfInvalid(acctID uint64) bool {
	if !s.conn.wmu.TryLock() {
		return false
	}
	defer s.conn.wmu.Unlock()
	if s.conn.inRun.Load() || s.acct == nil || s.acct.ID != acctID {
		return false
	}
	_, err := s.srv.cfg.Policy.Recheck(&policy.Identity{Account: s.acct, AppPassword: s.app}, accounts.ServiceIMAP)
	var refusal *policy.Refusal
	if !errors.As(err, &refusal) {
		// Allowed, or the account could not be read (the storage is out
		// of reach): the session's next command checks again.
		return false
	}
	s.log.Info("session ends: " + policy.ReasonOf(err))
	s.byeOnce.Do(func() { s.conn.byeLocked("Session ended: " + policy.ReasonOf(err)) })
	return true
}
