package imapd

import (
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"abox/store"
)

// specialUse maps the stored attribute to go-imap's.
var specialUse = map[string]imap.MailboxAttr{
	`\Sent`: imap.MailboxAttrSent, `\Drafts`: imap.MailboxAttrDrafts, `\Trash`: imap.MailboxAttrTrash,
	`\Junk`: imap.MailboxAttrJunk, `\Archive`: imap.MailboxAttrArchive, `\All`: imap.MailboxAttrAll,
	`\Flagged`: imap.MailboxAttrFlagged,
}

// List answers LIST and LSUB (RFC 9051 §6.3.9, RFC 5258, RFC 5819,
// RFC 6154). Special-use attributes are always given, on plain LIST too.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	done, err := s.enter("LIST")
	defer done()
	if err != nil {
		return err
	}
	if len(patterns) == 0 || len(patterns) == 1 && patterns[0] == "" {
		// RFC 9051 §6.3.9: an empty pattern asks for the delimiter
		// (go-imap passes it as no pattern at all).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/', Mailbox: ""})
	}
	mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
	if err != nil {
		return noFor(err, s.log)
	}
	slices.SortFunc(mbs, func(a, b store.Mailbox) int {
		switch {
		case a.Name == "INBOX":
			return -1
		case b.Name == "INBOX":
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	names := map[string]bool{}
	for _, mb := range mbs {
		names[mb.Name] = true
	}
	// Parents that no longer exist (deleted while they had children) are
	// listed as \Noselect so hierarchy browsing still finds the children.
	var virtual []store.Mailbox
	for _, mb := range mbs {
		parts := strings.Split(mb.Name, "/")
		for i := 1; i < len(parts); i++ {
			p := strings.Join(parts[:i], "/")
			if !names[p] {
				names[p] = true
				virtual = append(virtual, store.Mailbox{Name: p, ID: 0})
			}
		}
	}
	mbs = append(mbs, virtual...)
	slices.SortStableFunc(mbs, func(a, b store.Mailbox) int {
		switch {
		case a.Name == "INBOX":
			return -1
		case b.Name == "INBOX":
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, mb := range mbs {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(mb.Name, '/', ref, p) || mb.Name == "INBOX" && ref == "" && strings.EqualFold(p, "INBOX") {
				match = true
				break
			}
		}
		if !match || options.SelectSubscribed && !mb.Subscribed {
			continue
		}
		attr, isSpecial := specialUse[mb.SpecialUse]
		if options.SelectSpecialUse && !isSpecial {
			continue
		}
		data := &imap.ListData{Mailbox: mb.Name, Delim: '/'}
		if mb.ID == 0 {
			// A \Noselect placeholder: no status, no subscription.
			if options.SelectSubscribed || options.SelectSpecialUse {
				continue
			}
			data.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren}
			if err := w.WriteList(data); err != nil {
				return err
			}
			continue
		}
		if isSpecial {
			data.Attrs = append(data.Attrs, attr)
		}
		if hasChild(mb.Name, mbs) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if mb.Subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil {
			data.Status = statusOf(&mb, options.ReturnStatus, s)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func hasChild(name string, mbs []store.Mailbox) bool {
	prefix := name + "/"
	for _, mb := range mbs {
		if strings.HasPrefix(mb.Name, prefix) {
			return true
		}
	}
	return false
}

// statusOf fills the STATUS items asked for from the mailbox's counters
// (no message is read, except for DELETED).
func statusOf(mb *store.Mailbox, o *imap.StatusOptions, s *session) *imap.StatusData {
	d := &imap.StatusData{Mailbox: mb.Name}
	if o.NumMessages {
		n := mb.Messages
		d.NumMessages = &n
	}
	if o.NumRecent {
		var zero uint32
		d.NumRecent = &zero
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
	if o.Size {
		n := mb.Size
		d.Size = &n
	}
	if o.AppendLimit {
		n := s.appendLimit()
		d.AppendLimit = &n
	}
	if o.NumDeleted {
		var n uint32
		if msgs, err := s.srv.cfg.Store.Messages(s.acct.ID, mb.ID, 0, 0); err == nil {
			for _, m := range msgs {
				if hasFlag(m.Flags, store.FlagDeleted) {
					n++
				}
			}
		}
		d.NumDeleted = &n
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

// Create makes a mailbox (RFC 9051 §6.3.4).
func (s *session) Create(mailbox string, options *imap.CreateOptions) error {
	done, err := s.enter("CREATE")
	defer done()
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err = s.srv.cfg.Store.CreateMailbox(ctx, s.acct.ID, mailbox, "")
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
	ctx, cancel := s.ctx()
	defer cancel()
	return noFor(s.srv.cfg.Store.RenameMailbox(ctx, s.acct.ID, mailbox, newName), s.log)
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
	err = s.srv.cfg.Store.SetSubscribed(ctx, s.acct.ID, mailbox, on)
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
