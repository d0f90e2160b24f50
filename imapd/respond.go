package imapd

import (
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// The writers commands answer through: untagged data on the session's
// wire.Writer. Each writes whole responses; the connection flushes them.

// UpdateWriter writes the updates of a selected mailbox (RFC 9051 §7.4:
// EXISTS, EXPUNGE, FETCH FLAGS). With lock set (IDLE's pusher, which
// writes while no command runs), each update is written under the lock
// and flushed at once.
type UpdateWriter struct {
	w *wire.Writer
	c *conn // set for the IDLE pusher: each update written and flushed on its own
}

func (u *UpdateWriter) write(fn func(w *wire.Writer)) error {
	if u.c == nil {
		fn(u.w)
		return u.w.Err()
	}
	var err error
	u.c.writeLocked(func() {
		fn(u.w)
		err = u.w.Err()
	})
	if err == nil && u.c.closing.Load() {
		err = net.ErrClosed
	}
	return err
}

// WriteNumMessages writes "* n EXISTS".
func (u *UpdateWriter) WriteNumMessages(n uint32) error {
	return u.write(func(w *wire.Writer) { w.Raw("* ").Number(uint64(n)).Raw(" EXISTS").CRLF() })
}

// WriteExpunge writes "* n EXPUNGE".
func (u *UpdateWriter) WriteExpunge(seq uint32) error {
	return u.write(func(w *wire.Writer) { w.Raw("* ").Number(uint64(seq)).Raw(" EXPUNGE").CRLF() })
}

// WriteMessageFlags writes "* n FETCH (UID u FLAGS (...))" (the UID
// when the client asked for UIDs in that session: always, it costs a
// few bytes and saves a client a lookup).
func (u *UpdateWriter) WriteMessageFlags(seq uint32, uid imap.UID, flags []imap.Flag) error {
	return u.write(func(w *wire.Writer) {
		w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (")
		if uid != 0 {
			w.Raw("UID ").Number(uint64(uid)).SP()
		}
		w.Raw("FLAGS ").Flags(flagStrings(flags)).Raw(")").CRLF()
	})
}

// ExpungeWriter writes the EXPUNGE responses of EXPUNGE and CLOSE.
type ExpungeWriter struct {
	w      *wire.Writer
	silent bool // CLOSE: no responses
}

// write writes a whole response unless silent.
func (e *ExpungeWriter) write(fn func(w *wire.Writer)) error {
	if e.silent {
		return nil
	}
	fn(e.w)
	return e.w.Err()
}

// WriteExpunge writes "* n EXPUNGE" unless silent.
func (e *ExpungeWriter) WriteExpunge(seq uint32) error {
	if e.silent {
		return nil
	}
	return (&UpdateWriter{w: e.w}).WriteExpunge(seq)
}

// MoveWriter writes MOVE's COPYUID (an untagged OK, RFC 6851 §4.3) and
// its EXPUNGEs.
type MoveWriter struct {
	w *wire.Writer
}

// write writes a whole response.
func (m *MoveWriter) write(fn func(w *wire.Writer)) error {
	fn(m.w)
	return m.w.Err()
}

// WriteCopyData writes "* OK [COPYUID ...]".
func (m *MoveWriter) WriteCopyData(d *imap.CopyData) error {
	m.w.Raw("* OK [")
	writeCopyUID(m.w, d)
	return m.w.Raw("] Moved").CRLF().Err()
}

// WriteExpunge writes "* n EXPUNGE".
func (m *MoveWriter) WriteExpunge(seq uint32) error { return (&UpdateWriter{w: m.w}).WriteExpunge(seq) }

func writeCopyUID(w *wire.Writer, d *imap.CopyData) {
	w.Raw("COPYUID ").Number(uint64(d.UIDValidity)).SP().Raw(d.SourceUIDs.String()).SP().Raw(d.DestUIDs.String())
}

// ListWriter writes LIST (and LSUB) responses.
type ListWriter struct {
	w    *wire.Writer
	s    *session      // for the STATUS items in x
	x    *statusExtras // RETURN (STATUS (...)) items beyond go-imap's
	lsub bool
	utf8 bool // names go out as UTF-8 (IMAP4rev2, UTF8=ACCEPT), not modified UTF-7
}

// WriteList writes one mailbox.
func (l *ListWriter) WriteList(d *imap.ListData) error {
	w := l.w
	if l.lsub {
		w.Raw("* LSUB (")
	} else {
		w.Raw("* LIST (")
	}
	for i, a := range d.Attrs {
		if i > 0 {
			w.SP()
		}
		w.Raw(string(a))
	}
	w.Raw(") ")
	if d.Delim == 0 {
		w.NIL()
	} else {
		w.String(string(d.Delim))
	}
	w.SP()
	writeMailbox(w, d.Mailbox, l.utf8)
	if d.ChildInfo != nil && d.ChildInfo.Subscribed {
		w.Raw(` ("CHILDINFO" ("SUBSCRIBED"))`) // RFC 5258 §4
	}
	w.CRLF()
	if d.Status != nil {
		// RFC 5819 §2: the status of a listed mailbox follows as a
		// STATUS response of its own.
		w.Raw("* STATUS ")
		writeMailbox(w, d.Mailbox, l.utf8)
		w.Raw(" (")
		writeStatusItems(w, d.Status)
		if l.s != nil {
			l.s.writeStatusExtras(w, l.x, d.Mailbox)
		}
		w.Raw(")").CRLF()
	}
	return w.Err()
}

// writeMailbox writes a mailbox name: modified UTF-7 (RFC 3501 §5.1.3)
// for IMAP4rev1 clients, UTF-8 for those that enabled it.
func writeMailbox(w *wire.Writer, name string, utf8 bool) {
	if strings.EqualFold(name, "INBOX") {
		w.Raw("INBOX")
		return
	}
	if !utf8 {
		name = wire.EncodeMUTF7(name)
	}
	w.String(name) // quoted, as Dovecot writes them (an atom is as valid)
}

func writeStatusItems(w *wire.Writer, d *imap.StatusData) {
	first := true
	item := func(name string, n uint64) {
		if !first {
			w.SP()
		}
		first = false
		w.Raw(name).SP().Number(n)
	}
	if d.NumMessages != nil {
		item("MESSAGES", uint64(*d.NumMessages))
	}
	if d.UIDNext != 0 {
		item("UIDNEXT", uint64(d.UIDNext))
	}
	if d.UIDValidity != 0 {
		item("UIDVALIDITY", uint64(d.UIDValidity))
	}
	if d.NumUnseen != nil {
		item("UNSEEN", uint64(*d.NumUnseen))
	}
	if d.NumDeleted != nil {
		item("DELETED", uint64(*d.NumDeleted))
	}
	if d.Size != nil {
		item("SIZE", uint64(*d.Size))
	}
	if d.AppendLimit != nil {
		item("APPENDLIMIT", uint64(*d.AppendLimit))
	}
	if d.DeletedStorage != nil {
		item("DELETED-STORAGE", uint64(*d.DeletedStorage))
	}
	if d.HighestModSeq != 0 {
		item("HIGHESTMODSEQ", d.HighestModSeq)
	}
	if d.NumRecent != nil {
		item("RECENT", uint64(*d.NumRecent))
	}
}

// FetchWriter writes FETCH responses (RFC 9051 §7.5.2).
type FetchWriter struct {
	w *wire.Writer
	// extra are the extension items (objectid.go, preview.go).
	extra fetchExtras
	// names are the items' names in the answer, by section: the
	// client's own spelling (BODY[...] with its section text, RFC822,
	// RFC822.HEADER, RFC822.TEXT).
	names    map[any]string
	body     bool // BODY (non-extensible structure) asked for
	bodyStr  bool // BODYSTRUCTURE asked for
	modSeqOn bool
}

// CreateMessage starts the response for message seq.
func (f *FetchWriter) CreateMessage(seq uint32) *FetchResponseWriter {
	f.w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (")
	return &FetchResponseWriter{f: f, w: f.w}
}

// FetchResponseWriter writes one message's items.
type FetchResponseWriter struct {
	f   *FetchWriter
	w   *wire.Writer
	any bool
}

func (r *FetchResponseWriter) sep() *wire.Writer {
	if r.any {
		r.w.SP()
	}
	r.any = true
	return r.w
}

// WriteUID writes UID.
func (r *FetchResponseWriter) WriteUID(uid imap.UID) { r.sep().Raw("UID ").Number(uint64(uid)) }

// WriteFlags writes FLAGS.
func (r *FetchResponseWriter) WriteFlags(flags []imap.Flag) {
	r.sep().Raw("FLAGS ").Flags(flagStrings(flags))
}

// WriteInternalDate writes INTERNALDATE.
func (r *FetchResponseWriter) WriteInternalDate(t time.Time) {
	r.sep().Raw("INTERNALDATE ").DateTime(t)
}

// WriteRFC822Size writes RFC822.SIZE.
func (r *FetchResponseWriter) WriteRFC822Size(n int64) {
	r.sep().Raw("RFC822.SIZE ").Number(uint64(max(n, 0)))
}

// WriteModSeq writes MODSEQ (RFC 7162).
func (r *FetchResponseWriter) WriteModSeq(m uint64) { r.sep().Raw("MODSEQ (").Number(m).Raw(")") }

// WriteEnvelope writes ENVELOPE.
func (r *FetchResponseWriter) WriteEnvelope(e *imap.Envelope) {
	r.sep().Raw("ENVELOPE ").DecodedEnvelope(e)
}

// WriteBodySection starts a body section's literal of size bytes; the
// caller writes exactly size bytes to the returned writer.
func (r *FetchResponseWriter) WriteBodySection(sec *imap.FetchItemBodySection, size int64) io.WriteCloser {
	name := r.f.names[sec]
	r.sep().Raw(name).Raw(" {").Number(uint64(size)).Raw("}\r\n")
	return literalBody{r.w}
}

// WriteBinarySection starts a BINARY[] literal8.
func (r *FetchResponseWriter) WriteBinarySection(sec *imap.FetchItemBinarySection, size int64) io.WriteCloser {
	r.sep().Raw(r.f.names[sec]).Raw(" ~{").Number(uint64(size)).Raw("}\r\n")
	return literalBody{r.w}
}

// WriteBinarySectionSize writes BINARY.SIZE[...].
func (r *FetchResponseWriter) WriteBinarySectionSize(sec *imap.FetchItemBinarySectionSize, n uint32) {
	r.sep().Raw(r.f.names[sec]).SP().Number(uint64(n))
}

// Close ends the message's response.
func (r *FetchResponseWriter) Close() error { return r.w.Raw(")").CRLF().Err() }

type literalBody struct{ w *wire.Writer }

func (l literalBody) Write(p []byte) (int, error) {
	l.w.Bytes(p)
	if err := l.w.Err(); err != nil {
		return 0, err
	}
	return len(p), nil
}
func (literalBody) Close() error { return nil }

func flagStrings(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}
