package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/accounts"
	"abox/store"
)

func (a *app) domainCmd() *cobra.Command {
	add := &cobra.Command{
		Use: "add DOMAIN", Short: "host a domain", Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v domainView
			if err := a.client().call(cmd.Context(), "domain.add", domainArgs{Domain: args[0]}, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "domain %s added\n", v.Domain) })
		},
	}
	remove := &cobra.Command{
		Use: "remove DOMAIN", Short: "stop hosting a domain without accounts", Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v domainView
			if err := a.client().call(cmd.Context(), "domain.remove", domainArgs{Domain: args[0]}, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "domain %s removed\n", v.Domain) })
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "list hosted domains", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var vs []domainView
			if err := a.client().call(cmd.Context(), "domain.list", struct{}{}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				for _, v := range vs {
					if v.Unicode != "" {
						fmt.Fprintf(w, "%s (%s)\n", v.Domain, v.Unicode)
					} else {
						fmt.Fprintln(w, v.Domain)
					}
				}
			})
		},
	}
	return group("domain", "hosted domains", add, list, remove, a.domainDNSCmd(), a.domainDKIMCmd())
}

func (a *app) userCmd() *cobra.Command {
	var addArgs userAddArgs
	var pwStdin bool
	add := &cobra.Command{
		Use: "add ADDRESS --phone E164 [--class C] [--password-stdin]", Short: "register an account",
		Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if addArgs.Phone == "" {
				return usagef("user add needs --phone (E.164, e.g. +77011234567)")
			}
			pw, err := readPassword(pwStdin)
			if err != nil {
				return err
			}
			addArgs.Address, addArgs.Password = args[0], pw
			return a.showUser(cmd, "user.add", addArgs, "added")
		},
	}
	add.Flags().StringVar(&addArgs.Phone, "phone", "", "mobile phone, E.164 (+77011234567)")
	add.Flags().StringVar(&addArgs.Class, "class", accounts.DefaultClassName, "account class")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")

	passwd := &cobra.Command{
		Use: "passwd ADDRESS --password-stdin", Short: "change an account's password", Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(pwStdin)
			if err != nil {
				return err
			}
			return a.showUser(cmd, "user.passwd", passwdArgs{Address: args[0], Password: pw}, "password changed")
		},
	}
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")

	show := &cobra.Command{
		Use: "show ADDRESS", Short: "state, class, usage against quota, last use", Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.showUser(cmd, "user.show", addressArgs{Address: args[0]}, "")
		},
	}

	var state string
	list := &cobra.Command{
		Use: "list [--state S]", Short: "list accounts", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, ok := accounts.ParseState(state); state != "" && !ok {
				return usagef("--state %q: use active, blocked, pending-deletion or purged", state)
			}
			return a.listUsers(cmd, state)
		},
	}
	list.Flags().StringVar(&state, "state", "", "only accounts in this state (active, blocked, pending-deletion, purged)")

	set := &cobra.Command{
		Use:   "set ADDRESS [--phone P] [--class C] [--quota-storage SIZE|default] [--quota-messages N|default] [--exempt] [--ban-services LIST|none]",
		Short: "change data, class or per-account limits", Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := userSetArgs{Address: args[0]}
			f := cmd.Flags()
			for name, dst := range map[string]**string{"phone": &s.Phone, "class": &s.Class, "quota-storage": &s.QuotaStorage, "quota-messages": &s.QuotaMessages, "ban-services": &s.BanServices} {
				if f.Changed(name) {
					v, _ := f.GetString(name)
					*dst = &v
				}
			}
			if s.QuotaStorage != nil && *s.QuotaStorage != "default" {
				if _, err := parseSize(*s.QuotaStorage); err != nil {
					return usageError{err}
				}
			}
			if s.QuotaMessages != nil && *s.QuotaMessages != "default" {
				if _, err := parseCount(*s.QuotaMessages); err != nil {
					return usageError{err}
				}
			}
			if f.Changed("exempt") {
				v, _ := f.GetBool("exempt")
				s.Exempt = &v
			}
			if s.BanServices != nil {
				if _, err := parseBannedServices(*s.BanServices); err != nil {
					return err
				}
			}
			if s.Phone == nil && s.Class == nil && s.QuotaStorage == nil && s.QuotaMessages == nil && s.Exempt == nil && s.BanServices == nil {
				return usagef("user set: nothing to change (give --phone, --class, --quota-storage, --quota-messages, --exempt or --ban-services)")
			}
			return a.showUser(cmd, "user.set", s, "changed")
		},
	}
	set.Flags().String("phone", "", "new mobile phone (E.164)")
	set.Flags().String("class", "", "new class")
	set.Flags().String("quota-storage", "", "storage limit for this account (SIZE, 0 = unlimited, default = the class's)")
	set.Flags().String("quota-messages", "", "message limit for this account (N, 0 = unlimited, default = the class's)")
	set.Flags().Bool("exempt", false, "a role account never deleted for inactivity (--exempt=false to undo)")
	set.Flags().String("ban-services", "", "bar this account from services its class allows: imap, submission (comma-separated), or none to lift the ban")

	consent := a.userConsentCmd()

	var reason string
	block := &cobra.Command{
		Use: "block ADDRESS --reason TEXT", Short: "block an account (operator)", Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usagef("user block needs --reason")
			}
			return a.showUser(cmd, "user.block", blockArgs{Address: args[0], Reason: reason}, "blocked")
		},
	}
	block.Flags().StringVar(&reason, "reason", "", "why (kept in the audit log)")
	simple := func(use, short, op, done string) *cobra.Command {
		return &cobra.Command{
			Use: use + " ADDRESS", Short: short, Args: exactArgs("ADDRESS"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.showUser(cmd, op, addressArgs{Address: args[0]}, done)
			},
		}
	}
	var limit int
	logins := &cobra.Command{
		Use: "logins ADDRESS [--limit N]", Short: "the account's login history, newest first (time, service, address, client, outcome)",
		Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usagef("--limit must be 0 (all) or more")
			}
			var out []store.LoginRecord
			if err := a.client().call(cmd.Context(), "user.logins", userLoginsArgs{Address: args[0], Limit: limit}, &out); err != nil {
				return err
			}
			return a.emit(out, func(w io.Writer) { printLogins(w, out) })
		},
	}
	logins.Flags().IntVar(&limit, "limit", 50, "at most this many records (0: all kept)")
	return group("user", "subscriber accounts", add, list, show, passwd, set, block, consent, logins, a.appPasswordCmd(),
		simple("unblock", "lift an operator block", "user.unblock", "unblocked"),
		simple("delete", "start the one-month deletion grace", "user.delete", "scheduled for deletion"),
		simple("restore", "undo a deletion inside its grace", "user.restore", "restored"),
	)
}

