package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"abox/policy"
)

type policyRunArgs struct {
	At     time.Time `json:"at"`
	DryRun bool      `json:"dry_run"`
}

type policyRunResult struct {
	At      time.Time            `json:"at"`
	DryRun  bool                 `json:"dry_run"`
	Actions []policy.SweepAction `json:"actions"`
}

func init() {
	register("policy.run", func(ctx context.Context, e *env, a policyRunArgs) (policyRunResult, error) {
		at := a.At
		if at.IsZero() {
			at = e.now()
		}
		res := policyRunResult{At: at.UTC(), DryRun: a.DryRun, Actions: []policy.SweepAction{}}
		err := e.policy().Sweep(ctx, at, a.DryRun, func(act policy.SweepAction) {
			res.Actions = append(res.Actions, act)
		})
		return res, err
	})
}

func (a *app) policyCmd() *cobra.Command {
	var at string
	var dry bool
	run := &cobra.Command{
		Use:   "run [--at RFC3339] [--dry-run]",
		Short: "run the retention and inactivity sweeps now, as of the given time; prints every action",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			args := policyRunArgs{DryRun: dry}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usagef("--at %q: use RFC 3339, e.g. 2027-01-02T15:04:05Z", at)
				}
				args.At = t
			}
			var res policyRunResult
			if err := a.client().call(cmd.Context(), "policy.run", args, &res); err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				prefix := ""
				if res.DryRun {
					prefix = "would "
				}
				for _, act := range res.Actions {
					fmt.Fprintf(w, "%s%s %s", prefix, act.Action, act.Account)
					if act.Detail != "" {
						fmt.Fprintf(w, ": %s", act.Detail)
					}
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "%d actions as of %s\n", len(res.Actions), res.At.Format(time.RFC3339))
			})
		},
	}
	run.Flags().StringVar(&at, "at", "", "the time to sweep as of (RFC 3339; default now)")
	run.Flags().BoolVar(&dry, "dry-run", false, "print what would be done; change nothing")
	return group("policy", "the terms of service's sweeps", run)
}
