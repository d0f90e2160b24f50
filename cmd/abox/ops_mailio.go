package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"abox/accounts"
	"abox/store"
)

// mailioArgs are import's and export's: PATH is absolute (the server
// may run elsewhere in the file system than the CLI).
type mailioArgs struct {
	Address string `json:"address"`
	Path    string `json:"path"`
	Format  string `json:"format,omitempty"`  // maildir or mbox; "" guesses from PATH
	Mailbox string `json:"mailbox,omitempty"` // mbox only: which mailbox
}

// MailioResult reports an import or export.
type MailioResult struct {
	Address   string `json:"address"`
	Path      string `json:"path"`
	Format    string `json:"format"`
	Messages  int64  `json:"messages"`
	Mailboxes int    `json:"mailboxes"`
	Bytes     int64  `json:"bytes"`
}

type mailioProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

func init() {
	register("import", importMail)
	register("export", exportMail)
}

// mailFormat decides the format: as given, or maildir for a directory
// (or a new path not ending in .mbox) and mbox for a file.
func mailFormat(a mailioArgs) (string, error) {
	switch a.Format {
	case "maildir", "mbox":
		return a.Format, nil
	case "":
	default:
		return "", usagef("--format is maildir or mbox, not %q", a.Format)
	}
	if st, err := os.Stat(a.Path); err == nil {
		if st.IsDir() {
			return "maildir", nil
		}
		return "mbox", nil
	}
	if strings.HasSuffix(strings.ToLower(a.Path), ".mbox") {
		return "mbox", nil
	}
	return "maildir", nil
}

func (e *env) report(done, total int64) {
	if e.progress != nil {
		e.progress(mailioProgress{Done: done, Total: total})
	}
}

// mailioStart decides the format and finds the account.
func mailioStart(e *env, a mailioArgs) (MailioResult, accounts.Account, error) {
	res := MailioResult{Address: a.Address, Path: a.Path}
	format, err := mailFormat(a)
	if err != nil {
		return res, accounts.Account{}, err
	}
	res.Format = format
	acct, err := e.store.Account(a.Address)
	return res, acct, err
}

// importMail stores every message of a Maildir++ tree or an mbox file in
// the account, as IMAP APPEND would (quota checked; not counted as
// received mail; flags and dates kept). Mailboxes missing in the account
// are created. On an error it stops, reporting what was imported.
func importMail(ctx context.Context, e *env, a mailioArgs) (MailioResult, error) {
	res, acct, err := mailioStart(e, a)
	if err != nil {
		return res, err
	}
	if err := e.auditRead(ctx, "user.import", acct.Address()); err != nil {
		return res, err
	}
	format := res.Format
	stopped := func(err error) (MailioResult, error) {
		return res, fmt.Errorf("import stopped after %d messages: %w", res.Messages, err)
	}
	lim, err := e.policy().LimitsOf(&acct)
	if err != nil {
		return res, err
	}
	ensure := func(name string) error {
		if _, err := e.store.MailboxByName(acct.ID, name); !errors.Is(err, store.ErrNoMailbox) {
			return err
		}
		// The class's mailbox limits hold for imported trees too.
		_, err := e.store.CreateMailbox(ctx, acct.ID, name, "", lim.Mailboxes())
		return err
	}
	// Messages are stored in batches of one mailbox, each in one
	// transaction (AppendMessages, all or none): on PostgreSQL a commit
	// per message made an import of 2,000 take half a minute. A batch
	// that fails is stored again a message at a time, so an import
	// stops where it always did: at the first message refused (over
	// quota, say), with every one before it stored. A message's label
	// names it in an error (a Maildir file's path).
	var (
		batch       []store.AppendMessage
		batchLabels []string
		batchBox    string
		batchBytes  int
	)
	flush := func() error {
		msgs, labels := batch, batchLabels
		batch, batchLabels, batchBytes = nil, nil, 0
		if len(msgs) == 0 {
			return nil
		}
		if _, err := e.policy().AppendMessages(ctx, &acct, batchBox, msgs); err == nil {
			for _, m := range msgs {
				res.Messages++
				res.Bytes += int64(len(m.Body))
			}
			return nil
		}
		for i, m := range msgs {
			if _, err := e.policy().Append(ctx, &acct, batchBox, m.Flags, m.InternalDate, m.Body); err != nil {
				if labels[i] != "" {
					err = fmt.Errorf("%s: %w", labels[i], err)
				}
				return err
			}
			res.Messages++
			res.Bytes += int64(len(m.Body))
		}
		return nil
	}
	add := func(name, label string, flags []string, m *mboxMessage) error {
		if name != batchBox {
			if err := flush(); err != nil {
				return err
			}
			batchBox = name
		}
		batch = append(batch, store.AppendMessage{Body: m.body, Flags: flags, InternalDate: m.date})
		batchLabels = append(batchLabels, label)
		batchBytes += len(m.body)
		if len(batch) < importBatch && batchBytes < importBatchBytes {
			return nil
		}
		return flush()
	}
	// unreadable stops at a message that cannot be read, once the ones
	// read before it are stored.
	unreadable := func(err error) (MailioResult, error) {
		if ferr := flush(); ferr != nil {
			return stopped(ferr)
		}
		return stopped(err)
	}
	if format == "mbox" {
		name := a.Mailbox
		if name == "" {
			name = "INBOX"
		}
		f, err := os.Open(a.Path)
		if err != nil {
			return res, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return res, err
		}
		mr, err := newMboxReader(f)
		if err != nil {
			return res, fmt.Errorf("%s: %w", a.Path, err)
		}
		if err := ensure(name); err != nil {
			return res, err
		}
		res.Mailboxes = 1
		for {
			m, err := mr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return unreadable(err)
			}
			if m.date.IsZero() {
				m.date = e.now()
			}
			if err := add(name, "", m.flags, m); err != nil {
				return stopped(err)
			}
			e.report(mr.read, st.Size())
		}
		if err := flush(); err != nil {
			return stopped(err)
		}
		return res, nil
	}
	folders, err := maildirFolders(a.Path)
	if err != nil {
		return res, err
	}
	files := make([][]string, len(folders))
	var total int64
	for i, f := range folders {
		if files[i], err = maildirMessages(f.dir); err != nil {
			return res, err
		}
		total += int64(len(files[i]))
	}
	for i, f := range folders {
		// The last folder's batch first: an error here leaves every
		// message before it stored.
		if err := flush(); err != nil {
			return stopped(err)
		}
		if err := ensure(f.name); err != nil {
			return stopped(fmt.Errorf("mailbox %s: %w", f.name, err))
		}
		res.Mailboxes++
		for _, path := range files[i] {
			data, err := os.ReadFile(path)
			if err != nil {
				return unreadable(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				return unreadable(err)
			}
			m := &mboxMessage{date: st.ModTime(), body: toCRLF(data)}
			if err := add(f.name, path, flagsFromMaildirName(filepath.Base(path)), m); err != nil {
				return stopped(err)
			}
			e.report(res.Messages, total)
		}
	}
	if err := flush(); err != nil {
		return stopped(err)
	}
	return res, nil
}

