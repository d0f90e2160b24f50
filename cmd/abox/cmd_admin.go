package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"abox/accounts"
	"abox/store"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

type pflagFlag = pflag.Flag

func (a *app) classCmd() *cobra.Command {
	list := &cobra.Command{
		Use: "list", Short: "list account classes and their limits", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var vs []classView
			if err := a.client().call(cmd.Context(), "class.list", struct{}{}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLASS\tSTORAGE\tMESSAGES\tMAX SIZE\tRECV/DAY\tSENT/DAY\tRCPT/MSG\tIMAP/MIN\tIMAP BURST\tMAILBOXES\tDEPTH\tNAME BYTES\tTRASH\tJUNK\tMAX AGE")
				for _, v := range vs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name,
						fmtLimit(v.Storage, true), fmtLimit(v.Messages, false), fmtLimit(v.MaxMessageSize, true),
						fmtLimit(v.ReceivedPerDay, false), fmtLimit(v.SentPerDay, false), fmtLimit(v.RecipientsPerMessage, false),
						fmtLimit(v.IMAPCommandsPerMinute, false), fmtLimit(v.IMAPCommandBurst, false), fmtLimit(v.Mailboxes, false), fmtLimit(v.MailboxDepth, false),
						fmtLimit(v.MailboxNameBytes, false), keepFor(v.RetentionTrash), keepFor(v.RetentionJunk), keepFor(v.MaxAge))
				}
				tw.Flush()
			})
		},
	}
	set := &cobra.Command{
		Use:   "set NAME [--storage SIZE] [--messages N] [--max-message-size SIZE] ...",
		Short: "create or change a class (0 = unlimited); a new class starts from standard's limits",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := classSetFromFlags(cmd, args[0])
			if err != nil {
				return err
			}
			var v classView
			if err := a.client().call(cmd.Context(), "class.set", s, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "class %s set\n", v.Name) })
		},
	}
	f := set.Flags()
	for _, n := range []string{"storage", "max-message-size"} {
		f.String(n, "", "SIZE (e.g. 1GiB, 25MiB; 0 = unlimited)")
	}
	f.String("services", "", "what the class may use: imap, submission (comma-separated) or all")
	for _, n := range []string{"messages", "received-per-day", "sent-per-day", "recipients-per-message", "imap-commands-per-minute", "connections-per-account"} {
		f.String(n, "", "N (0 = unlimited)")
	}
	f.String("imap-command-burst", "", "N IMAP commands an account may send at once above its per-minute rate (0 = unlimited)")
	f.String("mailboxes", "", "N mailboxes an account may have, superiors included (0 = unlimited)")
	f.String("mailbox-depth", "", "N levels a mailbox name may have (0 = unlimited)")
	f.String("mailbox-name-bytes", "", "N bytes a whole mailbox name may have, UTF-8 (0 = unlimited)")
	for _, n := range []string{"retention-trash", "retention-junk", "max-age"} {
		f.String(n, "", "DURATION (e.g. 30d, 720h; 0 = keep forever)")
	}
	return group("class", "account classes and their limits", list, set)
}

func keepFor(d string) string {
	if d == "0" {
		return "forever"
	}
	return d
}

