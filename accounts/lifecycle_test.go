package accounts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)

// accountIn returns an account as the transitions would have left it in
// state s, with the deletion grace (if any) starting at t0.
func accountIn(s State) *Account {
	a := &Account{
		ID: 1, Login: "alice", Domain: "example.kz", Phone: "+77011234567",
		Class: DefaultClassName, PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$x$y",
		State: s, CreatedAt: t0.AddDate(-1, 0, 0), LastUseAt: t0.AddDate(0, -2, 0),
	}
	switch s {
	case Blocked:
		a.BlockReason, a.BlockedAt = "spam", t0.Add(-time.Hour)
	case PendingDeletion:
		a.DeletionAt, a.GraceUntil, a.DeletionReason = t0, GraceEnd(t0), "user request"
	case Purged:
		a.DeletionAt, a.GraceUntil, a.DeletionReason = t0.AddDate(0, -1, 0), t0, "user request"
		a.PurgedAt, a.PasswordHash, a.Phone = t0, "", ""
	}
	return a
}

func TestTransitionTable(t *testing.T) {
	inGrace := t0.Add(24 * time.Hour)
	graceOver := GraceEnd(t0)
	actions := map[string]func(a *Account) error{
		"block":   func(a *Account) error { return a.Block("spam", inGrace) },
		"unblock": func(a *Account) error { return a.Unblock(inGrace) },
		"delete":  func(a *Account) error { return a.StartDeletion("operator", inGrace) },
		"restore": func(a *Account) error { return a.Restore(inGrace) },
		"purge":   func(a *Account) error { return a.Purge(graceOver) },
	}
	const refused = State("")
	tests := []struct {
		from   State
		action string
		to     State // refused: error, account unchanged
	}{
		{Active, "block", Blocked},
		{Active, "unblock", refused},
		{Active, "delete", PendingDeletion},
		{Active, "restore", refused},
		{Active, "purge", refused},

		{Blocked, "block", refused},
		{Blocked, "unblock", Active},
		{Blocked, "delete", PendingDeletion},
		{Blocked, "restore", refused},
		{Blocked, "purge", refused},

		{PendingDeletion, "block", refused},
		{PendingDeletion, "unblock", refused},
		{PendingDeletion, "delete", refused},
		{PendingDeletion, "restore", Active},
		{PendingDeletion, "purge", Purged},

		{Purged, "block", refused},
		{Purged, "unblock", refused},
		{Purged, "delete", refused},
		{Purged, "restore", refused},
		{Purged, "purge", refused},

		{State("frozen"), "block", refused},
		{State("frozen"), "restore", refused},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+" "+tt.action, func(t *testing.T) {
			a := accountIn(tt.from)
			before := *a
			err := actions[tt.action](a)
			if tt.to == refused {
				if !errors.Is(err, ErrTransition) {
					t.Fatalf("error = %v, want ErrTransition", err)
				}
				if !strings.Contains(err.Error(), "alice@example.kz") {
					t.Errorf("error %q does not name the account", err)
				}
				if !reflect.DeepEqual(*a, before) {
					t.Errorf("refused transition changed the account:\n got %+v\nwant %+v", *a, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want state %s", err, tt.to)
			}
			if a.State != tt.to {
				t.Errorf("state = %s, want %s", a.State, tt.to)
			}
		})
	}
}

func TestTransitionMessages(t *testing.T) {
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"block pending", func() error { return accountIn(PendingDeletion).Block("x", t0) },
			"account alice@example.kz is pending-deletion: restore it first"},
		{"block blocked", func() error { return accountIn(Blocked).Block("x", t0) },
			"account alice@example.kz is already blocked"},
		{"unblock active", func() error { return accountIn(Active).Unblock(t0) },
			"account alice@example.kz is not blocked"},
		{"delete pending", func() error { return accountIn(PendingDeletion).StartDeletion("x", t0) },
			"already pending-deletion (grace ends 2026-02-10T09:00:00Z)"},
		{"restore after grace", func() error { return accountIn(PendingDeletion).Restore(GraceEnd(t0)) },
			"account alice@example.kz cannot be restored: its grace ended on 2026-02-10T09:00:00Z"},
		{"purge in grace", func() error { return accountIn(PendingDeletion).Purge(t0) },
			"cannot be purged before its grace ends on 2026-02-10T09:00:00Z"},
		{"restore active", func() error { return accountIn(Active).Restore(t0) },
			"not pending-deletion"},
		{"purged", func() error { return accountIn(Purged).Restore(t0) },
			"account alice@example.kz is purged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, ErrTransition) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want ErrTransition containing %q", err, tt.want)
			}
		})
	}
}

