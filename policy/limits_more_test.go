package policy

import (
	"net/netip"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

func TestServicesPerClass(t *testing.T) {
	e, st, _ := lifecycleEnv(t)
	hash, _ := accounts.HashPassword("correct horse battery staple", accounts.HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	st.SetClass(ctx, "readonly", func(c *accounts.Class) error { c.Services = []string{accounts.ServiceIMAP}; return nil }, store.Audit{Actor: store.ActorOperator})
	if _, err := st.CreateAccount(ctx, accounts.Account{Login: "reader", Domain: "example.kz", Class: "readonly", PasswordHash: hash}, store.Audit{Actor: store.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.7")
	if _, _, err := e.Authenticate(ctx, "imap", "reader@example.kz", "correct horse battery staple", ip); err != nil {
		t.Fatalf("imap login refused: %v", err)
	}
	if _, _, err := e.Authenticate(ctx, "submission", "reader@example.kz", "correct horse battery staple", ip); err == nil || ReasonOf(err) == "" {
		t.Fatalf("submission allowed for an imap-only class: %v", err)
	}
}

func TestSenderRateLimit(t *testing.T) {
	l := newRateLimits(Config{SenderMessagesPerMinute: 3})
	now := time.Now()
	for i := range 3 {
		if err := l.AllowSender("egov", now); err != nil {
			t.Fatalf("message %d refused: %v", i, err)
		}
	}
	if err := l.AllowSender("egov", now); err == nil {
		t.Fatal("fourth message in the minute allowed")
	}
	if err := l.AllowSender("kazpost", now); err != nil {
		t.Fatalf("another sender limited: %v", err)
	}
	if err := l.AllowSender("egov", now.Add(time.Minute)); err != nil {
		t.Fatalf("not refilled after a minute: %v", err)
	}
}