// classSetFromFlags parses the given limit flags; a malformed value is a
// usage error and nothing is sent.
func classSetFromFlags(cmd *cobra.Command, name string) (classSetArgs, error) {
	s := classSetArgs{Name: name}
	f := cmd.Flags()
	var given []string
	sizes := map[string]**int64{"storage": &s.Storage, "max-message-size": &s.MaxMessageSize}
	counts := map[string]**int64{
		"messages": &s.Messages, "received-per-day": &s.ReceivedPerDay, "sent-per-day": &s.SentPerDay,
		"recipients-per-message": &s.RecipientsPerMessage, "imap-commands-per-minute": &s.IMAPCommandsPerMinute,
		"connections-per-account": &s.ConnectionsPerAccount,
		"imap-command-burst":      &s.IMAPCommandBurst,
		"mailboxes":               &s.Mailboxes,
		"mailbox-depth":           &s.MailboxDepth,
		"mailbox-name-bytes":      &s.MailboxNameBytes,
	}
	durs := map[string]**time.Duration{"retention-trash": &s.RetentionTrash, "retention-junk": &s.RetentionJunk, "max-age": &s.MaxAge}
	var err error
	f.Visit(func(fl *pflagFlag) {
		v := fl.Value.String()
		given = append(given, "--"+fl.Name+"="+v)
		switch {
		case sizes[fl.Name] != nil:
			n, e := parseSize(v)
			*sizes[fl.Name], err = &n, errors.Join(err, e)
		case counts[fl.Name] != nil:
			n, e := parseCount(v)
			*counts[fl.Name], err = &n, errors.Join(err, e)
		case durs[fl.Name] != nil:
			d, e := parseDuration(v)
			*durs[fl.Name], err = &d, errors.Join(err, e)
		case fl.Name == "services":
			// Not nil: "all" is an empty list, which must survive the
			// trip to the server as JSON [] (nil would be null, read
			// back as "not given").
			list := []string{}
			for _, sv := range strings.Split(v, ",") {
				switch sv = strings.TrimSpace(strings.ToLower(sv)); sv {
				case accounts.ServiceIMAP, accounts.ServiceSubmission:
					list = append(list, sv)
				case "all", "":
				default:
					err = errors.Join(err, fmt.Errorf("--services %q: use imap, submission or all", sv))
				}
			}
			s.Services = &list
		}
	})
	if err != nil {
		return s, usageError{err}
	}
	s.Summary = strings.Join(given, " ")
	return s, nil
}

func (a *app) senderCmd() *cobra.Command {
	var s senderAddArgs
	var pwStdin bool
	add := &cobra.Command{
		Use:   "add NAME --kind official|billing|informational --from ADDRESS... [--allow-ip CIDR]... [--receipts-to ADDRESS] --password-stdin",
		Short: "register a trusted submitting system",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if s.Kind == "" || len(s.From) == 0 {
				return usagef("sender add needs --kind and at least one --from")
			}
			pw, err := readPassword(pwStdin)
			if err != nil {
				return err
			}
			s.Name, s.Password = args[0], pw
			var v senderView
			if err := a.client().call(cmd.Context(), "sender.add", s, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "sender %s added (%s)\n", v.Name, v.Kind) })
		},
	}
	add.Flags().StringVar(&s.Kind, "kind", "", "official, billing or informational")
	add.Flags().StringArrayVar(&s.From, "from", nil, "an address it may send from (repeat for several)")
	add.Flags().StringArrayVar(&s.AllowIP, "allow-ip", nil, "a network it may connect from (repeat; default anywhere)")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	add.Flags().StringVar(&s.ReceiptsTo, "receipts-to", "", "mail the evidence receipts of its letters here after each signed tree head (docs/EVIDENCE.md)")
	var ss senderSetArgs
	set := &cobra.Command{
		Use: "set NAME --receipts-to ADDRESS|none", Short: "change where a trusted sender's evidence receipts are mailed", Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("receipts-to") {
				return usagef("sender set needs --receipts-to ADDRESS or none")
			}
			ss.Name = args[0]
			var v senderView
			if err := a.client().call(cmd.Context(), "sender.set", ss, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) {
				if v.ReceiptsTo == "" {
					fmt.Fprintf(w, "sender %s: no receipts by mail\n", v.Name)
				} else {
					fmt.Fprintf(w, "sender %s: receipts to %s\n", v.Name, v.ReceiptsTo)
				}
			})
		},
	}
	set.Flags().StringVar(&ss.ReceiptsTo, "receipts-to", "", "the address (none: stop mailing receipts)")
	list := &cobra.Command{
		Use: "list", Short: "list trusted senders", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var vs []senderView
			if err := a.client().call(cmd.Context(), "sender.list", struct{}{}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tFROM\tALLOWED NETWORKS")
				for _, v := range vs {
					nets := strings.Join(v.AllowIP, ",")
					if nets == "" {
						nets = "anywhere"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Kind, strings.Join(v.From, ","), nets)
				}
				tw.Flush()
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove NAME", Short: "remove a trusted sender", Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v senderView
			if err := a.client().call(cmd.Context(), "sender.remove", nameArgs{Name: args[0]}, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "sender %s removed\n", v.Name) })
		},
	}
	return group("sender", "trusted submitting systems", add, set, list, remove)
}