func TestBlockNeedsReason(t *testing.T) {
	for _, reason := range []string{"", "   ", "\t\n"} {
		a := accountIn(Active)
		if err := a.Block(reason, t0); !errors.Is(err, ErrTransition) || a.State != Active {
			t.Errorf("Block(%q) = %v, state %s; want ErrTransition, active", reason, err, a.State)
		}
	}
}

func TestBlockAndUnblockFields(t *testing.T) {
	a := accountIn(Active)
	if err := a.Block("  spam to many  ", t0); err != nil {
		t.Fatal(err)
	}
	if a.BlockReason != "spam to many" || !a.BlockedAt.Equal(t0) {
		t.Errorf("after Block: reason %q at %v", a.BlockReason, a.BlockedAt)
	}
	if err := a.Unblock(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if a.State != Active || a.BlockReason != "" || !a.BlockedAt.IsZero() {
		t.Errorf("after Unblock: %+v", a)
	}
}

func TestZeroTimeRefused(t *testing.T) {
	var zero time.Time
	for name, do := range map[string]func(a *Account) error{
		"block":   func(a *Account) error { return a.Block("x", zero) },
		"delete":  func(a *Account) error { return a.StartDeletion("x", zero) },
		"unblock": func(a *Account) error { return a.Unblock(zero) },
	} {
		a := accountIn(Active)
		if name == "unblock" {
			a = accountIn(Blocked)
		}
		if err := do(a); !errors.Is(err, ErrTransition) {
			t.Errorf("%s at zero time: error = %v, want ErrTransition", name, err)
		}
	}
}

func TestDeletionOfBlockedAccountRestoresToBlocked(t *testing.T) {
	a := accountIn(Blocked)
	blockedAt := a.BlockedAt
	if err := a.StartDeletion("operator: fraud", t0); err != nil {
		t.Fatal(err)
	}
	if a.State != PendingDeletion || a.BlockReason != "spam" || !a.DeletionAt.Equal(t0) ||
		!a.GraceUntil.Equal(GraceEnd(t0)) || a.DeletionReason != "operator: fraud" {
		t.Fatalf("after StartDeletion: %+v", a)
	}
	if err := a.Restore(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if a.State != Blocked || a.BlockReason != "spam" || !a.BlockedAt.Equal(blockedAt) {
		t.Errorf("after Restore: state %s reason %q blocked at %v; want blocked, spam, %v",
			a.State, a.BlockReason, a.BlockedAt, blockedAt)
	}
}

func TestRestoreWindow(t *testing.T) {
	end := GraceEnd(t0)
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"at the start", t0, true},
		{"one nanosecond before the end", end.Add(-time.Nanosecond), true},
		{"exactly at the end", end, false},
		{"a day after", end.AddDate(0, 0, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := accountIn(PendingDeletion)
			a.WarnedAt = t0.AddDate(0, -1, 0)
			err := a.Restore(tt.at)
			if tt.ok != (err == nil) {
				t.Fatalf("Restore = %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				if a.State != PendingDeletion {
					t.Errorf("refused restore changed state to %s", a.State)
				}
				return
			}
			if a.State != Active || !a.DeletionAt.IsZero() || !a.GraceUntil.IsZero() || a.DeletionReason != "" {
				t.Errorf("after Restore: %+v", a)
			}
			if !a.LastUseAt.Equal(tt.at) {
				t.Errorf("LastUseAt = %v, want %v (restoring counts as a use)", a.LastUseAt, tt.at)
			}
			if !a.WarnedAt.Equal(t0.AddDate(0, -1, 0)) {
				t.Errorf("WarnedAt changed to %v", a.WarnedAt)
			}
		})
	}
}

func TestPurgeWindow(t *testing.T) {
	end := GraceEnd(t0)
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"in the grace", t0.Add(time.Hour), false},
		{"one nanosecond before the end", end.Add(-time.Nanosecond), false},
		{"exactly at the end", end, true},
		{"a year after", end.AddDate(1, 0, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := accountIn(PendingDeletion)
			a.BlockReason, a.BlockedAt = "spam", t0.Add(-time.Hour)
			before := *a
			err := a.Purge(tt.at)
			if tt.ok != (err == nil) {
				t.Fatalf("Purge = %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				if !reflect.DeepEqual(*a, before) {
					t.Errorf("refused purge changed the account")
				}
				return
			}
			if a.State != Purged || !a.PurgedAt.Equal(tt.at) {
				t.Errorf("state %s purged at %v", a.State, a.PurgedAt)
			}
			if a.PasswordHash != "" || a.Phone != "" || a.BlockReason != "" {
				t.Errorf("personal data kept: hash %q phone %q reason %q", a.PasswordHash, a.Phone, a.BlockReason)
			}
			if a.Login != "alice" || a.Domain != "example.kz" || !a.DeletionAt.Equal(t0) ||
				!a.GraceUntil.Equal(end) || !a.CreatedAt.Equal(before.CreatedAt) || !a.BlockedAt.Equal(before.BlockedAt) {
				t.Errorf("address or dates lost: %+v", a)
			}
		})
	}
}

