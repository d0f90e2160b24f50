package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"abox/accounts"
	"abox/store"
)

// --- classes ---

type classView struct {
	Name                  string   `json:"name"`
	Storage               int64    `json:"storage"`
	Messages              int64    `json:"messages"`
	MaxMessageSize        int64    `json:"max_message_size"`
	ReceivedPerDay        int64    `json:"received_per_day"`
	SentPerDay            int64    `json:"sent_per_day"`
	RecipientsPerMessage  int64    `json:"recipients_per_message"`
	IMAPCommandsPerMinute int64    `json:"imap_commands_per_minute"`
	IMAPCommandBurst      int64    `json:"imap_command_burst"`
	ConnectionsPerAccount int64    `json:"connections_per_account"`
	Mailboxes             int64    `json:"mailboxes"`
	MailboxDepth          int64    `json:"mailbox_depth"`
	MailboxNameBytes      int64    `json:"mailbox_name_bytes"`
	Services              []string `json:"services"`
	RetentionTrash        string   `json:"retention_trash"`
	RetentionJunk         string   `json:"retention_junk"`
	MaxAge                string   `json:"max_age"`
}

func classViewOf(c accounts.Class) classView {
	return classView{
		Name: c.Name, Storage: c.StorageBytes, Messages: c.Messages, MaxMessageSize: c.MaxMessageSize,
		ReceivedPerDay: c.ReceivedPerDay, SentPerDay: c.SentPerDay, RecipientsPerMessage: c.RecipientsPerMessage,
		IMAPCommandsPerMinute: c.IMAPCommandsPerMinute, IMAPCommandBurst: c.IMAPCommandBurst, ConnectionsPerAccount: c.ConnectionsPerAccount,
		Mailboxes: c.MaxMailboxes, MailboxDepth: c.MaxMailboxDepth, MailboxNameBytes: c.MaxMailboxNameBytes,
		Services: services(c.Services), RetentionTrash: formatDuration(c.RetentionTrash),
		RetentionJunk: formatDuration(c.RetentionJunk), MaxAge: formatDuration(c.MaxAge),
	}
}

// classSetArgs carries only the limits given on the command line, already
// parsed (nil = unchanged).
type classSetArgs struct {
	Name                  string         `json:"name"`
	Storage               *int64         `json:"storage,omitempty"`
	Messages              *int64         `json:"messages,omitempty"`
	MaxMessageSize        *int64         `json:"max_message_size,omitempty"`
	ReceivedPerDay        *int64         `json:"received_per_day,omitempty"`
	SentPerDay            *int64         `json:"sent_per_day,omitempty"`
	RecipientsPerMessage  *int64         `json:"recipients_per_message,omitempty"`
	IMAPCommandsPerMinute *int64         `json:"imap_commands_per_minute,omitempty"`
	IMAPCommandBurst      *int64         `json:"imap_command_burst,omitempty"`
	ConnectionsPerAccount *int64         `json:"connections_per_account,omitempty"`
	Mailboxes             *int64         `json:"mailboxes,omitempty"`
	MailboxDepth          *int64         `json:"mailbox_depth,omitempty"`
	MailboxNameBytes      *int64         `json:"mailbox_name_bytes,omitempty"`
	Services              *[]string      `json:"services,omitempty"`
	RetentionTrash        *time.Duration `json:"retention_trash,omitempty"`
	RetentionJunk         *time.Duration `json:"retention_junk,omitempty"`
	MaxAge                *time.Duration `json:"max_age,omitempty"`
	Summary               string         `json:"summary"` // the flags as given, for the audit log
}

// services shows an empty list as every service.
func services(l []string) []string {
	if len(l) == 0 {
		return []string{accounts.ServiceIMAP, accounts.ServiceSubmission}
	}
	return l
}

func validClassName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("class name %q: 1 to 64 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("class name %q: use a-z, 0-9, '-' and '_'", name)
		}
	}
	return nil
}

