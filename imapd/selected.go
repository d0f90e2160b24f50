package imapd

import (
	"runtime/debug"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"abox/store"
)

// selected is a session's view of its selected mailbox: the UIDs the
// client knows, in sequence order, and the committed changes it has not
// been told yet.
type selected struct {
	mbox     store.Mailbox
	readOnly bool
	uids     []uint32 // sequence number n is uids[n-1]
	// announced is how many messages the client has been told exist;
	// uids beyond it were added since and wait for an EXISTS.
	announced int
	sub       *store.Subscription
	pending   []store.Change
	// own are modseqs of flag changes this session made and already
	// answered, so the feed's echo is not sent again.
	own     map[uint64]bool
	saved   []uint32 // SEARCH RETURN (SAVE) result, as UIDs (RFC 5182)
	deleted bool     // the mailbox was deleted by another session
	resync  bool     // the feed overflowed: reload from the store
}

func (v *selected) close() {
	if v.sub != nil {
		v.sub.Close()
		v.sub = nil
	}
}

// seqOf returns the sequence number of uid in the view, or 0.
func (v *selected) seqOf(uid uint32) uint32 {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// drain moves the feed's changes into pending.
func (v *selected) drain() {
	if v.sub == nil {
		return
	}
	changes, lost := v.sub.Take()
	if lost {
		v.resync = true
	}
	for _, c := range changes {
		v.take(c)
	}
}

func (v *selected) take(c store.Change) {
	if c.Mailbox != v.mbox.ID {
		return
	}
	switch c.Kind {
	case store.MessageAdded, store.MessageRemoved, store.FlagsChanged:
		v.pending = append(v.pending, c)
	case store.MailboxDeleted:
		v.deleted = true
	}
}

// noteOwn records a flag change this session made and answered itself.
func (v *selected) noteOwn(modseq uint64) {
	if v.own == nil {
		v.own = map[uint64]bool{}
	}
	v.own[modseq] = true
}

// flush tells the client about pending changes (RFC 9051 §7.4): FETCH
// FLAGS, EXISTS, and, when allowed, EXPUNGE. Expunges wait while the
// command in progress forbids them (FETCH, STORE, SEARCH); the messages
// stay in the view, and so in the numbering, until then.
func (s *session) flush(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v := s.sel
	if v == nil {
		return nil
	}
	v.drain()
	if v.deleted {
		s.bye("The selected mailbox was deleted")
		return nil
	}
	if v.resync && allowExpunge {
		return s.reload(w)
	}
	var keep []store.Change
	for _, c := range v.pending {
		switch c.Kind {
		case store.MessageAdded:
			if n := len(v.uids); n == 0 || c.UID > v.uids[n-1] {
				v.uids = append(v.uids, c.UID)
			}
		case store.MessageRemoved:
			seq := v.seqOf(c.UID)
			if seq == 0 {
				continue
			}
			if !allowExpunge {
				keep = append(keep, c)
				continue
			}
			if int(seq) > v.announced {
				// The client never heard of it: drop it quietly.
				v.uids = slices.Delete(v.uids, int(seq)-1, int(seq))
				continue
			}
			if err := w.WriteExpunge(seq); err != nil {
				return err
			}
			v.uids = slices.Delete(v.uids, int(seq)-1, int(seq))
			v.announced--
		case store.FlagsChanged:
			if v.own[c.ModSeq] {
				delete(v.own, c.ModSeq)
				continue
			}
			seq := v.seqOf(c.UID)
			if seq == 0 || int(seq) > v.announced {
				continue
			}
			if err := w.WriteMessageFlags(seq, imap.UID(c.UID), imapFlags(c.Flags)); err != nil {
				return err
			}
		}
	}
	v.pending = keep
	if len(v.uids) > v.announced {
		v.announced = len(v.uids)
		return w.WriteNumMessages(uint32(v.announced))
	}
	return nil
}

// reload rebuilds the view after the feed overflowed: it subscribes
// again, reads the UIDs, expunges what is gone, announces what is new,
// and sends every message's flags (the changes in between are unknown).
func (s *session) reload(w *imapserver.UpdateWriter) error {
	v := s.sel
	v.close()
	v.sub = s.srv.cfg.Store.Subscribe(s.acct.ID, s.wake)
	v.pending, v.resync, v.own = nil, false, nil
	uids, err := s.srv.cfg.Store.UIDs(s.acct.ID, v.mbox.ID)
	if err != nil {
		return err
	}
	// Expunge from the highest sequence number down so the lower ones
	// keep their meaning.
	for i := len(v.uids) - 1; i >= 0; i-- {
		if _, ok := slices.BinarySearch(uids, v.uids[i]); !ok {
			if i < v.announced {
				if err := w.WriteExpunge(uint32(i + 1)); err != nil {
					return err
				}
				v.announced--
			}
			v.uids = slices.Delete(v.uids, i, i+1)
		}
	}
	v.uids = uids
	if len(v.uids) > v.announced {
		v.announced = len(v.uids)
		if err := w.WriteNumMessages(uint32(v.announced)); err != nil {
			return err
		}
	}
	msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, v.mbox.ID, v.uids)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := w.WriteMessageFlags(v.seqOf(m.UID), imap.UID(m.UID), imapFlags(m.Flags)); err != nil {
			return err
		}
	}
	return nil
}

