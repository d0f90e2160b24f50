package policy

import (
	"context"
	"strings"

	"abox/accounts"
	"abox/store"
	"abox/store/msginfo"
)

// AppendMessages stores the messages of one IMAP MULTIAPPEND (RFC 3502)
// in one mailbox, all or none: each within the account's message size
// limit, their sum within its quotas (checked in the store transaction
// against the running total). A client cannot make a letter official by
// APPENDing it, so $Official is dropped from the flags.
func (e *Engine) AppendMessages(ctx context.Context, a *accounts.Account, mailbox string, msgs []store.AppendMessage) ([]store.Delivered, error) {
	lim, err := e.LimitsOf(a)
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		m := &msgs[i]
		if lim.MaxMessageSize > 0 && int64(len(m.Body)) > lim.MaxMessageSize {
			return nil, refuse(ErrTooBig, "messages are limited to %d bytes", lim.MaxMessageSize)
		}
		var flags []string
		for _, f := range m.Flags {
			if !strings.EqualFold(f, store.KeywordOfficial) {
				flags = append(flags, f)
			}
		}
		m.Flags = flags
		if m.Structure == nil {
			m.Structure = msginfo.Compute(m.Body)
		}
		if m.InternalDate.IsZero() {
			m.InternalDate = e.Now()
		}
	}
	res, err := e.store.AppendMessages(ctx, a.ID, mailbox, msgs, lim.StorageBytes, lim.Messages)
	if err != nil {
		return nil, ownMailErr(err)
	}
	return res, nil
}

// AppendRoom is the storage an account has left (-1: unlimited), so a
// MULTIAPPEND whose literals already pass it is refused before the next
// one is read.
func (e *Engine) AppendRoom(a *accounts.Account) (int64, error) {
	lim, err := e.LimitsOf(a)
	if err != nil || lim.StorageBytes <= 0 {
		return -1, err
	}
	u, err := e.store.Usage(a.ID)
	if err != nil {
		return 0, err
	}
	return max(lim.StorageBytes-u.Bytes, 0), nil
}