// An import's batches: at most this many messages, or about this many
// bytes (the message that passes it is the batch's last).
const (
	importBatch      = 100
	importBatchBytes = 8 << 20
)

// exportMail writes the account's mailboxes as a Maildir++ tree, or one
// mailbox as an mbox file. It never writes into an existing Maildir or
// over an existing file.
func exportMail(ctx context.Context, e *env, a mailioArgs) (MailioResult, error) {
	res, acct, err := mailioStart(e, a)
	if err != nil {
		return res, err
	}
	if err := e.auditRead(ctx, "user.export", acct.Address()); err != nil {
		return res, err
	}
	format := res.Format
	mboxes, err := e.store.Mailboxes(acct.ID)
	if err != nil {
		return res, err
	}
	var total int64
	for _, mb := range mboxes {
		total += int64(mb.Messages)
	}
	// each calls fn with every message of mb and its body, in UID order,
	// a page at a time.
	each := func(mb store.Mailbox, fn func(store.Message, []byte) error) error {
		var after uint32
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			msgs, err := e.store.Messages(acct.ID, mb.ID, after, 500)
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return nil
			}
			for _, m := range msgs {
				body, _, err := e.store.Body(m.Blob)
				if err != nil {
					return err
				}
				if err := fn(m, body); err != nil {
					return err
				}
				res.Messages++
				res.Bytes += int64(len(body))
				e.report(res.Messages, total)
			}
			after = msgs[len(msgs)-1].UID
		}
	}
	if format == "mbox" {
		name := a.Mailbox
		if name == "" {
			name = "INBOX"
		}
		mb, err := e.store.MailboxByName(acct.ID, name)
		if err != nil {
			return res, err
		}
		total = int64(mb.Messages)
		f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return res, err
		}
		err = each(mb, func(m store.Message, body []byte) error { return writeMbox(f, m, body) })
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		res.Mailboxes = 1
		return res, err
	}
	if isMaildir(a.Path) {
		return res, fmt.Errorf("%s is already a Maildir: export writes a new one", a.Path)
	}
	for _, mb := range mboxes {
		dir := maildirDirFor(a.Path, mb.Name)
		if err := makeMaildir(dir); err != nil {
			return res, err
		}
		res.Mailboxes++
		if err := each(mb, func(m store.Message, body []byte) error { return writeMaildirMessage(dir, mb, m, body) }); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (a *app) mailioCmd(name string) *cobra.Command {
	var format, mailbox string
	short := map[string]string{
		"import": "store the messages of a Maildir or an mbox file in an account (flags and dates kept, quota checked)",
		"export": "write an account's mailboxes as a Maildir, or one mailbox as an mbox file",
	}[name]
	c := &cobra.Command{
		Use:   name + " ADDRESS PATH [--format maildir|mbox] [--mailbox NAME]",
		Short: short,
		Args:  exactArgs("ADDRESS", "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			addr := args[0]
			if format != "" && format != "maildir" && format != "mbox" {
				return usagef("--format is maildir or mbox, not %q", format)
			}
			onProgress, finish := progressBar(name, func(raw json.RawMessage) (int64, int64, bool) {
				var p mailioProgress
				err := json.Unmarshal(raw, &p)
				return p.Done, p.Total, err == nil
			})
			var res MailioResult
			err = a.client().callProgress(cmd.Context(), name, mailioArgs{Address: addr, Path: path, Format: format, Mailbox: mailbox}, &res, onProgress)
			finish()
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				dir := map[string]string{"import": "from", "export": "to"}[name]
				fmt.Fprintf(w, "%sed %d messages (%d bytes) in %d mailboxes of %s %s %s %s\n",
					name, res.Messages, res.Bytes, res.Mailboxes, res.Address, dir, res.Format, res.Path)
			})
		},
	}
	c.Flags().StringVar(&format, "format", "", "maildir or mbox (default: maildir for a directory, mbox for a file or a name ending in .mbox)")
	c.Flags().StringVar(&mailbox, "mailbox", "", "mbox only: the mailbox to fill or write (default INBOX)")
	return c
}
