package store

// Broadcast rules exported for another backend (store/pgstore), so that
// both apply them the same way.

// BroadcastSkipReason is the evidence log's code of why a broadcast's
// pick refused an account for lack of consent (SkipNoConsent's reason,
// or "no-consent").
func BroadcastSkipReason(err error) string { return skipReason(err) }

// BroadcastFlags are the flags a broadcast copy is stored with, as
// deliverOne normalises a recipient's flags.
func BroadcastFlags(in []string) []string { return normalizeFlags(in) }
