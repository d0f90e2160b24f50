package policy

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

// hashEnv is an engine over a real store holding sam@example.kz, whose
// password hash is cheap (the bounds, not argon2's cost, are tested).
func hashEnv(t *testing.T, lim HashLimits, trusted ...netip.Prefix) *Engine {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.AddDomain(ctx, "example.kz", store.Audit{Actor: store.ActorOperator})
	hash, _ := accounts.HashPassword("correct horse battery staple", accounts.HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if _, err := st.CreateAccount(ctx, accounts.Account{Login: "sam", Domain: "example.kz", PasswordHash: hash}, store.Audit{Actor: store.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	return New(st, Config{Hashing: lim, TrustedNetworks: trusted, FailedLoginsPerMinute: 1000})
}

func (g *hashGate) waiters() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// TestHashGate: a password check needs a slot, globally and per client
// address (not for trusted networks); without one it waits, then fails
// with ErrAuthBusy, which is not a failed login. The dummy check for an
// unknown user goes through the same gate.
func TestHashGate(t *testing.T) {
	trusted := netip.MustParsePrefix("10.0.0.0/8")
	e := hashEnv(t, HashLimits{Concurrent: 2, PerAddress: 1, Wait: -1}, trusted)
	g := e.hashes
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
	login := func(user string, ip netip.Addr) error {
		_, _, err := e.Authenticate(ctx, "imap", user, "not the password", ip)
		return err
	}
	holdA, err := g.acquire(ctx, a, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		user string
		ip   netip.Addr
		want error
	}{
		{"address at its bound", "sam@example.kz", a, ErrAuthBusy},
		{"same IPv4 /24, another address", "sam@example.kz", netip.MustParseAddr("192.0.2.2"), ErrAuthFailed},
		{"another address", "sam@example.kz", b, ErrAuthFailed},
		{"unknown user at the bound", "nobody@example.kz", a, ErrAuthBusy},
		{"unknown sender at the bound", "nobody", a, ErrAuthBusy},
	} {
		if err := login(tc.user, tc.ip); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	holdB, err := g.acquire(ctx, b, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := login("sam@example.kz", c); !errors.Is(err, ErrAuthBusy) || ReasonOf(err) == "" {
		t.Errorf("every slot taken: %v, want ErrAuthBusy with a reason", err)
	}
	if err := login("nobody@example.kz", c); !errors.Is(err, ErrAuthBusy) {
		t.Errorf("every slot taken, unknown user (dummy hash): %v, want ErrAuthBusy", err)
	}
	holdB()
	// A trusted network has no per-address bound, only the global one.
	holdT, _ := g.acquire(ctx, netip.MustParseAddr("10.1.2.3"), false)
	if err := login("sam@example.kz", netip.MustParseAddr("10.1.2.3")); !errors.Is(err, ErrAuthBusy) {
		t.Errorf("trusted address, global bound reached: %v, want ErrAuthBusy", err)
	}
	holdA()
	if err := login("sam@example.kz", netip.MustParseAddr("10.1.2.3")); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("trusted address with its own check running, a global slot free: %v, want ErrAuthFailed", err)
	}
	holdT()
	// Busy refusals are not failed logins: no lock, no delay.
	for range 30 {
		hold, _ := g.acquire(ctx, a, true)
		login("tess@example.kz", a)
		hold()
	}
	if d, err := e.Limits.LoginAllowed(a, "tess@example.kz", e.Now()); err != nil || d > 0 {
		t.Errorf("after busy refusals: delay %v, %v; want none", d, err)
	}
	if _, _, err := e.Authenticate(ctx, "imap", "sam@example.kz", "correct horse battery staple", a); err != nil {
		t.Errorf("right password with a free slot: %v", err)
	}
}

// TestHashGateQueue: a check waits for a slot that frees, and gives up
// when its context ends.
func TestHashGateQueue(t *testing.T) {
	e := hashEnv(t, HashLimits{Concurrent: 1, PerAddress: 1, Wait: time.Hour})
	g := e.hashes
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	hold, _ := g.acquire(ctx, a, true)
	done := make(chan error)
	go func() {
		_, _, err := e.Authenticate(ctx, "imap", "sam@example.kz", "correct horse battery staple", b)
		done <- err
	}()
	for g.waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	hold()
	if err := <-done; err != nil {
		t.Errorf("a queued login after the slot freed: %v", err)
	}
	hold, _ = g.acquire(ctx, a, true)
	defer hold()
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _, err := e.Authenticate(cctx, "imap", "sam@example.kz", "x", b)
		done <- err
	}()
	for g.waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("queued login whose context ended: %v", err)
	}
	if g.waiters() != 0 || len(g.byAddr) != 1 {
		t.Errorf("after the queue emptied: %d waiting, %d addresses tracked; want 0 and 1", g.waiters(), len(g.byAddr))
	}
}

// TestHashGateUnderLoad: 60 logins at once from three addresses never
// have more checks running than the bounds allow, in all or for one
// address, and each is answered as failed or busy.
func TestHashGateUnderLoad(t *testing.T) {
	e := hashEnv(t, HashLimits{Concurrent: 3, PerAddress: 2, Wait: 10 * time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[error]int{}
	for i := range 60 {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 3)})
		wg.Go(func() {
			_, _, err := e.Authenticate(ctx, "imap", "sam@example.kz", "wrong password", ip)
			kind := error(nil)
			for _, k := range []error{ErrAuthFailed, ErrAuthBusy} {
				if errors.Is(err, k) {
					kind = k
				}
			}
			if kind == nil {
				t.Errorf("login: %v, want failed or busy", err)
			}
			mu.Lock()
			counts[kind]++
			mu.Unlock()
		})
	}
	wg.Wait()
	g := e.hashes
	if g.peak > 3 || g.peakOne > 2 || g.peak == 0 {
		t.Errorf("at most %d checks ran at once, %d for one address; want 1-3 and at most 2", g.peak, g.peakOne)
	}
	if g.running != 0 || g.waiting != 0 || len(g.byAddr) != 0 {
		t.Errorf("after the logins: %d running, %d waiting, %d addresses; want none", g.running, g.waiting, len(g.byAddr))
	}
	t.Logf("failed %d, busy %d", counts[ErrAuthFailed], counts[ErrAuthBusy])
}

// TestHashGateTrustedQueue: logins from one trusted address beyond the
// running bound all wait their turn (only the global queue bounds
// them), as many as 2x the slots at once.
func TestHashGateTrustedQueue(t *testing.T) {
	lo := netip.MustParsePrefix("127.0.0.0/8")
	e := hashEnv(t, HashLimits{Concurrent: 2, PerAddress: 1, Wait: time.Hour}, lo)
	g := e.hashes
	ip := netip.MustParseAddr("127.0.0.1")
	hold1, _ := g.acquire(ctx, ip, false)
	hold2, _ := g.acquire(ctx, ip, false)
	const n = 6
	done := make(chan error, n)
	for range n {
		go func() {
			_, _, err := e.Authenticate(ctx, "imap", "sam@example.kz", "correct horse battery staple", ip)
			done <- err
		}()
	}
	for g.waiters() < n {
		select {
		case err := <-done:
			t.Fatalf("a trusted login did not wait for a slot: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	hold1()
	hold2()
	for range n {
		if err := <-done; err != nil {
			t.Errorf("queued trusted login: %v", err)
		}
	}
}
