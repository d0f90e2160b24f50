package policy

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strings"
	"text/template"
	"time"

	"abox/accounts"
	"abox/store"
)

// The sweeps carry out the terms of service over time:
//   - retention: Trash and Junk keep mail as long as the class says, and
//     a class may set a maximum age for any message (user agreement 3.1);
//   - inactivity (2.10.2): a mailbox unused for more than 11 months gets
//     one warning letter; past 12 months it enters the one-month deletion
//     grace (2.12.1); when the grace has ended, its content is deleted and
//     its login freed (2.12.1.2).
// Every action is reported and written to the audit log. Work goes in
// bounded transactions so delivery never waits long behind a sweep.

// SweepAction is one thing a sweep did (or would do, in a dry run).
type SweepAction struct {
	At      time.Time `json:"at"`
	Action  string    `json:"action"` // warn, pending-deletion, purge, destroy-sealed, retention, max-age
	Account string    `json:"account"`
	Detail  string    `json:"detail,omitempty"`
}

// LifecycleConfig sets the inactivity letter and the legal hold.
type LifecycleConfig struct {
	// Operator signs the warning letter.
	Operator string
	// Template, when set, replaces the built-in warning letter: a
	// text/template of a whole message (see policy/letters).
	Template string
	// LegalHold keeps a purged account's content sealed this long
	// before destroying it (privacy policy 4.3); 0 destroys at once.
	LegalHold time.Duration
}

//go:embed letters/inactivity-warning.eml
var defaultWarning string

// sweepBatch bounds the accounts looked at per read.
const sweepBatch = 500

// Sweep runs every sweep as of time at. In a dry run nothing is written;
// report still gets every action that would be taken.
func (e *Engine) Sweep(ctx context.Context, at time.Time, dryRun bool, report func(SweepAction)) error {
	at = at.UTC()
	if report == nil {
		report = func(SweepAction) {}
	}
	steps := []func(context.Context, time.Time, bool, func(SweepAction)) error{
		e.sweepWarnings, e.sweepInactive, e.sweepPurge, e.sweepSealed, e.sweepRetention,
		e.sweepVanished, e.sweepLoginHistory, e.sweepLoginCounters, e.sweepAudit,
	}
	for _, step := range steps {
		if err := step(ctx, at, dryRun, report); err != nil {
			return err
		}
	}
	return nil
}

var policyActor = store.Audit{Actor: store.ActorPolicy}

// unused walks the accounts (not purged) whose last use is before cutoff,
// oldest first, through the last-use index.
func (e *Engine) unused(ctx context.Context, cutoff time.Time, fn func(*accounts.Account) error) error {
	var afterUse time.Time
	var afterID uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := e.store.AccountsUnusedSince(cutoff, afterUse, afterID, sweepBatch)
		if err != nil || len(page) == 0 {
			return err
		}
		for i := range page {
			afterUse, afterID = page[i].LastUseAt, page[i].ID
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
	}
}

// sweepWarnings delivers one warning letter to every active account unused
// for more than 11 months and not warned since its last use.
func (e *Engine) sweepWarnings(ctx context.Context, at time.Time, dryRun bool, report func(SweepAction)) error {
	return e.unused(ctx, at.AddDate(0, -11, 0), func(a *accounts.Account) error {
		if a.State != accounts.Active || a.Exempt || !a.WarnedAt.IsZero() && !a.WarnedAt.Before(a.LastUseAt) {
			return nil
		}
		deadline := a.LastUseAt.AddDate(1, 0, 0)
		act := SweepAction{At: at, Action: "warn", Account: a.Address(),
			Detail: fmt.Sprintf("unused since %s; deletion grace starts after %s", a.LastUseAt.Format("2006-01-02"), deadline.Format("2006-01-02"))}
		if !dryRun {
			body, err := e.warningLetter(a, at, deadline)
			if err != nil {
				return err
			}
			if _, err := e.store.Deliver(ctx, &store.Delivery{Body: body, InternalDate: at, AllOrNothing: true,
				Recipients: []store.Recipient{{Account: a.ID, NotReceived: true}}}); err != nil {
				return fmt.Errorf("warning letter to %s: %w", a.Address(), err)
			}
			if _, err := e.store.UpdateAccountByID(ctx, a.ID, "user.warn-inactive", func(x *accounts.Account) error {
				x.WarnedAt = at
				return nil
			}, store.Audit{Actor: store.ActorPolicy, Reason: act.Detail}); err != nil {
				return err
			}
		}
		report(act)
		return nil
	})
}