func init() {
	register("class.list", func(ctx context.Context, e *env, _ struct{}) ([]classView, error) {
		cs, err := e.store.Classes()
		out := []classView{}
		for _, c := range cs {
			out = append(out, classViewOf(c))
		}
		return out, err
	})
	register("class.set", func(ctx context.Context, e *env, a classSetArgs) (classView, error) {
		if err := validClassName(a.Name); err != nil {
			return classView{}, err
		}
		c, err := e.store.SetClass(ctx, a.Name, func(c *accounts.Class) error {
			set := func(dst *int64, v *int64) {
				if v != nil {
					*dst = *v
				}
			}
			setD := func(dst *time.Duration, v *time.Duration) {
				if v != nil {
					*dst = *v
				}
			}
			set(&c.StorageBytes, a.Storage)
			set(&c.Messages, a.Messages)
			set(&c.MaxMessageSize, a.MaxMessageSize)
			set(&c.ReceivedPerDay, a.ReceivedPerDay)
			set(&c.SentPerDay, a.SentPerDay)
			set(&c.RecipientsPerMessage, a.RecipientsPerMessage)
			set(&c.IMAPCommandsPerMinute, a.IMAPCommandsPerMinute)
			set(&c.IMAPCommandBurst, a.IMAPCommandBurst)
			set(&c.ConnectionsPerAccount, a.ConnectionsPerAccount)
			set(&c.MaxMailboxes, a.Mailboxes)
			set(&c.MaxMailboxDepth, a.MailboxDepth)
			set(&c.MaxMailboxNameBytes, a.MailboxNameBytes)
			if a.Services != nil {
				c.Services = *a.Services
			}
			setD(&c.RetentionTrash, a.RetentionTrash)
			setD(&c.RetentionJunk, a.RetentionJunk)
			setD(&c.MaxAge, a.MaxAge)
			return nil
		}, e.audit("class "+a.Name+": "+a.Summary))
		return classViewOf(c), err
	})
}

// --- trusted senders ---

type senderView struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	From      []string  `json:"from"`
	AllowIP   []string  `json:"allow_ip"`
	CreatedAt time.Time `json:"created_at"`
	// ReceiptsTo is where evidence receipts are mailed ("": nowhere).
	ReceiptsTo string `json:"receipts_to,omitempty"`
}

func senderViewOf(s accounts.Sender) senderView {
	v := senderView{Name: s.Name, Kind: string(s.Kind), From: s.From, AllowIP: s.AllowIP, CreatedAt: s.CreatedAt, ReceiptsTo: s.ReceiptsTo}
	if v.AllowIP == nil {
		v.AllowIP = []string{}
	}
	return v
}

type senderAddArgs struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	From       []string `json:"from"`
	AllowIP    []string `json:"allow_ip"`
	Password   string   `json:"password"`
	ReceiptsTo string   `json:"receipts_to,omitempty"`
}

type senderSetArgs struct {
	Name       string `json:"name"`
	ReceiptsTo string `json:"receipts_to"`
}

type nameArgs struct {
	Name string `json:"name"`
}

func init() {
	register("sender.add", func(ctx context.Context, e *env, a senderAddArgs) (senderView, error) {
		snd, err := e.newSender(a)
		if err != nil {
			return senderView{}, err
		}
		if err := e.store.AddSender(ctx, snd, e.audit("sender "+snd.Name+" ("+string(snd.Kind)+")")); err != nil {
			return senderView{}, err
		}
		snd, err = e.store.Sender(snd.Name)
		return senderViewOf(snd), err
	})
	register("sender.list", func(ctx context.Context, e *env, _ struct{}) ([]senderView, error) {
		ss, err := e.store.Senders()
		out := []senderView{}
		for _, s := range ss {
			out = append(out, senderViewOf(s))
		}
		return out, err
	})
	register("sender.set", func(ctx context.Context, e *env, a senderSetArgs) (senderView, error) {
		to, err := validReceiptsTo(a.ReceiptsTo)
		if err != nil {
			return senderView{}, err
		}
		if err := e.store.SetSenderReceipts(ctx, a.Name, to, e.audit("")); err != nil {
			return senderView{}, err
		}
		snd, err := e.store.Sender(a.Name)
		return senderViewOf(snd), err
	})
	register("sender.remove", func(ctx context.Context, e *env, a nameArgs) (senderView, error) {
		return senderView{Name: a.Name}, e.store.RemoveSender(ctx, a.Name, e.audit("sender "+a.Name))
	})
}

