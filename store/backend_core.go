package store

// Exported for another backend (store/pgstore) so that both apply the
// same rules.

// CanonicalMailboxName validates a mailbox name and returns its
// canonical spelling (INBOX in any case is INBOX).
func CanonicalMailboxName(name string) (string, error) { return canonicalMailboxName(name) }