// sweepInactive moves every active or blocked account unused for more
// than 12 months into the deletion grace, ending one month after at.
// Blocked accounts are not exempt from clause 2.10.2: a block is not a
// use, so the months run from the last login before it; the grace keeps
// the block (Restore returns the account to blocked). They get no
// warning letter, which they could not read.
func (e *Engine) sweepInactive(ctx context.Context, at time.Time, dryRun bool, report func(SweepAction)) error {
	return e.unused(ctx, at.AddDate(-1, 0, 0), func(a *accounts.Account) error {
		if a.State != accounts.Active && a.State != accounts.Blocked || a.Exempt {
			return nil
		}
		reason := fmt.Sprintf("unused since %s (user agreement 2.10.2)", a.LastUseAt.Format("2006-01-02"))
		act := SweepAction{At: at, Action: "pending-deletion", Account: a.Address(),
			Detail: reason + "; grace ends " + accounts.GraceEnd(at).Format(time.RFC3339)}
		if !dryRun {
			if _, err := e.store.UpdateAccountByID(ctx, a.ID, "user.pending-deletion", func(x *accounts.Account) error {
				return x.StartDeletion(reason, at)
			}, store.Audit{Actor: store.ActorPolicy, Reason: reason}); err != nil {
				return err
			}
		}
		report(act)
		return nil
	})
}

// sweepPurge purges every account whose grace ended before at.
func (e *Engine) sweepPurge(ctx context.Context, at time.Time, dryRun bool, report func(SweepAction)) error {
	var after uint64
	for {
		page, err := e.store.ListAccounts(store.AccountFilter{State: accounts.PendingDeletion, After: after, Limit: sweepBatch})
		if err != nil || len(page) == 0 {
			return err
		}
		for _, a := range page {
			after = a.ID
			if !a.GraceUntil.Before(at) {
				continue
			}
			act := SweepAction{At: at, Action: "purge", Account: a.Address(), Detail: "grace ended " + a.GraceUntil.Format(time.RFC3339)}
			if e.life.LegalHold > 0 {
				act.Detail += fmt.Sprintf("; content sealed until %s", at.Add(e.life.LegalHold).Format(time.RFC3339))
			}
			if !dryRun {
				if _, err := e.store.PurgeAccount(ctx, a.Address(), at, e.life.LegalHold, store.Audit{Actor: store.ActorPolicy, Reason: act.Detail}); err != nil {
					return err
				}
			}
			report(act)
		}
	}
}

// sweepSealed destroys content whose legal hold has ended.
func (e *Engine) sweepSealed(ctx context.Context, at time.Time, dryRun bool, report func(SweepAction)) error {
	if dryRun {
		var after uint64
		for {
			page, err := e.store.ListAccounts(store.AccountFilter{State: accounts.Purged, After: after, Limit: sweepBatch})
			if err != nil || len(page) == 0 {
				return err
			}
			for _, a := range page {
				after = a.ID
				if !a.SealedUntil.IsZero() && a.SealedUntil.Before(at) {
					report(SweepAction{At: at, Action: "destroy-sealed", Account: a.Address()})
				}
			}
		}
	}
	done, err := e.store.DestroySealed(ctx, at, policyActor)
	for _, addr := range done {
		report(SweepAction{At: at, Action: "destroy-sealed", Account: addr})
	}
	return err
}

// sweepRetention expunges Trash and Junk messages older than the class
// keeps them, and any message older than the class's maximum age
// (counted from when it entered its mailbox).
func (e *Engine) sweepRetention(ctx context.Context, at time.Time, dryRun bool, report func(SweepAction)) error {
	var after uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := e.store.ListAccounts(store.AccountFilter{After: after, Limit: sweepBatch})
		if err != nil || len(page) == 0 {
			return err
		}
		for i := range page {
			a := &page[i]
			after = a.ID
			if a.State == accounts.Purged {
				continue
			}
			lim, err := e.LimitsOf(a)
			if err != nil {
				return err
			}
			if lim.RetentionTrash == 0 && lim.RetentionJunk == 0 && lim.MaxAge == 0 {
				continue
			}
			mbs, err := e.store.Mailboxes(a.ID)
			if err != nil {
				return err
			}
			for _, mb := range mbs {
				keep, action := lim.MaxAge, "max-age"
				switch {
				case strings.EqualFold(mb.SpecialUse, `\Trash`) && lim.RetentionTrash > 0 && (keep == 0 || lim.RetentionTrash < keep):
					keep, action = lim.RetentionTrash, "retention"
				case strings.EqualFold(mb.SpecialUse, `\Junk`) && lim.RetentionJunk > 0 && (keep == 0 || lim.RetentionJunk < keep):
					keep, action = lim.RetentionJunk, "retention"
				}
				if keep == 0 || mb.Messages == 0 {
					continue
				}
				n, err := e.expireMailbox(ctx, a.ID, mb.ID, at.Add(-keep), dryRun)
				if err != nil {
					return err
				}
				if n > 0 {
					detail := fmt.Sprintf("%s: %d messages older than %s", mb.Name, n, formatDays(keep))
					report(SweepAction{At: at, Action: action, Account: a.Address(), Detail: detail})
					if !dryRun {
						if err := e.store.AppendAudit(ctx, store.AuditEntry{Actor: store.ActorPolicy, Action: "mail." + action, Account: a.Address(), Reason: detail}); err != nil {
							return err
						}
					}
				}
			}
		}
	}
}

