package imapd

import (
	"slices"

	"abox/imapd/wire"
	"abox/store"
)

// \Recent for IMAP4rev1 clients (RFC 3501 §2.3.2, §6.3.1, §7.3.2). A
// message is recent in exactly one session: the read-write session that
// had the mailbox selected when it arrived, or else the next read-write
// SELECT of the mailbox (Dovecot's rule). The store hands each message
// out once (store.ClaimRecent); the session keeps the UIDs it claimed.
//
// Choices where the RFCs leave room, as Dovecot makes them: EXAMINE
// claims nothing; it shows as \Recent the messages no session claimed
// yet (RECENT counts them), and leaves them to the next SELECT. An
// IMAP4rev2 session (RFC 9051 dropped \Recent) claims nothing either,
// so a rev1 client of the same account still sees the mail recent;
// after ENABLE IMAP4rev2 a session shows no \Recent and sends no
// RECENT. RECENT goes out with SELECT and after every EXISTS; an
// expunge lowers the count silently (clients derive it, RFC 3501
// §7.3.2).

// recentSet holds the UIDs recent in this session.
type recentSet map[uint32]struct{}

// tracksRecent says whether this session takes part in \Recent.
func (s *session) tracksRecent() bool {
	return s.sel != nil && !s.conn.rev2
}

// claimRecentAt claims the mailbox's unclaimed messages among those
// SELECT numbered, up to the last of them: one delivered meanwhile comes
// through the feed and is claimed when announced (claimNew).
func (s *session) claimRecentAt() error {
	v := s.sel
	if !s.tracksRecent() || len(v.uids) == 0 {
		return nil
	}
	if v.readOnly {
		s.peekRecent(v.uids, v.mbox.RecentUID)
		return nil
	}
	if v.mbox.RecentUID >= v.uids[len(v.uids)-1] {
		// Everything was claimed when SELECT read the mailbox (the
		// number only grows): no write, which is most SELECTs.
		return nil
	}
	return s.claim(v.uids)
}

// claimNew claims the messages about to be announced with EXISTS.
func (s *session) claimNew() {
	v := s.sel
	if !s.tracksRecent() || len(v.added) == 0 {
		return
	}
	var err error
	if v.readOnly {
		var boundary uint32
		if boundary, err = s.srv.cfg.Store.RecentBoundary(s.acct.ID, v.mbox.ID); err == nil {
			s.peekRecent(v.added, boundary)
		}
	} else {
		err = s.claim(v.added)
	}
	if err != nil {
		// They stay unclaimed: the next SELECT shows them recent.
		s.log.Warn("claiming \\Recent messages", "mailbox", v.mbox.Name, "err", err)
	}
}

// claim asks the store for the messages up to uids' last (ascending) and
// notes those of uids it was given.
func (s *session) claim(uids []uint32) error {
	v := s.sel
	ctx, cancel := s.ctx()
	defer cancel()
	from, to, err := s.srv.cfg.Store.ClaimRecent(ctx, s.acct.ID, v.mbox.ID, uids[len(uids)-1])
	if err != nil || from == to {
		return err
	}
	s.markRecent(uids, from, to)
	return nil
}

// peekRecent notes as recent, without claiming, those of uids above the
// mailbox's boundary (read-only sessions).
func (s *session) peekRecent(uids []uint32, boundary uint32) {
	s.markRecent(uids, boundary, ^uint32(0))
}

func (s *session) markRecent(uids []uint32, from, to uint32) {
	v := s.sel
	for _, uid := range uids {
		if uid > from && uid <= to {
			if v.recent == nil {
				v.recent = recentSet{}
			}
			v.recent[uid] = struct{}{}
		}
	}
}

// isRecent says whether the session shows uid as \Recent.
func (s *session) isRecent(uid uint32) bool {
	if s.sel == nil || s.conn.rev2 {
		return false
	}
	_, ok := s.sel.recent[uid]
	return ok
}

// recentCount is the RECENT the session reports: its recent messages the
// client still knows (expunged ones drop out here).
func (s *session) recentCount() uint32 {
	v := s.sel
	n := uint32(0)
	for uid := range v.recent {
		if v.seqOf(uid) != 0 && !v.isGone(uid) {
			n++
		} else if !v.pendingAdd(uid) {
			delete(v.recent, uid)
		}
	}
	return n
}

// pendingAdd says whether uid is added but not announced yet.
func (v *view) pendingAdd(uid uint32) bool {
	_, ok := slices.BinarySearch(v.added, uid)
	return ok
}

// withRecent is a message's flags as this session shows them.
func (s *session) withRecent(uid uint32, flags []string) []string {
	if !s.isRecent(uid) {
		return flags
	}
	return append(flags[:len(flags):len(flags)], `\Recent`)
}

// writeRecent writes "* n RECENT" after an EXISTS.
func (u *UpdateWriter) writeRecent(n uint32) error {
	return u.write(func(w *wire.Writer) { w.Raw("* ").Number(uint64(n)).Raw(" RECENT").CRLF() })
}

// statusRecent is STATUS's RECENT: the messages no session claimed yet,
// plus those this session claimed when it has the mailbox selected. A
// failed read counts none, as the other counters come from the record
// already read.
func (s *session) statusRecent(mb *store.Mailbox) uint32 {
	n, err := s.srv.cfg.Store.UnclaimedRecent(s.acct.ID, mb.ID)
	if err != nil {
		s.log.Warn("counting unclaimed \\Recent messages", "mailbox", mb.Name, "err", err)
		n = 0
	}
	if s.sel != nil && s.sel.mbox.ID == mb.ID && !s.sel.readOnly && !s.conn.rev2 {
		n += s.recentCount()
	}
	return n
}
