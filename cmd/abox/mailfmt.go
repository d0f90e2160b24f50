package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"abox/store"
)

// Mailbox files for `abox import` and `abox export`.
//
// Maildir is Maildir++ as Dovecot, Courier and mbsync write it: INBOX in
// PATH/{cur,new,tmp}, the mailbox "A/B" in PATH/.A.B/; flags are the
// ":2," letters (D F P R S T); the internal date is the file's
// modification time. Keywords have no Maildir letter and are not carried.
//
// mbox is mboxrd (RFC 4155 and the ">From " quoting of mboxrd): one
// mailbox per file, each message after a "From SENDER DATE" line, lines
// that start with ">*From " quoted by one more ">". Flags come in from
// mutt's Status and X-Status headers and are not written out (the
// message bytes are exported as stored).

// Maildir info letters (https://cr.yp.to/proto/maildir.html), in the
// ASCII order the spec asks for.
var maildirFlags = []struct {
	letter byte
	flag   string
}{
	{'D', store.FlagDraft}, {'F', store.FlagFlagged}, {'P', "$Forwarded"},
	{'R', store.FlagAnswered}, {'S', store.FlagSeen}, {'T', store.FlagDeleted},
}

func maildirInfo(flags []string) string {
	var b strings.Builder
	b.WriteString(":2,")
	for _, f := range maildirFlags {
		if slices.ContainsFunc(flags, func(g string) bool { return strings.EqualFold(g, f.flag) }) {
			b.WriteByte(f.letter)
		}
	}
	return b.String()
}

func flagsFromMaildirName(name string) []string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return nil
	}
	var out []string
	for _, c := range []byte(name[i+3:]) {
		for _, f := range maildirFlags {
			if f.letter == c {
				out = append(out, f.flag)
			}
		}
	}
	return out
}

// maildirFolder is one mailbox of a Maildir++ tree.
type maildirFolder struct {
	name string // the mailbox name ("INBOX", "Archive/2026")
	dir  string
}

func isMaildir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "cur"))
	return err == nil && st.IsDir()
}

// maildirFolders lists the mailboxes of the Maildir++ tree at root.
func maildirFolders(root string) ([]maildirFolder, error) {
	if !isMaildir(root) {
		return nil, fmt.Errorf("%s is not a Maildir (no cur directory)", root)
	}
	out := []maildirFolder{{"INBOX", root}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || len(n) < 2 || n[0] != '.' || n == ".." {
			continue
		}
		if dir := filepath.Join(root, n); isMaildir(dir) {
			out = append(out, maildirFolder{strings.ReplaceAll(n[1:], ".", "/"), dir})
		}
	}
	return out, nil
}

// maildirMessages lists a folder's message files, new then cur, each in
// name order (names begin with the delivery time).
func maildirMessages(dir string) ([]string, error) {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	return out, nil
}

// maildirDirFor is where mailbox name goes under root. Maildir++ uses
// "." as the hierarchy separator, so a "." inside a name becomes "_",
// and so does an empty level: the store can hold the names "" and "/"
// (RENAME does not refuse them), which would otherwise give root itself
// and root's parent.
func maildirDirFor(root, name string) string {
	if strings.EqualFold(name, "INBOX") {
		return root
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if p == "" {
			p = "_"
		}
		parts[i] = strings.ReplaceAll(p, ".", "_")
	}
	return filepath.Join(root, "."+strings.Join(parts, "."))
}

func makeMaildir(dir string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// writeMaildirMessage writes one message into dir/cur (through tmp, as
// Maildir asks) with LF line ends and its internal date as mtime.
func writeMaildirMessage(dir string, mb store.Mailbox, m store.Message, body []byte) error {
	data := toLF(body)
	base := fmt.Sprintf("%d.V%xI%x.abox,S=%d", m.InternalDate.Unix(), mb.UIDValidity, m.UID, len(data))
	tmp := filepath.Join(dir, "tmp", base)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, m.InternalDate, m.InternalDate); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "cur", base+maildirInfo(m.Flags)))
}

// toLF turns CRLF line ends into LF, as Maildir and mbox files have them.
func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// toCRLF makes every line end CRLF, as the store keeps messages.
func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// mboxMessage is one message read from an mbox file.
type mboxMessage struct {
	date  time.Time // from the From line; zero when it has none we can read
	body  []byte    // CRLF line ends, mboxrd quoting undone
	flags []string  // from Status / X-Status
}