// sweepVanished forgets the expunges older than store.VanishedRetention
// that QRESYNC clients could still be told exactly; a client that comes
// back later gets the UIDs missing below UIDNEXT instead. Bookkeeping,
// not an action on an account: nothing to report.
func (e *Engine) sweepVanished(ctx context.Context, at time.Time, dryRun bool, _ func(SweepAction)) error {
	if dryRun {
		return nil
	}
	_, err := e.store.PruneVanished(ctx, at.Add(-store.VanishedRetention))
	return err
}

// sweepLoginHistory removes login records older than login-history
// (privacy policy 4: access logs are kept only as long as stated).
// Bookkeeping: nothing to report.
func (e *Engine) sweepLoginHistory(ctx context.Context, at time.Time, dryRun bool, _ func(SweepAction)) error {
	if dryRun {
		return nil
	}
	_, err := e.pruneLoginHistory(ctx, at)
	return err
}

// sweepAudit removes audit entries older than audit-retention (privacy
// policy 4: logs of what was done with personal data are kept only as
// long as stated). Bookkeeping: nothing to report.
func (e *Engine) sweepAudit(ctx context.Context, at time.Time, dryRun bool, _ func(SweepAction)) error {
	if dryRun || e.cfg.AuditRetention <= 0 {
		return nil
	}
	_, err := e.store.PruneAudit(ctx, at.Add(-e.cfg.AuditRetention), sweepBatch)
	return err
}

// expireMailbox expunges (or counts) the messages that entered a mailbox
// before cutoff, a bounded batch per transaction.
func (e *Engine) expireMailbox(ctx context.Context, acct uint64, mbox uint32, cutoff time.Time, dryRun bool) (int, error) {
	total := 0
	const batch = 1000
	for {
		uids, err := e.store.OlderThan(acct, mbox, cutoff, batch)
		if err != nil || len(uids) == 0 {
			return total, err
		}
		if dryRun {
			total += len(uids)
			if len(uids) < batch {
				return total, nil
			}
			// A dry run cannot expunge to move on: count the rest.
			more, err := e.store.OlderThan(acct, mbox, cutoff, 1<<30)
			return len(more), err
		}
		removed, err := e.store.Expunge(ctx, acct, mbox, uids)
		total += len(removed)
		if err != nil || len(uids) < batch {
			return total, err
		}
	}
}

func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// warningLetter renders the inactivity warning (Russian, Kazakh and
// English, citing the clauses it applies).
func (e *Engine) warningLetter(a *accounts.Account, at, deadline time.Time) ([]byte, error) {
	src := defaultWarning
	if e.life.Template != "" {
		src = e.life.Template
	}
	tmpl, err := template.New("warning").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("warning letter template: %w", err)
	}
	operator := e.life.Operator
	if operator == "" {
		operator = "АО «Казпочта» / «Қазпошта» АҚ / Kazpost JSC"
	}
	subject := "Ваш почтовый ящик будет удалён / Пошта жәшігіңіз жойылады / Your mailbox will be deleted"
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]string{
		"From":       "noreply@" + a.Domain,
		"Address":    a.Address(),
		"SubjectB64": base64.StdEncoding.EncodeToString([]byte(subject)),
		"Date":       at.Format(time.RFC1123Z),
		"MessageID":  fmt.Sprintf("inactivity-%d-%d@%s", a.ID, at.Unix(), a.Domain),
		"LastUse":    a.LastUseAt.Format("2006-01-02"),
		"Deadline":   deadline.Format("2006-01-02"),
		"Operator":   operator,
	})
	if err != nil {
		return nil, fmt.Errorf("warning letter template: %w", err)
	}
	// Templates are written with LF; mail is CRLF.
	return bytes.ReplaceAll(bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")), nil
}
