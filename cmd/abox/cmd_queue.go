package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/store"
)

// The outbound queue (issue 17) for the operator, as postqueue/postsuper
// are for Postfix: list and show entries, retry now, hold (a suspected
// compromised account), release, drop (removed silently, no
// notification to the sender).

type queueListArgs struct {
	Held    bool   `json:"held,omitempty"`
	Domain  string `json:"domain,omitempty"`
	Account string `json:"account,omitempty"`
	After   uint64 `json:"after,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

type queueActArgs struct {
	IDs    []uint64 `json:"ids"`
	Reason string   `json:"reason,omitempty"`
	// Instead of IDs: every entry (All), or those an account sent or
	// to a domain.
	All     bool   `json:"all,omitempty"`
	Account string `json:"account,omitempty"`
	Domain  string `json:"domain,omitempty"`
}

type queueActed struct {
	ID     uint64 `json:"id,omitempty"`
	Domain string `json:"domain,omitempty"`
	Action string `json:"action"`
	// Count is how many entries a selection (--all, --account, --domain)
	// changed.
	Count int `json:"count,omitempty"`
}

// queueView is an entry as the operator sees it.
type queueView struct {
	store.QueueEntry
	Sender string `json:"sender_address,omitempty"` // the submitting account
	State  string `json:"state"`                    // waiting, sending, held
}

func (e *env) queueView(q store.QueueEntry) queueView {
	v := queueView{QueueEntry: q, State: "waiting"}
	switch {
	case q.Held:
		v.State = "held"
	case q.Leased:
		v.State = "sending"
	}
	if q.Account != 0 {
		if a, err := e.store.AccountByID(q.Account); err == nil {
			v.Sender = a.Address()
		}
	}
	return v
}

func init() {
	register("queue.list", func(ctx context.Context, e *env, a queueListArgs) ([]queueView, error) {
		var acct uint64
		if a.Account != "" {
			ac, err := e.store.Account(strings.ToLower(a.Account))
			if err != nil {
				return nil, err
			}
			acct = ac.ID
		}
		limit := a.Limit
		if limit <= 0 {
			limit = 100
		}
		out := []queueView{}
		after := a.After
		// Filtering by account reads on past non-matching pages, a
		// bounded number of them.
		for range 100 {
			list, err := e.store.QueueList(store.QueueFilter{After: after, Limit: limit, Held: a.Held, Domain: strings.ToLower(a.Domain)})
			if err != nil {
				return nil, err
			}
			for _, q := range list {
				if acct == 0 || q.Account == acct {
					out = append(out, e.queueView(q))
				}
			}
			if len(list) < limit || len(out) >= limit {
				break
			}
			after = list[len(list)-1].ID
		}
		if len(out) > limit {
			out = out[:limit]
		}
		return out, e.auditRead(ctx, "queue.list", a.Account)
	})
	register("queue.show", func(ctx context.Context, e *env, a queueActArgs) ([]queueView, error) {
		out := []queueView{}
		for _, id := range a.IDs {
			q, err := e.store.QueueGet(id)
			if err != nil {
				return nil, fmt.Errorf("queue entry %d: %w", id, err)
			}
			out = append(out, e.queueView(q))
		}
		return out, e.auditRead(ctx, "queue.show", "")
	})
	for name, act := range map[string]store.QueueAction{"hold": store.QueueHold, "release": store.QueueRelease, "retry": store.QueueRetry, "drop": store.QueueDrop} {
		register("queue."+name, func(ctx context.Context, e *env, a queueActArgs) ([]queueActed, error) {
			out := []queueActed{}
			if a.All || a.Account != "" || a.Domain != "" {
				var sel store.QueueSelect
				if a.Account != "" {
					ac, err := e.store.Account(strings.ToLower(a.Account))
					if err != nil {
						return nil, err
					}
					sel.Account = ac.ID
				}
				sel.Domain = strings.ToLower(a.Domain)
				n, err := e.store.QueueChangeAll(ctx, sel, act, a.Reason, e.audit(""), strings.ToLower(a.Account))
				if e.engine != nil && (act == store.QueueRelease || act == store.QueueRetry) {
					e.engine.WakeOutbound()
				}
				return []queueActed{{Action: name, Count: n}}, err
			}
			for _, id := range a.IDs {
				q, err := e.store.QueueChange(ctx, id, act, a.Reason, e.audit(""))
				if err != nil {
					return out, fmt.Errorf("queue entry %d: %w", id, err)
				}
				out = append(out, queueActed{ID: id, Domain: q.Domain, Action: name})
			}
			if e.engine != nil && (act == store.QueueRelease || act == store.QueueRetry) {
				e.engine.WakeOutbound()
			}
			return out, nil
		})
	}
}

func (a *app) queueCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "the outbound queue: list, show, retry, hold, release, drop"}
	var la queueListArgs
	list := &cobra.Command{
		Use: "list [--held] [--domain DOMAIN] [--account ADDRESS] [--after ID] [--limit N]", Short: "list queued outbound messages, oldest first", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var vs []queueView
			if err := a.client().call(cmd.Context(), "queue.list", la, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAGE\tSTATE\tDOMAIN\tFROM\tPENDING\tATTEMPTS\tNEXT\tLAST ERROR")
				now := time.Now()
				for _, v := range vs {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", v.ID, age(now.Sub(v.CreatedAt)), v.State, v.Domain, orNull(v.From),
						v.Pending(), len(v.Recipients), v.Attempts, v.NextAttempt.Local().Format("2006-01-02 15:04:05"), v.LastError)
				}
				tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&la.Held, "held", false, "held entries only")
	list.Flags().StringVar(&la.Domain, "domain", "", "entries to this destination domain only")
	list.Flags().StringVar(&la.Account, "account", "", "entries this subscriber sent only")
	list.Flags().Uint64Var(&la.After, "after", 0, "start after this entry id (paging)")
	list.Flags().IntVar(&la.Limit, "limit", 100, "at most this many")
	show := &cobra.Command{
		Use: "show ID...", Short: "show queued entries with each recipient's state and last reply", Args: minArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := queueIDs(args)
			if err != nil {
				return err
			}
			var vs []queueView
			if err := a.client().call(cmd.Context(), "queue.show", queueActArgs{IDs: ids}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				for _, v := range vs {
					fmt.Fprintf(w, "entry %d: %s, to %s\n", v.ID, v.State, v.Domain)
					if v.HeldReason != "" {
						fmt.Fprintf(w, "  held: %s\n", v.HeldReason)
					}
					fmt.Fprintf(w, "  from <%s>%s, message-id <%s>, %d bytes\n", v.From, ifNotEmpty(" (account "+v.Sender+")", v.Sender), v.MessageID, v.Size)
					fmt.Fprintf(w, "  accepted %s, %d attempts, next %s\n", v.CreatedAt.Format(time.RFC3339), v.Attempts, v.NextAttempt.Format(time.RFC3339))
					for _, r := range v.Recipients {
						st := r.Status
						if st == "" {
							st = "pending"
						}
						fmt.Fprintf(w, "  <%s> %s %s\n", r.Address, st, r.Reply)
					}
				}
			})
		},
	}
	act := func(name, short string) *cobra.Command {
		var sel queueActArgs
		c := &cobra.Command{
			Use: name + " ID... | --all | --account ADDRESS | --domain DOMAIN", Short: short,
			RunE: func(cmd *cobra.Command, args []string) error {
				selected := sel.All || sel.Account != "" || sel.Domain != ""
				if selected == (len(args) > 0) {
					return usagef("queue %s takes entry ids or one of --all, --account, --domain", name)
				}
				ids, err := queueIDs(args)
				if err != nil {
					return err
				}
				sel.IDs = ids
				var vs []queueActed
				err = a.client().call(cmd.Context(), "queue."+name, sel, &vs)
				if err != nil && len(vs) == 0 {
					return err
				}
				if eerr := a.emit(vs, func(w io.Writer) {
					for _, v := range vs {
						if v.ID == 0 {
							fmt.Fprintf(w, "%d queue entries: %s\n", v.Count, v.Action)
						} else {
							fmt.Fprintf(w, "queue entry %d (%s): %s\n", v.ID, v.Domain, v.Action)
						}
					}
				}); eerr != nil {
					return eerr
				}
				return err
			},
		}
		f := c.Flags()
		f.BoolVar(&sel.All, "all", false, "every entry it applies to")
		f.StringVar(&sel.Account, "account", "", "the entries this subscriber sent")
		f.StringVar(&sel.Domain, "domain", "", "the entries to this destination domain")
		if name == "hold" || name == "drop" {
			f.StringVar(&sel.Reason, "reason", "", "why (kept in the audit log)")
		}
		return c
	}
	cmd.AddCommand(list, show,
		act("retry", "try entries again now (held ones stay held); --all flushes the queue"),
		act("hold", "stop sending entries until released"),
		act("release", "release held entries: they are tried at once"),
		act("drop", "remove entries without telling their senders"))
	return cmd
}

func queueIDs(args []string) ([]uint64, error) {
	var ids []uint64
	for _, s := range args {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil || id == 0 {
			return nil, usagef("%q is not a queue entry id", s)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func orNull(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

func ifNotEmpty(s, test string) string {
	if test == "" {
		return ""
	}
	return s
}
