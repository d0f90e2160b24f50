package imapd

import (
	"runtime/debug"
	"slices"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store"
)

// selected is a session's selected mailbox: its view (what the client
// knows, view.go) and the feed subscription that keeps it current.
type selected struct {
	*view
	mbox     store.Mailbox
	readOnly bool
	sub      *store.Subscription
	saved    []uint32 // SEARCH RETURN (SAVE) result, as UIDs (RFC 5182)
	// contexts are the searches kept updated (RETURN (UPDATE), RFC 5267
	// §4.3; contexts.go), in the order they were made.
	contexts []*updateContext
	deleted  bool // the mailbox was deleted by another session
	// changed holds what SELECT (QRESYNC ...) read changed since the
	// client's modseq, until qresyncSelect tells it.
	changed []store.Message
	// recent holds the UIDs \Recent in this session (recent.go).
	recent recentSet
	// lost says the feed dropped changes and the view has not been
	// brought back in line with the store yet (resync): until it is, no
	// change is applied, so nothing is numbered on a partial picture.
	lost bool
}

func (v *selected) close() {
	if v.sub != nil {
		v.sub.Close()
		v.sub = nil
	}
}

// drain applies the feed's changes to the view; after a loss it first
// resyncs the view with the store.
func (s *session) drain() {
	v := s.sel
	if v.sub == nil {
		return
	}
	changes, lost := v.sub.Take()
	if lost {
		v.lost = true
	}
	if v.lost {
		// Changes after the loss are all in the feed from here on, and
		// those before it are in the snapshot read now.
		if err := s.resync(); err != nil {
			s.log.Warn("reading the mailbox after the change feed overflowed; retrying at the next command", "err", err)
			return
		}
		v.lost = false
		changes = nil // taken with the loss: none
	}
	for _, c := range changes {
		if c.Mailbox != v.mbox.ID {
			continue
		}
		if c.Kind == store.MailboxDeleted {
			v.deleted = true
			continue
		}
		v.apply(c)
	}
}

// resync reads the selected mailbox's messages and lines the view up
// with them (view.resync).
func (s *session) resync() error {
	v := s.sel
	s.srv.cfg.Metrics.resyncs.WithLabelValues(s.srv.cfg.Name).Inc()
	// A deletion may be among the lost changes: the mailbox's name is
	// gone at once, its messages in batches after.
	mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(mbs, func(mb store.Mailbox) bool { return mb.ID == v.mbox.ID }) {
		v.deleted = true
		return nil
	}
	msgs, err := s.srv.cfg.Store.Messages(s.acct.ID, v.mbox.ID, 0, 0)
	if err != nil {
		return err
	}
	st := make([]stored, len(msgs))
	for i, m := range msgs {
		st[i] = stored{uid: m.UID, flags: m.Flags, modseq: m.ModSeq}
		v.kw.learn(m.Flags) // changes lost may have brought keywords
	}
	if n := v.resync(st); n > 0 {
		s.log.Error("messages the session can never show (changes were lost unnoticed)", "mailbox", v.mbox.Name, "messages", n)
	}
	return nil
}

