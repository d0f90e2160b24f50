package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// usageError marks a command line that cannot be run as typed (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// isCobraUsage recognises the few usage errors cobra creates itself
// without a hook (an unknown subcommand of the root).
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// app is the state every command shares: the global flags and, once
// parsed, the configuration.
type app struct {
	cfg        Config
	configPath string
	json       bool
	out        io.Writer
	log        *slog.Logger
}

func newRoot() *cobra.Command {
	a := &app{cfg: defaultConfig(), out: os.Stdout}
	root := &cobra.Command{
		Use:           "abox",
		Short:         "Mail server for subscriber mailboxes",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		Version:       versionLine(),
		RunE:          func(cmd *cobra.Command, _ []string) error { return usagef("missing command; see abox --help") },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveConfig(&a.cfg, a.configPath, cmd.Flags()); err != nil {
				return err
			}
			a.log = newLogger(&a.cfg, os.Stderr)
			return nil
		},
	}
	root.SetVersionTemplate("abox {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.Data, "data", a.cfg.Data, "data directory (env ABOX_DATA)")
	pf.StringVar(&a.cfg.Store, "store", a.cfg.Store, "PostgreSQL backend: postgres://USER@HOST/DB (env ABOX_STORE); empty: the bbolt file in the data directory")
	pf.StringVar(&a.configPath, "config", "", "TOML config file (default DIR/abox.toml when it exists)")
	pf.BoolVar(&a.json, "json", false, "print JSON")
	root.AddCommand(
		a.serveCmd(), a.domainCmd(), a.userCmd(), a.classCmd(), a.senderCmd(), a.tokenCmd(), a.queueCmd(),
		a.auditCmd(), a.contentCmd(), a.backupCmd(), a.restoreCmd(), a.checkCmd(), a.migrateCmd(), a.noticeCmd(), a.broadcastCmd(), a.policyCmd(), a.mailioCmd("import"), a.mailioCmd("export"),
	)
	return root
}

// group makes a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use: use, Short: short, Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usagef("missing subcommand for %q; see %s --help", cmd.CommandPath(), cmd.CommandPath())
		},
	}
	c.AddCommand(subs...)
	return c
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s needs %s (got %d arguments)", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// minArgs wants at least n arguments, named name in the message.
func minArgs(n int, name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s needs at least %d %s", cmd.CommandPath(), n, name)
		}
		return nil
	}
}

func (a *app) client() *client { return &client{cfg: &a.cfg, log: a.log} }

// emit prints v as JSON with --json, or with human otherwise.
func (a *app) emit(v any, human func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(a.out)
	return nil
}

// readPassword takes a password from stdin (--password-stdin: the first
// line) or prompts twice on a terminal. It is never a flag value.
func readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReaderSize(os.Stdin, 4096).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", usagef("--password-stdin: stdin held no password")
		}
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usagef("no password: give it on stdin with --password-stdin (passwords are never flag values)")
	}
	fmt.Fprint(os.Stderr, "Password: ")
	p1, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(os.Stderr, "Repeat password: ")
	p2, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", errors.New("the passwords do not match")
	}
	return string(p1), nil
}

// newLogger logs text on a terminal and JSON otherwise (for journald and
// log shippers), every field capped and repeated lines summarised
// (loghandler.go).
func newLogger(cfg *Config, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if term.IsTerminal(int(w.Fd())) {
			format = "text"
		}
	}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(newGuardedHandler(h, cfg.LogMaxField, cfg.LogRepeatLimit, time.Now))
}

// flushLog writes the repeated-line summaries still pending.
func flushLog(l *slog.Logger) {
	if g, ok := l.Handler().(*guardedHandler); ok {
		g.Flush()
	}
}
