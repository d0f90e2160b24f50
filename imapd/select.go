package imapd

import (
	"github.com/emersion/go-imap/v2"

	"abox/store"
)

// mailboxFlags are the flags every mailbox supports; $Official and $Junk
// are the keywords abox itself sets (SPEC "IMAP"). A SELECT announces
// them and the keywords the mailbox holds (keywords.go).
var mailboxFlags = []imap.Flag{
	imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft,
	"$Official", "$Junk", "$NotJunk", "$Forwarded", "$MDNSent",
}

// Select opens a mailbox (RFC 9051 §6.3.2, §6.3.3). The view is built
// after subscribing to the feed, so no change committed in between is
// missed.
func (s *session) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	done, err := s.enter("SELECT")
	defer done()
	if err != nil {
		return nil, err
	}
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	st := s.srv.cfg.Store
	sub := st.Subscribe(s.acct.ID, s.wake)
	mb, err := st.MailboxByName(s.acct.ID, mailbox)
	if err != nil {
		sub.Close()
		return nil, noFor(err, s.log)
	}
	var uids []uint32
	var changed []store.Message
	if s.resyncFrom > 0 {
		uids, changed, err = st.UIDsChangedSince(s.acct.ID, mb.ID, s.resyncFrom)
	} else {
		uids, err = st.UIDs(s.acct.ID, mb.ID)
	}
	if err != nil {
		sub.Close()
		return nil, noFor(err, s.log)
	}
	kws, err := st.Keywords(s.acct.ID, mb.ID)
	if err != nil {
		sub.Close()
		return nil, noFor(err, s.log)
	}
	v := &selected{view: newView(uids, mb.HighestModSeq), mbox: mb, readOnly: options.ReadOnly, sub: sub}
	v.qresync, v.changed = s.qresync, changed
	v.kw = newKeywordList(flagStrings(mailboxFlags), kws)
	data := &imap.SelectData{
		Flags:          imapFlags(v.kw.flags),
		PermanentFlags: imapFlags(v.kw.permanent()),
		NumMessages:    uint32(len(uids)),
		UIDNext:        imap.UID(mb.UIDNext),
		UIDValidity:    mb.UIDValidity,
		HighestModSeq:  mb.HighestModSeq,
	}
	if options.ReadOnly {
		data.PermanentFlags = nil
	}
	if mb.Unseen > 0 {
		if uid, err := st.FirstUnseen(s.acct.ID, mb.ID); err == nil && uid != 0 {
			data.FirstUnseenSeqNum = v.seqOf(uid)
		}
	}
	s.sel = v
	if err := s.claimRecentAt(); err != nil {
		// They stay unclaimed: the next SELECT shows them recent.
		s.log.Warn("claiming \\Recent messages", "mailbox", mb.Name, "err", err)
	}
	return data, nil
}

// Unselect leaves the selected state (CLOSE expunges first, in go-imap).
func (s *session) Unselect() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}