func TestPurgeWithoutGraceEndRefused(t *testing.T) {
	a := accountIn(PendingDeletion)
	a.GraceUntil = time.Time{}
	if err := a.Purge(t0.AddDate(1, 0, 0)); !errors.Is(err, ErrTransition) || a.State != PendingDeletion {
		t.Errorf("Purge = %v, state %s; want ErrTransition, pending-deletion", err, a.State)
	}
}

// GraceEnd is time.AddDate(0, 1, 0), which normalises a day past the end
// of the month into the next: January 31 plus one month is "February 31",
// that is March 3 (March 2 in a leap year). That is longer than a month,
// never shorter, which is the side the subscriber is owed.
func TestGraceEndIsOneCalendarMonth(t *testing.T) {
	tests := []struct {
		name     string
		from, to time.Time
	}{
		{"mid month", t0, time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)},
		{"across a year", time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)},
		{"Jan 31 non-leap", time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)},
		{"Jan 31 leap year", time.Date(2028, 1, 31, 12, 0, 0, 0, time.UTC), time.Date(2028, 3, 2, 12, 0, 0, 0, time.UTC)},
		{"Jan 28 non-leap", time.Date(2026, 1, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)},
		{"Mar 31", time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{"wall clock kept in a zone", time.Date(2026, 1, 10, 23, 30, 0, 0, time.FixedZone("+05", 5*3600)),
			time.Date(2026, 2, 10, 23, 30, 0, 0, time.FixedZone("+05", 5*3600))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := GraceEnd(tt.from); !got.Equal(tt.to) {
				t.Errorf("GraceEnd(%v) = %v, want %v", tt.from, got, tt.to)
			}
			a := accountIn(Active)
			if err := a.StartDeletion("test", tt.from); err != nil {
				t.Fatal(err)
			}
			if !a.GraceUntil.Equal(tt.to) {
				t.Errorf("GraceUntil = %v, want %v", a.GraceUntil, tt.to)
			}
		})
	}
}

func TestCanLogin(t *testing.T) {
	tests := []struct {
		state   State
		wantErr error
	}{
		{Active, nil},
		{Blocked, ErrBlocked},
		{PendingDeletion, ErrPendingDeletion},
		{Purged, ErrPurged},
		{State(""), ErrUnknownState},
		{State("frozen"), ErrUnknownState},
	}
	for _, tt := range tests {
		t.Run("state "+string(tt.state), func(t *testing.T) {
			err := accountIn(tt.state).CanLogin()
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("CanLogin = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), string(tt.state)) {
				t.Errorf("error %q does not name the state", err)
			}
		})
	}
}

func TestMarkUsed(t *testing.T) {
	tests := []struct {
		name     string
		last, at time.Time
		want     bool
	}{
		{"never used", time.Time{}, t0, true},
		{"same instant", t0, t0, false},
		{"59 minutes later", t0, t0.Add(59 * time.Minute), false},
		{"just under an hour", t0, t0.Add(time.Hour - time.Nanosecond), false},
		{"exactly an hour later", t0, t0.Add(time.Hour), true},
		{"a month later", t0, t0.AddDate(0, 1, 0), true},
		{"earlier (clock went back)", t0, t0.Add(-2 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Account{LastUseAt: tt.last}
			got := a.MarkUsed(tt.at)
			if got != tt.want {
				t.Errorf("MarkUsed = %v, want %v", got, tt.want)
			}
			want := tt.last
			if tt.want {
				want = tt.at
			}
			if !a.LastUseAt.Equal(want) {
				t.Errorf("LastUseAt = %v, want %v", a.LastUseAt, want)
			}
		})
	}
}

func TestMarkUsedCoalescesToOneWriteAnHour(t *testing.T) {
	a := &Account{}
	writes := 0
	for m := 0; m < 180; m++ { // a login every minute for three hours
		if a.MarkUsed(t0.Add(time.Duration(m) * time.Minute)) {
			writes++
		}
	}
	if writes != 3 {
		t.Errorf("writes = %d, want 3", writes)
	}
}
