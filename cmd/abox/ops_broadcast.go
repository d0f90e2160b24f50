package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"abox/policy"
	"abox/store"
)

type broadcastArgs struct {
	Sender  string `json:"sender"`
	Message []byte `json:"message"`
	Class   string `json:"class,omitempty"`
	Again   bool   `json:"again,omitempty"`
}

// progressBar shows a long operation's progress lines as a bar on a
// terminal (nothing otherwise). parse reads one line's done and total.
func progressBar(name string, parse func(json.RawMessage) (done, total int64, ok bool)) (onProgress func(json.RawMessage), finish func()) {
	var bar *progressbar.ProgressBar
	onProgress = func(raw json.RawMessage) {
		done, total, ok := parse(raw)
		if !ok {
			return
		}
		if bar == nil && term.IsTerminal(int(os.Stderr.Fd())) {
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(name), progressbar.OptionShowCount(),
				progressbar.OptionThrottle(100e6), progressbar.OptionClearOnFinish())
		}
		if bar != nil {
			bar.Set64(done)
		}
	}
	finish = func() {
		if bar != nil {
			bar.Finish()
		}
	}
	return onProgress, finish
}

// broadcastProgress is what a running broadcast reports after each batch.
type broadcastProgress struct {
	Scanned   int64 `json:"scanned"`
	Total     int64 `json:"total"`
	Delivered int64 `json:"delivered"`
	Skipped   int64 `json:"skipped"`
	Refused   int64 `json:"refused"`
}

func init() {
	register("broadcast", func(ctx context.Context, e *env, a broadcastArgs) (store.Broadcast, error) {
		return e.policy().Broadcast(ctx, policy.BroadcastRequest{
			Sender: a.Sender, Message: a.Message, Class: a.Class, Hostname: e.cfg.Hostname, Again: a.Again,
			Progress: func(b store.Broadcast, total int64) {
				if e.progress != nil {
					e.progress(broadcastProgress{Scanned: b.Scanned, Total: total, Delivered: b.Delivered, Skipped: b.Skipped, Refused: b.Refused})
				}
			},
		})
	})
}

func (a *app) broadcastCmd() *cobra.Command {
	var from, file, class string
	var again bool
	c := &cobra.Command{
		Use:   "broadcast --from SENDER --file MSG.eml [--class C] [--again]",
		Short: "deliver one message to every active account (or one class); resumable",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || file == "" {
				return usagef("broadcast needs --from SENDER and --file MSG.eml")
			}
			msg, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			onProgress, finish := progressBar("broadcast", func(raw json.RawMessage) (int64, int64, bool) {
				var p broadcastProgress
				err := json.Unmarshal(raw, &p)
				return p.Scanned, p.Total, err == nil
			})
			var b store.Broadcast
			err = a.client().callProgress(cmd.Context(), "broadcast", broadcastArgs{Sender: from, Message: msg, Class: class, Again: again}, &b, onProgress)
			finish()
			if err != nil {
				return err
			}
			return a.emit(b, func(w io.Writer) {
				fmt.Fprintf(w, "broadcast %d from %s: %d delivered, %d skipped, %d refused (no consent)\n", b.ID, b.Sender, b.Delivered, b.Skipped, b.Refused)
				for _, s := range b.Sample {
					fmt.Fprintln(w, "skipped:", s)
				}
			})
		},
	}
	c.Flags().StringVar(&from, "from", "", "trusted sender NAME (see abox sender add)")
	c.Flags().StringVar(&file, "file", "", "the message (RFC 5322), its From: one of the sender's addresses")
	c.Flags().StringVar(&class, "class", "", "only accounts of this class")
	c.Flags().BoolVar(&again, "again", false, "send a message that was already broadcast once more (without it, a finished broadcast of the same file is refused)")
	return c
}
