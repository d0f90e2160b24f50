package imapd_test

// The account's IMAP command budget (issue 13, "Default limits"): a burst
// and a sustained rate per account, across sessions and logins; past the
// burst commands wait for their turn, and only waits too long to be
// served are refused. Assertions count commands, never time them.

import (
	"strings"
	"testing"
	"time"
)

// TestCommandBudgetAcrossReconnects: an abusive loop is throttled, and
// reconnecting gives it nothing back. At 5 commands a minute a command
// past the burst would wait 12 s, longer than any is held, so it is
// refused at once: the loop gets exactly its burst (plus the tokens
// earned if the machine is slow enough for 12 s to pass), NOOPs (which
// go-imap answers itself) included; then BYE.
func TestCommandBudgetAcrossReconnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.OK("class", "set", "loop", "--imap-commands-per-minute", "5", "--imap-command-burst", "10")
	alice := e.addUser("alice", "--class", "loop")
	bob := e.addUser("bob", "--class", "loop")
	s := e.start()

	// Of every three commands two are STATUS and one NOOP; the burst of
	// 10 serves 7 STATUS and 3 NOOPs. A NOOP over the budget is still
	// answered OK (go-imap answers it; see the report) but counts.
	served, limited, byes := 0, 0, 0
	start := time.Now()
	for conn := range 4 {
		c := dialIMAPS(t, s.imaps, "alice")
		c.login(alice)
		for i := range 50 {
			cmd := "STATUS INBOX (MESSAGES)"
			if i%3 == 2 {
				cmd = "NOOP"
			}
			r, err := c.try(cmd)
			if err != nil {
				if !strings.Contains(err.Error(), "* BYE") {
					t.Errorf("connection %d closed without BYE: %v", conn, err)
				}
				byes++
				break
			}
			switch {
			case r.status == "OK" && cmd != "NOOP" && !r.has("BYE"):
				served++
			case r.status == "NO" && r.code() == "LIMIT":
				limited++
			case r.status == "OK":
			default:
				t.Fatalf("%s: %s, want OK or NO [LIMIT]", cmd, r)
			}
			if r.has("BYE") {
				byes++
				break
			}
		}
	}
	// A token comes back every 12 s: on a loaded machine the loop may
	// take long enough to earn some; the bound allows exactly those.
	earned := int(time.Since(start)/(12*time.Second)) + 1
	refused := s.metric(t, "abox_imap_rate_limited_total")
	t.Logf("%d STATUS served, %d NO [LIMIT], %.0f commands refused, %d BYE over 4 connections", served, limited, refused, byes)
	if served < 7 || served > 7+earned {
		t.Errorf("%d STATUS served over 4 connections, want the 7 of the burst (%d at most, with the tokens earned meanwhile)", served, 7+earned)
	}
	if refused < 50 || byes < 4 {
		t.Errorf("%.0f refusals and %d BYE: the loop was not stopped on every connection", refused, byes)
	}

	// Another account has a budget of its own.
	b := dialIMAPS(t, s.imaps, "bob")
	b.login(bob)
	for range 9 {
		b.ok("STATUS INBOX (MESSAGES)")
	}
	b.ok("LOGOUT")
}

// TestCommandBudgetDelaysInsteadOfFailing: past the burst, at a rate
// where a command waits 50 ms, every command is served;
// the waits show in abox_imap_commands_delayed_total.
func TestCommandBudgetDelaysInsteadOfFailing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.OK("class", "set", "paced", "--imap-commands-per-minute", "1200", "--imap-command-burst", "5")
	alice := e.addUser("alice", "--class", "paced")
	s := e.start()
	c := inInbox(t, s.imaps, "alice", alice) // LOGIN and SELECT spend 1
	const n = 40
	for range n {
		c.ok("STATUS INBOX (MESSAGES)")
	}
	for range 5 {
		c.ok("NOOP")
	}
	delayed := s.metric(t, "abox_imap_commands_delayed_total")
	if refused := s.metric(t, "abox_imap_rate_limited_total"); refused != 0 {
		t.Errorf("%.0f commands refused, want none (each waits 50 ms)", refused)
	}
	// 46 commands, a burst of 5 (the bucket refills while they run, so
	// a few more may pass without waiting).
	if delayed < 20 || delayed > n+5 {
		t.Errorf("%.0f commands waited for their turn, want most of the %d past the burst", delayed, n+5-4)
	}
	t.Logf("%.0f of %d commands waited", delayed, n+6)
}