// mboxReader reads an mboxrd file message by message.
type mboxReader struct {
	r    *bufio.Reader
	next []byte // the From line of the next message
	read int64  // bytes consumed
}

func newMboxReader(r io.Reader) (*mboxReader, error) {
	mr := &mboxReader{r: bufio.NewReaderSize(r, 64<<10)}
	line, err := mr.line()
	if err == io.EOF && len(line) == 0 {
		return mr, nil
	}
	if !bytes.HasPrefix(line, []byte("From ")) {
		return nil, fmt.Errorf("not an mbox file: it does not begin with a \"From \" line")
	}
	mr.next = line
	return mr, nil
}

func (mr *mboxReader) line() ([]byte, error) {
	l, err := mr.r.ReadBytes('\n')
	mr.read += int64(len(l))
	return l, err
}

// Next returns the next message, or io.EOF after the last.
func (mr *mboxReader) Next() (*mboxMessage, error) {
	if mr.next == nil {
		return nil, io.EOF
	}
	m := &mboxMessage{date: mboxDate(mr.next)}
	mr.next = nil
	var body bytes.Buffer
	prevBlank := false
	for {
		l, err := mr.line()
		if len(l) > 0 {
			if prevBlank && bytes.HasPrefix(l, []byte("From ")) {
				mr.next = l
				break
			}
			content := bytes.TrimRight(l, "\r\n")
			if q := bytes.TrimLeft(content, ">"); len(q) < len(content) && bytes.HasPrefix(q, []byte("From ")) {
				l = l[1:] // mboxrd: one ">" less
			}
			prevBlank = len(content) == 0
			body.Write(l)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	b := body.Bytes()
	// The blank line before the next From line (or at the end) is the
	// separator, not part of the message.
	if bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n\n")) {
		b = b[:len(b)-1]
	}
	m.body = toCRLF(b)
	m.flags = mboxStatusFlags(m.body)
	return m, nil
}

// mboxDate reads the asctime date at the end of a From line.
func mboxDate(from []byte) time.Time {
	f := strings.Fields(string(from))
	if len(f) < 7 {
		return time.Time{}
	}
	s := strings.Join(f[len(f)-5:], " ")
	if t, err := time.Parse(time.ANSIC, s); err == nil {
		return t
	}
	return time.Time{}
}

// mboxStatusFlags reads mutt's Status (R: seen) and X-Status (A:
// answered, F: flagged, D: deleted, T: draft) header fields.
func mboxStatusFlags(msg []byte) []string {
	var out []string
	for _, l := range bytes.Split(msg, []byte("\r\n")) {
		if len(l) == 0 {
			break // end of the header
		}
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch strings.ToLower(string(k)) {
		case "status":
			if bytes.ContainsRune(v, 'R') {
				out = append(out, store.FlagSeen)
			}
		case "x-status":
			for c, f := range map[rune]string{'A': store.FlagAnswered, 'F': store.FlagFlagged, 'D': store.FlagDeleted, 'T': store.FlagDraft} {
				if bytes.ContainsRune(v, c) {
					out = append(out, f)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// writeMbox writes one message in mboxrd form.
func writeMbox(w io.Writer, m store.Message, body []byte) error {
	sender := "MAILER-DAEMON"
	if rp := headerValue(body, "Return-Path"); rp != "" {
		if s := strings.Trim(rp, "<> "); s != "" && !strings.ContainsAny(s, " \t") {
			sender = s
		}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "From %s %s\n", sender, m.InternalDate.UTC().Format(time.ANSIC))
	data := toLF(body)
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			bw.WriteByte('>')
		}
		bw.Write(line)
	}
	if !bytes.HasSuffix(body, []byte("\n")) {
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	return bw.Flush()
}

// headerValue returns the first value of a header field, unfolded.
func headerValue(msg []byte, name string) string {
	for _, l := range bytes.Split(msg, []byte("\n")) {
		l = bytes.TrimRight(l, "\r")
		if len(l) == 0 {
			return ""
		}
		if k, v, ok := bytes.Cut(l, []byte(":")); ok && strings.EqualFold(string(k), name) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}