// showUser runs an operation answering with an account and prints it.
func (a *app) showUser(cmd *cobra.Command, op string, args any, done string) error {
	var v userView
	if err := a.client().call(cmd.Context(), op, args, &v); err != nil {
		return err
	}
	return a.emit(v, func(w io.Writer) {
		if done != "" {
			fmt.Fprintf(w, "%s %s\n", v.Address, done)
			if v.GraceUntil != nil && v.State == string(accounts.PendingDeletion) {
				fmt.Fprintf(w, "restorable until %s\n", v.GraceUntil.Format(time.RFC3339))
			}
			return
		}
		printUser(w, &v)
	})
}

func printLogins(w io.Writer, recs []store.LoginRecord) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no logins recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSERVICE\tADDRESS\tCLIENT\tOUTCOME")
	for _, r := range recs {
		client := r.Client
		if client == "" {
			client = "-"
		}
		outcome := r.Outcome
		if r.Reason != "" {
			outcome += " (" + r.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.At.Format(time.RFC3339), r.Service, r.Address, client, outcome)
	}
	tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func fmtLimit(n int64, size bool) string {
	if n == 0 {
		return "unlimited"
	}
	if size {
		return formatSize(n)
	}
	return fmt.Sprint(n)
}

func printUser(w io.Writer, v *userView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "address:\t%s\n", v.Address)
	fmt.Fprintf(tw, "account id:\t%d\n", v.ID)
	fmt.Fprintf(tw, "state:\t%s\n", v.State)
	if v.Class != "" {
		fmt.Fprintf(tw, "class:\t%s\n", v.Class)
	}
	if v.Phone != "" {
		fmt.Fprintf(tw, "phone:\t%s\n", v.Phone)
	}
	fmt.Fprintf(tw, "created:\t%s\n", v.CreatedAt.Format(time.RFC3339))
	if v.LastUseAt != nil {
		fmt.Fprintf(tw, "last use:\t%s\n", fmtTime(v.LastUseAt))
	}
	if v.BlockReason != "" {
		fmt.Fprintf(tw, "blocked:\t%s (%s)\n", fmtTime(v.BlockedAt), v.BlockReason)
	}
	if v.GraceUntil != nil {
		fmt.Fprintf(tw, "deletion:\t%s, restorable until %s\n", fmtTime(v.DeletionAt), fmtTime(v.GraceUntil))
	}
	if v.PurgedAt != nil {
		fmt.Fprintf(tw, "purged:\t%s\n", fmtTime(v.PurgedAt))
	}
	if len(v.BannedServices) > 0 {
		fmt.Fprintf(tw, "banned:\t%s\n", strings.Join(v.BannedServices, ", "))
	}
	if c := v.Consent; c != nil {
		fmt.Fprintf(tw, "consent:\t%s, certificate %s (serial %s, valid to %s)\n", c.RecordedAt.Format(time.RFC3339), c.Subject, c.Serial, c.NotAfter.Format("2006-01-02"))
		printConsentDetail(tw, c, v.ConsentStatus)
	}
	if u := v.Usage; u != nil {
		fmt.Fprintf(tw, "storage:\t%s of %s\n", formatSize(u.StorageBytes), fmtLimit(u.StorageLimit, true))
		fmt.Fprintf(tw, "messages:\t%d of %s\n", u.Messages, fmtLimit(u.MessagesLimit, false))
		fmt.Fprintf(tw, "today:\t%d received, %d sent\n", u.ReceivedToday, u.SentToday)
	}
	tw.Flush()
}