func (e *env) newSender(a senderAddArgs) (accounts.Sender, error) {
	if err := validSenderName(a.Name); err != nil {
		return accounts.Sender{}, err
	}
	receipts, err := validReceiptsTo(a.ReceiptsTo)
	if err != nil {
		return accounts.Sender{}, err
	}
	kind, ok := accounts.ParseSenderKind(a.Kind)
	if !ok {
		return accounts.Sender{}, fmt.Errorf("sender kind %q: use official, billing or informational", a.Kind)
	}
	if len(a.From) == 0 {
		return accounts.Sender{}, errors.New("a sender needs at least one --from address")
	}
	var from []string
	for _, f := range a.From {
		login, domain, ok := accounts.SplitAddress(strings.TrimSpace(f))
		if !ok || strings.ContainsAny(login, " <>\"") {
			return accounts.Sender{}, fmt.Errorf("--from %q is not an address", f)
		}
		d, err := accounts.NormalizeDomain(domain)
		if err != nil {
			return accounts.Sender{}, fmt.Errorf("--from %q: %w", f, err)
		}
		from = append(from, login+"@"+d)
	}
	var nets []string
	for _, n := range a.AllowIP {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			addr, err2 := netip.ParseAddr(n)
			if err2 != nil {
				return accounts.Sender{}, fmt.Errorf("--allow-ip %q is not a CIDR prefix or address", n)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		nets = append(nets, p.Masked().String())
	}
	if err := e.cfg.rules().CheckPassword(a.Password, a.Name); err != nil {
		return accounts.Sender{}, err
	}
	hash, err := accounts.HashPassword(a.Password, e.cfg.hashParams())
	if err != nil {
		return accounts.Sender{}, err
	}
	return accounts.Sender{Name: a.Name, Kind: kind, From: from, AllowIP: nets, PasswordHash: hash, ReceiptsTo: receipts}, nil
}

// validSenderName keeps sender names usable as SASL user names and
// distinct from subscriber addresses (no '@').
func validSenderName(name string) error {
	if len(name) < 2 || len(name) > 64 {
		return fmt.Errorf("sender name %q: 2 to 64 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("sender name %q: use letters, digits, '.', '-' and '_'", name)
		}
	}
	return nil
}

// --- audit, check ---

type auditArgs struct {
	Account string `json:"account"`
	// AccountID picks one holder of the address: by default the
	// current one (or the last, when it is purged).
	AccountID uint64    `json:"account_id,omitempty"`
	Since     time.Time `json:"since"`
	After     uint64    `json:"after"`
	Limit     int       `json:"limit"`
}

type auditPage struct {
	Entries []store.AuditEntry `json:"entries"`
	Next    uint64             `json:"next"`
}

func init() {
	register("audit", func(ctx context.Context, e *env, a auditArgs) (auditPage, error) {
		if a.Account != "" {
			addr, err := normalizeAddress(a.Account)
			if err != nil {
				return auditPage{}, err
			}
			a.Account = addr
			if a.AccountID == 0 {
				if acct, err := e.store.Account(addr); err == nil {
					a.AccountID = acct.ID
				}
			}
		}
		limit := a.Limit
		if limit <= 0 || limit > 1000 {
			limit = 1000
		}
		list, err := e.store.ListAudit(store.AuditFilter{Account: a.Account, AccountID: a.AccountID, Since: a.Since, After: a.After, Limit: limit})
		page := auditPage{Entries: list}
		if page.Entries == nil {
			page.Entries = []store.AuditEntry{}
		}
		if len(list) == limit {
			page.Next = list[len(list)-1].Seq
		}
		return page, err
	})
	register("check", func(ctx context.Context, e *env, _ struct{}) (store.CheckReport, error) {
		st, err := e.file()
		if err != nil {
			return store.CheckReport{}, err
		}
		return st.Check()
	})
	register("check.acknowledge", func(ctx context.Context, e *env, _ struct{}) (int, error) {
		st, err := e.file()
		if err != nil {
			return 0, err
		}
		return st.AcknowledgeIncidents(ctx, e.audit("abox check --acknowledge"))
	})
}