// flush tells the client about pending changes (RFC 9051 §7.5): FETCH
// FLAGS, EXPUNGE when allowed, EXISTS. Expunges wait while the command in
// progress forbids them (FETCH, STORE, SEARCH); the messages keep their
// numbers until then.
func (s *session) flush(w *UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	s.drain()
	if s.sel.deleted {
		s.bye("The selected mailbox was deleted")
		return nil
	}
	s.claimNew()
	added := uint32(len(s.sel.added))
	ups := s.sel.updates(allowExpunge)
	// RFC 5267 §4.3.4: the REMOVEFROM of expunged messages before their
	// EXPUNGEs, by the numbers they have until then.
	var goneSeqs, goneUIDs []uint32
	for _, u := range ups {
		switch u.kind {
		case updateExpunge:
			goneSeqs, goneUIDs = append(goneSeqs, u.seq), append(goneUIDs, u.uid)
		case updateVanished:
			goneSeqs, goneUIDs = append(goneSeqs, u.seqs...), append(goneUIDs, u.uids...)
		}
	}
	for _, u := range ups {
		var err error
		if goneUIDs != nil && (u.kind == updateExpunge || u.kind == updateVanished) {
			err = s.contextsExpunged(w, goneSeqs, goneUIDs)
			goneUIDs = nil
			if err != nil {
				return err
			}
		}
		switch u.kind {
		case updateFlags:
			if s.condstore {
				err = w.writeFlagsModSeq(u.seq, u.uid, s.withRecent(u.uid, u.flags), u.modseq)
				break
			}
			err = w.WriteMessageFlags(u.seq, imap.UID(u.uid), imapFlags(s.withRecent(u.uid, u.flags)))
		case updateKeywords:
			err = w.write(func(w *wire.Writer) { s.sel.kw.write(w, s.sel.readOnly) })
		case updateVanished:
			err = w.WriteVanished(u.uids)
		case updateExpunge:
			err = w.WriteExpunge(u.seq)
		case updateExists:
			if err = w.WriteNumMessages(u.n); err == nil && !s.conn.rev2 {
				err = w.writeRecent(s.recentCount())
			}
			if err == nil && s.notify != nil && s.notify.fetch != "" && added > 0 && added <= u.n {
				s.notifyFetchNew(w, u.n-added+1, u.n) // RFC 5465 §5.2
			}
		}
		if err != nil {
			return err
		}
	}
	// ADDTO and REMOVEFROM of changed and new messages once the
	// numbering is final (RFC 5267 §4.3.3: after the EXISTS).
	return s.refreshContexts(w)
}

// Idle sends changes as they are committed (RFC 2177) until the client
// ends the IDLE. No goroutine of abox waits for them: the feed wakes the
// session (wake), and a short-lived goroutine (push) writes what arrived.
// That is half the goroutines of an idle connection, and the larger part
// of its memory after go-imap's buffers.
//
// wake is the feed's signal that changes arrived for the selected
// mailbox's account. It runs on the store's publishing goroutine, so it
// only starts a pusher, and only while the session idles.
func (s *session) wake() {
	if s.armed.Load() && s.pushing.CompareAndSwap(false, true) {
		go s.push()
	}
}

// push writes the pending changes of an idling session, and again while
// more arrive; at most one runs per session (pushing).
func (s *session) push() {
	for {
		if !s.pushOnce() || !s.pushing.CompareAndSwap(false, true) {
			return
		}
	}
}

// pushOnce writes what is pending, clears pushing and says whether more
// arrived meanwhile. A panic stops pushing for this IDLE (the updates
// wait for the next command) and leaves the session usable.
func (s *session) pushOnce() (more bool) {
	s.idling.Lock()
	defer s.idling.Unlock()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic sending IDLE updates", "panic", v, "stack", string(debug.Stack()))
			s.idleW = nil
			s.armed.Store(false)
			s.pushing.Store(false)
			more = false
		}
	}()
	if s.idleW == nil {
		s.pushing.Store(false)
		return false
	}
	// Between commands (NOTIFY) the selected mailbox's changes go out
	// only under SELECTED (expunges) or SELECTED-DELAYED (the rest).
	updates, expunges := true, true
	if s.between {
		updates, expunges = s.notify.pushesSelected()
	}
	var err error
	if updates {
		err = s.flush(s.idleW, expunges)
	}
	if err == nil {
		err = s.notifyFlush(s.idleW)
	}
	if err != nil {
		// The connection failed; its reader will see it too.
		s.log.Debug("IDLE update not sent", "err", err)
		s.idleW = nil
		s.armed.Store(false)
	}
	// Clear the flag before looking again: a change that arrives after
	// the look starts a pusher itself; one that arrived before it is
	// seen here.
	s.pushing.Store(false)
	return s.idleW != nil && s.pushPending(s.between)
}

// stopPush ends pushing; it returns once no pusher is writing.
func (s *session) stopPush() {
	s.idling.Lock()
	s.armed.Store(false)
	s.idleW = nil
	s.between = false
	s.idling.Unlock()
}

func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}

func storeFlags(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		out = append(out, string(f))
	}
	return out
}
