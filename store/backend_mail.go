package store

import "strings"

// Flag rules exported for another backend (store/pgstore), so that both
// keep the same flags the same way.

// NormalizeFlags dedupes flags case-insensitively, canonicalises system
// flags and drops \Recent.
func NormalizeFlags(in []string) []string { return normalizeFlags(in) }

// StoredFlags is flags as a message record keeps and returns them:
// normalised, system flags first in their fixed order, then $Official,
// then the keywords in the order given (those over 255 bytes, which a
// record cannot hold, dropped; at most 255 of them).
func StoredFlags(in []string) []string {
	flags := normalizeFlags(in)
	out := make([]string, 0, len(flags))
	for _, s := range systemFlags {
		if hasFlag(flags, s) {
			out = append(out, s)
		}
	}
	official := false
	var kws []string
	for _, f := range flags {
		if _, _, ok := canonicalFlag(f); ok {
			continue
		}
		if strings.EqualFold(f, KeywordOfficial) {
			official = true
		} else if len(f) <= 255 && len(kws) < 255 {
			kws = append(kws, f)
		}
	}
	if official {
		out = append(out, KeywordOfficial)
	}
	return append(out, kws...)
}

// ApplyFlags is a STORE's new flags for a message with cur: op applied,
// $Official kept as it was (no client can set or clear it).
func ApplyFlags(cur []string, op FlagOp, flags []string) []string {
	return keepOfficial(hasFlag(cur, KeywordOfficial), applyFlags(cur, op, flags))
}

// SameFlags reports whether a and b hold the same flags, in any order.
func SameFlags(a, b []string) bool { return sameFlags(a, b) }

// HasFlag reports whether flags holds f (case-insensitively).
func HasFlag(flags []string, f string) bool { return hasFlag(flags, f) }

// MailboxFullUID is the UID no message may take: a mailbox whose
// UIDNEXT reached it answers ErrMailboxFull.
const MailboxFullUID = mboxRecordUID

// CheckMailboxName checks a name a mailbox is created or renamed to
// against the limits (ErrMailboxLimit, ErrInvalidMailbox).
func (l MailboxLimits) CheckMailboxName(name string) error { return l.checkName(name) }

// DeleteBatch bounds how many messages one transaction removes when a
// mailbox is deleted or renamed.
const DeleteBatch = deleteBatch
