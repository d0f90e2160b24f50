package imapd

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/store"
)

// statusOf fills the STATUS items asked for from the mailbox's counters
// (no message is read, except for DELETED).
func statusOf(mb *store.Mailbox, o *imap.StatusOptions, s *session) *imap.StatusData {
	d := &imap.StatusData{Mailbox: mb.Name}
	if o.NumMessages {
		n := mb.Messages
		d.NumMessages = &n
	}
	if o.NumRecent {
		n := s.statusRecent(mb)
		d.NumRecent = &n
	}
	if o.UIDNext {
		d.UIDNext = imap.UID(mb.UIDNext)
	}
	if o.UIDValidity {
		d.UIDValidity = mb.UIDValidity
	}
	if o.NumUnseen {
		n := mb.Unseen
		d.NumUnseen = &n
	}
	if o.HighestModSeq {
		d.HighestModSeq = mb.HighestModSeq
	}
	if o.Size {
		n := mb.Size
		d.Size = &n
	}
	if o.AppendLimit {
		n := s.appendLimit()
		d.AppendLimit = &n
	}
	if o.NumDeleted || o.DeletedStorage {
		var n uint32
		var size int64
		if msgs, err := s.srv.cfg.Store.Messages(s.acct.ID, mb.ID, 0, 0); err == nil {
			for _, m := range msgs {
				if hasFlag(m.Flags, store.FlagDeleted) {
					n++
					size += m.Size
				}
			}
		}
		if o.NumDeleted {
			d.NumDeleted = &n
		}
		if o.DeletedStorage {
			// RFC 9208 §4.3: what EXPUNGE would free, in KiB as STORAGE.
			kib := (size + 1023) / 1024
			d.DeletedStorage = &kib
		}
	}
	return d
}

// Status answers STATUS (RFC 9051 §6.3.11).
func (s *session) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	done, err := s.enter("STATUS")
	defer done()
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, mailbox)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	return statusOf(&mb, options, s), nil
}

// Create makes a mailbox (RFC 9051 §6.3.4) within the class's mailbox
// limits (NO [LIMIT] past them).
func (s *session) Create(mailbox string, options *imap.CreateOptions) error {
	done, err := s.enter("CREATE")
	defer done()
	if err != nil {
		return err
	}
	lim, err := s.srv.cfg.Policy.LimitsOf(s.acct)
	if err != nil {
		return noFor(err, s.log)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err = s.srv.cfg.Store.CreateMailbox(ctx, s.acct.ID, mailbox, "", lim.Mailboxes())
	return noFor(err, s.log)
}

// Delete removes a mailbox (RFC 9051 §6.3.5).
func (s *session) Delete(mailbox string) error {
	done, err := s.enter("DELETE")
	defer done()
	if err != nil {
		return err
	}
	// A deleted parent's children stay; LIST then shows the parent as
	// \Noselect (RFC 9051 §6.3.5).
	ctx, cancel := s.ctx()
	defer cancel()
	return noFor(s.srv.cfg.Store.DeleteMailbox(ctx, s.acct.ID, mailbox), s.log)
}

// Rename renames a mailbox (RFC 9051 §6.3.6).
func (s *session) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	done, err := s.enter("RENAME")
	defer done()
	if err != nil {
		return err
	}
	lim, err := s.srv.cfg.Policy.LimitsOf(s.acct)
	if err != nil {
		return noFor(err, s.log)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	return noFor(s.srv.cfg.Store.RenameMailbox(ctx, s.acct.ID, mailbox, newName, lim.Mailboxes()), s.log)
}

// Subscribe and Unsubscribe (RFC 9051 §6.3.7, §6.3.8).
func (s *session) Subscribe(mailbox string) error { return s.subscribe(mailbox, true) }

func (s *session) Unsubscribe(mailbox string) error { return s.subscribe(mailbox, false) }

func (s *session) subscribe(mailbox string, on bool) error {
	done, err := s.enter("SUBSCRIBE")
	defer done()
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if on {
		err = s.srv.cfg.Store.SetSubscribed(ctx, s.acct.ID, mailbox, true)
	} else {
		// A name stays subscribed after its mailbox is deleted (store/
		// subscriptions.go); UNSUBSCRIBE takes it off either way.
		err = s.srv.cfg.Store.Unsubscribe(ctx, s.acct.ID, mailbox)
	}
	if !on && errors.Is(err, store.ErrNoMailbox) {
		return nil // unsubscribing a gone mailbox is fine
	}
	return noFor(err, s.log)
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}
