// Package wire reads IMAP commands off a connection and writes IMAP
// responses (RFC 9051 §9 and RFC 3501 §9 grammar), for abox's own IMAP
// protocol layer.
//
// A command is read whole before anything parses it: its text lines and
// its literals ({n} synchronizing, {n+} LITERAL+, {n-} LITERAL-, ~{n}
// literal8), each literal's size checked before a byte of it is read or
// a continuation request is sent. Parsing then walks the command in
// memory (Args), so a parse error never leaves the connection in the
// middle of a command, and no literal is ever read as a command.
//
// wire must never: hold a connection's bytes beyond the limits it is
// given, read a literal it refused, or know what a command means (that
// is imapd's).
package wire