// Poll is called after each command (RFC 9051 §7: untagged updates).
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.idling.Lock()
	defer s.idling.Unlock()
	return s.flush(w, allowExpunge)
}

// Idle sends changes as they are committed (RFC 2177) until the client
// ends the IDLE. No goroutine of abox waits for them: the feed wakes the
// session (wake), and a short-lived goroutine (push) writes what arrived.
// That is half the goroutines of an idle connection, and the larger part
// of its memory after go-imap's buffers.
//
// go-imap runs Idle in a goroutine of its own while the connection's
// goroutine reads the client's DONE, and answers the IDLE once both are
// done. Nothing may be written after that answer (an EXPUNGE outside a
// command breaks the client's numbering), so pushing must stop before
// go-imap can see DONE. Where go-imap reads through abox's own
// connection (implicit TLS, or no TLS), the connection stops pushing
// before it hands the client's next bytes to go-imap (onRead), and Idle
// returns as soon as go-imap's reader is waiting for those bytes, ending
// go-imap's goroutine too. After STARTTLS go-imap reads through
// crypto/tls, above abox's connection, so there Idle waits for stop and
// stops pushing before it returns.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.idling.Lock()
	if err := s.flush(w, true); err != nil {
		s.idling.Unlock()
		return err
	}
	if s.sel == nil {
		// Nothing to report until a mailbox is selected.
		s.idling.Unlock()
		return nil
	}
	s.idleW = w
	s.armed.Store(true)
	arrived := s.sel.sub.Pending() // while the first flush was writing
	s.idling.Unlock()
	if arrived {
		s.wake()
	}
	if cc, ok := s.conn.NetConn().(*coalescingConn); ok {
		waiting := cc.onRead(s.stopPush)
		select {
		case <-waiting:
			return nil // stopPush runs when the client's bytes arrive
		case <-stop:
			// go-imap read DONE from what it had buffered.
			cc.onRead(nil)
		}
	} else {
		<-stop
	}
	s.stopPush()
	return nil
}

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
	if err := s.flush(s.idleW, true); err != nil {
		// The connection failed; go-imap's reader will see it too.
		s.log.Debug("IDLE update not sent", "err", err)
		s.idleW = nil
		s.armed.Store(false)
	}
	// Clear the flag before looking again: a change that arrives after
	// the look starts a pusher itself; one that arrived before it is
	// seen here.
	s.pushing.Store(false)
	return s.idleW != nil && s.sel != nil && s.sel.sub.Pending()
}

// stopPush ends pushing; it returns once no pusher is writing.
func (s *session) stopPush() {
	s.idling.Lock()
	s.armed.Store(false)
	s.idleW = nil
	s.idling.Unlock()
}

// resolve turns a sequence or UID set into the view's UIDs (ascending)
// with their sequence numbers. "*" is the last message of the view.
func (v *selected) resolve(set imap.NumSet) (uids []uint32, seqs []uint32) {
	n := uint32(len(v.uids))
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			for seq := max(start, 1); seq <= min(stop, n); seq++ {
				seqs = append(seqs, seq)
			}
		}
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		for _, seq := range seqs {
			uids = append(uids, v.uids[seq-1])
		}
	case imap.UIDSet:
		var last uint32
		if n > 0 {
			last = v.uids[n-1]
		}
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = last
			}
			if stop == 0 {
				stop = last
			}
			if start > stop {
				start, stop = stop, start
			}
			i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= start })
			for ; i < len(v.uids) && v.uids[i] <= stop; i++ {
				uids = append(uids, v.uids[i])
				seqs = append(seqs, uint32(i+1))
			}
		}
		if len(set) > 1 {
			order := make([]int, len(uids))
			for i := range order {
				order[i] = i
			}
			sort.Slice(order, func(a, b int) bool { return uids[order[a]] < uids[order[b]] })
			u2, s2 := make([]uint32, 0, len(uids)), make([]uint32, 0, len(uids))
			for i, o := range order {
				if i > 0 && uids[o] == u2[len(u2)-1] {
					continue
				}
				u2, s2 = append(u2, uids[o]), append(s2, seqs[o])
			}
			uids, seqs = u2, s2
		}
	}
	return uids, seqs
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
