package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/accounts"
	"abox/store"
	"abox/store/msginfo"
)

// Removing content (user agreement 2.10.1: the operator may remove
// content that breaks the terms or the law): find a message by its
// Message-ID or the SHA-256 of its bytes in every mailbox (or one
// account's), and remove it, or quarantine it (removed from the
// mailbox, kept for the operator in DIR/quarantine with a record of
// where it was and why). Every removal is audited on its account.
//
// It walks the accounts, their mailboxes and messages in pages, reading
// each message's stored structure (its Message-ID) and not its body; a
// SHA-256 search of a body stored once for many recipients (broadcasts,
// letters to several accounts) finds its one copy by the body index and
// reads no body at all, and only for other bodies reads them. Like
// doveadm's searches over all users, its time grows with the mail
// stored: --account makes it one account's.

// QuarantineDir is the directory, in the data directory, where
// quarantined messages are kept (mode 0700, files 0600).
const QuarantineDir = "quarantine"

type contentArgs struct {
	MessageID  string `json:"message_id,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	Account    string `json:"account,omitempty"`
	Remove     bool   `json:"remove,omitempty"`
	Quarantine bool   `json:"quarantine,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

type contentMatch struct {
	Account      string    `json:"account"`
	AccountID    uint64    `json:"account_id"`
	Mailbox      string    `json:"mailbox"`
	UID          uint32    `json:"uid"`
	Size         int64     `json:"size"`
	InternalDate time.Time `json:"internal_date"`
	Official     bool      `json:"official,omitempty"`
	Removed      bool      `json:"removed,omitempty"`
	Quarantined  string    `json:"quarantined,omitempty"` // the file it was kept in
}

type contentResult struct {
	Accounts int64          `json:"accounts_scanned"`
	Messages int64          `json:"messages_scanned"`
	Matches  []contentMatch `json:"matches"`
}

type contentProgress struct {
	Accounts int64 `json:"accounts"`
	Messages int64 `json:"messages"`
	Matches  int   `json:"matches"`
}

// quarantineRecord is the JSON beside a quarantined message.
type quarantineRecord struct {
	contentMatch
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Staff  string    `json:"staff,omitempty"`
	SHA256 string    `json:"sha256"`
}

func init() {
	register("content", contentOp)
}

func contentOp(ctx context.Context, e *env, a contentArgs) (contentResult, error) {
	res := contentResult{Matches: []contentMatch{}}
	wantID := store.NormalizeMessageID(a.MessageID)
	var wantSum [32]byte
	switch {
	case (wantID == "") == (a.SHA256 == ""):
		return res, fmt.Errorf("give one of --message-id and --sha256")
	case a.SHA256 != "":
		b, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(a.SHA256)))
		if err != nil || len(b) != 32 {
			return res, fmt.Errorf("--sha256 takes 64 hexadecimal digits")
		}
		copy(wantSum[:], b)
	}
	if (a.Remove || a.Quarantine) && strings.TrimSpace(a.Reason) == "" {
		return res, fmt.Errorf("removing content needs --reason (it goes into the audit log)")
	}
	// A body stored once for many recipients is known by its hash: then
	// only messages pointing at it match, and no body is read.
	var sharedBlob uint64
	if a.SHA256 != "" {
		if id, err := e.store.BodyByHash(wantSum); err == nil {
			sharedBlob = id
		}
	}
	match := func(msgs []store.Message) ([]bool, error) {
		out := make([]bool, len(msgs))
		ids := make([]uint64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.Blob
		}
		switch {
		case wantID != "":
			return out, e.store.ReadStructures(ids, func(i int, _, structure []byte) error {
				if info, err := msginfo.DecodeOwnEnvelope(structure); err == nil && info.Own != nil {
					out[i] = store.NormalizeMessageID(info.Own.MessageID) == wantID
				}
				return nil
			})
		case sharedBlob != 0:
			for i, m := range msgs {
				out[i] = m.Blob == sharedBlob
			}
			return out, nil
		default:
			return out, e.store.ReadBodies(ids, func(i int, body, _ []byte) error {
				out[i] = sha256.Sum256(body) == wantSum
				return nil
			})
		}
	}
	scan := func(acct accounts.Account) error {
		res.Accounts++
		mbs, err := e.store.Mailboxes(acct.ID)
		if err != nil {
			return err
		}
		for _, mb := range mbs {
			var after uint32
			for {
				if err := ctx.Err(); err != nil {
					return err
				}
				msgs, err := e.store.Messages(acct.ID, mb.ID, after, 500)
				if err != nil || len(msgs) == 0 {
					return err
				}
				after = msgs[len(msgs)-1].UID
				res.Messages += int64(len(msgs))
				hits, err := match(msgs)
				if err != nil {
					return err
				}
				for i, hit := range hits {
					if !hit {
						continue
					}
					m := msgs[i]
					cm := contentMatch{Account: acct.Address(), AccountID: acct.ID, Mailbox: mb.Name, UID: m.UID,
						Size: m.Size, InternalDate: m.InternalDate.UTC(), Official: m.Official()}
					if a.Remove || a.Quarantine {
						if err := e.removeContent(ctx, &cm, &acct, mb.ID, m, a); err != nil {
							return err
						}
					}
					res.Matches = append(res.Matches, cm)
				}
			}
		}
		return nil
	}
	if a.Account != "" {
		addr, err := normalizeAddress(a.Account)
		if err != nil {
			return res, err
		}
		acct, err := e.store.Account(addr)
		if err != nil {
			return res, refusal(err)
		}
		return res, scan(acct)
	}
	var afterID uint64
	for {
		page, err := e.store.ListAccounts(store.AccountFilter{After: afterID, Limit: 500})
		if err != nil || len(page) == 0 {
			return res, err
		}
		for _, acct := range page {
			afterID = acct.ID
			if acct.State == accounts.Purged {
				continue
			}
			if err := scan(acct); err != nil {
				return res, err
			}
		}
		if e.progress != nil {
			e.progress(contentProgress{Accounts: res.Accounts, Messages: res.Messages, Matches: len(res.Matches)})
		}
	}
}