// listUsers pages through the accounts, printing as it goes so memory
// stays flat however many accounts there are.
func (a *app) listUsers(cmd *cobra.Command, state string) error {
	c := a.client()
	var tw *tabwriter.Writer
	first := true
	var page userPage
	if err := c.call(cmd.Context(), "user.list", userListArgs{State: state, Limit: 500}, &page); err != nil {
		return err
	}
	if a.json {
		fmt.Fprint(a.out, "[")
	} else {
		tw = tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		if state == string(accounts.Purged) {
			fmt.Fprintln(tw, "ADDRESS\tCREATED\tDELETION\tPURGED")
		} else {
			fmt.Fprintln(tw, "ADDRESS\tSTATE\tCLASS\tSTORAGE\tMESSAGES\tLAST USE")
		}
	}
	for {
		for _, v := range page.Users {
			if a.json {
				raw, _ := jsonMarshal(v)
				if !first {
					fmt.Fprint(a.out, ",")
				}
				fmt.Fprintf(a.out, "\n  %s", raw)
				first = false
				continue
			}
			if v.State == string(accounts.Purged) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Address, v.CreatedAt.Format(time.RFC3339), fmtTime(v.DeletionAt), fmtTime(v.PurgedAt))
				continue
			}
			storage, msgs := "-", "-"
			if u := v.Usage; u != nil {
				storage = formatSize(u.StorageBytes) + "/" + fmtLimit(u.StorageLimit, true)
				msgs = fmt.Sprintf("%d/%s", u.Messages, fmtLimit(u.MessagesLimit, false))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Address, v.State, v.Class, storage, msgs, fmtTime(v.LastUseAt))
		}
		if page.Next == 0 {
			break
		}
		after := page.Next
		page = userPage{}
		if err := c.call(cmd.Context(), "user.list", userListArgs{State: state, After: after, Limit: 500}, &page); err != nil {
			return err
		}
	}
	if a.json {
		if !first {
			fmt.Fprint(a.out, "\n")
		}
		fmt.Fprintln(a.out, "]")
		return nil
	}
	return tw.Flush()
}
