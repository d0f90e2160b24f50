package imapd

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// within resolves WITHIN's OLDER n and YOUNGER n (RFC 5032 §2: an
// INTERNALDATE at least, or at most, n seconds before now) into the UIDs
// of the selected mailbox that match now, as the command runs. go-imap's
// SearchCriteria has no field for them; one read of the message records
// (no bodies) answers both.
func (s *session) within(older bool, n int64) (imap.UIDSet, error) {
	cut := s.srv.cfg.Policy.Now().Add(-time.Duration(n) * time.Second)
	var set imap.UIDSet
	msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, s.sel.mbox.ID, s.sel.uids)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if older && !m.InternalDate.After(cut) || !older && !m.InternalDate.Before(cut) {
			set.AddNum(imap.UID(m.UID))
		}
	}
	return set, nil
}
