package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/store"
)

type noticeArgs struct {
	MessageID string `json:"message_id"`
	Sender    string `json:"sender,omitempty"`
}

func init() {
	register("notice.show", func(ctx context.Context, e *env, a noticeArgs) (store.Notice, error) {
		if store.NormalizeMessageID(a.MessageID) == "" {
			return store.Notice{}, fmt.Errorf("a Message-ID is required")
		}
		return e.store.Notice(a.MessageID, a.Sender)
	})
	register("notice.verify", func(ctx context.Context, e *env, _ struct{}) (store.LedgerReport, error) {
		return e.store.VerifyLedger()
	})
}

func (a *app) noticeCmd() *cobra.Command {
	var sender string
	show := &cobra.Command{
		Use: "show MESSAGE-ID [--sender NAME]", Short: "delivery and first-read record of an official letter", Args: exactArgs("MESSAGE-ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n store.Notice
			if err := a.client().call(cmd.Context(), "notice.show", noticeArgs{MessageID: args[0], Sender: sender}, &n); err != nil {
				return err
			}
			return a.emit(n, func(w io.Writer) {
				fmt.Fprintf(w, "message %s from %s\n", n.MessageID, n.Sender)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RECIPIENT\tACCEPTED\tSTORED\tFIRST READ\tDELETED")
				for _, r := range n.Recipients {
					if r.Refused != "" {
						fmt.Fprintf(tw, "%s\trefused: %s\t\t\t\n", r.Address, r.Refused)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Address, fmtT(r.AcceptedAt), fmtT(r.StoredAt), fmtT(r.FirstReadAt), fmtT(r.DeletedAt))
				}
				tw.Flush()
			})
		},
	}
	show.Flags().StringVar(&sender, "sender", "", "the trusted sender, when several used the same Message-ID")
	verify := &cobra.Command{
		Use: "verify", Short: "recompute the notice ledger's hash chain", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r store.LedgerReport
			if err := a.client().call(cmd.Context(), "notice.verify", struct{}{}, &r); err != nil {
				return err
			}
			if err := a.emit(r, func(w io.Writer) {
				if r.OK {
					fmt.Fprintf(w, "ledger ok: %d entries\n", r.Entries)
				} else {
					fmt.Fprintf(w, "ledger broken at entry %d: %s\n", r.BrokenAt, r.Problem)
				}
			}); err != nil {
				return err
			}
			if !r.OK {
				return fmt.Errorf("the notice ledger is broken at entry %d: %s", r.BrokenAt, r.Problem)
			}
			return nil
		},
	}
	return group("notice", "official letters: delivery and first-read records", show, verify)
}

func fmtT(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
