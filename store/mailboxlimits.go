package store

import (
	"fmt"
	"strings"
)

// MailboxLimits bound an account's mailboxes; 0 means unlimited. The
// caller takes them from the account's class (policy.Limits).
type MailboxLimits struct {
	Count     int64 // mailboxes in the account
	Depth     int64 // levels of a name: "a/b/c" has 3
	NameBytes int64 // bytes of a whole name
}

// checkName checks a name a mailbox is created or renamed to: its
// length and depth (ErrMailboxLimit), and that no level is empty
// (ErrInvalidMailbox: "a//b" and "/a" name nothing a client could walk
// to).
func (l MailboxLimits) checkName(name string) error {
	if l.NameBytes > 0 && int64(len(name)) > l.NameBytes {
		return fmt.Errorf("a mailbox name of %d bytes is longer than the %d allowed: %w", len(name), l.NameBytes, ErrMailboxLimit)
	}
	depth := int64(strings.Count(name, MailboxDelim) + 1)
	if l.Depth > 0 && depth > l.Depth {
		return fmt.Errorf("a mailbox name of %d levels is deeper than the %d allowed: %w", depth, l.Depth, ErrMailboxLimit)
	}
	if !strings.EqualFold(name, "INBOX") {
		for _, part := range strings.Split(name, MailboxDelim) {
			if part == "" {
				return fmt.Errorf("%q has an empty level: %w", name, ErrInvalidMailbox)
			}
		}
	}
	return nil
}

// checkCount says whether the account may have n more mailboxes.
func (l MailboxLimits) checkCount(t *txn, acct uint64, n int) error {
	if l.Count <= 0 {
		return nil
	}
	have := int64(0)
	if err := forEachMailboxID(t.tx, acct, func(uint32) error { have++; return nil }); err != nil {
		return err
	}
	if have+int64(n) > l.Count {
		return fmt.Errorf("the account has %d mailboxes and may have %d; this would make %d more: %w", have, l.Count, n, ErrMailboxLimit)
	}
	return nil
}
