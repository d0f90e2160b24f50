package main

// End-to-end test of the inactivity lifecycle (SPEC, terms 2.10-2.12)
// through the real binary: `abox policy run --at` moves the clock of the
// sweeps forward month by month, directly and through a running server.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

func TestPolicyRunTimeTravel(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		alice, bob, carol := "alice@"+testDomain, "bob@"+testDomain, "carol@"+testDomain
		t0 := a.addUser("alice").CreatedAt // registration counts as use
		a.addUser("bob")
		a.addUser("carol")
		a.OK("user", "set", carol, "--exempt") // a role account

		sweep := func(at time.Time, extra ...string) policyRunResult {
			t.Helper()
			var r policyRunResult
			a.JSON(&r, append([]string{"policy", "run", "--at", at.UTC().Format(time.RFC3339)}, extra...)...)
			if !r.At.Equal(at.UTC().Truncate(time.Second)) {
				t.Errorf("policy run --at %v answered for %v", at, r.At)
			}
			return r
		}
		actions := func(r policyRunResult) string {
			var s []string
			for _, act := range r.Actions {
				s = append(s, act.Action+" "+act.Account)
			}
			slices.Sort(s)
			return strings.Join(s, ", ")
		}
		messages := func(addr string) int64 {
			t.Helper()
			u := a.showUser(addr)
			if u.Usage == nil {
				t.Fatalf("user show %s has no usage", addr)
			}
			return u.Usage.Messages
		}

		if got := actions(sweep(t0.AddDate(0, 10, 0))); got != "" {
			t.Fatalf("10 months: %q", got)
		}
		// At 11 months: one warning letter each (not the role account).
		// The dry run prints the same actions and changes nothing.
		in11 := t0.AddDate(0, 11, 1)
		if r := sweep(in11, "--dry-run"); !r.DryRun || actions(r) != "warn "+alice+", warn "+bob {
			t.Fatalf("dry run at 11 months: %+v", r)
		}
		out := a.OK("policy", "run", "--at", in11.UTC().Format(time.RFC3339), "--dry-run")
		if !strings.Contains(out, "would warn "+alice) || !strings.Contains(out, "2 actions as of") {
			t.Errorf("human dry-run output:\n%s", out)
		}
		if n := messages(alice); n != 0 {
			t.Fatalf("the dry run delivered %d letters", n)
		}
		if got := actions(sweep(in11)); got != "warn "+alice+", warn "+bob {
			t.Fatalf("11 months: %q", got)
		}
		if messages(alice) != 1 || messages(bob) != 1 || messages(carol) != 0 {
			t.Fatalf("warning letters: alice %d bob %d carol %d", messages(alice), messages(bob), messages(carol))
		}
		if got := actions(sweep(t0.AddDate(0, 11, 20))); got != "" {
			t.Fatalf("a second warning: %q", got)
		}

		// Past 12 months: pending deletion, graced one month from the sweep.
		in12 := t0.AddDate(1, 0, 1)
		if got := actions(sweep(in12)); got != "pending-deletion "+alice+", pending-deletion "+bob {
			t.Fatalf("12 months: %q", got)
		}
		u := a.showUser(alice)
		if u.State != "pending-deletion" || u.GraceUntil == nil {
			t.Fatalf("alice after 12 months: %+v", u)
		}
		if g := u.GraceUntil.Sub(in12); g < 28*24*time.Hour || g > 31*24*time.Hour {
			t.Errorf("grace ends %v after the sweep, want one month", g)
		}
		// The operator restores bob inside the grace (and, since this
		// test cannot move restore's clock, marks him exempt so the
		// later sweeps leave him alone).
		a.OK("user", "restore", bob)
		a.OK("user", "set", bob, "--exempt")
		if u := a.showUser(bob); u.State != "active" || messages(bob) != 1 {
			t.Fatalf("bob after restore: %+v", u)
		}

		// Inside alice's grace nothing happens; after it she is purged
		// and her login is free again.
		if got := actions(sweep(in12.AddDate(0, 0, 14))); got != "" {
			t.Fatalf("inside the grace: %q", got)
		}
		if got := actions(sweep(t0.AddDate(1, 1, 3))); got != "purge "+alice {
			t.Fatalf("after the grace: %q", got)
		}
		if u := a.showUser(alice); u.State != "purged" || u.PurgedAt == nil {
			t.Fatalf("alice after purge: %+v", u)
		}
		if !aboxtest.InCluster() { // abox check is bbolt's
			a.OK("check")
		}
		purgedID := a.accountID(alice)
		again := a.addUser("alice")
		if again.State != "active" || messages(alice) != 0 {
			t.Fatalf("alice registered again: %+v, %d messages", again, messages(alice))
		}
		// The first alice's trail and the new one's are apart (the new
		// holder is another account).
		trail := func(args ...string) string {
			var acts []string
			for _, e := range a.audit(append([]string{"--account", alice}, args...)...) {
				if e.Action != "user.show" { // reads are audited too; the trail of changes is what is checked
					acts = append(acts, e.Action)
				}
			}
			return strings.Join(acts, " ")
		}
		if got := trail("--account-id", fmt.Sprint(purgedID)); got != "user.add user.warn-inactive user.pending-deletion user.purge" {
			t.Errorf("the first alice's audit trail: %q", got)
		}
		if got := trail(); got != "user.add" {
			t.Errorf("the new alice's audit trail: %q", got)
		}
		if u := a.showUser(carol); u.State != "active" {
			t.Errorf("the exempt account is %s", u.State)
		}
		a.Fail(2, "policy", "run", "--at", "next tuesday")
	})
}