func (a *app) auditCmd() *cobra.Command {
	var account, since string
	var accountID uint64
	var withStaff bool
	c := &cobra.Command{
		Use: "audit [--account ADDRESS] [--since TIME] [--staff]", Short: "every policy and operator action", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			args := auditArgs{Account: account, AccountID: accountID}
			if since != "" {
				t, err := parseTime(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				args.Since = t
			}
			var all []store.AuditEntry
			cl := a.client()
			for {
				var page auditPage
				if err := cl.call(cmd.Context(), "audit", args, &page); err != nil {
					return err
				}
				if a.json {
					all = append(all, page.Entries...)
				} else {
					for _, e := range page.Entries {
						actor := e.Actor
						if e.Staff != "" {
							actor += " " + e.Staff
						}
						fmt.Fprintf(a.out, "%s  %-8s  %-14s  %s  %s\n", e.At.Format(time.RFC3339), actor, e.Action, orDash(e.Account), e.Reason)
					}
				}
				if page.Next == 0 {
					break
				}
				args.After = page.Next
			}
			if a.json {
				// The contract's entry has exactly at, actor, action,
				// account and reason; who among the staff acted is
				// added only when asked for.
				out := make([]auditView, 0, len(all))
				for _, e := range all {
					v := auditView{At: e.At, Actor: e.Actor, Action: e.Action, Account: e.Account, Reason: e.Reason}
					if withStaff {
						v.Staff = &all[len(out)].Staff
						v.AccountID = all[len(out)].AccountID
					}
					out = append(out, v)
				}
				return a.emit(out, nil)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&withStaff, "staff", false, "with --json, add each entry's staff: the OS user (or token) behind an operator action")
	c.Flags().StringVar(&account, "account", "", "only this account's entries (its current holder's, or with --account-id another's)")
	c.Flags().Uint64Var(&accountID, "account-id", 0, "with --account, the holder of the address by its stable id (a login registered again after a purge is another account)")
	c.Flags().StringVar(&since, "since", "", "only entries at or after TIME (RFC 3339, a date, or an age like 7d)")
	return c
}

// auditView is an audit entry as `abox audit --json` prints it.
type auditView struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Account string    `json:"account"`
	Reason  string    `json:"reason"`
	Staff   *string   `json:"staff,omitempty"`
	// AccountID (with --staff) is the stable id of the account the
	// entry is about.
	AccountID uint64 `json:"account_id,omitempty"`
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) backupCmd() *cobra.Command {
	return &cobra.Command{
		Use: "backup FILE", Short: "consistent hot backup of the database", Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if same, _ := filepath.Abs(a.cfg.dbPath()); same == path {
				return usagef("backup FILE must not be the live database %s", path)
			}
			n, err := a.client().backup(path)
			if err != nil {
				return err
			}
			v := map[string]any{"file": path, "bytes": n}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "backup written to %s (%s)\n", path, formatSize(n)) })
		},
	}
}

func (a *app) checkCmd() *cobra.Command {
	var acknowledge bool
	c := &cobra.Command{
		Use: "check", Short: "verify the database: pages, indexes, counters, reference counts, incidents", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep store.CheckReport
			if err := a.client().call(cmd.Context(), "check", struct{}{}, &rep); err != nil {
				return err
			}
			if acknowledge && len(rep.Incidents) > 0 {
				var n int
				if err := a.client().call(cmd.Context(), "check.acknowledge", struct{}{}, &n); err != nil {
					return err
				}
				// The incidents were printed (below) and are now known:
				// they no longer fail check.
				rest := rep.Problems[:0]
				for _, p := range rep.Problems {
					if !strings.HasPrefix(p, "incident ") {
						rest = append(rest, p)
					}
				}
				rep.Problems = rest
				for _, inc := range rep.Incidents {
					fmt.Fprintf(cmd.ErrOrStderr(), "acknowledged incident %d (%s): %s\n", inc.Seq, inc.Kind, inc.Detail)
				}
			}
			if err := a.emit(rep, func(w io.Writer) {
				fmt.Fprintf(w, "%d accounts, %d mailboxes, %d messages, %d bodies\n", rep.Accounts, rep.Mailboxes, rep.Messages, rep.Bodies)
				for _, p := range rep.Problems {
					fmt.Fprintln(w, "problem:", p)
				}
				if len(rep.Problems) == 0 {
					fmt.Fprintln(w, "ok")
				}
			}); err != nil {
				return err
			}
			if len(rep.Problems) > 0 {
				return fmt.Errorf("check found %d problems", len(rep.Problems))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&acknowledge, "acknowledge", false, "mark the incidents found (damaged or missing write-ahead log, ...) as seen: later checks no longer fail on them")
	return c
}
