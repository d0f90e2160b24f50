package imapd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/store"
)

// resolveChecked is resolveSet for commands that name messages: a
// sequence number past the last message is a client error (RFC 9051
// §9, seq-number), answered BAD.
func (s *session) resolveChecked(set imap.NumSet) ([]uint32, []uint32, error) {
	if seqs, ok := set.(imap.SeqSet); ok {
		n := uint32(len(s.sel.uids))
		for _, r := range seqs {
			if r.Start > n || r.Stop > n {
				return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
					Text: fmt.Sprintf("No such message: the mailbox has %d", n)}
			}
		}
	}
	uids, seqs := s.resolveSet(set)
	return uids, seqs, nil
}

// validFlags refuses system flags that do not exist (a backslash is
// reserved for them, RFC 9051 §2.3.2).
func validFlags(flags []imap.Flag) error {
	for _, f := range flags {
		if strings.HasPrefix(string(f), `\`) {
			switch strings.ToLower(string(f)) {
			case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
			default:
				return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown system flag " + string(f)}
			}
		}
	}
	return nil
}

// resolveSet is selected.resolve with SEARCHRES's "$" (RFC 5182): the
// saved result, as far as those messages still exist in the view.
func (s *session) resolveSet(set imap.NumSet) ([]uint32, []uint32) {
	v := s.sel
	if imap.IsSearchRes(set) {
		var uids, seqs []uint32
		for _, uid := range v.saved {
			if seq := v.seqOf(uid); seq != 0 {
				uids, seqs = append(uids, uid), append(seqs, seq)
			}
		}
		return uids, seqs
	}
	return v.resolve(set)
}

// Store answers STORE and UID STORE (RFC 9051 §6.4.6).
// With UNCHANGEDSINCE (RFC 7162 §3.1.3) the messages changed since are
// left alone and named in OK [MODIFIED ...]; the test and the change are
// one store transaction.
func (s *session) Store(w *FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options storeOptions) error {
	done, err := s.enter("STORE")
	defer done()
	if err != nil {
		return err
	}
	if s.sel.readOnly {
		return readOnlyErr()
	}
	if err := validFlags(flags.Flags); err != nil {
		return err
	}
	uids, seqs, err := s.resolveChecked(numSet)
	if err != nil || len(uids) == 0 {
		return err
	}
	op := store.FlagsReplace
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var ups []store.FlagUpdate
	var modified []uint32
	if options.conditional {
		ups, modified, err = s.srv.cfg.Store.SetFlagsUnchangedSince(ctx, s.acct.ID, s.sel.mbox.ID, uids, op, storeFlags(flags.Flags), options.unchangedSince)
	} else {
		ups, err = s.srv.cfg.Store.SetFlags(ctx, s.acct.ID, s.sel.mbox.ID, uids, op, storeFlags(flags.Flags))
	}
	if err != nil {
		return noFor(err, s.log)
	}
	seqOf := make(map[uint32]uint32, len(uids))
	for i, uid := range uids {
		seqOf[uid] = seqs[i]
	}
	_, isUID := numSet.(imap.UIDSet)
	for _, u := range ups {
		if flags.Silent && u.Changed {
			s.sel.expectEcho(u.UID, u.ModSeq)
		}
	}
	// The feed holds every change committed up to these (published
	// before SetFlags returned; on a distributed store once synced):
	// apply them, so the view knows which queued flag changes the
	// answer below makes old news, and which are this STORE's echoes.
	s.syncFeed()
	s.drain()
	s.sel.forgetEchoes()
	for _, u := range ups {
		if !flags.Silent {
			s.sel.answered(u.UID, u.ModSeq)
		}
		if u.Changed {
			if hasFlag(u.Flags, store.FlagSeen) && hasFlag(u.Flags, store.KeywordOfficial) && addsSeen(flags) {
				// \Seen is already committed; a failed record is logged
				// and the next body FETCH records the read instead.
				_ = s.firstRead(u.Blob, store.RetrievedSeenFlag)
			}
		}
		if flags.Silent && !(s.condstore && u.Changed) {
			continue
		}
		if !flags.Silent {
			s.announceKeywords(w.w, u.Flags)
		}
		// RFC 7162 §3.1.3: with CONDSTORE on, even .SILENT tells the
		// new MODSEQ of each message changed.
		r := w.CreateMessage(seqOf[u.UID])
		if isUID || s.condstore {
			r.WriteUID(imap.UID(u.UID))
		}
		if !flags.Silent {
			r.WriteFlags(imapFlags(s.withRecent(u.UID, u.Flags)))
		}
		if s.condstore {
			r.WriteModSeq(u.ModSeq)
		}
		if err := r.Close(); err != nil {
			return err
		}
	}
	if len(modified) > 0 {
		if !isUID {
			for i, uid := range modified {
				modified[i] = seqOf[uid]
			}
		}
		return modifiedError(modified, isUID)
	}
	return nil
}

// addsSeen says whether a STORE sets \Seen (+FLAGS or FLAGS with it).
func addsSeen(f *imap.StoreFlags) bool {
	return f.Op != imap.StoreFlagsDel && hasFlag(storeFlags(f.Flags), store.FlagSeen)
}

// Copy answers COPY and UID COPY (RFC 9051 §6.4.7) with COPYUID. Over
// quota it answers NO [OVERQUOTA] and copies nothing.
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	done, err := s.enter("COPY")
	defer done()
	if err != nil {
		return nil, err
	}
	uids, _, err := s.resolveChecked(numSet)
	if err != nil {
		return nil, err
	}
	dst, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, dest)
	if err != nil {
		return nil, tryCreate(err, s.log)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.cfg.Policy.Copy(ctx, s.acct, s.sel.mbox.ID, uids, dst.ID)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	return copyData(res), nil
}

func copyData(res store.CopyResult) *imap.CopyData {
	d := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		d.SourceUIDs.AddNum(imap.UID(res.Source[i]))
		d.DestUIDs.AddNum(imap.UID(res.Dest[i]))
	}
	return d
}

// Move answers MOVE and UID MOVE (RFC 6851): COPYUID, then the EXPUNGEs.
// A move within one account never raises usage, so no quota applies.
func (s *session) Move(w *MoveWriter, numSet imap.NumSet, dest string) error {
	done, err := s.enter("MOVE")
	defer done()
	if err != nil {
		return err
	}
	if s.sel.readOnly {
		return readOnlyErr()
	}
	uids, _, err := s.resolveChecked(numSet)
	if err != nil {
		return err
	}
	dst, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, dest)
	if err != nil {
		return tryCreate(err, s.log)
	}
	// dst may be the selected mailbox (RFC 6851 §3.3 does not forbid
	// it; Dovecot allows it): the messages come back with new UIDs, told
	// by EXISTS after the EXPUNGEs.
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.cfg.Policy.Move(ctx, s.acct, s.sel.mbox.ID, uids, dst.ID)
	if err != nil {
		return noFor(err, s.log)
	}
	if len(res.Source) == 0 {
		return nil
	}
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return err
	}
	// RFC 6851 §3.3: the EXPUNGEs of the moved messages (and of any
	// other expunged message the client knows) before the tagged OK.
	s.sel.expunged(res.Source)
	return s.writeGone(w)
}

// goneWriter writes the EXPUNGE or VANISHED responses of a command
// (EXPUNGE, CLOSE, MOVE) and what precedes them.
type goneWriter interface {
	lineWriter
	WriteExpunge(seq uint32) error
	WriteVanished(uids []uint32) error
}

// writeGone tells the client of every expunged message it knows: the
// REMOVEFROM of the update contexts that held them (RFC 5267 §4.3.4),
// then VANISHED for a QRESYNC client, else EXPUNGE, highest number first
// so the others keep theirs.
func (s *session) writeGone(w goneWriter) error {
	seqs, uids := s.sel.takeGone()
	if err := s.contextsExpunged(w, seqs, uids); err != nil {
		return err
	}
	if s.sel.qresync {
		slices.Sort(uids)
		return w.WriteVanished(uids)
	}
	for _, seq := range seqs {
		if err := w.WriteExpunge(seq); err != nil {
			return err
		}
	}
	return nil
}

// Expunge answers EXPUNGE, UID EXPUNGE (RFC 4315) and the expunge of
// CLOSE: messages flagged \Deleted go, and each is reported by sequence
// number, highest first so the others keep theirs.
func (s *session) Expunge(w *ExpungeWriter, uidSet *imap.UIDSet) error {
	done, err := s.enter("EXPUNGE")
	defer done()
	if err != nil {
		return err
	}
	v := s.sel
	if v.readOnly {
		if uidSet == nil {
			return nil // CLOSE of an EXAMINEd mailbox expunges nothing
		}
		return readOnlyErr()
	}
	var only func(uint32) bool
	if uidSet != nil {
		only = func(uid uint32) bool { return uidSet.Contains(imap.UID(uid)) }
	}
	ctx, cancel := s.ctx()
	defer cancel()
	removed, err := s.srv.cfg.Store.ExpungeDeleted(ctx, s.acct.ID, v.mbox.ID, only)
	if err != nil {
		return noFor(err, s.log)
	}
	// These and any other expunged messages the client knows go now,
	// highest number first.
	v.expunged(removed)
	return s.writeGone(w)
}