// removeContent quarantines (when asked) and expunges one message, and
// audits it on its account.
func (e *env) removeContent(ctx context.Context, cm *contentMatch, acct *accounts.Account, mbox uint32, m store.Message, a contentArgs) error {
	body, _, err := e.store.Body(m.Blob)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	action := "content.remove"
	if a.Quarantine {
		action = "content.quarantine"
		dir := filepath.Join(e.cfg.Data, QuarantineDir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		base := fmt.Sprintf("%s-%d-%d-%d", e.now().UTC().Format("20060102T150405Z"), acct.ID, mbox, m.UID)
		rec, _ := json.MarshalIndent(quarantineRecord{contentMatch: *cm, At: e.now().UTC(), Reason: a.Reason, Staff: e.staff, SHA256: hex.EncodeToString(sum[:])}, "", "  ")
		for name, data := range map[string][]byte{base + ".eml": body, base + ".json": append(rec, '\n')} {
			if err := writeSynced(filepath.Join(dir, name), data); err != nil {
				return fmt.Errorf("quarantine: %w", err)
			}
		}
		cm.Quarantined = filepath.Join(dir, base+".eml")
	}
	// The audit entry names the message, never its content.
	what := "Message-ID <" + store.NormalizeMessageID(a.MessageID) + ">"
	if a.MessageID == "" {
		what = "SHA-256 " + hex.EncodeToString(sum[:])
	}
	why := fmt.Sprintf("%s in %s (UID %d): %s", what, cm.Mailbox, m.UID, a.Reason)
	if err := e.store.AppendAudit(ctx, store.AuditEntry{Actor: e.audit("").Actor, Action: action, Account: acct.Address(), Reason: why, Staff: e.staff}); err != nil {
		return err
	}
	gone, err := e.store.Expunge(ctx, acct.ID, mbox, []uint32{m.UID})
	if err != nil && !errors.Is(err, store.ErrNoMailbox) {
		return err
	}
	cm.Removed = len(gone) == 1
	return nil
}

// writeSynced writes a new file and syncs it before it counts as kept.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (a *app) contentCmd() *cobra.Command {
	var args contentArgs
	flags := func(c *cobra.Command) {
		c.Flags().StringVar(&args.MessageID, "message-id", "", "the Message-ID (with or without <>)")
		c.Flags().StringVar(&args.SHA256, "sha256", "", "the SHA-256 of the message's bytes, hex")
		c.Flags().StringVar(&args.Account, "account", "", "search this account only")
	}
	run := func(cmd *cobra.Command, verb string) error {
		var res contentResult
		if err := a.client().callProgress(cmd.Context(), "content", args, &res, nil); err != nil {
			return err
		}
		return a.emit(res, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCOUNT\tMAILBOX\tUID\tSIZE\tDATE\t"+strings.ToUpper(verb))
			for _, m := range res.Matches {
				state := "-"
				switch {
				case m.Quarantined != "":
					state = m.Quarantined
				case m.Removed:
					state = "removed"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", m.Account, m.Mailbox, m.UID, m.Size, m.InternalDate.Format(time.RFC3339), state)
			}
			tw.Flush()
			fmt.Fprintf(w, "%d matching messages; %d messages in %d accounts searched\n", len(res.Matches), res.Messages, res.Accounts)
		})
	}
	find := &cobra.Command{
		Use: "find (--message-id ID | --sha256 HEX) [--account ADDRESS]", Short: "find a message in every mailbox (or one account's)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd, "") },
	}
	flags(find)
	remove := &cobra.Command{
		Use: "remove (--message-id ID | --sha256 HEX) [--account ADDRESS] --reason TEXT [--quarantine]", Short: "remove (or quarantine) a message from every mailbox it is in, audited", Args: noArgs,
		Long: "Removes every copy found, as an expunge (IMAP sessions see it go). With --quarantine each copy is first kept in DIR/" + QuarantineDir +
			" (the message and a JSON record: account, mailbox, UID, time, reason, who). Each removal is an audit entry on its account (user agreement 2.10.1).",
		RunE: func(cmd *cobra.Command, _ []string) error {
			args.Remove = true
			return run(cmd, "removed")
		},
	}
	flags(remove)
	remove.Flags().StringVar(&args.Reason, "reason", "", "why (the terms' clause, the authority's request): it goes into the audit log")
	remove.Flags().BoolVar(&args.Quarantine, "quarantine", false, "keep each copy in DIR/"+QuarantineDir+" before removing it")
	return group("content", "find and remove a message across mailboxes (user agreement 2.10.1)", find, remove)
}
