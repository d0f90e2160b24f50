// Package imapd is abox's IMAP server: its own protocol layer (wire/)
// over the store. It serves IMAP4rev1 (RFC 3501) and
// IMAP4rev2 (RFC 9051) clients with IDLE (RFC 2177), UIDPLUS (RFC 4315),
// MOVE (RFC 6851), SPECIAL-USE (RFC 6154), NAMESPACE (RFC 2342), ENABLE
// (RFC 5161), ESEARCH, LIST-STATUS, STATUS=SIZE, APPENDLIMIT, LITERAL+
// (RFC 7888), and CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267: searches
// kept updated, contexts.go).
//
// Each session keeps its own view of the selected mailbox (view.go: the
// UIDs the client knows, in sequence order, and what it must still be
// told) and follows the store's change feed, so deliveries, flag changes
// and expunges made anywhere reach it as EXISTS, FETCH FLAGS and EXPUNGE,
// at once while it IDLEs, and its numbering changes only by EXISTS and
// EXPUNGE.
//
// imapd must never: import smtpd or cmd; open a store transaction; decide
// a rule of the terms of service itself (policy does); hold a store read
// across a write to the client.
package imapd
